"""DP adaptation knobs: a trainable subset stays frozen elsewhere; augmentation multiplicity."""

import pytest
import torch

from ssl_fed.config import AugmentConfig, EncoderConfig, TaskConfig
from ssl_fed.models import build_model
from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.unit_hooks import per_unit_gradients_hooks
from ssl_fed.tasks import build_task
from ssl_fed.tasks.units import gather_units
from ssl_fed.train.local import train_local
from tests.train.test_local import float_task, site, small_config


def test_frozen_parameters_stay_bit_identical_and_epsilon_does_not_change(tmp_path):
    # Prepare: train only block 3 and the heads
    cfg = small_config()
    cfg.privacy.trainable = ["encoder.block3", "rotation", "projection"]
    task = float_task("joint")
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    full = train_local(
        float_task("joint"),
        site(),
        small_config(),
        ledger=PrivacyLedger(tmp_path / "full", budget=8, delta=1e-5),
        run_id="r",
    )

    # Execute
    part = train_local(
        task, site(), cfg, ledger=PrivacyLedger(tmp_path / "part", budget=8, delta=1e-5), run_id="r"
    )

    # Assert
    after = task.model.state_dict()
    for name, value in before.items():
        if name.startswith(("encoder.block1", "encoder.block2")):
            assert torch.equal(after[name], value), name
    assert not torch.equal(after["encoder.block3.0.weight"], before["encoder.block3.0.weight"])
    assert part.epsilon == pytest.approx(full.epsilon)
    assert part.noise_multiplier == pytest.approx(full.noise_multiplier)


def test_unknown_trainable_prefix_is_refused(tmp_path):
    cfg = small_config()
    cfg.privacy.trainable = ["encoder.block9"]
    with pytest.raises(ValueError, match="block9"):
        train_local(
            float_task("rotation"),
            site(),
            cfg,
            ledger=PrivacyLedger(tmp_path, budget=8, delta=1e-5),
            run_id="r",
        )


def multiplicity_task(k):
    torch.manual_seed(0)
    model = build_model(EncoderConfig(width=8, norm_groups=4, proj_hidden=16, proj_dim=8), 1)
    cfg = TaskConfig(name="joint", temperature=0.5, multiplicity=k)
    return build_task(model, cfg, AugmentConfig(), 8, 1).double()


def test_multiplicity_averages_the_view_sets_inside_the_unit():
    # Prepare: 2 view sets of 4 images in 2 groups
    task = multiplicity_task(2)
    torch.manual_seed(1)
    views = task.make_views(torch.rand(4, 1, 8, 8)).double()
    index = torch.tensor([[0, 1], [2, 3]])
    mask = torch.ones(2, 2, dtype=torch.float64)
    units = gather_units(views, index)

    # Execute
    terms = task(units, mask)

    # Assert: the mean of the two sets evaluated separately
    sets = [task(units[:, :, k], mask) for k in range(2)]
    for name, value in terms.items():
        torch.testing.assert_close(value, (sets[0][name] + sets[1][name]) / 2)
    assert views.shape == (4, 2, 5, 1, 8, 8)


@pytest.mark.parametrize("method", ["vmap", "hooks"])
def test_per_unit_gradients_with_multiplicity_match_a_per_unit_loop(method):
    # Prepare
    task = multiplicity_task(3)
    torch.manual_seed(2)
    views = task.make_views(torch.rand(5, 1, 8, 8)).double()
    index = torch.tensor([[0, 2, 4], [1, 3, 0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]], dtype=torch.float64)
    units = gather_units(views, index)
    params = {n: p.detach() for n, p in task.trainable_named_parameters()}

    # Execute
    if method == "vmap":
        grads, _ = per_unit_gradients(task, params, units, mask)
    else:
        grads, _ = per_unit_gradients_hooks(task, units, mask)

    # Assert
    for g in range(2):
        task.zero_grad(set_to_none=True)
        real = mask[g].bool()
        one = units[g][real].unsqueeze(0)
        task.combine(task(one, torch.ones(1, int(real.sum())).double())).sum().backward()
        for name, p in task.trainable_named_parameters():
            torch.testing.assert_close(grads[name][g], p.grad, atol=1e-6, rtol=1e-6)
