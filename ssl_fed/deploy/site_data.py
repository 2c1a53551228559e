"""A deployed site's images: what ``site start`` validates is exactly what the site trains on.

Simulations hold out ``data.test_fraction`` of a labelled set for evaluation; a deployed site's
operator did not ask for that, so a deployed site trains on every image unless ``--eval-fraction
F`` (node config ``eval-fraction``) holds out a stratified fraction F for site-local evaluation.
:func:`ssl_fed.site.node.site_data` uses :func:`deployed_splits` for every site with a
``data-path``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ssl_fed.config import ConfigError
from ssl_fed.deploy.flwr_cli import DeployError

if TYPE_CHECKING:
    from pathlib import Path

    from ssl_fed.config import DataConfig
    from ssl_fed.data import DataSplits
    from ssl_fed.deploy.site import SiteOptions


def data_format(path: Path, given: str | None) -> str:
    """``folder`` for a directory, ``npz`` for a ``.npz`` file, unless given."""
    fmt = given or ("npz" if path.suffix == ".npz" else "folder")
    if fmt not in {"folder", "npz"}:
        raise DeployError(f"--data-format {fmt}: use folder or npz")
    return fmt


def site_data_config(opts: SiteOptions) -> DataConfig:
    """Return the data config a deployed site trains on (the node config carries its fields)."""
    from ssl_fed.config import DataConfig

    fmt = data_format(opts.data, opts.data_format)
    return replace(
        DataConfig(),
        name=fmt,
        path=str(opts.data),
        image_size=opts.image_size,
        channels=None,
        on_bad_file=opts.on_bad_file,
    )


def deployed_splits(cfg: DataConfig, eval_fraction: float | None) -> DataSplits:
    """Return a deployed site's images: all of them for training unless ``eval_fraction`` is set.

    Simulations hold out ``data.test_fraction`` of a labelled set for evaluation; a deployed
    site's operator did not ask for that, so it trains on every image unless it passes
    ``--eval-fraction F`` (node config ``eval-fraction``), which holds out the stratified
    fraction F for site-local evaluation.
    """
    from ssl_fed.data import DataSplits, load_splits
    from ssl_fed.data.folder import load_folder
    from ssl_fed.data.loaders import load_npz

    if eval_fraction:
        return load_splits(replace(cfg, test_fraction=eval_fraction, test_path=None))
    if not cfg.path:
        raise ConfigError(f"data.name={cfg.name} needs a path (site start --data)")
    load = load_npz if cfg.name == "npz" else load_folder
    return DataSplits(load(cfg, cfg.path), None)


def validate_site_data(opts: SiteOptions) -> DataSplits:
    """Load the site's images with the training loaders; return what training will see.

    Raises
    ------
    ssl_fed.data.DataError
        With the bad file and the fix (the CLI prints it and exits 2, before any connection).
    """
    from ssl_fed.data import DataError

    if not opts.data.exists():
        raise DataError(f"--data {opts.data}: no such file or folder")
    if opts.eval_fraction is not None and not 0 < opts.eval_fraction < 1:
        raise ConfigError(f"--eval-fraction {opts.eval_fraction}: use a fraction in (0, 1)")
    try:
        splits = deployed_splits(site_data_config(opts), opts.eval_fraction)
    except DataError as err:  # the loaders name the config key; a site operator has a flag
        raise DataError(str(err).replace("data.on_bad_file=skip", "--on-bad-file skip")) from None
    if len(splits.train) == 0:
        raise DataError(f"--data {opts.data}: no images found (PNG/JPEG files, or an .npz)")
    return splits
