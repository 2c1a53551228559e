"""Package exports imported on first use (PEP 562), so the command line starts light.

``ssl-fed --help`` and the light subcommands register their parsers from modules inside packages
whose ``__init__`` re-exports heavy names (the drift monitor pulls in the privacy accountant,
hence opacus and torch; the audit bound pulls in scipy). Importing any submodule runs the package
``__init__`` first, so those re-exports are resolved here on first attribute access instead:
``from ssl_fed.monitor import DriftMonitor`` behaves as before, ``from ssl_fed.monitor import
report`` no longer imports torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``name`` from ``package.where[name]``.

    The value is cached in the package's namespace, so each name is resolved once; an unknown
    name raises :class:`AttributeError` (which also lets ``from package import submodule`` fall
    back to importing the submodule).
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
