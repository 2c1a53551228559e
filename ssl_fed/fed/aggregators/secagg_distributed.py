"""``secagg`` with ``privacy.noise=distributed``: DP-FedSGD, Skellam shares, modular SecAgg+.

Selection: this class is the ``distributed`` *noise variant* of ``secagg``
(:func:`~ssl_fed.fed.aggregators.base.register_noise_variant`); ``aggregation.name`` stays
``secagg`` and :func:`~ssl_fed.fed.aggregators.base.build_aggregator` picks this class when
``privacy.noise=distributed`` (config validation already refused every other aggregator).

Per round (Kairouz, Liu, Steinke, arXiv 2102.06387, §4; Agarwal, Kairouz, Liu, arXiv 2110.04995):

1. :meth:`configure_round` sends the global arrays plus the public constants (σ, bits, scale,
   ``min_noisy_sites``, q, rotation seed; :mod:`ssl_fed.train.fedsgd_public`), derived from the
   run config; each site derives them again itself and never trusts these copies.
2. :meth:`aggregate_round` runs ssl-fed's SecAgg+ in modular mode over the one ``int64`` array
   each site sends, with ``min_survivors = min_noisy_sites``: fewer survivors and the round is
   not unmasked. The unmasked sum is checked for wrap-around (a wrap rejects the round), unscaled
   and un-rotated (:func:`ssl_fed.privacy.distributed.codec.decode_sum`), divided by the public
   expected batch ``B × survivors`` and handed to the server optimizer
   (:class:`~ssl_fed.train.server_opt.FlatServerOptimizer`, ``train.optimizer``/``train.lr``);
   the resulting change of the trained federated arrays is the round's "mean delta".
3. ``privacy/noise_std_aggregate``, ``secagg/bits``, ``secagg/wrap_margin_sd`` and
   ``secagg/gamma`` go to the round record (TensorBoard and ``metrics.json`` history).

Notes
-----
Post-processing only: the server touches nothing but the unmasked noisy sum. Its optimizer
state (Adam's moments and step, or the SGD momentum) is checkpointed with the run
(:meth:`server_state`), so a resumed run continues it exactly; the privacy accounting never
depends on it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ssl_fed.config import ConfigError
from ssl_fed.fed.aggregators.base import register_noise_variant
from ssl_fed.fed.aggregators.secagg import SecAggAggregator

if TYPE_CHECKING:
    from pathlib import Path

    from flwr.app import RecordDict
    from flwr.serverapp import Grid

    from ssl_fed.config import RootConfig
    from ssl_fed.fed import arrays as fa
    from ssl_fed.fed.layout import RoundOutcome
    from ssl_fed.fed.rounds import RoundRecord, SiteRounds
    from ssl_fed.train.fedsgd_public import PublicRound
    from ssl_fed.train.server_opt import FlatServerOptimizer

log = logging.getLogger("ssl_fed.server")


def infer_channels(cfg: RootConfig, specs: list[fa.ArraySpec]) -> int:
    """Return the input channels whose model's federated specs match the global arrays."""
    from ssl_fed.fed import arrays as fa
    from ssl_fed.models import build_model

    share = cfg.aggregation.share_heads
    for channels in (1, 3, 2, 4):
        if fa.array_specs(build_model(cfg.encoder, channels), share) == list(specs):
            return channels
    raise ValueError("the global arrays match no model of this encoder config (1-4 channels)")


