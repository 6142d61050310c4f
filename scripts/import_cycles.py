"""Find the import circles among a package's own modules (stdlib only, by reading the source).

Every import counts: at module level, inside functions, under `if TYPE_CHECKING:`. `from pkg
import name` is an import of pkg.name when that is a module, else of pkg; relative imports are
resolved. Each strongly connected component of the graph is one circle, printed as a round trip
through all its modules (every arrow an import). Exit 1 when there is any circle.

    python scripts/import_cycles.py [--package DIR] [--where]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of the first such import}


def modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module in the package (a folder's __init__.py is the folder)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def graph(package: Path) -> Graph:
    files = modules(package)
    edges: Graph = {name: {} for name in files}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, level - 1 packages up
                    up = here.rsplit(".", node.level - 1)[0]
                    base = f"{up}.{base}" if base else up
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    for alias in node.names
                ]
            for target in targets:
                if target in files:
                    edges[name].setdefault(target, node.lineno)
    return edges


def components(edges: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components that hold a circle, each sorted, in name order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while not scc or scc[-1] != v:
                scc.append(stack.pop())
            if len(scc) > 1 or v in edges[v]:
                found.append(sorted(scc))

    sys.setrecursionlimit(max(1000, 4 * len(edges)))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def round_trip(edges: Graph, scc: list[str]) -> list[str]:
    """A closed walk from the component's first module through all of its modules and back."""
    walk, todo = [scc[0]], set(scc[1:])
    while True:
        goal = todo or {scc[0]}
        path = _shortest(edges, walk[-1], goal, set(scc))
        walk += path
        todo -= set(path)
        if not todo and walk[-1] == scc[0]:
            return walk


def _shortest(edges: Graph, start: str, goals: set[str], within: set[str]) -> list[str]:
    """The modules after start on a shortest import path to any of goals (inside the component)."""
    came: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(edges[v]):
            if w in within and w not in came:
                came[w] = v
                if w in goals:
                    path = [w]
                    while came[path[-1]] != start:
                        path.append(came[path[-1]])
                    return path[::-1]
                queue.append(w)
    raise AssertionError("not strongly connected")


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--package", type=Path, default=ROOT / "perfbench", help="package folder")
    cli.add_argument("--where", action="store_true", help="the file and line of every arrow")
    ns = cli.parse_args(argv)
    edges = graph(ns.package.resolve())
    circles = components(edges)
    for scc in circles:
        walk = round_trip(edges, scc)
        print(" -> ".join(walk))
        if ns.where:
            for a, b in zip(walk, walk[1:]):
                print(f"    {a} line {edges[a][b]} imports {b}")
    print(f"{len(circles)} import circles")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
