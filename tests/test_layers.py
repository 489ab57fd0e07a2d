"""The package's layers, read from the source: each module imports only from its own layer or
the layers below it, and the import graph has no cycles (imports made only for type checking,
under ``if TYPE_CHECKING:``, are not dependencies at run time and are left out)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import flowengine

PACKAGE = Path(flowengine.__file__).parent

# Lowest first. A module's layer is that of the longest prefix listed here.
LAYERS: list[tuple[str, ...]] = [
    ("flowengine.errors", "flowengine.values"),  # the vocabulary
    ("flowengine.lib",),  # stdlib stand-ins: import nothing else from flowengine
    ("flowengine.config",),
    ("flowengine.nodes",),  # the public plugin API and the built-in node types
    ("flowengine.core",),  # model, plan, scheduler, events, wire text, redaction
    ("flowengine.runtime",),  # store, catalog, execution service, triggers
    ("flowengine.server",),  # the HTTP and WebSocket server
    # Entry points, and the old module names kept for imports written before the layers.
    ("flowengine.cli", "flowengine.__main__", "flowengine.auth", "flowengine.engine", "flowengine.events", "flowengine.model"),
]


def _layer(module: str) -> int:
    best, best_length = None, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = rank, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """The flowengine modules a module imports at run time (lazy imports in functions too)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name.startswith("flowengine"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("flowengine"):
                    found.add(target)
                    # "from . import x" may name a submodule.
                    for alias in child.names:
                        candidate = f"{target}.{alias.name}"
                        if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                            PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
                        ).exists():
                            found.add(candidate)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_from_a_higher_layer():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if target != "flowengine" and _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycles():
    graph = {module: {target for target in targets if target != "flowengine"} for module, targets in _graph().items()}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_lib_imports_nothing_else_from_flowengine():
    outside = {
        module: sorted(target for target in targets if not target.startswith("flowengine.lib"))
        for module, targets in _graph().items()
        if module.startswith("flowengine.lib")
    }
    assert not {module: targets for module, targets in outside.items() if targets}
