"""docs/mollie-contract.md "Method capabilities" and domain/methods.py say the same thing.

The table is where each fact has its source; `FIRST_PAYMENT_METHODS` is what the workflows
decide from. This test parses the table and fails when a row is missing on either side, when the
mandate, 0.00 or manual-capture column of a row differs from the data, or when a fact cell has
neither a source marker that the list under the table resolves nor an explicit `[?]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from domain.methods import FIRST_PAYMENT_METHODS, HOLDING_MANDATES, MethodCapability

CONTRACT = Path(__file__).resolve().parent.parent / "docs" / "mollie-contract.md"
SECTION = "## Method capabilities"
COLUMNS = 6
MANDATES = {"creditcard", "directdebit", "paypal"}
MARKER = re.compile(r"\[([MH]\d+)\]")
SOURCE = re.compile(r"^- \[([MH]\d+)\] (https://\S+)", re.MULTILINE)
ALLOWED_HOSTS = ("https://docs.mollie.com/", "https://help.mollie.com/")


@dataclass(frozen=True)
class Row:
    method: str
    mandate: str | None
    zero: bool
    hold: bool
    cells: tuple[str, ...]


def _section(text: str) -> str:
    start = text.index(SECTION)
    following = text.find("\n## ", start + len(SECTION))
    return text[start:] if following == -1 else text[start:following]


def _yes_no(cell: str) -> bool:
    word = cell.strip().split(maxsplit=1)[0].rstrip(":,").lower()
    if word not in {"yes", "no"}:
        raise AssertionError(f"expected the cell to start with yes or no: {cell!r}")
    return word == "yes"


def _mandate(cell: str) -> str | None:
    if cell.strip().lower().startswith("none"):
        return None
    found = re.match(r"\s*`([a-z]+)`", cell)
    if found is None or found.group(1) not in MANDATES:
        raise AssertionError(f"expected `creditcard`, `directdebit`, `paypal` or none: {cell!r}")
    return found.group(1)


def parse(text: str) -> tuple[list[Row], dict[str, str]]:
    """The table's rows and the sources under it (marker -> address)."""
    section = _section(text)
    lines = [line for line in section.splitlines() if line.startswith("|")]
    rows: list[Row] = []
    for line in lines[2:]:  # the header and the |---| line
        cells = tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
        assert len(cells) == COLUMNS, f"expected {COLUMNS} cells: {line}"
        method = re.search(r"`([a-z]+)`", cells[0])
        assert method is not None, f"no `method` in the first cell: {line}"
        rows.append(
            Row(
                method=method.group(1),
                mandate=_mandate(cells[1]),
                zero=_yes_no(cells[2]),
                hold=_yes_no(cells[3]),
                cells=cells,
            )
        )
    sources = dict(SOURCE.findall(section))
    return rows, sources


@pytest.fixture(scope="module")
def table() -> tuple[list[Row], dict[str, str]]:
    return parse(CONTRACT.read_text(encoding="utf-8"))


def test_the_table_and_the_data_list_the_same_methods(
    table: tuple[list[Row], dict[str, str]],
) -> None:
    rows, _ = table
    methods = [row.method for row in rows]
    assert len(methods) == len(set(methods)), "a method has two rows"
    assert set(methods) == set(FIRST_PAYMENT_METHODS)


def test_each_row_agrees_with_domain_methods(table: tuple[list[Row], dict[str, str]]) -> None:
    rows, _ = table
    for row in rows:
        data = FIRST_PAYMENT_METHODS[row.method]
        documented = MethodCapability(
            method=row.method,
            mandate_method=row.mandate,
            zero_first_payment=row.zero,
            manual_capture=row.hold,
            # Mollie's minimum amount is not a column of the table (each method's page has it).
            smallest_first_minor=data.smallest_first_minor,
        )
        assert documented == data, row.method


def test_only_a_holding_mandate_is_held(table: tuple[list[Row], dict[str, str]]) -> None:
    rows, _ = table
    for row in rows:
        if row.hold:
            assert row.mandate in HOLDING_MANDATES, row.method


def test_every_fact_has_a_source_or_says_it_has_none(
    table: tuple[list[Row], dict[str, str]],
) -> None:
    rows, sources = table
    assert sources, "no sources under the table"
    for address in sources.values():
        assert address.startswith(ALLOWED_HOSTS), address
    for row in rows:
        assert any(MARKER.search(cell) for cell in row.cells), f"{row.method}: no source"
        for cell in row.cells[1:]:
            markers = MARKER.findall(cell)
            assert markers or "[?]" in cell, f"{row.method}: {cell!r} has no source and no [?]"
            for marker in markers:
                assert marker in sources, f"{row.method}: [{marker}] is not listed"


def _changed(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_the_check_catches_a_deleted_or_changed_row() -> None:
    """The checks above fail on a table edited out of step with the data."""
    text = CONTRACT.read_text(encoding="utf-8")
    rows, _ = parse(text)
    card = next(row for row in rows if row.method == "creditcard")
    line = next(line for line in text.splitlines() if line.startswith("| " + card.cells[0]))

    deleted, _ = parse(text.replace(line + "\n", "", 1))
    assert {row.method for row in deleted} != set(FIRST_PAYMENT_METHODS)

    no_hold = _changed(line, f"| {card.cells[3]} |", "| no [M2] |")
    changed, _ = parse(text.replace(line, no_hold, 1))
    edited = next(row for row in changed if row.method == "creditcard")
    assert edited.hold != FIRST_PAYMENT_METHODS["creditcard"].manual_capture
