"""The emulator's controllable clock: real UTC time plus an offset that only moves forward."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

# Something that moves the clock to a target time itself, e.g. the billing engine stepping
# through the webhooks due on the way. Arguments: target time, settle seconds.
AdvanceDriver = Callable[[datetime, float], Awaitable[None]]


def utc_iso(moment: datetime) -> str:
    """Render a timestamp the way Cleeng webhooks do: ``2019-11-04T19:55:41Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix(moment: datetime) -> int:
    """Whole unix seconds, the format of Cleeng's order and subscription dates."""
    return int(moment.timestamp())


def parse_moment(value: str | int | float) -> datetime:
    """Accept unix seconds or an ISO-8601 string (``Z`` or offset); naive means UTC."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    text = value.strip()
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class ClockError(ValueError):
    """The requested clock move is not allowed (it would go backwards)."""


class EmulatorClock:
    """Emulator time = real UTC now + offset.

    Everything time based (order expiry, subscription periods, dunning attempts, webhook
    redelivery) reads :meth:`now`. The offset never decreases, because the billing engine's
    bookkeeping assumes time only moves forward. A *driver* (the billing engine) can take over
    :meth:`advance_to` to fire the events that fall inside the jump in order.
    """

    def __init__(self, real_now: Callable[[], datetime] | None = None) -> None:
        self._real_now = real_now or (lambda: datetime.now(UTC))
        self._offset = timedelta(0)
        self.driver: AdvanceDriver | None = None

    def now(self) -> datetime:
        return self._real_now() + self._offset

    def now_s(self) -> datetime:
        """Now truncated to whole seconds, for stored dates that go on the wire as unix ints."""
        return self.now().replace(microsecond=0)

    @property
    def offset(self) -> timedelta:
        return self._offset

    def jump_to(self, target: datetime) -> None:
        """Move the clock to `target` at once, without firing anything."""
        delta = target - self.now()
        if delta < timedelta(0):
            if delta > timedelta(seconds=-1):
                return  # already there, only real time moved while we computed
            raise ClockError(f"Clock cannot go backwards (now {utc_iso(self.now())})")
        self._offset += delta

    async def advance_to(self, target: datetime, settle_seconds: float = 0.0) -> None:
        """Move to `target`, letting the driver fire due events on the way when one is set."""
        if target < self.now() - timedelta(seconds=1):
            raise ClockError(f"Clock cannot go backwards (now {utc_iso(self.now())})")
        if self.driver is None:
            self.jump_to(target)
        else:
            await self.driver(target, settle_seconds)

    def reset(self) -> None:
        self._offset = timedelta(0)
