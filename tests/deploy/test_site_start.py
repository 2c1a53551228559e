"""`ssl-fed site start` validates the data before it connects anywhere."""

import socket

from ssl_fed.cli import main
from ssl_fed.deploy.pki import init_pki, site_keygen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_data_is_refused_with_the_file_named_and_no_connection(tmp_path, capsys):
    # Prepare: a site folder with one corrupt PNG, and a port where nothing listens
    pki = init_pki(tmp_path / "pki", ["127.0.0.1"])
    key, _ = site_keygen(tmp_path / "keys", "clinic")
    data = tmp_path / "images"
    data.mkdir()
    (data / "scan-0001.png").write_bytes(b"\x89PNG truncated")
    port = free_port()

    # Execute
    code = main(
        [
            "site",
            "start",
            "--data",
            str(data),
            "--state-dir",
            str(tmp_path / "state"),
            "--superlink",
            f"127.0.0.1:{port}",
            "--ca",
            str(pki.ca_cert),
            "--key",
            str(key),
            "--epsilon-budget",
            "8",
        ]
    )

    # Assert: exit 2 naming the file; no worker socket, no ledger, nothing started
    assert code == 2
    assert "scan-0001.png" in capsys.readouterr().err
    assert not (tmp_path / "state" / "worker.sock").exists()
    assert not (tmp_path / "state" / "privacy_ledger.jsonl").exists()


def test_a_missing_data_path_is_refused(tmp_path, capsys):
    pki = init_pki(tmp_path / "pki", ["127.0.0.1"])
    key, _ = site_keygen(tmp_path / "keys", "clinic")
    code = main(
        [
            "site",
            "start",
            "--data",
            str(tmp_path / "nope"),
            "--state-dir",
            str(tmp_path / "state"),
            "--superlink",
            "127.0.0.1:1",
            "--ca",
            str(pki.ca_cert),
            "--key",
            str(key),
            "--epsilon-budget",
            "8",
        ]
    )
    assert code == 2
    assert "no such file or folder" in capsys.readouterr().err
