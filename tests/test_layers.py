"""The layers contract: the package tree is the architecture, and this test keeps it so.

Every ``import`` in ``provisioner/`` counts — module level, inside functions and under ``TYPE_CHECKING`` — since each
is a dependency a reader has to follow. The rules:

* a module imports only from its own layer or the layers below it (:data:`LAYERS`, top first); ``errors`` and
  ``version`` are the floor every layer may use;
* no import cycle between modules, whatever the kind of import;
* at most 8 modules directly in ``provisioner/``, no module over 500 lines (the issue's targets);
* the layers are 9 floors, and the longest chains of modules may not grow (:data:`MAX_MODULE_CHAIN`).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "provisioner"
LAYERS = ("cli", "output", "runs", "engine", "transport", "powershell", "inputs", "domain", "errors", "version")
"""Top first: each may import from itself and anything after it. ``provisioner/__init__`` and ``__main__`` stand
outside (the package's version and the ``python -m`` entry)."""
MAX_TOP_LEVEL, MAX_LINES = 8, 500


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _targets(name: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        base = name.split(".")
        if modules()[name].name != "__init__.py":
            base = base[:-1]
        module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    for alias in node.names:
        yield f"{module}.{alias.name}"


@cache
def imports() -> dict[str, frozenset[str]]:
    """Each module's provisioner modules, every import statement counted."""
    return _graph(lambda tree: ast.walk(tree))


@cache
def module_level_imports() -> dict[str, frozenset[str]]:
    """Each module's provisioner modules imported when it is loaded (the statements at its top level)."""
    return _graph(lambda tree: iter(tree.body))


def _graph(statements: Callable[[ast.Module], Iterator[ast.AST]]) -> dict[str, frozenset[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        found = set()
        for node in statements(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(name, node):
                    while target and target not in known:
                        target = target.rpartition(".")[0]
                    if target and target != name:
                        found.add(target)
        graph[name] = frozenset(found)
    return graph


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_import_goes_down_the_layers() -> None:
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in imports().items()
        for target in targets
        if (here := layer(name)) is not None and (there := layer(target)) is not None and there < here
    )
    assert upward == []


def test_every_module_lives_in_a_layer() -> None:
    outside = sorted(name for name in modules() if layer(name) is None)
    assert outside == ["provisioner", "provisioner.__main__"]


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph, index, low, stack, on_stack, found = imports(), {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_of_any_kind() -> None:
    assert cycles() == []


def test_the_package_root_holds_few_modules() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_500_lines(name: str) -> None:
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{modules()[name]}: {lines} lines"


def test_the_contract_sees_what_it_checks() -> None:
    """The scanner itself: a function-level and a TYPE_CHECKING import are dependencies too."""
    graph = imports()
    assert "provisioner.domain.model" in graph["provisioner.engine.apply"]
    assert all(layer(name) is not None for name in graph["provisioner.cli"])


#: The longest chains of modules importing each other, as measured when the layers were finished (module-level
#: imports; every import): they may shrink, not grow. The layers themselves are 9 floors (errors and version share
#: the lowest); a chain is longer because a layer has levels inside it (a verb on the run context on the engine).
MAX_MODULE_CHAIN, MAX_CHAIN = 12, 18


def chain(graph: dict[str, frozenset[str]]) -> list[str]:
    """The longest chain of imports in ``graph`` (acyclic: see the cycle test), top first."""
    longest: dict[str, list[str]] = {}

    def down(node: str) -> list[str]:
        if node not in longest:
            below = max((down(target) for target in sorted(graph[node])), key=len, default=[])
            longest[node] = [node, *below]
        return longest[node]

    return max((down(node) for node in sorted(graph)), key=len)


def test_the_layers_are_nine_floors_and_no_module_chain_grows() -> None:
    floor = {name: min(layer(name) or 0, LAYERS.index("errors")) for name in modules() if layer(name) is not None}
    layer_graph = {f"L{level}": frozenset(f"L{floor[t]}" for n in floor if floor[n] == level
                                           for t in imports()[n] if t in floor and floor[t] != level)
                   for level in set(floor.values())}
    assert len(chain(layer_graph)) <= 9, chain(layer_graph)
    assert len(chain(module_level_imports())) <= MAX_MODULE_CHAIN, " -> ".join(chain(module_level_imports()))
    assert len(chain(imports())) <= MAX_CHAIN, " -> ".join(chain(imports()))
