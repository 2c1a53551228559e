"""The package's import boundaries: no Flower outside the federation layer, no cycles, no apps.

DESIGN §4.4: ``ssl_fed/`` is usable and testable without Flower except ``ssl_fed/fed/``;
``server/``, ``client/`` and ``simulations/`` are thin adapters over the library, which never
imports them. The static checks read the source with :mod:`ast`, so they see every import
whether or not a test happens to execute it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("server", "client", "simulations")

FLOWER_FREE = (
    "ssl_fed.config",
    "ssl_fed.train",
    "ssl_fed.privacy",
    "ssl_fed.tasks",
    "ssl_fed.secagg",
    "ssl_fed.eval",
    "ssl_fed.fed.aggregators",
    "ssl_fed.fed.secagg",
)
"""Modules that must import without Flower (config validation reaches the last two)."""

FLOWER_DEPLOY = frozenset({"ssl_fed.deploy.appcheck"})
"""Deployment code that drives Flower's own CLI pieces (builds and checks the app bundle)."""

PENDING_APP_IMPORTS: frozenset[tuple[str, str]] = frozenset()
"""Library -> app imports still allowed: none (the site logic lives in :mod:`ssl_fed.site`; the
ClientApp's adapter in :mod:`ssl_fed.fed.site`)."""


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Map every module of ``package`` under ``root`` to its file (``__init__`` = the package)."""
    out: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.Module, module: str, *, top_level_only: bool) -> Iterator[str]:
    """Yield the dotted names ``module`` imports (``from P import n`` yields ``P.n`` and ``P``).

    ``top_level_only`` keeps the imports that run when the module is imported: statements at
    module level (inside ``try``/``if`` too), not those in functions or ``if TYPE_CHECKING:``.
    """
    package = module.rsplit(".", 1)[0] if "." in module else module

    def walk(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
        for node in nodes:
            yield node
            if isinstance(node, ast.If) and _is_type_checking(node) and top_level_only:
                continue
            if top_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if top_level_only and isinstance(node, ast.ClassDef):
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from walk([n for n in getattr(node, field, []) if isinstance(n, ast.stmt)])

    nodes = walk(tree.body) if top_level_only else (n for n in ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def _most_specific(names: set[str]) -> set[str]:
    """Drop ``P`` where ``P.m`` is there too (``from P import m`` imports the module ``m``)."""
    return {n for n in names if not any(o.startswith(n + ".") for o in names)}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level (the edges of a cycle)."""
    files = module_files(root, package)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        own = module + (".__init__" if path.name == "__init__.py" else "")
        names = set(imported_names(tree, own, top_level_only=True))
        graph[module] = _most_specific({n for n in names if n in files})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle as a list of modules (first == last), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def library_imports(prefixes: tuple[str, ...]) -> set[tuple[str, str]]:
    """(library module, imported name) for every import, at any depth, of a name in ``prefixes``."""
    found: set[tuple[str, str]] = set()
    for module, path in module_files(ROOT, "ssl_fed").items():
        tree = ast.parse(path.read_text(), str(path))
        names = set(imported_names(tree, module, top_level_only=False))
        for name in _most_specific(names):
            if name.split(".")[0] in prefixes:
                found.add((module, name))
    return found


@pytest.mark.slow
def test_the_flower_free_modules_and_load_config_do_not_import_flwr() -> None:
    # Prepare: a fresh interpreter, so nothing another test imported counts
    code = (
        "import sys, json\n"
        + "".join(f"import {m}\n" for m in FLOWER_FREE)
        + "from ssl_fed.config import load_config\n"
        + "load_config()\n"
        + "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'flwr')))\n"
    )
    # Execute
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # Assert
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_only_the_federation_layer_imports_flwr() -> None:
    # Execute
    importers = {m for m, _ in library_imports(("flwr",))}
    # Assert
    outside = {m for m in importers if not m.startswith("ssl_fed.fed.")} - FLOWER_DEPLOY
    assert outside == set()


def test_the_library_has_no_import_cycle() -> None:
    # Execute
    cycle = find_cycle(import_graph(ROOT, "ssl_fed"))
    # Assert
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path: Path) -> None:
    # Prepare: a -> b -> c -> a at module level; d imports a only inside a function
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("import pkg.c\n")
    (pkg / "c.py").write_text("from pkg.a import thing\n")
    (pkg / "d.py").write_text("def f():\n    from pkg import a\n")
    (pkg / "e.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    import pkg.e\n")
    # Execute
    graph = import_graph(tmp_path, "pkg")
    cycle = find_cycle(graph)
    # Assert
    assert cycle == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    assert graph["pkg.d"] == set() and graph["pkg.e"] == set()


def test_the_library_never_imports_the_apps() -> None:
    # Execute
    found = {(m, ".".join(n.split(".")[:2])) for m, n in library_imports(APPS)}
    # Assert: only the documented, pending imports of the site module
    assert found == PENDING_APP_IMPORTS
