"""A site's distributed-noise round (``privacy.noise=distributed``): what it sends, how.

The update is a single ``int64`` array :data:`DDP_ARRAY` of the rotated length ``d'``
(:func:`ddp_spec`); the guard lets nothing else private leave. :func:`ddp_round` loads the
received global weights into a fresh task and hands it to
:meth:`~ssl_fed.privacy.distributed_engine.SkellamEngine.contribute`, which charges the ledger
first. DP-FedSGD keeps no state at the site between rounds (no local heads, no optimizer).
"""

from __future__ import annotations

from typing import cast

import numpy as np

from ssl_fed.config import RootConfig
from ssl_fed.data import ImageDataset
from ssl_fed.fed import arrays as fa
from ssl_fed.privacy.distributed.rotation import padded_dim
from ssl_fed.privacy.distributed_engine import SkellamEngine
from ssl_fed.train.fedsgd_public import public_round, public_task

DDP_ARRAY = "ddp"
"""Name of the one array a distributed-noise site sends."""


def ddp_spec(cfg: RootConfig, channels: int) -> fa.ArraySpec:
    """Return the declared update of a distributed round: ``int64[d']`` named :data:`DDP_ARRAY`."""
    return fa.ArraySpec(DDP_ARRAY, (padded_dim(public_round(cfg, channels).dim),), "int64")


def ddp_round(
    engine: SkellamEngine,
    cfg: RootConfig,
    data: ImageDataset,
    received: list[fa.NDArray],
    rnd: int,
) -> fa.NDArray:
    """Return the site's noisy integer vector at the received global weights (ledger first).

    Typed as the site's update array; its dtype is ``int64`` (the guard checks :func:`ddp_spec`).
    """
    task = public_task(cfg, data.channels)
    fa.load_arrays(task.model, received, cfg.aggregation.share_heads)
    out = engine.contribute(task, data, round=rnd)
    return cast("fa.NDArray", np.ascontiguousarray(out, dtype=np.int64))
