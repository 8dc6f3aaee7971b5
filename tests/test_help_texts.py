"""Every command a person runs explains each option and, where it has one, its default.

Each entry point is run as `python -m …` or as a script would be, up to the moment it parses
its arguments; the parser it built is then read instead of parsed with.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent

MODULES = ["launcher", "api", "codec", "emulators.mollie", "emulators.cleeng"]
SCRIPTS = [
    "scripts/demo_purchase.py",
    "scripts/demo_renewals.py",
    "scripts/demo_reconciliation.py",
    "benchmarks/webhook_flood.py",
]


class Built(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__("parser built")
        self.parser = parser


def parser_of(entry_point: str, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    def capture(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> NoReturn:
        raise Built(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(sys, "argv", [entry_point, "--help"])
    monkeypatch.chdir(ROOT)
    try:
        if entry_point.endswith(".py"):
            monkeypatch.syspath_prepend(str(ROOT / Path(entry_point).parent))
            runpy.run_path(str(ROOT / entry_point), run_name="__main__")
        else:
            # Run afresh, as `python -m` does: another test may have imported it already.
            monkeypatch.delitem(sys.modules, f"{entry_point}.__main__", raising=False)
            runpy.run_module(entry_point, run_name="__main__", alter_sys=True)
    except Built as built:
        return built.parser
    raise AssertionError(f"{entry_point} parsed no arguments")


@pytest.mark.parametrize("entry_point", MODULES + SCRIPTS)
def test_every_option_says_what_it_is_and_its_default(
    entry_point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = parser_of(entry_point, monkeypatch)
    unexplained = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        text = action.help or ""
        flag = action.option_strings[-1]
        if not text:
            unexplained.append(f"{flag}: no help text")
        elif action.default not in (None, False) and "default" not in text:
            unexplained.append(f"{flag}: its default ({action.default!r}) is not named")
    assert unexplained == [], f"{entry_point}: " + "; ".join(unexplained)
