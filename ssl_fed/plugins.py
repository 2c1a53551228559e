"""Import the modules that register extra tasks, heads, encoders or data formats.

A task or data format that lives in ``ssl_fed/tasks/`` or ``ssl_fed/data/formats/`` is found by
its package (every module there is imported). One that lives elsewhere is named by

- the environment variable ``SSL_FED_PLUGINS``: module names or ``.py`` file paths separated by
  ``os.pathsep`` (``:`` on Linux); a simulation's site processes inherit it; or
- an installed distribution's entry points in the group ``ssl_fed.plugins`` (``pyproject.toml``:
  ``[project.entry-points."ssl_fed.plugins"] flip = "my_pkg.flip"``).

Importing a plugin runs its ``@register_*`` decorators; nothing else is required of it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

PLUGINS_ENV = "SSL_FED_PLUGINS"


def import_file(path: Path) -> ModuleType:
    """Import the Python file at ``path`` once, as module ``ssl_fed_plugin_<stem>``."""
    name = f"ssl_fed_plugin_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{PLUGINS_ENV}: cannot import {path} (not a Python file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_plugins() -> list[ModuleType]:
    """Import every plugin named by ``SSL_FED_PLUGINS`` and the ``ssl_fed.plugins`` entry points."""
    modules = [ep.load() for ep in entry_points(group="ssl_fed.plugins")]
    for entry in filter(None, os.environ.get(PLUGINS_ENV, "").split(os.pathsep)):
        if entry.endswith(".py"):
            modules.append(import_file(Path(entry)))
        else:
            modules.append(importlib.import_module(entry))
    return modules


def import_package_modules(package: str, path: list[str]) -> None:
    """Import every module of ``package`` (found on ``path``) so their decorators run."""
    import pkgutil

    for info in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{info.name}")
