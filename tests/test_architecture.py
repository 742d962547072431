"""The shape of the code, checked: small modules, no import circles, a Django-free core, no stand-in objects."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO

PACKAGES = ("ml_app", "model_creation", "project_settings")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages, migrations aside."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules that ``name`` imports anywhere in its file (function-level imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from package import module`` needs the module; ``from module import name`` the module itself
            candidates = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for candidate in candidates:
            module = candidate
            while module and module not in MODULES:
                module = module.rpartition(".")[0]
            # a module always runs its parent packages first: that is no circle, however the package imports it
            if module and module != name and not name.startswith(module + "."):
                targets.add(module)
    return targets


def _graph() -> dict[str, set[str]]:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    # A package's __init__ runs before its modules, so importing ``a.b`` also imports ``a``: no edge needed for that.
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, if there is any (package __init__ modules that only hold docstrings never form one)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_is_over_the_line_limit():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_there_is_no_import_circle():
    assert _cycle(_graph()) is None


def test_the_circle_check_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_relative_imports_are_resolved():
    graph = _graph()
    assert "ml_app.detection.decision" in graph["ml_app.detection.prediction"]
    assert "ml_app.models" in graph["ml_app.jobs"]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("ml_app.detection")))
def test_the_detection_core_does_not_import_django(name):
    tree = ast.parse(MODULES[name].read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names} | {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    assert not {m for m in imported if m.split(".")[0] in ("django", "rest_framework", "celery")}
    project = [m for m in imported if m.startswith(("ml_app.", "model_creation"))]
    outside = [m for m in project if not m.startswith("ml_app.detection")]
    assert outside == []


def test_no_stand_in_objects_are_passed_around():
    users = [name for name, path in MODULES.items() if "SimpleNamespace" in path.read_text()]
    assert users == []


def test_every_module_says_what_it_owns():
    missing = [
        name
        for name, path in MODULES.items()
        if path.stat().st_size and not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert missing == []
