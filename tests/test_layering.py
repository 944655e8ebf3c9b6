"""The package layering of docs/architecture.md holds, and no module imports form a cycle.

Imports are read statically (ast), lazy imports inside functions included: a function-level import
is still a dependency, only a later one. The allowed edges come from the ``layering`` block of
docs/architecture.md, so the document and the code cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "sim", "perception", "policy", "video_qa", "agent", "ros_nodes", "bench")


def allowed_edges() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```layering\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no ```layering block"
    rules: dict[str, set[str]] = {}
    for line in block.group(1).splitlines():
        if ":" in line:
            pkg, deps = line.split(":", 1)
            rules[pkg.strip()] = set(deps.split())
    return rules


def module_graph() -> dict[str, set[str]]:
    modules = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                if target.split(".")[0] not in PACKAGES:
                    continue
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # a submodule importing its own package's __init__ is not a cycle
                if target and target != name and not name.startswith(target + "."):
                    deps.add(target)
        graph[name] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert find_cycles(module_graph()) == []


def test_packages_import_only_what_the_layering_allows():
    rules = allowed_edges()
    assert set(rules) == set(PACKAGES)
    bad = []
    for module, deps in module_graph().items():
        pkg = module.split(".")[0]
        for dep in deps:
            other = dep.split(".")[0]
            if other != pkg and other not in rules[pkg] and "*" not in rules[pkg]:
                bad.append(f"{module} -> {dep}")
    assert bad == []


def test_the_checker_finds_a_cycle_and_a_back_edge():
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    rules = allowed_edges()
    assert "policy" not in rules["sim"] and "video_qa" not in rules["policy"]
    assert rules["common"] == set()
