"""Property tests for clipping units: every sampled image lands in exactly one unit."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssl_fed.tasks.units import UnitPlan, form_units


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(min_value=0, max_value=200),
    groups=st.integers(min_value=1, max_value=64),
    kind=st.sampled_from(["image", "group", "batch"]),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_units_partition_the_batch(batch, groups, kind, seed):
    # Prepare
    plan = UnitPlan(kind, groups, {"image": 1.0, "group": 2.0, "batch": None}[kind])

    # Execute
    index, mask = form_units(batch, plan, torch.Generator().manual_seed(seed))

    # Assert: a partition of 0..batch-1, no empty unit, at most `groups` groups
    assert sorted(index[mask.bool()].tolist()) == list(range(batch))
    assert index.shape == mask.shape
    if batch:
        assert bool((mask.sum(1) >= 1).all())
    if kind == "group":
        assert index.shape[0] <= groups
    if kind == "image":
        assert index.shape == (batch, 1)
