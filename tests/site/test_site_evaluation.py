"""--eval-fraction: the site probes the received global encoder on its hold-out, locally only.

Ground truth: an independent evaluate_encoder call on the same received weights and the same
cached split; the guard's whitelist for what may leave.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ssl_fed.eval import evaluate_encoder
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.guard import allowed_fit_metrics, check_scalars
from ssl_fed.models import build_model
from ssl_fed.site import node
from ssl_fed.site.rounds import SITE_METRICS_FILE, train_site_round
from tests.site.test_rounds import tiny_config


def labelled_site(tmp_path: Path, eval_fraction: float | None) -> node.SiteInfo:
    """A deployed .npz site: 40 8x8 images of 2 classes, size 32 declared public."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "site.npz", images=images, labels=np.repeat([0, 1], 20))
    conf: dict[str, object] = {
        "data-path": str(tmp_path / "site.npz"),
        "state-dir": str(tmp_path / "state"),
        "epsilon-budget": 8.0,
        "public-size": 32,
    }
    if eval_fraction is not None:
        conf["eval-fraction"] = eval_fraction
    return node.site_info(tiny_config(), conf)


@pytest.mark.slow
@pytest.mark.parametrize("eval_fraction", [0.25, None])
def test_the_hold_out_is_scored_at_the_site_and_nothing_new_leaves(
    tmp_path: Path, eval_fraction: float | None
) -> None:
    # Prepare: a private site (DP on, declared size, so ε may leave) and the global weights
    cfg = tiny_config()
    cfg.privacy.enabled = True
    cfg.eval.labels_per_class, cfg.eval.draws = [1, -1], 1
    info = labelled_site(tmp_path, eval_fraction)
    received = fa.state_to_arrays(fa.federated_state(build_model(cfg.encoder, 1), False))

    # Execute
    result = train_site_round(cfg, info, received, None, "run", 1)

    # Assert: only the update and whitelisted ε scalars leave
    assert set(result.scalars) == {"epsilon", "epsilon-remaining"}
    check_scalars(result.scalars, allowed_fit_metrics(), budget=8.0)
    assert [d.shape for d in result.delta] == [a.shape for a in received]
    lines = (tmp_path / "state" / SITE_METRICS_FILE).read_text().splitlines()
    record = json.loads(lines[-1])
    if eval_fraction is None:
        assert "site_eval" not in record and len(node.site_data(cfg, info)) == 40
        return
    # ... and the site's own record holds the scores of the RECEIVED encoder on 10 held-out images
    site_cfg = node.site_config(cfg, info)
    train, held = node.site_data(site_cfg, info), node.site_holdout(site_cfg, info)
    assert held is not None and len(held) == 10 and len(train) == 30
    model = build_model(cfg.encoder, 1)
    fa.load_arrays(model, received, False)
    expected = evaluate_encoder(model.encoder.eval(), train, held, cfg.eval).to_dict()
    assert record["site_eval"]["held_out"] == 10
    assert record["site_eval"]["knn_accuracy"] == pytest.approx(expected["knn_accuracy"])
    assert record["site_eval"]["linear_probe"] == pytest.approx(expected["linear_probe"])
