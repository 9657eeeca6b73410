"""
The package's shape, checked from its source.

No import cycles, short functions and modules, no reads of another module's private state.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import babou_async

PACKAGE = Path(babou_async.__file__).parent
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 700
#: A function may be longer when its definition line says why, in a comment with this tag.
LONG_REASON_TAG = "# long:"


def module_name(path: Path) -> str:
    """The dotted module name of a source file of the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(importer: str, node: ast.ImportFrom) -> list[str]:
    """The package modules an ``import from`` statement loads (relative ones resolved)."""
    if node.level:
        is_package = MODULES[importer].name == "__init__.py"
        base = importer.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base)
        target = f"{prefix}.{node.module}" if node.module else prefix
    else:
        target = node.module or ""
    found = [target] if target in MODULES else []
    # ``from . import _x`` and ``from pkg import submodule`` load the submodules too.
    found += [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    return found


def imports_of(name: str) -> set[str]:
    """Every package module ``name`` imports, at any depth of its code (functions too)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            found |= set(resolve(name, node))
    # A module importing its own package's __init__ (``from . import x``) is no cycle.
    return found - {name} - {m for m in found if name.startswith(m + ".")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path of names, or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
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


def test_no_import_cycle_among_the_package_modules() -> None:
    """No module imports, even lazily inside a function, one that imports it back."""
    graph = {name: imports_of(name) for name in MODULES}
    assert find_cycle(graph) is None


def test_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a planted cycle is reported as a path."""
    assert ["a", "b", "a"] == find_cycle({"a": {"b"}, "b": {"a"}, "c": set()})


def test_nothing_below_the_session_imports_it() -> None:
    """Only the facade and the command line and demo (above the session) import _session."""
    importers = {name for name in MODULES if "babou_async._session" in imports_of(name)}
    allowed = {"babou_async", "babou_async._demo"}
    assert set() == {
        n for n in importers if n not in allowed and not n.startswith("babou_async._cli")
    }


def library_sources() -> Iterator[Path]:
    """The library's own sources: everything but the simulator."""
    return (p for p in MODULES.values() if "testing" not in p.parts)


def test_no_private_access_across_modules() -> None:
    """No ``noqa: SLF001`` in the library: no module reads another's private attributes."""
    offenders = [str(p) for p in library_sources() if "SLF001" in p.read_text(encoding="utf-8")]
    assert [] == offenders


OPTIONAL_ENGINES = {"redis", "saq"}


def engine_imports(name: str) -> list[str]:
    """The imports of Redis or SAQ in module ``name`` (at any depth), as ``module:line``."""
    found = []
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            roots = {(node.module or "").split(".")[0]}
        else:
            continue
        if roots & OPTIONAL_ENGINES:
            found.append(f"{name}:{node.lineno}")
    return found


def test_only_contrib_imports_redis_or_saq() -> None:
    """The optional extras stay optional: nothing outside babou_async.contrib imports them."""
    outside = [name for name in MODULES if not name.startswith("babou_async.contrib")]
    assert [] == [hit for name in outside for hit in engine_imports(name)]
    assert engine_imports("babou_async.contrib.redis")  # the check does see an import


def long_functions(path: Path) -> list[str]:
    """Functions of ``path`` longer than the limit without a written reason."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring does not count
        if not body:
            continue
        length = (node.end_lineno or 0) - body[0].lineno + 1
        signature = "\n".join(lines[node.lineno - 1 : body[0].lineno - 1])
        if length > MAX_FUNCTION_LINES and LONG_REASON_TAG not in signature:
            found.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("path", sorted(MODULES.values()), ids=lambda p: p.name)
def test_functions_are_short(path: Path) -> None:
    """No function body is over ~60 lines unless its definition says why."""
    assert [] == long_functions(path)


@pytest.mark.parametrize("path", sorted(MODULES.values()), ids=lambda p: p.name)
def test_modules_are_small(path: Path) -> None:
    """No module is over ~700 lines."""
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES


def test_length_check_can_fail(tmp_path: Path) -> None:
    """A planted 61-line function is reported; with a reason on its def line it is not."""
    body = "".join(f"    x{i} = {i}\n" for i in range(61))
    source = tmp_path / "m.py"
    source.write_text(f"def f():\n{body}")
    assert ["m.py:1 f (61 lines)"] == long_functions(source)
    source.write_text(f"def f():  {LONG_REASON_TAG} a state machine reads better whole\n{body}")
    assert [] == long_functions(source)
