"""The emulators share no code with the connector: they stand in for the real services in CI,
so a wrong guess in the connector's clients must fail a test instead of being mirrored."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EMULATORS = Path(__file__).resolve().parents[2] / "emulators"
# The connector's top-level packages and modules, as pyproject.toml packages them.
FORBIDDEN = frozenset(
    {
        "activities",
        "api",
        "clients",
        "domain",
        "workflows",
        "launcher",
        "settings",
        "webhook_registration",
        "worker",
    }
)


def forbidden_imports(source: str, filename: str) -> list[str]:
    """Absolute imports of the connector's packages in one module, as `line: module`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{node.lineno}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    return found


def emulator_modules() -> list[Path]:
    return sorted(EMULATORS.rglob("*.py"))


def test_both_emulators_are_scanned() -> None:
    packages = {path.relative_to(EMULATORS).parts[0] for path in emulator_modules()}
    assert {"cleeng", "mollie"} <= packages


@pytest.mark.parametrize(
    "path", emulator_modules(), ids=lambda p: str(p.relative_to(EMULATORS.parent))
)
def test_emulator_module_imports_nothing_from_the_connector(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8"), str(path)) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import clients.cleeng_contract", ["1: clients.cleeng_contract"]),
        ("from clients.cleeng_contract import API_PREFIX", ["1: clients.cleeng_contract"]),
        ("from clients import cleeng", ["1: clients"]),
        ("import os, domain.money as m", ["1: domain.money"]),
        ("def f():\n    from domain import Money", ["2: domain"]),
        ("from .clients import x\nfrom . import domain", []),
        ("import clientside\nfrom domains import y", []),
        ("import settings\nfrom api.app import create_app", ["1: settings", "2: api.app"]),
    ],
)
def test_the_scan_recognises_connector_imports(source: str, expected: list[str]) -> None:
    assert forbidden_imports(source, "<test>") == expected
