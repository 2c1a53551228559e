"""A few-site federation run in-process for the audit: real site rounds, real SecAgg+, no Flower.

Each round every site runs :func:`~ssl_fed.site.rounds.train_site_round` (its own engine, ledger,
Poisson sampling, clip and noise, exactly as the ClientApp runs it) from the current global
arrays; ssl-fed's SecAgg+ then aggregates the replies in-process
(:func:`~ssl_fed.secagg.local.run_local_round`: keys, Shamir shares, masks, unmasking; the same
client and server code as the Flower path, as :mod:`ssl_fed.attack.replay` runs it), and the
server applies what it decoded. What :meth:`AuditFederation.run_round` returns is exactly what an
honest-but-curious server sees of the round under SecAgg:

- ``privacy.noise=local``: the decoded mean of the sites' deltas (each site added its full
  Gaussian noise; the quantizer clips every value to ``aggregation.clipping_range``);
- ``privacy.noise=distributed``: the decoded sum of the sites' clipped unit gradients plus the
  sum of their Skellam shares (:func:`~ssl_fed.privacy.distributed.codec.decode_sum`), on which
  the server takes one optimizer step (:class:`~ssl_fed.train.server_opt.FlatServerOptimizer`,
  as :class:`~ssl_fed.fed.aggregators.secagg_distributed.DistributedSecAggAggregator` does).

Both are keyed by federated array name (``encoder.X``, or a shared head's ``<head>.X``), flat.

Notes
-----
Nothing here adds or removes privacy: the sites' guarantees are theirs (their engines charge
their ledgers), and the server's view is post-processing of the aggregate. A skipped or wrapped
round raises, so the audit never scores a round the server would not have released.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from ssl_fed.config import RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.models import build_model
from ssl_fed.privacy.engine import PrivacyEngine, mechanism_name
from ssl_fed.secagg import AggregateResult, SecAggConfig, run_local_round
from ssl_fed.site import node
from ssl_fed.site.node import SiteInfo
from ssl_fed.site.rounds import train_site_round
from ssl_fed.train.fedsgd_public import PublicRound, public_round
from ssl_fed.train.job import load_init
from ssl_fed.train.server_opt import FlatServerOptimizer

Released = dict[str, NDArray[np.float64]]
"""What the server sees of one round, flat per federated array name."""
Hook = Callable[[PrivacyEngine], None]


@dataclass
class AuditFederation:
    """The global arrays, the sites and the server's state of one in-process federation."""

    cfg: RootConfig
    infos: list[SiteInfo]
    run_id: str
    channels: int
    specs: list[fa.ArraySpec]
    arrays: list[fa.NDArray]
    heads: list[dict[str, torch.Tensor] | None] = field(default_factory=list)
    optimizer: FlatServerOptimizer | None = None

    @property
    def distributed(self) -> bool:
        """Whether the sites add Skellam shares (``privacy.noise=distributed``)."""
        return mechanism_name(self.cfg) == "skellam"

    def public(self) -> PublicRound:
        """Return the distributed round's public constants, as the sites derive them."""
        return public_round(node.site_config(self.cfg, self.infos[0]), self.channels)

    def run_round(self, rnd: int, hooks: dict[int, Hook]) -> Released:
        """Train every site (``hooks[i]``: the audit's seam at site ``i``), aggregate, apply."""
        replies = []
        for i, info in enumerate(self.infos):
            got = train_site_round(
                self.cfg, info, self.arrays, self.heads[i], self.run_id, rnd, audit=hooks.get(i)
            )
            self.heads[i] = got.heads
            replies.append(got.delta)
        if self.distributed:
            return self._apply_sum(replies, rnd)
        return self._apply_mean(replies)

    def _apply_mean(self, replies: list[list[fa.NDArray]]) -> Released:
        """Local noise: SecAgg+ mean of the float deltas; the server adds it to the global."""
        agg = self.cfg.aggregation
        sa = SecAggConfig(
            clip_range=agg.clipping_range, value_bits=agg.value_bits, max_weight=1, fixed_weight=1
        )
        names = [s.name for s in self.specs]
        inputs = {
            101 + i: (dict(zip(names, delta, strict=True)), 1.0) for i, delta in enumerate(replies)
        }
        spec = [(s.name, tuple(s.shape)) for s in self.specs]
        res = run_local_round(inputs, spec, sa)
        if not isinstance(res, AggregateResult):
            raise RuntimeError(f"the audit's SecAgg round was skipped: {res.reason}")
        mean = [
            np.asarray(res.arrays[n], np.float32).reshape(s.shape)
            for n, s in zip(names, self.specs, strict=True)
        ]
        self.arrays = fa.add_arrays(self.arrays, mean)
        return {n: np.asarray(m, np.float64).reshape(-1) for n, m in zip(names, mean, strict=True)}

    def _apply_sum(self, replies: list[list[fa.NDArray]], rnd: int) -> Released:
        """Distributed noise: modular SecAgg+ sum, decode, one server step (the aggregator's)."""
        from ssl_fed.privacy.distributed import codec

        pub = self.public()
        p = pub.plan.ddp
        assert p is not None
        sa = SecAggConfig(
            modular_bits=p.bits, max_weight=1, fixed_weight=1, min_survivors=p.min_noisy_sites
        )
        inputs = {101 + i: ({"ddp": r[0]}, 1.0) for i, r in enumerate(replies)}
        res = run_local_round(inputs, [("ddp", (p.padded,))], sa)
        if not isinstance(res, AggregateResult) or res.words is None:
            raise RuntimeError(
                f"the audit's SecAgg round was skipped: {getattr(res, 'reason', '')}"
            )
        seed = int(pub.config(self.run_id, rnd)["ddp-seed"])
        total = codec.decode_sum(res.words, p, seed)
        if self.optimizer is None:
            t = self.cfg.train
            self.optimizer = FlatServerOptimizer(t.optimizer, t.lr, pub.dim)
        change = self.optimizer.step(total, self.cfg.train.batch_size * len(replies))
        self.arrays = fa.add_arrays(self.arrays, self._scatter(change, pub))
        out, pos = {}, 0
        for name, size in pub.layout:
            out[name] = total[pos : pos + size]
            pos += size
        return out

    def _scatter(self, change: NDArray[np.float64], pub: PublicRound) -> list[fa.NDArray]:
        """Per-array changes in the global arrays' order: the layout's slices, zeros elsewhere."""
        blocks, pos = {}, 0
        for name, size in pub.layout:
            blocks[name] = change[pos : pos + size]
            pos += size
        return [
            np.asarray(blocks.get(s.name, np.zeros(a.size)), np.float32).reshape(a.shape)
            for s, a in zip(self.specs, self.arrays, strict=True)
        ]


def make_federation(cfg: RootConfig, out: Path, run_id: str) -> AuditFederation:
    """``sim.num_sites`` simulated sites (partitions of ``data``), state under ``<out>/sites``.

    The initial global model is the server's: ``init`` (a warm start) or the random one seeded
    with ``sim.seed``, as :func:`ssl_fed.fed.serverapp.run_server` builds it.
    """
    num = cfg.sim.num_sites
    infos = [
        node.site_info(
            cfg,
            {
                "partition-id": i,
                "num-partitions": num,
                "state-dir": str(out / "sites" / f"site_{i}"),
            },
        )
        for i in range(num)
    ]
    channels = node.site_data(cfg, infos[0]).channels
    with torch.random.fork_rng():
        torch.manual_seed(cfg.sim.seed)
        model = build_model(cfg.encoder, channels)
    load_init(model, cfg.init)
    share = cfg.aggregation.share_heads
    arrays = fa.state_to_arrays(fa.federated_state(model, share))
    specs = fa.array_specs(model, share)
    return AuditFederation(cfg, infos, run_id, channels, specs, arrays, [None] * num)
