"""Person-level sensitivity through the real ``train_local``: add or remove one whole person.

Same audit as :mod:`tests.privacy.test_sensitivity` (fixed run key, noise recorded before it is
added, lr 0), with ``privacy.unit=person``: persons own 1 to 7 images and the cap is 3, so some
neighbours differ by a person with more images than the cap.
"""

import pytest
import torch

from tests.helpers import images
from tests.privacy.sensitivity_audit import audit_config, released_sums, worst_change

C = 1e-4
SIZES = [1, 2, 3, 4, 5, 1, 2, 6, 3, 2]
"""Images per person of the base site (10 persons, 29 images); the cap is 3."""


def site(sizes: list[int]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Images and person ids: person ``p`` owns ``sizes[p]`` consecutive random images."""
    ids = tuple(f"p{p:02d}" for p, m in enumerate(sizes) for _ in range(m))
    return images(len(ids), seed=1), ids


def person_changes(monkeypatch, tmp_path, task, batch, removed, key):
    """Per-step ‖ΔS‖ for D minus each person of ``removed``, and D plus a 7-image person."""
    cfg = audit_config(task, batch, public_size=10, c=C, multiplicity=2, unit="person", cap=3)
    base, ids = site(SIZES)
    full = released_sums(monkeypatch, tmp_path / "full", cfg, base, key, ids)
    changes = []
    for p in removed:
        keep = [i for i, pid in enumerate(ids) if pid != f"p{p:02d}"]
        fewer = released_sums(
            monkeypatch, tmp_path / f"minus{p}", cfg, base[keep], key, tuple(ids[i] for i in keep)
        )
        changes.append(worst_change(full, fewer))
    extra = images(7, seed=5)
    more = released_sums(
        monkeypatch,
        tmp_path / "plus",
        cfg,
        torch.cat([base[:6], extra, base[6:]]),
        key,
        ids[:6] + ("newcomer",) * 7 + ids[6:],
    )
    changes.append(worst_change(full, more))
    return full, changes


def test_at_q_1_removing_a_person_above_the_cap_moves_the_rotation_sum_by_exactly_c(
    monkeypatch, tmp_path
):
    # Prepare / Execute: q = 1, every person in every step; person 7 has 6 images (cap 3)
    full, changes = person_changes(monkeypatch, tmp_path, "rotation", 16, [7], b"p" * 32)

    # Assert: one step; the removed person moved the sum by its clipped gradient, C, and the
    # added 7-image person too: all their views were one unit, and nothing else moved
    assert len(full) == 1
    assert changes == pytest.approx([C, C], rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "bound", "batch", "steps"),
    [
        ("rotation", 1.0, 16, 1),
        ("rotation", 1.0, 4, 3),
        ("contrastive", 2.0, 16, 1),
        ("joint", 2.0, 4, 3),
    ],
)
def test_one_person_moves_each_released_sum_by_at_most_its_sensitivity(
    monkeypatch, tmp_path, task, bound, batch, steps
):
    # Prepare / Execute: remove a 1-image person, a 4- and a 6-image person (above the cap),
    # add a 7-image person; two run keys
    worst = []
    for k in range(2):
        full, changes = person_changes(
            monkeypatch, tmp_path / str(k), task, batch, [0, 3, 7], bytes([k + 1]) * 32
        )
        worst += changes

    # Assert: the public step count from the public number of persons, and the bound
    assert len(full) == steps
    assert max(worst) <= bound * C * (1 + 1e-3)
    assert max(worst) > 0.5 * C
