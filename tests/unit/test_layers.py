"""The layering of ``etl/`` (README "Repository layout"), checked on the source with ``ast``.

Layers, lowest first: base (errors, config, ids, resources, ...), model (contracts, storage),
steps and tools, lineage, adapters (command line, Airflow). Every import of a module of ``etl`` —
at module level, inside a function, or under ``TYPE_CHECKING`` — points to the same or a lower
layer; nothing outside ``etl.adapters`` imports it; a step never imports another step; the two
adapters never import each other; no two modules import each other, directly or around a loop.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ETL = Path(__file__).resolve().parents[2] / "etl"
MAX_LINES = 800

# (prefix, layer), the longest matching prefix wins. A module that matches none is an error.
LAYERS: tuple[tuple[str, int], ...] = (
    ("etl", 0),  # the package itself (empty)
    ("etl.errors", 0),
    ("etl.config", 0),
    ("etl.ids", 0),
    ("etl.resources", 0),
    ("etl.redact", 0),
    ("etl.xapi", 0),
    ("etl.payloads", 0),
    ("etl.pricing", 0),
    ("etl.contracts", 1),
    ("etl.storage", 1),
    ("etl.steps", 2),
    ("etl.tools", 2),
    ("etl.lineage", 3),
    ("etl.adapters", 4),
    ("etl.__main__", 4),  # `python -m etl`: the command line's entry point
)
LAYER_NAMES = {0: "base", 1: "model", 2: "steps/tools", 3: "lineage", 4: "adapters"}
STEPS = (
    "etl.steps.extract",
    "etl.steps.transform",
    "etl.steps.quality",
    "etl.steps.publish",
    "etl.steps.retain",
)
SIDES = ("etl.steps", "etl.tools")
MODEL_PACKAGES = ("etl.contracts", "etl.storage")
ADAPTERS = ("etl.adapters.cli", "etl.adapters.airflow")


@dataclass(frozen=True)
class Edge:
    """One import of a module of ``etl`` by another: where it is and what it names."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ETL.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ETL.rglob("*.py"))}


MODULES = _modules()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _resolve(source: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = source.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imported(source: str, path: Path) -> list[tuple[str, int]]:
    """Every module of ``etl`` that ``source`` imports, wherever the import statement is."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(source, _is_package(path), node)
            for alias in node.names:
                # `from etl.x import y` imports the module etl.x.y when there is one.
                sub = f"{module}.{alias.name}"
                found.append((sub if sub in MODULES else module, node.lineno))
    return [(name, line) for name, line in found if _within(name, "etl")]


def _edges() -> list[Edge]:
    edges: list[Edge] = []
    for source, path in MODULES.items():
        for target, line in _imported(source, path):
            # Importing a module runs its packages' __init__ first: those are imported too
            # (except the importer's own packages, already running).
            parts = target.split(".")
            for end in range(2, len(parts) + 1):
                name = ".".join(parts[:end])
                if name != source and not _within(source, name) and name in MODULES:
                    edges.append(Edge(source, name, line))
    return edges


EDGES = _edges()


def _layer(module: str) -> int:
    # "etl" itself is the (empty) package; any other module needs its own, longer prefix.
    matches = [
        (len(prefix), layer)
        for prefix, layer in LAYERS
        if _within(module, prefix) and (prefix != "etl" or module == "etl")
    ]
    assert matches, f"{module} is in no layer: add it to LAYERS in tests/unit/test_layers.py"
    return max(matches)[1]


def _group(module: str, groups: tuple[str, ...]) -> str | None:
    return next((g for g in groups if _within(module, g)), None)


def test_the_checks_see_the_package() -> None:
    # Guards the checks below against passing on nothing.
    assert {"etl.errors", "etl.adapters.cli", "etl.steps.extract.land"} <= MODULES.keys()
    assert len(EDGES) > 50
    assert "etl.steps.extract" in {
        e.target for e in EDGES if e.source == "etl.adapters.cli.extract"
    }


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_imports_point_to_the_same_or_a_lower_layer() -> None:
    upward = [
        f"{e} ({LAYER_NAMES[_layer(e.source)]} -> {LAYER_NAMES[_layer(e.target)]})"
        for e in EDGES
        if _layer(e.target) > _layer(e.source)
    ]
    assert upward == []


def test_nothing_outside_the_adapters_imports_them() -> None:
    inward = [
        str(e)
        for e in EDGES
        if _within(e.target, "etl.adapters")
        and not _within(e.source, "etl.adapters")
        and e.source != "etl.__main__"
    ]
    assert inward == []


def test_a_step_never_imports_another_step() -> None:
    crossing = [
        str(e)
        for e in EDGES
        if (a := _group(e.source, STEPS)) and (b := _group(e.target, STEPS)) and a != b
    ]
    assert crossing == []


def test_steps_and_tools_do_not_import_each_other() -> None:
    # One layer, two sides: steps run the pipeline, tools review contracts and run the demo;
    # both stand on the model only (a tool may import another tool).
    crossing = [
        str(e)
        for e in EDGES
        if (a := _group(e.source, SIDES)) and (b := _group(e.target, SIDES)) and a != b
    ]
    assert crossing == []


def test_contracts_and_storage_stay_independent() -> None:
    crossing = [
        str(e)
        for e in EDGES
        if (a := _group(e.source, MODEL_PACKAGES))
        and (b := _group(e.target, MODEL_PACKAGES))
        and a != b
    ]
    assert crossing == []


def test_the_cli_and_airflow_adapters_do_not_import_each_other() -> None:
    crossing = [
        str(e)
        for e in EDGES
        if (a := _group(e.source, ADAPTERS)) and (b := _group(e.target, ADAPTERS)) and a != b
    ]
    assert crossing == []


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module: modules that reach each other.

    A search from every module; the package is small (a few dozen modules), so no cleverness.
    """
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    reach = {module: _reachable(graph, module) for module in graph}
    components = {
        tuple(sorted({m} | {o for o in reach[m] if m in reach.get(o, set())}))
        for m in graph
        if m in reach[m]
    }
    return sorted(list(c) for c in components if len(c) > 1)


def test_the_cycle_finder_finds_a_cycle() -> None:
    loop = [Edge("etl.config", "etl.ids", 1), Edge("etl.ids", "etl.config", 1)]
    assert _cycles(loop) == [["etl.config", "etl.ids"]]


def test_no_import_cycle() -> None:
    assert _cycles(EDGES) == []


def test_no_module_over_800_lines() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
