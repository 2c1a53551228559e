"""Encoders: no BatchNorm, Opacus-valid, sizes 8..32, features wider than the head input."""

import pytest
import torch
from opacus.validators import ModuleValidator

from ssl_fed.config import EncoderConfig
from ssl_fed.models import build_model


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
