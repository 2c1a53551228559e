"""The SuperNode launcher's back-off idle poll (ssl_fed.fed.fastnode) and the back-off grid."""

from __future__ import annotations

import importlib
import importlib.util
import time
import types
from pathlib import Path

import pytest

from ssl_fed.deploy.site import SUPEREXEC_POLL_ENV, supernode_env
from ssl_fed.fed.fastnode import LOOP_MODULE, IdlePoll, LoopClock, loop_matches, patch_loop

# A stand-in with the same calls as flwr 1.42's loop: pull; nothing -> sleep(3); else push,
# whose reply check sleeps 0.5 while the reply is not ready.
LOOP_SOURCE = """
import time

def _pull_and_store_message(item):
    return item

def _push_messages(ready):
    while not ready.pop(0):
        time.sleep(0.5)

def start_client_internal(items, ready):
    for item in items:
        run_id = _pull_and_store_message(item)
        if run_id is None:
            time.sleep(3)
            continue
        _push_messages(ready)
"""


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def load_loop(tmp_path: Path, source: str) -> types.ModuleType:
    path = tmp_path / "fake_loop.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("fake_loop", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_idle_poll_is_fast_in_a_round_and_flowers_own_when_idle() -> None:
    # Prepare
    clock = FakeClock()
    poll = IdlePoll(first=0.05, hot_cap=0.25, hot_window=30.0, cap=3.0, now=clock)

    # Execute: idle since start-up; then a message; then idle past the hot window
    cold = [poll.next_wait() for _ in range(8)]
    poll.activity()
    hot = [poll.next_wait() for _ in range(5)]
    clock.t += 30.0
    later = [poll.next_wait() for _ in range(6)]

    # Assert: doubling from 50 ms, capped at 0.25 s for 30 s after a message, then at 3 s
    assert cold == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0]
    assert hot == [0.05, 0.1, 0.2, 0.25, 0.25]
    assert later == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_loop_clock_replaces_only_flowers_two_waits() -> None:
    # Prepare
    real = FakeClock()
    fake_time = types.SimpleNamespace(sleep=real.sleep, monotonic=lambda: 7.0)
    clock = LoopClock(IdlePoll(now=real), reply_wait=0.02, real=fake_time)  # type: ignore[arg-type]

    # Execute
    clock.sleep(3)
    clock.sleep(0.5)
    clock.sleep(1.25)

    # Assert: idle poll -> back-off, reply check -> 20 ms, any other sleep unchanged
    assert real.slept == [0.05, 0.02, 1.25]
    assert clock.monotonic() == 7.0


def test_patched_loop_polls_fast_after_each_message(tmp_path: Path) -> None:
    # Prepare
    module = load_loop(tmp_path, LOOP_SOURCE)
    clock = FakeClock()
    assert patch_loop(module, IdlePoll(now=clock))
    module.time.real = clock

    # Execute: two empty pulls, a message whose reply is ready on the 2nd check, one empty pull
    module.start_client_internal([None, None, "run", None], [False, True])

    # Assert: cold back-off, 20 ms reply check, then the back-off restarts at 50 ms
    assert clock.slept == [0.05, 0.1, 0.02, 0.05]


def test_a_different_loop_is_left_unpatched(tmp_path: Path) -> None:
    # Prepare: a loop whose idle sleep is no longer the 3 s this launcher replaces
    module = load_loop(tmp_path, LOOP_SOURCE.replace("time.sleep(3)", "time.sleep(2)"))

    # Execute
    patched = patch_loop(module, IdlePoll())

    # Assert
    assert not patched
    assert module.time is time


def test_installed_flower_has_the_loop_the_launcher_patches() -> None:
    # Execute / Assert: fails on a Flower upgrade that changes the loop (sites would stay correct
    # but fall back to the 3 s poll)
    assert loop_matches(importlib.import_module(LOOP_MODULE))


def test_site_env_sets_the_superexec_poll_but_keeps_an_operators_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Execute
    monkeypatch.delenv(SUPEREXEC_POLL_ENV, raising=False)
    default = supernode_env(tmp_path / "a", ("x",))
    monkeypatch.setenv(SUPEREXEC_POLL_ENV, "0.7")
    kept = supernode_env(tmp_path / "b", ("x",))

    # Assert
    assert default[SUPEREXEC_POLL_ENV] == "0.2"
    assert kept[SUPEREXEC_POLL_ENV] == "0.7"


def test_backoff_grid_forwards_and_collects_every_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: a grid whose replies arrive on the 1st and 3rd pull; record the driver's sleeps
    from ssl_fed.fed import secagg_driver
    from ssl_fed.fed.backoff_grid import BackoffGrid

    slept: list[float] = []
    fake_time = types.SimpleNamespace(monotonic=lambda: 0.0, sleep=slept.append)  # frozen clock
    monkeypatch.setattr(secagg_driver, "time", fake_time)

    class Reply:
        def __init__(self, mid: str) -> None:
            self.metadata = types.SimpleNamespace(reply_to_message_id=mid)

    class Inner:
        def __init__(self) -> None:
            self.pulls = 0

        def push_messages(self, msgs: list[str]) -> list[str]:
            return [f"id-{m}" for m in msgs]

        def pull_messages(self, ids: set[str]) -> list[Reply]:
            self.pulls += 1
            due = {1: ["id-a"], 3: ["id-b"]}.get(self.pulls, [])
            return [Reply(i) for i in due if i in ids]

        def get_node_ids(self) -> list[int]:
            return [4, 5]

    inner = Inner()
    grid = BackoffGrid(inner)  # type: ignore[arg-type]

    # Execute
    replies = list(grid.send_and_receive(["a", "b"], timeout=None))  # type: ignore[list-item]

    # Assert: both replies, three pulls, two short waits (10% of the time waited, at least 5 ms,
    # at most 100 ms; the clock is frozen, so both are the 5 ms floor), not Flower's 3 s
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["id-a", "id-b"]
    assert inner.pulls == 3
    assert slept == [0.005, 0.005]
    assert list(grid.get_node_ids()) == [4, 5]
