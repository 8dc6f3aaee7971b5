"""The connector's modules import in one direction, with the settings at the bottom.

`settings.py` imports none of the connector's own modules, so anything may read the settings
and nothing the settings need can import back into them. Above it the product's packages form
no circle: not between packages, not between modules. Every import counts, wherever it stands
(inside a function, under `TYPE_CHECKING`): a late import hides a circle, it does not remove it.
A package's `__main__` is a program, not part of its package: nothing imports it, so it may
use what lies above its package (`python -m codec` reads the settings through
`temporal_connection`, which uses the codec).

The emulators share no code with the connector's clients and domain, not even through a module
they import (tests/emulators/test_cleeng_independence.py checks their own imports).
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path

import pytest

from clients.cleeng_contract import DEFAULT_SIGNATURE_HEADER
from settings import Settings

REPO = Path(__file__).resolve().parent.parent
BOTTOM = "settings"


def product_tops() -> tuple[str, ...]:
    """The top-level modules and packages pyproject.toml ships: the product."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [p.removesuffix("*") for p in setuptools["packages"]["find"]["include"]]
    return tuple(sorted({*setuptools["py-modules"], *packages}))


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def repo_modules() -> Mapping[str, Path]:
    """Every module of the repository (product, tests, scripts, benchmarks) by dotted name."""
    found: dict[str, Path] = {}
    for path in REPO.rglob("*.py"):
        parts = path.relative_to(REPO).parts
        if parts[0].startswith(".") or "node_modules" in parts or "__pycache__" in parts:
            continue
        found[module_name(path)] = path
    return found


def imported_names(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every name a module imports, anywhere in it, as `(line, dotted name)`: for
    `from a import b` both `a` and `a.b` (b may be a module), relative imports resolved."""
    names: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            names.append((node.lineno, origin))
            names += [(node.lineno, f"{origin}.{alias.name}") for alias in node.names]
    return names


def resolve(name: str, modules: Iterable[str]) -> str | None:
    """The repository module a dotted name lives in (None: not the repository's)."""
    known = set(modules)
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def module_imports(
    module: str, source: str, is_package: bool, modules: Iterable[str]
) -> dict[str, int]:
    """The repository modules `module` imports, each with the first line that does; its own
    parent packages left out (Python has imported them before the module runs)."""
    known = set(modules)
    found: dict[str, int] = {}
    for line, name in imported_names(source, module, is_package):
        target = resolve(name, known)
        if target is None or target == module or module.startswith(f"{target}."):
            continue
        found.setdefault(target, line)
    return found


@cache
def import_graph() -> Mapping[str, Mapping[str, int]]:
    """Module -> the repository modules it imports (with a line), for the product's modules."""
    modules = repo_modules()
    tops = product_tops()
    return {
        name: module_imports(name, path.read_text(), path.name == "__init__.py", modules)
        for name, path in modules.items()
        if name.split(".")[0] in tops
    }


def layer(module: str) -> str:
    """The node a module stands for in the package graph: its top-level package, or itself
    for a `__main__` (a program nothing imports)."""
    top = module.split(".")[0]
    return module if module.endswith(".__main__") else top


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
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

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def explain(
    component: list[str],
    graph: Mapping[str, Mapping[str, int]],
    node: Callable[[str], str] = lambda module: module,
) -> list[str]:
    """The imports that hold a circle together, as `module:line -> module` (`node`: what a
    module stands for in the circle's graph)."""
    members = set(component)
    return [
        f"{source}:{line} -> {target}"
        for source, targets in sorted(graph.items())
        for target, line in sorted(targets.items())
        if node(source) in members and node(target) in members and node(source) != node(target)
    ]


def test_the_product_is_what_pyproject_ships() -> None:
    assert {"settings", "codec", "temporal_connection", "telemetry", "clients", "domain"} <= set(
        product_tops()
    )
    assert {"activities", "workflows", "api", "connector_ops", "launcher", "worker"} <= set(
        product_tops()
    )
    assert all(top in {m.split(".")[0] for m in import_graph()} for top in product_tops())


def test_settings_import_none_of_the_connectors_modules() -> None:
    path = repo_modules()[BOTTOM]
    imports = module_imports(BOTTOM, path.read_text(), False, repo_modules())

    assert [f"settings.py:{line} imports {target}" for target, line in imports.items()] == []


def test_the_product_packages_import_in_one_direction() -> None:
    graph = import_graph()
    packages: dict[str, set[str]] = {}
    for source, targets in graph.items():
        packages.setdefault(layer(source), set()).update(
            layer(target) for target in targets if layer(target) != layer(source)
        )

    circles = cycles(packages)

    assert [(circle, explain(circle, graph, layer)) for circle in circles] == []


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph()

    circles = cycles(graph)

    assert [(circle, explain(circle, graph)) for circle in circles] == []


def test_the_emulators_reach_no_client_or_domain_code_through_what_they_import() -> None:
    graph = import_graph()
    reached = {name for name in graph if name.split(".")[0] == "emulators"}
    frontier = list(reached)
    while frontier:
        for target in graph.get(frontier.pop(), {}):
            if target not in reached:
                reached.add(target)
                frontier.append(target)

    assert sorted(name for name in reached if name.split(".")[0] in {"clients", "domain"}) == []


def test_the_signature_header_default_is_the_contracts() -> None:
    # settings.py cannot import the contract (it is the bottom layer), so it names the value.
    assert Settings.model_fields["cleeng_signature_header"].default == DEFAULT_SIGNATURE_HEADER


# The checks above are only as good as the import reader: each of these must be seen.
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import codec.keys", {"codec.keys"}),
        ("from codec.keys import KeyRing", {"codec.keys"}),
        ("from codec import keys", {"codec", "codec.keys"}),
        ("def f():\n    from temporal_connection import counterparts", {"temporal_connection"}),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import telemetry.logs",
            {"telemetry.logs"},
        ),
        ("import json\nfrom pydantic import Field", set()),
    ],
)
def test_the_import_reader_sees_every_kind_of_import(source: str, expected: set[str]) -> None:
    assert set(module_imports(BOTTOM, source, False, repo_modules())) == expected


def test_a_relative_import_resolves_within_its_package() -> None:
    found = module_imports(
        "api.purchases",
        "from .schemas import PurchaseRequest",
        False,
        {
            "api",
            "api.purchases",
            "api.schemas",
        },
    )

    assert set(found) == {"api.schemas"}


def test_a_circle_is_found_and_named() -> None:
    graph = {"settings": {"codec.keys": 3}, "codec.keys": {"settings": 5}}

    assert cycles(graph) == [["codec.keys", "settings"]]
    assert explain(["codec", "settings"], graph, layer) == [
        "codec.keys:5 -> settings",
        "settings:3 -> codec.keys",
    ]
