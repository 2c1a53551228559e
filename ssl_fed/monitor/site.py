"""The drift monitor inside a federated round, at the site: one call per round, one bit out.

:func:`site_drift` is what :func:`ssl_fed.site.rounds.train_site_round` calls after the round's
training: it runs the site's own :class:`~ssl_fed.monitor.drift.DriftMonitor` on the site's
images and returns what may leave (``{"drift-alarm": bit}`` under ``dp-alarm``, else nothing)
and the site-local log entry (statistic, local alert, ε) for ``site_metrics.jsonl``.

State kept in the site's state directory (never sent):

* :data:`SKETCH_FILE`: the reference sketch (:class:`~ssl_fed.monitor.sketch.ReferenceSketch`),
  built on first use from ``m`` of the site's images drawn at random, and the **monitor
  encoder** it was built with: the global encoder the site received in that round. The sketch
  is a mean in one feature space; comparing it with windows embedded by a later encoder would
  measure training, not drift, so every later window is embedded by the same saved encoder
  (public: a global model). Deleting the file rebuilds the reference (the operator re-arms
  the monitor).
* :data:`STATE_FILE`: the open SVT epoch's noisy threshold and the latch, so that one epoch
  spans many rounds (ε once while quiet, :mod:`ssl_fed.monitor.release`). The noisy threshold
  is secret noise; it stays beside the ledger.

Window sizes are public: ``n = m = min(MAX_WINDOW, N // 2)`` with ``N`` the site's declared
size (``data.public_size``; in a simulation the operator's partition plan). Each round's fresh
window is a uniformly random ``n``-subset of the site's images (OS entropy).

Notes
-----
Guarantee: the statistic depends only on the site's images, its sketch and public constants
(the saved global encoder, the feature map's seed ``train.seed``, ``n``, ``m``, α). Under
``dp-alarm`` the ε of each SVT epoch is written to the site's ledger before the release
(:func:`~ssl_fed.monitor.drift.monitor_for_site`), and the bit is ε-DP per epoch with respect
to one image (:mod:`ssl_fed.monitor.release`); without a declared size no bit is released.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ssl_fed.monitor.drift import DriftMonitor, monitor_for_site
from ssl_fed.monitor.sketch import FeatureMap, ReferenceSketch, build_sketch

if TYPE_CHECKING:
    from ssl_fed.config import RootConfig
    from ssl_fed.data import ImageDataset
    from ssl_fed.privacy.ledger import PrivacyLedger
    from ssl_fed.privacy.policy import SitePolicy

log = logging.getLogger("ssl_fed.monitor")

SKETCH_FILE = "drift_sketch.pt"
STATE_FILE = "drift_state.json"
MAX_WINDOW = 512
"""Largest fresh window and reference (images); more costs encoder time for little power."""
ALPHA = 0.01
"""Level of the public (McDiarmid) and local thresholds."""


def window_size(public_size: int | None) -> int | None:
    """Return the public window size ``min(MAX_WINDOW, N // 2)`` (``None``: too small/unknown)."""
    if public_size is None or public_size // 2 < 4:
        return None
    return min(MAX_WINDOW, public_size // 2)


def drift_alarm_allowed(policy: SitePolicy | None) -> bool:
    """Whether the site's policy releases ``drift-alarm`` (the guard's whitelist switch)."""
    return policy is not None and policy.drift_release == "dp-alarm"


def _encoder(cfg: RootConfig, channels: int) -> torch.nn.Module:
    from ssl_fed.models import build_model

    return build_model(cfg.encoder, channels).encoder


def _features(encoder: torch.nn.Module, images: torch.Tensor) -> np.ndarray[Any, Any]:
    from ssl_fed.eval.report import extract_features

    return np.asarray(extract_features(encoder, images), dtype=np.float64)


def load_or_build_sketch(
    cfg: RootConfig,
    state_dir: Path,
    encoder_state: Callable[[], dict[str, torch.Tensor]],
    data: ImageDataset,
    window: int,
) -> tuple[ReferenceSketch, torch.nn.Module]:
    """Return the site's sketch and monitor encoder; build both on first use (see module).

    A saved sketch for another window size or encoder architecture (another run's config) is
    replaced, and the open SVT epoch with it (the next release opens and charges a new one).
    """
    encoder = _encoder(cfg, data.channels)
    path = state_dir / SKETCH_FILE
    if path.exists():
        saved = torch.load(path, weights_only=True)
        try:
            encoder.load_state_dict(saved["encoder"])
        except RuntimeError:  # another run's encoder architecture: a new reference
            log.info("drift reference rebuilt: the run's encoder differs from the saved one")
        else:
            if int(saved["sketch"]["window"]) == window:
                fields = saved["sketch"] | {
                    "fmap": FeatureMap(**saved["sketch"]["fmap"]),
                    "mean": saved["sketch"]["mean"].numpy(),
                }
                return ReferenceSketch(**fields), encoder
        (state_dir / STATE_FILE).unlink(missing_ok=True)  # a new reference opens a new epoch
    encoder.load_state_dict(encoder_state())
    rows = np.random.default_rng().choice(len(data), size=window, replace=False)
    ref = _features(encoder, data.images[torch.as_tensor(rows)])
    fmap = FeatureMap(ref.shape[1], seed=cfg.train.seed)
    sketch = build_sketch(fmap, ref, window=window, alpha=ALPHA)
    fields = asdict(sketch) | {"mean": torch.from_numpy(sketch.mean)}
    state_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"encoder": encoder.state_dict(), "sketch": fields}, path)
    return sketch, encoder


def _restore(monitor: DriftMonitor, state_dir: Path) -> None:
    path = state_dir / STATE_FILE
    if path.exists():
        monitor.restore(json.loads(path.read_text(encoding="utf-8")))


def _save(monitor: DriftMonitor, state_dir: Path) -> None:
    (state_dir / STATE_FILE).write_text(json.dumps(monitor.state()), encoding="utf-8")


def site_drift(
    cfg: RootConfig,
    state_dir: Path,
    policy: SitePolicy | None,
    data: ImageDataset,
    encoder_state: Callable[[], dict[str, torch.Tensor]],
    ledger: Callable[[], PrivacyLedger],
    run_id: str,
    round: int,
) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Run one round of the site's monitor: (scalars that may leave, site-local log entry).

    ``cfg`` is the site's view (its declared size); ``encoder_state()`` returns the received
    global encoder's weights (used only on first use); ``ledger()`` opens the site's ledger
    (only under ``dp-alarm``, after the round's training has been charged).
    """
    if policy is None or policy.drift_release == "none":
        return {}, None
    window = window_size(cfg.data.public_size)
    if window is None:
        log.warning("drift monitor off: no declared size >= 8 (data.public_size / public-size)")
        return {}, {"skipped": "no declared public size"}
    if len(data) < window:  # a declared size above the data: refuse rather than repeat rows
        log.warning("drift monitor skipped: %d images < window %d", len(data), window)
        return {}, {"skipped": "fewer images than the window"}
    sketch, encoder = load_or_build_sketch(cfg, state_dir, encoder_state, data, window)
    book = ledger() if policy.drift_release == "dp-alarm" else None
    monitor = monitor_for_site(sketch, policy, book, run_id, lambda: round)
    assert monitor is not None
    _restore(monitor, state_dir)
    rows = np.random.default_rng().choice(len(data), size=window, replace=False)
    reading = monitor.observe(round, _features(encoder, data.images[torch.as_tensor(rows)]))
    _save(monitor, state_dir)
    return reading.outgoing(), reading.to_dict()
