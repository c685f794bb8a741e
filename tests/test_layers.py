"""The package's imports go one way (docs/architecture.md): no cycle, and no import hidden in a
function except where it buys start-up time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[1] / "llm_proxy_db"
# The fast path's lazy imports (each says so in a comment on its line): Typer and the full
# CLI, PostgreSQL's driver, and MySQL's DDL module (it loads Alembic).
LAZY_FOR_START_UP = {
    "cli/fast_path.py": 4,
    "quick_answers.py": 2,
    "quick_status.py": 3,
    "dialects/mysql/base.py": 3,
    "schema/fingerprint.py": 1,  # the head schema (SQLAlchemy) only where asked: fast adopt --dry-run
}


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_of_the_package_is_in_an_import_cycle() -> None:
    """Every import counts, those under TYPE_CHECKING and inside functions included."""
    graph = grimp.build_graph("llm_proxy_db")
    assert len(graph.modules) > 80
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph) == [["p.a", "p.b"]]


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every import of the package inside a function of ``path``."""
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            names = [inner.module or ""] if isinstance(inner, ast.ImportFrom) else []
            names += [alias.name for alias in inner.names] if isinstance(inner, ast.Import) else []
            if any(name.startswith("llm_proxy_db") for name in names):
                found.append((inner.lineno, lines[inner.lineno - 1]))
    return sorted(set(found))


def test_imports_inside_functions_only_buy_start_up_time() -> None:
    counts = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found = _function_level_imports(path)
        if found:
            counts[path.relative_to(PACKAGE).as_posix()] = len(found)
        for line, text in found:
            assert "start-up" in text, f"{path}:{line}: an import inside a function must say why: {text.strip()}"
    assert counts == LAZY_FOR_START_UP


def test_the_import_contracts_are_kept() -> None:
    """``lint-imports`` (the layers contract of pyproject.toml, and the dialects' independence)."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"],
        cwd=PACKAGE.parent, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout
