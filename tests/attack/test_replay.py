"""SecAgg under a malicious site: the clip, the range check and raw words, on the real protocol."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_fed.attack.replay import plain_mean, replay_round, secagg_round, unchecked_mean
from ssl_fed.secagg.quantize import quantization_bound

C = 0.5
Q = quantization_bound(C, 24)  # 5 sites, weight 1: 24 value bits (auto)


def updates(attacker_value: float) -> dict[int, np.ndarray]:
    # Prepare: four honest sites send 0.0, 0.1, -0.1, 0.2 on all 8 coordinates; site 0 attacks
    ups = {i: np.full(8, v) for i, v in zip(range(1, 5), [0.0, 0.1, -0.1, 0.2], strict=True)}
    return {0: np.full(8, attacker_value)} | ups


def test_the_range_check_rejects_an_out_of_range_secagg_mean():
    # Prepare: raw words 5.0 from site 0: mean (5 + 0.2) / 5 = 1.04 > c
    ups = updates(5.0)

    # Execute
    checked = secagg_round(ups, {0}, C)
    unchecked = unchecked_mean(ups, {0}, C)

    # Assert: the server rejects the round; without the check it would apply 1.04
    assert checked.mean is None and "outside [-c, c]" in checked.note
    assert unchecked.mean == pytest.approx(np.full(8, 1.04), abs=2 * Q)


def test_raw_words_inside_the_range_pass_the_check_with_n_times_the_clipped_influence():
    # Prepare: raw 1.3 from site 0: mean (1.3 + 0.2) / 5 = 0.3, inside [-c, c]
    ups = updates(1.3)

    # Execute
    out = replay_round(ups, {0}, C)

    # Assert: accepted; the honest encoder would clip 1.3 to 0.5: (0.5 + 0.2) / 5 = 0.14
    assert out["secagg raw+check"].mean == pytest.approx(np.full(8, 0.3), abs=2 * Q)
    assert out["secagg raw, no check"].mean == pytest.approx(np.full(8, 0.3), abs=2 * Q)
    assert out["secagg+clip"].mean == pytest.approx(np.full(8, 0.14), abs=2 * Q)
    assert out["secagg+clip"].note == "8 value(s) clipped"
    # plain: the server drops the update beyond c and averages the four honest ones: 0.05
    assert out["plain+check"].mean == pytest.approx(np.full(8, 0.05))
    assert out["plain, no check"].mean == pytest.approx(np.full(8, 0.3))


def test_an_in_range_attack_is_averaged_like_an_honest_update_everywhere():
    # Prepare: site 0 sends -0.4 (inside the range): mean (-0.4 + 0.2) / 5 = -0.04
    # Execute
    out = replay_round(updates(-0.4), {0}, C)

    # Assert: no setting can tell it from an honest update
    for variant, outcome in out.items():
        assert outcome.mean == pytest.approx(np.full(8, -0.04), abs=2 * Q), variant


def test_plain_mean_drops_non_finite_updates():
    # Execute
    out = plain_mean({0: np.array([np.nan]), 1: np.array([0.2])}, C)

    # Assert
    assert out.mean == pytest.approx([0.2]) and "1 update(s) dropped" in out.note