@register_noise_variant("secagg", "distributed")
class DistributedSecAggAggregator(SecAggAggregator):
    """DP-FedSGD with distributed Skellam noise under ssl-fed's SecAgg+ (module docstring)."""

    def __init__(self, cfg: RootConfig) -> None:
        super().__init__(cfg)
        self.public: PublicRound | None = None
        self.optimizer: FlatServerOptimizer | None = None
        self.round_metrics: dict[str, float] = {}
        self.resumed_state: dict[str, Any] | None = None

    def server_state(self) -> dict[str, Any] | None:
        """Return the server optimizer's state after the last round (``None`` before the first)."""
        if self.optimizer is None:
            return self.resumed_state
        return {"server_optimizer": self.optimizer.state_dict()}

    def quantization_bound(self) -> float:
        """Per-value bound of the codec's rounding error in the mean, per summed unit: ``γ √d'``.

        Not SecAgg+'s fixed-point bound: this mode sends integers. Each unit's rotated, scaled
        gradient is rounded coordinate-wise by less than one integer step (γ in float units), so
        its error vector has L2 norm below ``γ √d'``; un-rotating is orthogonal, so each value
        of the decoded sum moves by less than that per unit, and each value of the server's mean
        (sum / expected batch ``B·n``) by less than ``γ √d' · U / (B·n)`` (``U`` units summed;
        ``U = B·n`` in expectation), which is the number reported. ``0.0`` while the public
        constants are unknown (no round run yet and ``data.channels`` unset).
        """
        pub = self.public
        if pub is None and self.cfg.data.channels:
            from ssl_fed.train.fedsgd_public import public_round

            pub = public_round(self.cfg, self.cfg.data.channels)
        if pub is None or pub.plan.ddp is None:
            return 0.0
        return pub.plan.ddp.gamma * math.sqrt(pub.plan.ddp.padded)

    def restore_server_state(
        self, state: dict[str, Any] | None, *, checkpoint: Path | None = None
    ) -> None:
        """Continue the checkpointed server optimizer (loaded when the model size is known).

        A ``checkpoint`` without state (written before ssl-fed checkpointed the server
        optimizer, or before its first step) resumes with a fresh optimizer, and says so in one
        warning naming the file; the privacy accounting is unaffected (module Notes).

        Raises :class:`~ssl_fed.config.ConfigError` when ``train.optimizer`` or ``train.lr``
        differ from the checkpointed run's (the moments of one are meaningless for the other).
        """
        if state is None:
            if checkpoint is not None:
                log.warning(
                    "%s holds no server optimizer state (written before ssl-fed saved it, or "
                    "before the first server step): the resumed run starts train.optimizer=%s "
                    "afresh (zero moments, step 0); the privacy accounting is unaffected",
                    checkpoint,
                    self.cfg.train.optimizer,
                )
            return
        opt, t = state.get("server_optimizer", {}), self.cfg.train
        if opt.get("kind") != t.optimizer or opt.get("lr") != t.lr:
            raise ConfigError(
                f"the checkpoint's server optimizer is {opt.get('kind')} at lr={opt.get('lr')}, "
                f"the config says train.optimizer={t.optimizer} train.lr={t.lr}: resume with "
                "the run's own train.optimizer and train.lr"
            )
        self.resumed_state = state

    def _public(self, rounds: SiteRounds) -> PublicRound:
        if self.public is None:
            from ssl_fed.train.fedsgd_public import public_round
            from ssl_fed.train.server_opt import FlatServerOptimizer

            self.public = public_round(self.cfg, infer_channels(self.cfg, rounds.specs))
            t = self.cfg.train
            self.optimizer = FlatServerOptimizer(t.optimizer, t.lr, self.public.dim)
            if self.resumed_state is not None:
                try:
                    self.optimizer.load_state_dict(self.resumed_state["server_optimizer"])
                except ValueError as err:
                    raise ConfigError(str(err)) from err
        return self.public

    def configure_round(self, rounds: SiteRounds, rnd: int) -> RecordDict:
        """Return the global arrays, run id, round and the round's public ``ddp-*`` constants."""
        from ssl_fed.fed.layout import CONFIG

        content = super().configure_round(rounds, rnd)
        for key, value in self._public(rounds).config(rounds.run_id, rnd).items():
            content.config_records[CONFIG][key] = value
        return content

    def aggregate_round(
        self, grid: Grid, node_ids: list[int], content: RecordDict, rounds: SiteRounds, rnd: int
    ) -> RoundOutcome:
        """Modular SecAgg+ over the sites' integer vectors, decode, one server-optimizer step."""
        from ssl_fed.fed import secagg as fs
        from ssl_fed.fed.layout import RoundOutcome
        from ssl_fed.fed.secagg_driver import run_secagg_round
        from ssl_fed.privacy.distributed import codec
        from ssl_fed.secagg import Skipped
        from ssl_fed.secagg.params import resolve_round
        from ssl_fed.site.ddp import DDP_ARRAY
        from ssl_fed.train.fedsgd_site import round_metrics

        pub = self._public(rounds)
        p = pub.plan.ddp
        assert p is not None and self.optimizer is not None
        self.round_metrics = {}
        if len(node_ids) < max(fs.MIN_SITES, p.min_noisy_sites):
            why = f"{len(node_ids)} sites sampled; this round needs {p.min_noisy_sites} noisy sites"
            return RoundOutcome(None, [], list(node_ids), skipped=why)
        base = fs.secagg_config(self.cfg.aggregation)
        spec: list[tuple[str, tuple[int, ...]]] = [(DDP_ARRAY, (p.padded,))]
        try:  # SecAgg's own floor (threshold t) still applies when min_noisy_sites is below it
            floor = resolve_round(len(node_ids), base).min_survivors
            sa = replace(base, modular_bits=p.bits, min_survivors=max(p.min_noisy_sites, floor))
            res = run_secagg_round(grid, node_ids, content, spec, sa, group_id=str(rnd))
        except ValueError as err:
            return RoundOutcome(None, [], list(node_ids), skipped=f"invalid SecAgg round: {err}")
        timings = {k: round(v, 4) for k, v in res.timings.items()}
        if isinstance(res, Skipped):
            why = f"SecAgg skipped at stage {res.stage}: {res.reason}"
            return RoundOutcome(None, [], list(node_ids), dict(res.clear), why, timings)
        if res.words is None:
            why = "SecAgg returned no modular sum (the sites did not run modular mode)"
            return RoundOutcome(None, [], list(node_ids), dict(res.clear), why, timings)
        survivors = list(res.survivors)
        dropped = sorted(set(node_ids) - set(survivors))
        seed = int(pub.config(rounds.run_id, rnd)["ddp-seed"])
        try:
            total = codec.decode_sum(res.words, p, seed)
        except codec.WrapError as err:
            return RoundOutcome(None, survivors, dropped, dict(res.clear), str(err), timings)
        change = self.optimizer.step(total, self.cfg.train.batch_size * len(survivors))
        self.round_metrics = round_metrics(p, len(survivors))
        mean = scatter(change, pub, rounds)
        return RoundOutcome(mean, survivors, dropped, dict(res.clear), None, timings)

    def annotate(self, rec: RoundRecord) -> None:
        """Put the round's distributed-DP scalars on its record."""
        rec.ddp = dict(self.round_metrics)


def scatter(change: np.ndarray, pub: PublicRound, rounds: SiteRounds) -> list[fa.NDArray]:
    """Per-array changes in the global arrays' order: the layout's slices, zeros elsewhere."""
    blocks: dict[str, np.ndarray] = {}
    pos = 0
    for name, size in pub.layout:
        blocks[name] = change[pos : pos + size]
        pos += size
    out = []
    for spec, arr in zip(rounds.specs, rounds.arrays, strict=True):
        block = blocks.get(spec.name)
        flat = np.zeros(arr.size) if block is None else block
        out.append(np.asarray(flat, dtype=np.float32).reshape(arr.shape))
    return out
