"""The package's import graph: layers run one way (lint-imports checks the contracts in
pyproject.toml; CI runs it), and no module imports itself back through others."""

from __future__ import annotations

import grimp


def import_cycles(package: str) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan's
    strongly connected components; imports under TYPE_CHECKING count too)."""
    graph = grimp.build_graph(package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group: list[str] = []
            while not group or group[-1] != module:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_back_through_others() -> None:
    assert import_cycles("monitor") == []
