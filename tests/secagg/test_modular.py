"""SecAgg+ in modular mode carrying distributed-DP integers: sums, hiding, dropouts, refusals."""

from typing import Any

import numpy as np
import pytest

from ssl_fed.privacy.distributed import codec
from ssl_fed.privacy.distributed.params import DDPParams, choose_scale
from ssl_fed.secagg import SecAggConfig
from ssl_fed.secagg.local import run_local_round
from ssl_fed.secagg.result import AggregateResult, Skipped

IDS = [11, 22, 33, 44, 55]
SEED = 1234


def _params(sigma: float, dim: int = 100, min_noisy: int = 3) -> DDPParams:
    return choose_scale(
        dim=dim,
        bits=30,
        clip=1.0,
        sensitivity_factor=1,
        noise_multiplier=sigma,
        min_noisy_sites=min_noisy,
        max_units=40,
        num_sites=len(IDS),
    )


def _config(p: DDPParams, min_survivors: int) -> SecAggConfig:
    return SecAggConfig(
        modular_bits=p.bits, max_weight=1, fixed_weight=1, min_survivors=min_survivors
    )


def _units(seed: int, dim: int = 100) -> np.ndarray:
    u = np.random.default_rng(seed).normal(size=(8, dim))
    return u / np.maximum(1.0, np.linalg.norm(u, axis=1, keepdims=True))


def _round(p: DDPParams, units: dict[int, np.ndarray], **kw: Any) -> AggregateResult | Skipped:
    inputs = {i: ({"ddp": codec.encode_units(units[i], p, SEED)}, 1.0) for i in units}
    spec = [("ddp", (p.padded,))]
    return run_local_round(inputs, spec, _config(p, kw.pop("min_survivors", 3)), **kw)


def test_sigma_zero_round_decodes_the_exact_sum_within_the_rounding_bound():
    p = _params(0.0)
    units = {i: _units(i) for i in IDS}
    res = _round(p, units)
    assert isinstance(res, AggregateResult) and res.words is not None
    got = codec.decode_sum(res.words, p, SEED)
    exact = np.sum([u.sum(axis=0) for u in units.values()], axis=0)
    assert np.linalg.norm(got - exact) <= codec.rounding_error_bound(p, 40)


def test_the_masked_input_captured_at_the_server_is_not_the_update():
    # Prepare: record what the server receives in the masked-input stage
    p = _params(1.0)
    units = {i: _units(i) for i in IDS}
    transcript: list[tuple[str, int, dict[str, Any]]] = []
    encoded = {i: codec.encode_units(units[i], p, SEED) for i in IDS}
    inputs = {i: ({"ddp": encoded[i]}, 1.0) for i in IDS}

    # Execute
    res = run_local_round(inputs, [("ddp", (p.padded,))], _config(p, 3), transcript=transcript)

    # Assert: every captured vector differs from the site's own words almost everywhere
    assert isinstance(res, AggregateResult)
    captured = {n: r["masked"] for s, n, r in transcript if s == "collect"}
    assert set(captured) == set(IDS)
    for nid, masked in captured.items():
        own = codec.to_words(encoded[nid], p.bits)
        assert np.mean((masked[:-2].astype(np.uint64) & np.uint64(2**p.bits - 1)) == own) < 0.01


def test_one_dropout_after_key_sharing_still_meets_min_noisy_sites():
    # Prepare: 5 sites, 3 must add noise; site 33 vanishes after sharing its keys
    p = _params(0.5, dim=4000, min_noisy=3)
    zero = {i: np.zeros((0, 4000)) for i in IDS}

    # Execute
    res = _round(p, zero, drop={33: "collect"})

    # Assert: 4 survivors; their noise is at least the target the accountant assumes
    assert isinstance(res, AggregateResult) and res.words is not None
    assert sorted(res.survivors) == [11, 22, 44, 55] and res.dropped == [33]
    noise = codec.from_words(res.words, p.bits)
    assert np.var(noise) == pytest.approx(4 * 2 * p.mu_share, rel=0.1)
    assert np.var(noise) >= 0.9 * 2 * p.mu_total


def test_fewer_survivors_than_min_noisy_sites_are_not_unmasked():
    p = _params(0.5, min_noisy=4)
    units = {i: _units(i) for i in IDS}
    res = _round(p, units, min_survivors=4, drop={33: "collect", 44: "collect"})
    assert isinstance(res, Skipped)
    assert "need 4" in res.reason


def test_float_inputs_are_refused_in_modular_mode():
    p = _params(0.0)
    inputs = {i: ({"ddp": np.zeros(p.padded)}, 1.0) for i in IDS}
    res = run_local_round(inputs, [("ddp", (p.padded,))], _config(p, 3))
    assert isinstance(res, Skipped)


def test_setup_payload_round_trips_the_mode_and_defaults_to_fixed_point():
    from ssl_fed.secagg.params import resolve_round
    from ssl_fed.secagg.setup import RoundSetup
    from ssl_fed.secagg.wire import ProtocolError

    shape = resolve_round(5, SecAggConfig(modular_bits=30, max_weight=1, fixed_weight=1))
    setup = RoundSetup(b"r" * 16, IDS, shape, 1.0, 1, b"g" * 16, [("ddp", (8,))])
    payload = setup.to_payload()
    assert RoundSetup.from_payload(payload).shape.modular_bits == 30
    legacy = {k: v for k, v in payload.items() if k != "modular_bits"}
    legacy["value_bits"] = 16
    assert RoundSetup.from_payload(legacy).shape.modular_bits == 0
    with pytest.raises(ProtocolError):
        RoundSetup.from_payload({**payload, "modular_bits": 40})
