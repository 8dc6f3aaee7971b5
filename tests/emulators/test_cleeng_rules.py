"""Pure rules behind the Cleeng emulator: periods, money conversion, dunning schedule, CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulators.cleeng.__main__ import parse_args
from emulators.cleeng.dunning import DunningSettings, plan_cycle
from emulators.cleeng.models import add_period
from emulators.cleeng.money import format_major, to_major, to_minor

T0 = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("week", datetime(2030, 2, 7, 12, 0, tzinfo=UTC)),
        ("month", datetime(2030, 2, 28, 12, 0, tzinfo=UTC)),  # clamped to the month's end
        ("3-months", datetime(2030, 4, 30, 12, 0, tzinfo=UTC)),
        ("6-months", datetime(2030, 7, 31, 12, 0, tzinfo=UTC)),
        ("year", datetime(2031, 1, 31, 12, 0, tzinfo=UTC)),
    ],
)
def test_periods_are_calendar_periods(period: str, expected: datetime) -> None:
    assert add_period(T0, period) == expected


def test_money_converts_exactly_at_the_edge() -> None:
    assert to_minor(9.99, "EUR") == 999
    assert to_minor("0.1", "EUR") == 10
    assert to_minor(1500, "JPY") == 1500
    assert to_major(999, "EUR") == 9.99
    assert to_major(1, "EUR") == 0.01
    assert format_major(5, "EUR") == "0.05"
    assert format_major(1500, "JPY") == "1500"
    refusals: list[tuple[float | str, str, str]] = [
        (1.234, "EUR", "more decimals than EUR"),
        (1.5, "JPY", "more decimals than JPY"),
        (-1, "EUR", "not a non-negative amount"),
        ("abc", "EUR", "not an amount"),
    ]
    for bad, currency, reason in refusals:
        with pytest.raises(ValueError, match=reason):
            to_minor(bad, currency)


def hours_before(due: datetime, events: list[tuple[datetime, str]]) -> list[tuple[float, str]]:
    return [((due - at) / timedelta(hours=1), action) for at, action in events]


def test_authorise_first_schedule() -> None:
    due = T0 + timedelta(days=30)
    plan = plan_cycle(due, DunningSettings(), cycle_start=T0)
    assert hours_before(due, [(e.at, e.action) for e in plan]) == [
        (72, "authorise"),
        (48, "authorise"),
        (24, "authorise"),
        (0, "authorise"),
        (0, "capture"),
        (-2, "terminate"),
    ]


def test_capture_only_schedule_with_grace_attempts() -> None:
    due = T0 + timedelta(days=30)
    settings = DunningSettings(
        authorized_first=False, payment_attempts=(24, 0, -12), grace_period_hours=24
    )
    plan = plan_cycle(due, settings, cycle_start=T0)
    assert hours_before(due, [(e.at, e.action) for e in plan]) == [
        (24, "capture"),
        (0, "capture"),
        (-12, "capture"),
        (-24, "terminate"),
    ]


def test_attempts_before_the_cycle_start_collapse_to_the_latest() -> None:
    due = T0 + timedelta(hours=30)
    plan = plan_cycle(due, DunningSettings(), cycle_start=T0)
    assert hours_before(due, [(e.at, e.action) for e in plan]) == [
        (48, "authorise"),  # overdue: only the latest of 72/48 is kept
        (24, "authorise"),
        (0, "authorise"),
        (0, "capture"),
        (-2, "terminate"),
    ]


def test_cli_reads_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEENG_EMULATOR_PORT", "9999")
    monkeypatch.setenv("CLEENG_EMULATOR_PUBLISHER_TOKEN", "from-env")
    args = parse_args(["--public-url", "http://cleeng.local"])
    assert (args.port, args.publisher_token, args.public_url) == (
        9999,
        "from-env",
        "http://cleeng.local",
    )
    assert parse_args(["--port", "8102"]).port == 8102
