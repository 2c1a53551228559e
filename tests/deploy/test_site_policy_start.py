"""`ssl-fed site start --policy`: a bad policy stops the site before it connects or writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_fed.cli import main


def _start(tmp_path: Path, *extra: str) -> int:
    # A CA and a key that are only files (site start stops before it reads them as keys)
    (tmp_path / "ca.crt").write_text("ca")
    (tmp_path / "site_key").write_text("key")
    return main(
        [
            "site",
            "start",
            "--data",
            str(tmp_path / "images"),
            "--state-dir",
            str(tmp_path / "state"),
            "--superlink",
            "127.0.0.1:1",
            "--ca",
            str(tmp_path / "ca.crt"),
            "--key",
            str(tmp_path / "site_key"),
            *extra,
        ]
    )


@pytest.mark.parametrize(
    "policy, extra, names",
    [
        ("epsilon_budget: .inf\n", [], "epsilon_budget"),
        ("epsilon_budget: 8\naggregations: [plain, none]\n", [], "aggregations"),
        ("epsilon_budget: 8\nallow_server_override: true\n", [], "unknown field"),
        ("epsilon_budget: 8\n", ["--epsilon-budget", "20"], "one place"),
        (None, [], "--policy FILE"),
        (None, ["--epsilon-budget", "inf"], "epsilon_budget"),
    ],
)
def test_a_bad_policy_stops_the_site(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    policy: str | None,
    extra: list[str],
    names: str,
) -> None:
    # Prepare
    args = list(extra)
    if policy is not None:
        (tmp_path / "policy.yaml").write_text(policy)
        args += ["--policy", str(tmp_path / "policy.yaml")]
    # Execute
    code = _start(tmp_path, *args)
    # Assert: exit 2, one error line naming the field; nothing written for the site
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and names in err[0], err
    assert not (tmp_path / "state").exists()
