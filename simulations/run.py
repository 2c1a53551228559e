"""Hydra entry point for simulations: ``python -m simulations.run [--multirun] key=val ...``.

A thin adapter over :func:`ssl_fed.fed.simulation.run_federation` (``ssl-fed simulate`` calls the
library directly). Sweeps use Hydra's multirun, one run directory per job::

    python -m simulations.run --multirun privacy.target_epsilon=1,3,8
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ssl_fed.config import config_dir, to_root_config
from ssl_fed.fed.simulation import run_federation


@hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
def main(raw: DictConfig) -> None:
    """Hydra entry point (``--multirun`` gives each job its own directory as ``out``).

    Without ``out=`` a job writes to Hydra's output directory; with ``out=DIR`` under
    ``--multirun`` job ``i`` writes to ``DIR/<i>``, so no two jobs share a run directory.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if not any(o.split("=", 1)[0].lstrip("+") == "out" for o in hc.overrides.task):
        raw.out = hc.runtime.output_dir
    elif hc.mode == RunMode.MULTIRUN:
        raw.out = str(Path(raw.out) / str(hc.job.num))
    run_federation(to_root_config(raw))


if __name__ == "__main__":
    main()
