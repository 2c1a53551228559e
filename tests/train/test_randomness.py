"""Per-image keyed streams: each image's draws depend on the run key and that image alone."""

import numpy as np
import pytest
import torch

from ssl_fed.privacy.schedule import make_schedule
from ssl_fed.train.randomness import UnitStreams, draw_run_key, splitmix64, unit_ids
from tests.helpers import images, tiny_task

KEY = b"s" * 32


def test_splitmix64_matches_the_reference_sequence_for_seed_0():
    # Prepare: Steele et al.'s SplitMix64 seeded with 0 yields these first two outputs
    golden = 0x9E3779B97F4A7C15
    expected = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]

    # Execute
    out = splitmix64(np.array([0, golden], dtype=np.uint64))

    # Assert
    assert [int(v) for v in out] == expected


def test_removing_an_image_changes_no_other_image_id():
    # Prepare
    data = images(10)
    rest = torch.cat([data[:4], data[5:]])

    # Execute
    full, reduced = unit_ids(data), unit_ids(rest)

    # Assert: ids follow content, not position
    assert reduced == full[:4] + full[5:]


def test_exact_duplicates_get_distinct_ids():
    data = torch.cat([images(1), images(1), images(1, seed=3)])
    ids = unit_ids(data)
    assert len(set(ids)) == 3


def test_private_run_keys_are_fresh_and_public_ones_reproduce_per_round():
    assert draw_run_key(True, 0, 1) != draw_run_key(True, 0, 1)
    assert draw_run_key(False, 0, 1) == draw_run_key(False, 0, 1)
    assert draw_run_key(False, 0, 1) != draw_run_key(False, 0, 2)


def test_poisson_inclusion_has_rate_q():
    # Prepare: 4000 images, q = 0.3, 5 steps: Binomial(20000, 0.3), sd ≈ 64.8
    streams = UnitStreams(KEY, [i.to_bytes(8, "little") for i in range(4000)])

    # Execute
    total = sum(len(streams.poisson_batch(t, 0.3)) for t in range(5))

    # Assert: within 5 sd of the mean 6000
    assert abs(total - 6000) < 5 * 64.8


def test_an_images_inclusion_views_and_group_ignore_the_other_images():
    # Prepare: the same key over D and D minus image 4
    task = tiny_task("joint")
    task.cfg.multiplicity = 2
    data = images(12)
    keep = [i for i in range(12) if i != 4]
    full, reduced = UnitStreams(KEY, unit_ids(data)), UnitStreams(KEY, unit_ids(data[keep]))

    for step in range(3):
        # Execute
        a, b = full.poisson_batch(step, 0.5), reduced.poisson_batch(step, 0.5)
        views_a = task.make_views(data[torch.from_numpy(a)], full.at(step, a))
        views_b = task.make_views(data[keep][torch.from_numpy(b)], reduced.at(step, b))
        groups_a = full.at(step, a)("group", 1)
        groups_b = reduced.at(step, b)("group", 1)

        # Assert: every other image keeps its inclusion, views and group draw
        others = [i for i, pos in enumerate(a) if pos != 4]
        assert [keep[j] for j in b] == [int(a[i]) for i in others]
        assert torch.equal(views_a[others], views_b)
        assert torch.equal(groups_a[others], groups_b)


@pytest.mark.parametrize("n", [9, 12, 30])
def test_the_schedule_depends_on_the_public_size_not_on_n(n):
    schedule = make_schedule(n, batch_size=4, epochs=2, public_size=12)
    assert schedule.sample_rate == pytest.approx(4 / 12)
    assert (schedule.steps_per_epoch, schedule.steps) == (3, 6) and schedule.size_is_public


def test_without_a_public_size_the_schedule_uses_n_and_is_marked_private():
    schedule = make_schedule(9, batch_size=4, epochs=1, public_size=None)
    assert schedule.sample_rate == pytest.approx(4 / 9) and not schedule.size_is_public
