"""The code's shape (issue 13): no import cycle among modules, no function in src/ over 80 lines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "lm_unlearn"
MAX_LINES = 80
# Known long functions; the set may only shrink.
LONG: set[str] = set()
# Cycles through imports inside functions, known and being removed (issue 13); may only shrink.
# Term registration (terms register themselves in the registry the objectives read) is allowed.
KNOWN_LAZY_CYCLES: list[list[str]] = []


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def long_functions() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES and f"{rel}:{node.name}" not in LONG:
                    found.append(f"{rel}:{node.name} ({lines} lines)")
    return found


def imports(path: Path, name: str, known: dict[str, Path], lazy: bool = False) -> set[str]:
    """The lm_unlearn modules `name` imports when it is imported (top-level statements only), or
    with `lazy` also inside functions, with the packages each import loads first."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    targets: set[str] = set()
    for node in ast.walk(tree) if lazy else tree.body:
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: a relative import; the package uses absolute ones"
            base = node.module or ""
            targets.add(base)
            targets |= {f"{base}.{alias.name}" for alias in node.names}
    found = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            prefix = ".".join(parts[:i])
            if prefix in known and prefix != name and prefix != "lm_unlearn":
                found.add(prefix)
    return found


def cycles(lazy: bool = False) -> list[list[str]]:
    known = modules()
    graph = {name: imports(path, name, known, lazy) for name, path in known.items()}
    # A package's __init__ that imports its own submodules is the ordinary way a package exposes
    # them, not a cycle of its own: a submodule importing its parent package is the edge kept.
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    found, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_function_in_src_is_over_80_lines():
    assert long_functions() == []


def test_no_import_cycle_among_modules():
    assert cycles() == []


def test_imports_inside_functions_close_no_new_cycle():
    found = [c for c in cycles(lazy=True) if "lm_unlearn.objectives.registry" not in c]
    assert [c for c in found if c not in KNOWN_LAZY_CYCLES] == []


def test_no_code_checks_a_method_or_term_by_name():
    # A method's special behaviour comes from its recipe (`procedure=`) or its term's hooks
    # (`before_training`, `after_training`), never from comparing names (issue 13).
    by_name = re.compile(r"""(\bmethod|term\.name)\s*(==|!=)|\.has\(["']""")
    found = [
        f"{path.relative_to(PACKAGE)}:{i}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if by_name.search(line)
    ]
    assert found == []
