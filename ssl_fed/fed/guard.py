"""The message guard: nothing but the declared update and whitelisted scalars leaves a site.

A site's reply is checked *after* local training and *before* it is masked: the guard mod sits
inside the SecAgg mod (ssl-fed's ``secagg_mod`` or Flower's ``secaggplus_mod``). It is fail-closed:
anything unexpected (an extra record or array, a wrong name, shape or dtype, a NaN/Inf value, a
metric not on the whitelist, a non-scalar or non-finite metric, an aggregation weight other than 1)
raises :class:`GuardError`, so the reply is dropped and the site counts as dropped for that round.
The server applies the array checks to every update it can see (plain aggregation) before
averaging.

Two train-reply layouts (:mod:`ssl_fed.fed.messages`): ``message`` (``secagg``, ``plain``): exactly
an ArrayRecord ``arrays`` holding the declared arrays by name and in order, and a MetricRecord
``metrics`` holding ``num-examples = 1`` plus whitelisted scalars; under ``secagg`` those scalars
leave in the clear beside the masked vector, which is why they are checked here. ``legacy``
(``flower-secaggplus``): exactly the compat ``fitres.*`` records.

Notes
-----
Privacy guarantee this module serves (DESIGN §1, "What leaves a site"): under DP-SGD the encoder
update is a DP release charged to the site's ledger. Each scalar that may leave, and why it is
public:

* ``epsilon`` and ``epsilon-remaining``: computed by the accountant from the ledger's history of
  (σ, q, steps) and the site's budget, where σ is calibrated from public targets and q = B / N uses
  the size N the operator declares (``data.public_size``), never the exact n. The site sends them
  only when N was declared; otherwise they depend on n and stay at the site.
* ``num-examples`` (the aggregation weight): the constant 1 for every site.
* ``can-train`` and ``site`` (budget query): the ledger's public history checked against the
  public schedule, and the site's public label.
* ``data-format`` and ``public-size`` (budget query): the operator's choice of reader and the
  declared size N (0 when none; the exact n never leaves), see :mod:`ssl_fed.site.declared`.
* ``drift-alarm`` (only where the site's policy is ``drift_release: dp-alarm``): one bit released
  by the sparse vector technique or randomized response, its ε charged to the ledger first
  (:mod:`ssl_fed.monitor.release`). The drift statistic itself never leaves.

The pretext losses are *not* on the list: they are unclipped, un-noised means over private images
(one added image moved ``loss-rotation`` by about 6.5 run-to-run SDs), so they are not
post-processing of a DP release; sites keep them in a local record. Everything else could carry
data (file paths, labels, embeddings, counts), so it is refused rather than filtered: a filtering
guard would silently send what a bug put there.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, Context, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable, Mod

from ssl_fed.fed.arrays import ArraySpec
from ssl_fed.fed.layout import AGGREGATION_WEIGHT, ARRAYS, METRICS, WEIGHT_KEY
from ssl_fed.site.declared import DATA_FORMATS, MAX_PUBLIC_SIZE

log = logging.getLogger("ssl_fed.fed.guard")

FIT_LAYOUT = {
    "array": {"fitres.parameters"},
    "metric": {"fitres.num_examples"},
    "config": {"fitres.metrics", "fitres.status"},
}
"""The legacy ``fitres.*`` records Flower's compat layer writes, and nothing else."""

QUERY_KEYS = frozenset({"can-train", "site", "declined", "data-format", "public-size"})
"""The budget query's reply: may this site train the round, its public site label, why not
(``declined``: 0, a site-policy refusal code, or the budget code; :mod:`ssl_fed.privacy.policy`),
and its data declaration (format code and declared size; :mod:`ssl_fed.site.declared`)."""

MAX_SITE_LABEL = 65535
MAX_DECLINED_CODE = 31


@dataclass(frozen=True)
class ScalarRange:
    """What a scalar's meaning allows: ``[low, high]`` (``high=None``: the site's ε budget)."""

    low: float
    high: float | None
    integer: bool = False


SCALAR_RANGES: dict[str, ScalarRange] = {
    "can-train": ScalarRange(0, 1, integer=True),
    "site": ScalarRange(-1, MAX_SITE_LABEL, integer=True),
    "declined": ScalarRange(0, MAX_DECLINED_CODE, integer=True),
    "epsilon": ScalarRange(0, None),
    "epsilon-remaining": ScalarRange(0, None),
    "drift-alarm": ScalarRange(0, 1, integer=True),
    "data-format": ScalarRange(0, len(DATA_FORMATS), integer=True),
    "public-size": ScalarRange(0, MAX_PUBLIC_SIZE, integer=True),
}
"""One range per whitelisted scalar: ε spent and ε left lie in ``[0, budget]``, ``can-train`` is
0 or 1, the site label is a small integer (-1: none), ``declined`` a small policy code. A
whitelisted key without a range is refused (fail closed)."""

