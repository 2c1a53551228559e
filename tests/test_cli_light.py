"""`ssl-fed --help` builds every subcommand's parser without torch, opacus or scipy.

The packages whose ``__init__`` re-exports heavy names resolve them on first use
(:mod:`ssl_fed.lazy`); these tests check both halves: the parser stays light, and every export
still resolves to the object its module defines.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

HEAVY = ("torch", "opacus", "scipy", "sklearn", "flwr")


def test_building_the_cli_parser_imports_no_heavy_package() -> None:
    # Prepare: a fresh interpreter (this one has imported everything already)
    code = (
        "import sys\n"
        "from ssl_fed.cli import build_parser\n"
        "build_parser()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )

    # Execute
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    # Assert
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("package", ["ssl_fed.monitor", "ssl_fed.audit"])
def test_every_lazy_export_resolves_to_its_modules_object(package: str) -> None:
    # Prepare: every submodule of the package, imported the ordinary way
    module = importlib.import_module(package)
    subs = [
        importlib.import_module(f"{package}.{info.name}")
        for info in pkgutil.iter_modules(module.__path__)
    ]

    # Execute / Assert: each export is the object a submodule defines; unknown names still fail
    for name in module.__all__:
        value = getattr(module, name)
        assert any(getattr(sub, name, None) is value for sub in subs), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        module.nope  # noqa: B018


def test_from_import_of_an_export_and_of_a_submodule_both_work() -> None:
    from ssl_fed.monitor import DriftMonitor, report
    from ssl_fed.monitor.drift import DriftMonitor as Defined

    assert DriftMonitor is Defined
    assert report.__name__ == "ssl_fed.monitor.report"
