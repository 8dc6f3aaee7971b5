"""The emulator clock: real UTC time plus an offset that only moves forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class EmulatorClock:
    """Time as the emulator sees it; tests jump it forward instead of sleeping."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    @property
    def offset(self) -> timedelta:
        return self._offset

    def move_to(self, moment: datetime) -> None:
        """Jump to `moment`; never backwards, so timestamps already issued stay in the past."""
        delta = moment - self.now()
        if delta > timedelta(0):
            self._offset += delta

    def raise_offset_to(self, offset: timedelta) -> None:
        """Make the offset at least `offset` (time spent processing an advance is not lost)."""
        self._offset = max(self._offset, offset)

    def reset(self) -> None:
        self._offset = timedelta(0)


def iso(moment: datetime | None) -> str | None:
    """Mollie's timestamp format: ISO 8601 in UTC with an explicit `+00:00`."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def iso_date(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()
