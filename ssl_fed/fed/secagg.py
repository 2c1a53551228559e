"""The secure-aggregation seam: every line that touches Flower's SecAgg+ lives here.

SecAgg+ (Bell, Bonawitz, Gascón, Lepoint, Raykova: "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead", CCS 2020, arXiv 2002.04156) masks each site's quantized update with
pairwise masks agreed with ``num_shares - 1`` neighbours on a random graph, plus a private mask,
and Shamir-shares the mask seeds with ``reconstruction_threshold``; the server learns only the sum
of the surviving sites' updates and can unmask it as long as every sampled site keeps at least
``threshold`` live neighbours. It hides individual updates; it adds no differential privacy.
flwr 1.42 offers it only on the legacy stack (``LegacyContext`` + ``DefaultWorkflow`` +
``SecAggPlusWorkflow``; client: ``secaggplus_mod``), and derives masks from 32-bit seeds, below
cryptographic strength (DESIGN §5): replacing it means replacing this file.

Notes
-----
Quantization: with aggregation weight 1 and ``max_weight = 1`` every value of a delta is clipped
to ``±clipping_range`` and rounded to a grid of step ``2·clipping_range / quantization_range``; the
unmasked mean of *k* surviving sites is off by at most half a step per site averaged over *k*,
i.e. ``|error| <= clipping_range / quantization_range`` per value (:func:`quantization_bound`).
Measured on digits (default encoder, Adam lr 2e-3, 2 local epochs, 24–300 images per site) the
largest |delta| value per round was 0.004–0.02, so ``clipping_range = 0.5`` leaves a 25x margin
against clipping and gives a bound of 0.5 / 2^22 ≈ 1.2e-7, about 1e-5 of the typical delta.
The 2^32 modulus holds the sum of up to 2^32 / 2^22 = 1024 sites without overflow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.app import Context
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import Mod
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import Strategy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from ssl_fed.config import AggregationConfig

MAX_WEIGHT = 1.0
"""SecAgg+'s weight cap equals the uniform site weight, so weights cost no quantization levels."""


def secure_label(cfg: AggregationConfig) -> str:
    """Return the ``secure_aggregation`` value reported in metrics.json."""
    return "flwr-secaggplus" if cfg.name == "secaggplus" else "off"


def quantization_bound(cfg: AggregationConfig) -> float:
    """Largest per-value error of the unmasked mean: ``clipping_range / quantization_range``."""
    return cfg.clipping_range / cfg.quantization_range if cfg.name == "secaggplus" else 0.0


def client_mods(cfg: AggregationConfig) -> list[Mod]:
    """Return the mods a site puts *outside* its guard on the train handler."""
    return [secaggplus_mod] if cfg.name == "secaggplus" else []


def run_rounds(
    grid: Grid, context: Context, strategy: Strategy, num_rounds: int, cfg: AggregationConfig
) -> None:
    """Run ``num_rounds`` fit rounds of ``strategy`` on ``grid``, through SecAgg+ unless plain."""
    legacy = LegacyContext(
        context=context, config=ServerConfig(num_rounds=num_rounds), strategy=strategy
    )
    fit: Callable[[Grid, Any], None] | None = None
    if cfg.name == "secaggplus":
        fit = SecAggPlusWorkflow(
            num_shares=cfg.num_shares,
            reconstruction_threshold=cfg.reconstruction_threshold,
            max_weight=MAX_WEIGHT,
            clipping_range=cfg.clipping_range,
            quantization_range=cfg.quantization_range,
            timeout=cfg.timeout,
        )
    DefaultWorkflow(fit_workflow=fit)(grid, legacy)