BUDGET_SLACK = 1e-9
"""Relative slack on the ε budget bound (the accountant's float arithmetic)."""


class GuardError(RuntimeError):
    """A reply broke the declared layout; it is not sent."""


def allowed_fit_metrics(drift_alarm: bool = False) -> frozenset[str]:
    """Whitelisted per-round scalars: ε spent and budget remaining (see the module's Notes).

    ``drift_alarm`` (the site's policy is ``dp-alarm``) adds the DP-released ``drift-alarm`` bit.

    No loss is on the list: a mean loss over private images is neither clipped nor noised, so it
    stays in the site's own record (``site_metrics.jsonl``).
    """
    base = {"epsilon", "epsilon-remaining"}
    return frozenset(base | {"drift-alarm"} if drift_alarm else base)


@functools.lru_cache(maxsize=256)
def serialized_size(dtype: str, shape: tuple[int, ...]) -> int:
    """Bytes of an ``Array`` of this dtype and shape as Flower serializes it (``.npy``)."""
    return len(Array(np.zeros(shape, np.dtype(dtype))).data)


def check_raw_arrays(arrays: list[Array], specs: list[ArraySpec], legacy: bool = False) -> None:
    """Raise unless each ``Array``'s own fields and raw bytes fit its spec, then decode and check.

    ``Array.numpy()`` trusts the ``.npy`` header and ignores trailing bytes, and the record's
    ``dtype`` string is never compared with the data, so both are checked on the raw record.
    Flower's compat layer (``legacy``) writes an empty dtype and shape; only those may stand in.
    """
    if len(arrays) != len(specs):
        raise GuardError(f"update has {len(arrays)} arrays, declared {len(specs)}")
    for arr, spec in zip(arrays, specs, strict=True):
        fields = (arr.stype, arr.dtype, tuple(arr.shape))
        ok = {("numpy.ndarray", spec.dtype, spec.shape)} | (
            {("numpy.ndarray", "", ())} if legacy else set()
        )
        if fields not in ok:
            raise GuardError(f"array {spec.name}: record says {fields}, declared {spec}")
        expected = serialized_size(spec.dtype, spec.shape)
        if len(arr.data) != expected:
            raise GuardError(f"array {spec.name}: {len(arr.data)} raw bytes, expected {expected}")
    check_arrays([a.numpy() for a in arrays], specs)


