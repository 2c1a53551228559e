"""Encoders: no BatchNorm, Opacus-valid, sizes 8..32, features wider than the head input."""

import pytest
import torch
from opacus.validators import ModuleValidator

from ssl_fed.config import EncoderConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.models import HEADS, build_model


@pytest.mark.parametrize("size,channels", [(8, 1), (16, 3), (32, 3)])
def test_encoder_shapes_for_supported_sizes(size, channels):
    model = build_model(EncoderConfig(width=16, norm_groups=4), channels)
    x = torch.rand(2, channels, size, size)
    assert model.encoder(x).shape == (2, 64)
    assert model.encoder.features(x).shape == (2, model.encoder.feature_dim)


def test_model_has_no_batchnorm_and_passes_opacus_validation():
    model = build_model(EncoderConfig(), 1)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert ModuleValidator.validate(model, strict=False) == []


def test_one_image_output_does_not_depend_on_its_batch_mates():
    model = build_model(EncoderConfig(width=8, norm_groups=4), 1).eval()
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(model.encoder(x)[:1], model.encoder(x[:1]))


def tiny_model():
    torch.manual_seed(0)
    return build_model(EncoderConfig(width=8, norm_groups=4, proj_hidden=16, proj_dim=8), 1)


def test_the_model_holds_every_registered_head_by_name_builtins_first():
    model = tiny_model()
    assert list(model.heads) == list(HEADS)
    assert list(model.heads)[:2] == ["rotation", "projection"]


def test_a_state_dict_saved_before_the_head_dict_still_loads():
    # Prepare: keys as they were when heads were attributes (rotation.fc.weight, ...)
    old = tiny_model()
    legacy = {
        (k[len("heads.") :] if k.startswith("heads.") else k): v.clone()
        for k, v in old.state_dict().items()
    }
    assert "rotation.fc.weight" in legacy and "projection.net.0.weight" in legacy
    new = build_model(EncoderConfig(width=8, norm_groups=4, proj_hidden=16, proj_dim=8), 1)

    # Execute
    new.load_state_dict(legacy)

    # Assert: every tensor arrived where it belongs
    for key, value in old.state_dict().items():
        assert torch.equal(new.state_dict()[key], value), key


def test_federated_names_keep_the_bare_head_prefix():
    # Checkpoints written before the head dict name heads "rotation.*", "projection.*"
    names = list(fa.federated_state(tiny_model(), share_heads=True))
    assert names[0].startswith("encoder.")
    assert [n for n in names if not n.startswith("encoder.")] == [
        "rotation.fc.weight",
        "rotation.fc.bias",
        "projection.net.0.weight",
        "projection.net.0.bias",
        "projection.net.2.weight",
        "projection.net.2.bias",
    ]
    assert all(n.startswith("encoder.") for n in fa.federated_state(tiny_model(), False))


def test_head_state_round_trips_every_head():
    # Prepare
    source, target = (
        tiny_model(),
        build_model(EncoderConfig(width=8, norm_groups=4, proj_hidden=16, proj_dim=8), 1),
    )
    with torch.no_grad():
        for p in source.heads.parameters():
            p.add_(1.0)

    # Execute
    fa.load_head_state(target, fa.head_state(source))

    # Assert
    for name in source.heads:
        for (k, a), b in zip(
            source.heads[name].state_dict().items(),
            target.heads[name].state_dict().values(),
            strict=True,
        ):
            assert torch.equal(a, b), f"{name}.{k}"


def test_trainable_prefixes_may_name_a_head_bare():
    model = tiny_model()
    assert model.head_prefix("rotation") == "heads.rotation"
    assert model.head_prefix("projection.net.0") == "heads.projection.net.0"
    assert model.head_prefix("encoder.block3") == "encoder.block3"
