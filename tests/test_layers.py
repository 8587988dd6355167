"""The package's shape: data flows one way through layers, and no module imports in a cycle.

Every `import auditor...` in the package (at module level or inside a function) is
read from the source; a module may import from its own layer or a lower one only.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "auditor"

# Low to high. A module's layer is that of its longest matching prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "auditor.errors",
        "auditor.files",
        "auditor.seeds",
        "auditor.version",
        "auditor.config",
        "auditor.typecheck",
        "auditor.settings",
    ),
    ("auditor.metrics",),
    ("auditor.results",),
    ("auditor.data", "auditor.faces"),
    ("auditor.perturbations",),
    ("auditor.model", "auditor.adversarial"),
    ("auditor.verdict",),
    ("auditor.engine",),
    ("auditor.report",),
    ("auditor.publish",),
    ("auditor.cli", "auditor.__main__"),
)
FACADE = "auditor"  # the package root: its lazy public API (run_audit) reaches any layer


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a `from pkg import module` names it)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("auditor"):
                module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                           for a in node.names]  # fmt: skip
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("auditor")]
            graph[name].update(t for t in map(lambda t: _owner(t, known), targets) if t != name)
    return graph


def _owner(target: str, known: dict[str, Path]) -> str:
    while target not in known:
        target = target.rpartition(".")[0]
    return target


def layer(module: str) -> int:
    best, rank = "", -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, index
    assert rank >= 0, f"{module} belongs to no layer: add it to LAYERS"
    return rank


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    for name in modules():
        if name != FACADE:
            layer(name)


def test_no_module_imports_upward() -> None:
    graph = imports(modules())
    upward = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        if source != FACADE
        for target in targets
        if target != FACADE and layer(target) > layer(source)
    ]
    assert upward == []


def test_only_the_facade_is_imported_as_the_package_root() -> None:
    """Modules read the version from `auditor.version`, never through the lazy root."""
    graph = imports(modules())
    assert sorted(s for s, targets in graph.items() if FACADE in targets) == []


def test_no_import_cycle() -> None:
    assert cycles(imports(modules())) == []


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    graph = {"auditor.report.a": {"auditor.engine.b"}, "auditor.engine.b": {"auditor.report.a"}}
    assert cycles(graph) == [["auditor.engine.b", "auditor.report.a"]]
    assert layer("auditor.engine.b") < layer("auditor.report.a")