def check_arrays(arrays: list[np.typing.NDArray[np.generic]], specs: list[ArraySpec]) -> None:
    """Raise unless ``arrays`` match ``specs`` one to one (shape, dtype) and are all finite."""
    if len(arrays) != len(specs):
        raise GuardError(f"update has {len(arrays)} arrays, declared {len(specs)}")
    for arr, spec in zip(arrays, specs, strict=True):
        if tuple(arr.shape) != spec.shape or str(arr.dtype) != spec.dtype:
            raise GuardError(
                f"array {spec.name}: got {arr.dtype}{tuple(arr.shape)}, "
                f"declared {spec.dtype}{spec.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise GuardError(f"array {spec.name} holds NaN or Inf")


def scalar_range(key: str) -> ScalarRange:
    """Return the range of a whitelisted scalar (:data:`SCALAR_RANGES`); raise if it has none."""
    if key in SCALAR_RANGES:
        return SCALAR_RANGES[key]
    raise GuardError(f"metric {key!r} has no declared range")


def check_scalars(
    values: Mapping[str, object], allowed: Collection[str], budget: float | None = None
) -> None:
    """Raise unless every key is whitelisted and every value is one finite number in its range.

    ``budget`` is the site's ε budget, the upper end of ``epsilon`` and ``epsilon-remaining``;
    ``None`` (the server, which does not know it) checks only that they are finite and >= 0.
    """
    extra = sorted(set(values) - set(allowed))
    if extra:
        raise GuardError(f"metrics {extra} are not whitelisted (allowed: {sorted(allowed)})")
    for key, value in values.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(float(value)):  # type: ignore[arg-type]
            raise GuardError(f"metric {key!r} must be a finite scalar, got {type(value).__name__}")
        r = scalar_range(key)
        high = r.high if r.high is not None else budget
        top = math.inf if high is None else high * (1 + BUDGET_SLACK)
        if r.integer and type(value) is not int:
            raise GuardError(f"metric {key!r} must be an integer")
        if not r.low <= float(value) <= top:  # type: ignore[arg-type]
            raise GuardError(f"metric {key!r}={value!r} is outside [{r.low}, {high}]")


def _record_names(content: RecordDict) -> dict[str, set[str]]:
    return {
        "array": set(content.array_records),
        "metric": set(content.metric_records),
        "config": set(content.config_records),
    }


def check_fit_reply(
    content: RecordDict,
    specs: list[ArraySpec],
    allowed: Collection[str],
    budget: float | None = None,
) -> None:
    """Check a legacy ``fitres.*`` reply: layout, weight 1, declared arrays, whitelisted metrics."""
    if _record_names(content) != FIT_LAYOUT:
        raise GuardError(f"reply records {_record_names(content)} differ from {FIT_LAYOUT}")
    params = content.array_records["fitres.parameters"]
    if list(params) != [str(i) for i in range(len(params))]:
        raise GuardError(f"update array keys {list(params)} are not 0..n-1")
    check_raw_arrays(list(params.values()), specs, legacy=True)
    weight = dict(content.metric_records["fitres.num_examples"])
    if weight != {"num_examples": AGGREGATION_WEIGHT}:
        raise GuardError(f"aggregation weight must be exactly {AGGREGATION_WEIGHT}, got {weight}")
    status = dict(content.config_records["fitres.status"])
    if status != {"code": 0, "message": ""}:
        raise GuardError(f"status must be OK with an empty message, got {status}")
    check_scalars(dict(content.config_records["fitres.metrics"]), allowed, budget)


def check_train_reply(
    content: RecordDict,
    specs: list[ArraySpec],
    allowed: Collection[str],
    budget: float | None = None,
) -> None:
    """Check a ``message``-layout reply: declared ``arrays``, weight 1, whitelisted scalars."""
    layout = {"array": {ARRAYS}, "metric": {METRICS}, "config": set()}
    if _record_names(content) != layout:
        raise GuardError(f"reply records {_record_names(content)} differ from {layout}")
    record = content.array_records[ARRAYS]
    if list(record) != [s.name for s in specs]:
        raise GuardError(f"update array names {list(record)} differ from the declared ones")
    check_raw_arrays(list(record.values()), specs)
    metrics = dict(content.metric_records[METRICS])
    weight = metrics.pop(WEIGHT_KEY, None)
    if type(weight) is not int or weight != AGGREGATION_WEIGHT:
        raise GuardError(f"aggregation weight must be exactly {AGGREGATION_WEIGHT}, got {weight}")
    check_scalars(metrics, allowed, budget)


def check_query_reply(content: RecordDict) -> None:
    """Check a budget-query reply: one MetricRecord ``budget`` with :data:`QUERY_KEYS` only."""
    names = _record_names(content)
    if names != {"array": set(), "metric": {"budget"}, "config": set()}:
        raise GuardError(f"query reply records {names} differ from one MetricRecord 'budget'")
    check_scalars(dict(content.metric_records["budget"]), QUERY_KEYS)


def make_guard_mod(
    specs: Callable[[Context], list[ArraySpec]],
    allowed: Callable[[Context], Collection[str]],
    layout: Callable[[Context], str],
    budget: Callable[[Context], float | None] = lambda c: None,
) -> Mod:
    """Build the client mod that checks every reply and raises instead of sending a bad one.

    ``layout(context)`` names the train-reply layout the run uses (``"message"`` or ``"legacy"``,
    from the run's config, never from the reply itself); ``budget(context)`` is the site's own ε
    budget, the upper end of the ε scalars (:data:`SCALAR_RANGES`). Any exception of the handler
    is logged in full at the site and re-raised as a :class:`GuardError` that names only its
    type, so no exception text (paths, values) leaves.
    """

    def guard_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        kind = msg.metadata.message_type
        try:
            reply = call_next(msg, context)
            if reply.has_error():
                raise GuardError("the handler replied with an error")
            if kind == MessageType.TRAIN and layout(context) == "legacy":
                check_fit_reply(reply.content, specs(context), allowed(context), budget(context))
            elif kind == MessageType.TRAIN:
                check_train_reply(reply.content, specs(context), allowed(context), budget(context))
            elif kind == MessageType.QUERY:
                check_query_reply(reply.content)
            else:
                raise GuardError(f"message type {kind!r} is not allowed to reply")
        except GuardError as err:
            log.error("reply dropped by the guard: %s", err)
            raise GuardError(
                "reply dropped by the site's guard (reason logged at the site)"
            ) from None
        except Exception as err:
            log.exception("handler failed; nothing is sent")
            raise GuardError(f"site handler failed ({type(err).__name__})") from None
        return reply

    return guard_mod
