"""The sensitivity probe: what one real image changes in its unit's clipped gradient."""

import pytest
import torch

from ssl_fed.audit.sensitivity import exceeds, measured_sensitivity, probe_site
from ssl_fed.config import TaskConfig
from ssl_fed.tasks.units import UnitPlan, form_units, gather_units, plan_units
from tests.helpers import images, tiny_task


def units_of(task, plan, n=16):
    views = task.make_views(images(n))
    index, mask = form_units(n, plan, torch.Generator().manual_seed(0))
    return gather_units(views, index).double(), mask.double()


def test_an_image_unit_changes_the_sum_by_exactly_c_once_clipped():
    # Prepare: C far below every gradient norm, so each clipped unit has norm exactly C; removing
    # a one-image unit removes that vector
    task = tiny_task("rotation")
    plan = plan_units(task, TaskConfig(name="rotation"), 16)

    # Execute
    got = measured_sensitivity(task, *units_of(task, plan), max_norm=1e-6)

    # Assert
    assert plan.kind == "image" and got == pytest.approx(1.0, abs=1e-9)
    assert not exceeds(got, plan.sensitivity)


def test_a_group_member_changes_its_group_by_more_than_c_and_at_most_2c():
    # Prepare: every group's gradient clipped to C, with and without one member: the change lies
    # between two vectors of norm C, so at most 2C (the declared sensitivity)
    task = tiny_task("contrastive")
    plan = plan_units(task, TaskConfig(name="contrastive"), 16)

    # Execute
    got = measured_sensitivity(task, *units_of(task, plan), max_norm=1e-6)

    # Assert: more than C (a declaration of 1 is caught), never above 2
    assert plan.kind == "group" and 1.0 < got <= 2.0 + 1e-9
    assert exceeds(got, 1.0) and not exceeds(got, plan.sensitivity)


def test_probe_site_cuts_the_site_images_like_a_step():
    # Prepare
    task = tiny_task("contrastive")
    plan = UnitPlan("group", 4, 2.0)

    # Execute
    got = probe_site(task, images(40), plan, 1e-6, torch.Generator().manual_seed(1))

    # Assert
    assert 1.0 < got <= 2.0 + 1e-9
