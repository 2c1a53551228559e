"""``flower-supernode`` with a back-off idle poll: Flower's own SuperNode, answering within ~0.1 s.

Why it exists
-------------
flwr 1.42's SuperNode main loop (``flwr.supernode.start_client_internal.start_client_internal``)
pulls the SuperLink once, and when nothing came it sleeps a fixed ``time.sleep(3)``; while a
message is being processed it waits for the ClientApp's reply in fixed ``time.sleep(0.5)`` steps
(``_push_messages``). A SecAgg+ round is a chain of short exchanges (budget query, advertise keys,
share keys, collect, unmask): every one waits on average 1.5 s for the poll plus up to 0.5 s for
the reply check, on every site, before any work starts. Flower has no option for either interval.

What this launcher does
-----------------------
It runs Flower's own ``flower-supernode`` entry point in this process after replacing, in that one
module only, the module-global ``time`` by :class:`LoopClock` (every attribute forwards to the real
``time`` module except ``sleep``) and wrapping its two loop helpers so the clock sees each message:

- the idle poll (``sleep(3)``) follows :class:`IdlePoll`: 50 ms after a message, doubling to 0.25 s
  while a round is in flight (``hot_window`` seconds since the last message), then doubling up to
  Flower's own 3 s, so an idle site polls the SuperLink no more often than stock Flower;
- the local reply check (``sleep(0.5)``, an in-memory look-up) waits 20 ms instead.

Nothing else changes: same arguments, same TLS, node authentication, node config, ClientApp
isolation and exit codes. The patch is applied only when the installed source still has exactly
the calls it replaces (:func:`loop_matches`); otherwise the SuperNode runs unpatched (stock
timing, a warning on stderr), so a Flower upgrade can make a site slower but never wrong.

Notes
-----
No privacy or security property depends on poll timing: messages, TLS and node authentication
are Flower's, unchanged. The cost is more pulls while a round is in flight (at most 20 per second
per site right after a message, 4 per second after that), each a small authenticated HTTPS request.
"""

from __future__ import annotations

import inspect
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FLOWER_IDLE_SLEEP = 3
"""Flower 1.42's fixed idle poll in ``start_client_internal`` (seconds)."""
FLOWER_REPLY_SLEEP = 0.5
"""Flower 1.42's fixed wait for the ClientApp's reply in ``_push_messages`` (seconds)."""
LOOP_MODULE = "flwr.supernode.start_client_internal"


@dataclass
class IdlePoll:
    """Back-off for the SuperNode's idle poll: fast while a round is in flight, Flower's 3 s idle.

    After each message (:meth:`activity`) the wait restarts at ``first`` and doubles per empty
    pull, capped at ``hot_cap`` until ``hot_window`` seconds have passed since the message, then at
    ``cap`` (Flower's own interval). ``now`` is injectable for tests.
    """

    first: float = 0.05
    hot_cap: float = 0.25
    hot_window: float = 30.0
    cap: float = float(FLOWER_IDLE_SLEEP)
    now: Callable[[], float] = time.monotonic
    _last: float = field(default=float("-inf"), init=False)
    _wait: float = field(default=0.0, init=False)

    def activity(self) -> None:
        """Note a message pulled or a reply pushed: poll fast again."""
        self._last = self.now()
        self._wait = 0.0

    def next_wait(self) -> float:
        """Return how long to sleep after this empty pull."""
        limit = self.hot_cap if self.now() - self._last < self.hot_window else self.cap
        self._wait = self.first if self._wait == 0.0 else self._wait * 2
        self._wait = min(self._wait, limit)
        return self._wait


class LoopClock:
    """Stands in for ``time`` inside Flower's SuperNode loop module; only ``sleep`` differs."""

    def __init__(
        self, poll: IdlePoll, reply_wait: float = 0.02, real: types.ModuleType = time
    ) -> None:
        self.poll, self.reply_wait, self.real = poll, reply_wait, real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def sleep(self, seconds: float) -> None:
        """Replace Flower's two fixed waits; any other sleep is passed through unchanged."""
        if seconds == FLOWER_IDLE_SLEEP:
            seconds = self.poll.next_wait()
        elif seconds == FLOWER_REPLY_SLEEP:
            seconds = self.reply_wait
        self.real.sleep(seconds)


def loop_matches(module: types.ModuleType) -> bool:
    """Return True if ``module`` has the loop this launcher patches (flwr 1.42's calls)."""
    try:
        main = inspect.getsource(module.start_client_internal)
        push = inspect.getsource(module._push_messages)
    except (AttributeError, OSError, TypeError):
        return False
    return (
        module.time is time
        and f"time.sleep({FLOWER_IDLE_SLEEP})" in main
        and "_pull_and_store_message(" in main
        and "_push_messages(" in main
        and f"time.sleep({FLOWER_REPLY_SLEEP})" in push
    )


def patch_loop(module: types.ModuleType, poll: IdlePoll) -> bool:
    """Install :class:`LoopClock` and the activity hooks in ``module``; False if it differs."""
    if not loop_matches(module):
        return False
    pull, push = module._pull_and_store_message, module._push_messages

    def pull_and_note(*args: Any, **kwargs: Any) -> Any:
        run_id = pull(*args, **kwargs)
        if run_id is not None:
            poll.activity()
        return run_id

    def push_and_note(*args: Any, **kwargs: Any) -> None:
        push(*args, **kwargs)
        poll.activity()

    setattr(module, "time", LoopClock(poll))  # noqa: B010  (mypy: ModuleType has no such field)
    setattr(module, "_pull_and_store_message", pull_and_note)  # noqa: B010
    setattr(module, "_push_messages", push_and_note)  # noqa: B010
    return True


def main() -> int:
    """Entry point: ``python -m ssl_fed.fed.fastnode <flower-supernode arguments>``."""
    import importlib

    from flwr.supernode.cli.flower_supernode import flower_supernode

    if not patch_loop(importlib.import_module(LOOP_MODULE), IdlePoll()):
        print(
            f"warning: {LOOP_MODULE} is not flwr 1.42's loop; running it unpatched "
            "(stock 3 s idle poll)",
            file=sys.stderr,
            flush=True,
        )
    sys.argv[0] = "flower-supernode"
    flower_supernode()
    return 0


if __name__ == "__main__":
    sys.exit(main())
