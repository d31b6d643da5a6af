"""The import graph of ``container_manager``: cycles and imports against the layer direction.

``python benchmarks/import_graph.py`` prints both for module-level imports and for all imports,
``importlib`` seams (``import_module`` / ``import_string`` of a literal dotted path) included.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "container_manager"

#: Layers from the bottom: a module may import its own layer and the ones below.
LAYERS: list[tuple[str, ...]] = [
    (
        "conf", "clock", "rules", "telemetry", "net",
        "executors.types", "executors.exceptions", "signals",
    ),
    ("executors", "dispatch", "dispatch.base"),
    ("models",),
    ("engine",),
    ("engine.runner",),
    ("dispatch.local", "dispatch.immediate", "dispatch.sqs", "dispatch.cloudtasks",
     "dispatch.worker", "events",
     "web", "admin", "management", "tasks", "apps", "checks", "urls", "run_task"),
]  # fmt: skip
TOP = len(LAYERS) - 1
#: Every kind of edge ``imports`` reports.
ALL_KINDS = frozenset({"module", "typing", "lazy", "importlib"})
#: The one import that runs up the layers: ``ContainerJob.launch()`` / ``harvest()`` run a
#: step in-process (``models.jobs._run_step`` imports the engine's steps inside the function).
ALLOWED_UPWARD = frozenset({("models.jobs", "engine.steps")})


def layer(module: str) -> int:
    """The layer of a module (dotted, without the package prefix); unknown ones are on top.

    >>> layer("executors.docker"), layer("rules.cron"), layer("engine.steps"), layer("admin.jobs")
    (1, 0, 3, 5)
    >>> layer("functions_unknown")
    5
    """
    best, best_len = TOP, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_len:
                best, best_len = index, len(name)
    return best


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name without the package prefix."""
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT / PACKAGE).with_suffix("").parts
        if "migrations" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


#: Calls that import the dotted path given as their first argument (``LazyView`` is the URLconf's
#: ``import_string`` at the first request).
IMPORTING_CALLS = frozenset({"import_module", "import_string", "LazyView"})


def imports(path: Path, known: set[str]) -> Iterator[tuple[str, str]]:
    """``(target, kind)`` for each import of a package module.

    kind is module, typing, lazy (in a function) or importlib (a literal dotted path given to
    one of ``IMPORTING_CALLS``).
    """
    tree = ast.parse(path.read_text())
    yield from _importlib_targets(tree, known)
    for node, kind in _walk(tree.body, "module"):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import submodule`` imports the submodule, not the package's names.
            subs = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n for n in subs if n[len(PACKAGE) + 1 :] in known] or [node.module]
        for name in names:
            if name == PACKAGE or not name.startswith(PACKAGE + "."):
                continue
            target = name[len(PACKAGE) + 1 :]
            if target in known:
                yield target, kind


def _importlib_targets(tree: ast.AST, known: set[str]) -> Iterator[tuple[str, str]]:
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        first = node.args[0]
        if name not in IMPORTING_CALLS or not isinstance(first, ast.Constant):
            continue
        dotted = str(first.value)
        if not dotted.startswith(PACKAGE + "."):
            continue
        parts = dotted[len(PACKAGE) + 1 :].split(".")
        # The longest prefix that is a module: ``web.api.jobs.jobs_view`` -> ``web.api.jobs``.
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in known:
                yield ".".join(parts[:end]), "importlib"
                break


def _walk(body: list[ast.stmt], kind: str) -> Iterator[tuple[ast.stmt, str]]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, kind
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _walk(node.body, "typing")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _walk(list(ast.walk(node))[1:], "lazy")
        elif isinstance(node, ast.ClassDef | ast.If | ast.Try | ast.With):
            inner = [n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)]
            yield from _walk(inner, kind)


def graph(kinds: set[str]) -> dict[str, set[str]]:
    """Module -> the package modules it imports with an import of one of ``kinds``."""
    found = modules()
    edges: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        for target, kind in imports(path, set(found)):
            if kind in kinds and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def against(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower layer into a higher one."""
    return sorted((a, b) for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def without_allowed(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """``edges`` without the listed upward call (``ALLOWED_UPWARD``)."""
    return {a: {b for b in targets if (a, b) not in ALLOWED_UPWARD} for a, targets in edges.items()}


def main() -> int:
    """Print the report; exit status 1 on a cycle or an import against the direction.

    The listed upward call (``ALLOWED_UPWARD``) is printed and left out of the counts.
    """
    status = 0
    for label, kinds in (
        ("module-level", {"module"}),
        ("all (+ TYPE_CHECKING, in-function, importlib)", ALL_KINDS),
    ):
        full = graph(kinds)
        allowed = sorted(set(against(full)) & ALLOWED_UPWARD)
        edges = without_allowed(full)
        found, wrong = cycles(edges), against(edges)
        print(f"{label}: {len(found)} cycle(s), {len(wrong)} import(s) against the direction")
        for a, b in allowed:
            print(f"  allowed upward call: {a} -> {b}")
        for component in found:
            print("  cycle:", " <-> ".join(component))
        for a, b in wrong:
            print(f"  against: {a} -> {b}")
        status = status or int(bool(found or wrong))
    return status


if __name__ == "__main__":
    sys.exit(main())
