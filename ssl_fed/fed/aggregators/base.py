"""The aggregator interface and registry: ``aggregation.name`` is looked up here and nowhere else.

An aggregator turns the sampled sites' deltas into one mean delta per round. Each is one class
with a small interface, in the spirit of Flower's ``Strategy`` (``configure_train`` /
``aggregate_train`` / ``start``):

- :meth:`Aggregator.check_config`: raise :class:`~ssl_fed.config.ConfigError` for settings this
  aggregator cannot run with (called by config validation);
- :meth:`Aggregator.configure_round`: the content every sampled site receives;
- :meth:`Aggregator.aggregate_round`: run the round over the grid and return a
  :class:`~ssl_fed.fed.layout.RoundOutcome` (the survivors' mean plus their whitelisted metrics,
  or the reason the round was skipped);
- :meth:`Aggregator.start`: the loop over rounds (budget query and sampling, then the two steps
  above, then :meth:`~ssl_fed.fed.rounds.SiteRounds.apply` /
  :meth:`~ssl_fed.fed.rounds.SiteRounds.record`); an aggregator that lives on another Flower
  stack (``flower-secaggplus``) overrides it;
- :meth:`Aggregator.client_mods`, :attr:`Aggregator.reply_layout`, :attr:`Aggregator.label`,
  :meth:`Aggregator.quantization_bound`: what the site wraps its train handler in, how the
  reply is laid out, and what ``metrics.json`` reports.

Why the server runs its own loop rather than ``flwr.serverapp.strategy.FedAvg.start``: Flower
1.42's Message-API ``Strategy.start`` calls ``grid.send_and_receive`` once per round with one
message per node, while ssl-fed's SecAgg+ needs five exchanges per round (advertise, share,
collect, consist, unmask) and every round starts with a budget query to all nodes before sampling;
the ``Strategy`` offers no hook for either (research/flower-1.42-notes.md §2). The loop is kept
as small as ``Strategy.start`` and the per-round work behind the same two verbs.

Flower boundary: importing this package must not import Flower, because config validation asks
it for :func:`names` and :meth:`~Aggregator.check_config`, and ``ssl_fed.config`` is Flower-free
(tests/test_boundary.py). So these classes import their Flower-bound helpers
(:mod:`ssl_fed.fed.messages`, :mod:`ssl_fed.fed.secagg_driver`, :mod:`ssl_fed.fed.legacy`, ...)
inside the methods that run a round.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ssl_fed.config import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from flwr.app import Context, RecordDict
    from flwr.clientapp.typing import Mod
    from flwr.serverapp import Grid

    from ssl_fed.config import RootConfig
    from ssl_fed.fed.layout import RoundOutcome
    from ssl_fed.fed.rounds import RoundRecord, SiteRounds
    from ssl_fed.secagg.identity import SiteIdentity

IdentityOf = Callable[[int], "SiteIdentity"]


class Aggregator(ABC):
    """One aggregation method (see the module docstring); built from the run's config."""

    name: ClassVar[str]
    """The ``aggregation.name`` that selects this class."""
    label: ClassVar[str]
    """The ``secure_aggregation`` value ``metrics.json`` reports."""
    reply_layout: ClassVar[str] = "message"
    """``message`` (Message-API records) or ``legacy`` (``fitres.*``); see ``fed.messages``."""

    def __init__(self, cfg: RootConfig) -> None:
        self.cfg = cfg

    @classmethod
    def check_config(cls, cfg: RootConfig) -> None:
        """Raise :class:`~ssl_fed.config.ConfigError` if this aggregator cannot run ``cfg``."""
        return

    def quantization_bound(self) -> float:
        """Largest per-value error of the aggregated mean against the exact mean (0: none)."""
        return 0.0

    def server_state(self) -> dict[str, Any] | None:
        """State the checkpoint must hold to resume this aggregator exactly (none by default)."""
        return None

    def restore_server_state(
        self, state: dict[str, Any] | None, *, checkpoint: Path | None = None
    ) -> None:
        """Continue from a checkpointed :meth:`server_state` (``None``: nothing to continue).

        ``checkpoint`` is the file ``state`` came from, ``None`` when there is no checkpoint (a
        new run): ``state=None`` with a ``checkpoint`` is a checkpoint that holds no state.
        """
        return

    def client_mods(self, identity_of: IdentityOf | None = None) -> list[Mod]:
        """Mods the site puts *outside* its guard on the train handler (none by default)."""
        return []

    def configure_round(self, rounds: SiteRounds, rnd: int) -> RecordDict:
        """Return the train content of round ``rnd``: global arrays by name, run id and round."""
        from ssl_fed.fed.messages import train_content

        names = [s.name for s in rounds.specs]
        return train_content(rounds.arrays, names, rounds.run_id, rnd)

    @abstractmethod
    def aggregate_round(
        self, grid: Grid, node_ids: list[int], content: RecordDict, rounds: SiteRounds, rnd: int
    ) -> RoundOutcome:
        """Run round ``rnd`` with the sampled ``node_ids`` and return its outcome."""

    def start(
        self, grid: Grid, context: Context, rounds: SiteRounds, first: int, last: int
    ) -> None:
        """Run rounds ``first..last`` (global numbering, continued across a resume)."""
        for rnd in range(first, last + 1):
            nodes = wait_for_nodes(grid, self.cfg.sim.num_sites, self.cfg.aggregation.query_timeout)
            chosen, rec = rounds.plan_round(grid, nodes, rnd)
            content = self.configure_round(rounds, rnd)
            rounds.apply(rec, self.aggregate_round(grid, chosen, content, rounds, rnd))
            self.annotate(rec)
            rounds.record(rec)

    def annotate(self, rec: RoundRecord) -> None:
        """Add this aggregator's own per-round scalars to ``rec`` before it is recorded."""
        return


