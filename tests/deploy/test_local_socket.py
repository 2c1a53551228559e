"""The site's helper socket: owner-only files, a fresh key, and a wrong key refused."""

import stat
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client

import pytest

from ssl_fed.deploy.worker import call_worker, serve, worker_paths


class Echo:
    def handle(self, request: object) -> object:
        return ("echo", request)


def test_the_worker_socket_is_owner_only_answers_its_key_and_refuses_another(tmp_path) -> None:
    # Prepare: a warm-worker listener in a fresh state directory
    state = tmp_path / "state"
    serve(Echo(), state)  # type: ignore[arg-type]
    sock, key_path = worker_paths(state)
    # Execute
    answer = call_worker(state, "ping")
    # Assert: 0600 socket and key, a 32-byte key, a real round trip, a wrong key refused
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert len(key_path.read_bytes()) == 32
    assert answer == ("echo", ("ping",))
    with pytest.raises(AuthenticationError):
        Client(str(sock), family="AF_UNIX", authkey=b"x" * 32)
