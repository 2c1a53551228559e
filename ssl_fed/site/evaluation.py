"""Site-local evaluation of the global encoder on the operator's held-out images.

A deployed site started with ``--eval-fraction F`` holds out a stratified fraction F of its
labelled images (:func:`ssl_fed.deploy.site_data.deployed_splits`). After each round it trains,
it fits the linear probe and kNN of :func:`ssl_fed.eval.evaluate_encoder` (frozen features, as in
SimCLR's linear evaluation protocol, Chen et al. 2020, arXiv 2002.05709) on its own labelled
training images and scores them on the held-out ones, for the global encoder it received that
round. The result goes into the round's line of the site's own ``site_metrics.jsonl``.

Notes
-----
Nothing here leaves the site: the labels and the scores are functions of private data with no
DP noise, so they are written only under the site's state directory, never returned for
sending (:func:`ssl_fed.site.rounds.train_site_round` hands back only the update and the privacy
engine's public scalars, which the guard checks). The server's own evaluation uses only its
public labelled set (``eval.public_path``).
"""

from __future__ import annotations

import logging
from typing import Any

from ssl_fed.config import RootConfig
from ssl_fed.eval import evaluate_encoder
from ssl_fed.fed import arrays as fa
from ssl_fed.models import build_model
from ssl_fed.site import node
from ssl_fed.site.node import SiteInfo

log = logging.getLogger("ssl_fed.client")


def site_evaluation(
    cfg: RootConfig, info: SiteInfo, received: list[fa.NDArray]
) -> dict[str, Any] | None:
    """Probe the received global encoder on the site's hold-out (``None``: no hold-out/labels)."""
    held = node.site_holdout(cfg, info)
    if held is None:
        return None
    train = node.site_data(cfg, info)
    if train.labels is None or held.labels is None or len(held) == 0:
        log.warning("--eval-fraction is set but the site's images have no labels: not evaluated")
        return None
    model = build_model(cfg.encoder, train.channels)
    fa.load_arrays(model, received, cfg.aggregation.share_heads)
    try:
        report = evaluate_encoder(model.encoder.eval(), train, held, cfg.eval).to_dict()
    except ValueError as err:  # an evaluation problem never costs the site its round
        log.warning("site-local evaluation skipped: %s", err)
        return None
    return {
        "encoder": "global, as received this round",
        "held_out": len(held),
        "linear_probe": report["linear_probe"],
        "knn_accuracy": report["knn_accuracy"],
    }