def wait_for_nodes(grid: Grid, want: int, timeout: float) -> list[int]:
    """Return the connected node ids once ``want`` are there, or whatever is there at timeout."""
    end = time.monotonic() + timeout
    nodes = sorted(grid.get_node_ids())
    while len(nodes) < want and time.monotonic() < end:
        time.sleep(0.2)
        nodes = sorted(grid.get_node_ids())
    return nodes


AGGREGATORS: dict[str, type[Aggregator]] = {}
"""``aggregation.name`` -> aggregator class (filled by :func:`register_aggregator`)."""

A = TypeVar("A", bound=type[Aggregator])


def register_aggregator(cls: A) -> A:
    """Class decorator: register ``cls`` under ``cls.name`` (a duplicate name is a bug)."""
    if cls.name in AGGREGATORS:
        raise ValueError(f"aggregator {cls.name!r} is already registered")
    AGGREGATORS[cls.name] = cls
    return cls


def names() -> tuple[str, ...]:
    """Return the valid ``aggregation.name`` values, sorted."""
    return tuple(sorted(AGGREGATORS))


def aggregator_class(name: str) -> type[Aggregator]:
    """Return the class registered as ``name``; :class:`ConfigError` lists the valid names."""
    if name not in AGGREGATORS:
        raise ConfigError(f"aggregation.name={name!r} is invalid: use one of {', '.join(names())}")
    return AGGREGATORS[name]


NOISE_VARIANTS: dict[tuple[str, str], type[Aggregator]] = {}
"""``(aggregation.name, privacy.noise)`` -> the class that runs that aggregator in that noise mode
(``secagg`` + ``distributed``: DP-FedSGD with Skellam shares). Same wire layout and site mods as
the registered class; ``aggregation.name`` keeps naming the registered one."""


def register_noise_variant(name: str, noise: str) -> Callable[[A], A]:
    """Class decorator: ``cls`` runs aggregator ``name`` when ``privacy.noise == noise``."""

    def deco(cls: A) -> A:
        if (name, noise) in NOISE_VARIANTS:
            raise ValueError(f"noise variant {(name, noise)!r} is already registered")
        NOISE_VARIANTS[(name, noise)] = cls
        return cls

    return deco


def build_aggregator(cfg: RootConfig) -> Aggregator:
    """Build the aggregator ``cfg.aggregation.name`` selects (its noise variant, if any)."""
    cls = aggregator_class(cfg.aggregation.name)
    if cfg.privacy.enabled:
        cls = NOISE_VARIANTS.get((cls.name, cfg.privacy.noise), cls)
    return cls(cfg)


__all__ = [
    "AGGREGATORS",
    "NOISE_VARIANTS",
    "Aggregator",
    "IdentityOf",
    "aggregator_class",
    "build_aggregator",
    "names",
    "register_aggregator",
    "register_noise_variant",
]
