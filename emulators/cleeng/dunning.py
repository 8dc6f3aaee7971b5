"""Dunning action settings and the renewal schedule they produce (pure, no I/O).

Cleeng decides per payment method x billing cycle whether a renewal is authorised first
(``authorizedFirst``) and at which hours relative to the due date it tries
(``paymentAttempts``, e.g. ``[72, 48, 24, 0]``; negative hours fall inside the grace period).
After the due date plus the grace period with nothing captured, it asks for termination.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from .models import BILLING_CYCLES

ACTION_AUTHORISE: Final = "authorise"
ACTION_CAPTURE: Final = "capture"
ACTION_TERMINATE: Final = "terminate"
# Events at the same instant go out in this order: an authorisation before the capture that
# uses it, and termination last.
_ACTION_ORDER: Final = {ACTION_AUTHORISE: 0, ACTION_CAPTURE: 1, ACTION_TERMINATE: 2}


@dataclass(frozen=True, kw_only=True)
class DunningSettings:
    """Cleeng's dunning action settings for one payment method and billing cycle."""

    authorized_first: bool = True
    payment_attempts: tuple[int, ...] = (72, 48, 24, 0)
    grace_period_hours: int = 2


class DunningTable:
    """Settings per (paymentMethodId, billingCycle), falling back to one default."""

    def __init__(self, default: DunningSettings | None = None) -> None:
        self.default = default or DunningSettings()
        self._entries: dict[tuple[int, str], DunningSettings] = {}

    def get(self, payment_method_id: int, billing_cycle: str) -> DunningSettings:
        return self._entries.get((payment_method_id, billing_cycle), self.default)

    def set(self, payment_method_id: int, billing_cycle: str, settings: DunningSettings) -> None:
        if billing_cycle not in BILLING_CYCLES:
            raise ValueError(f"unknown billing cycle {billing_cycle!r}")
        self._entries[(payment_method_id, billing_cycle)] = settings

    def seed(self, payment_method_id: int) -> None:
        """Give `payment_method_id` explicit default entries, so GET shows them."""
        for cycle in BILLING_CYCLES:
            self._entries.setdefault((payment_method_id, cycle), replace(self.default))

    def entries(self) -> list[tuple[int, str, DunningSettings]]:
        return [(method, cycle, s) for (method, cycle), s in sorted(self._entries.items())]

    def clear(self) -> None:
        self._entries.clear()


@dataclass(frozen=True, kw_only=True, order=True)
class PlannedEvent:
    """One webhook the schedule calls for in a cycle; `key` is unique within the cycle."""

    at: datetime
    rank: int
    action: str
    key: str


def plan_cycle(
    due: datetime, settings: DunningSettings, cycle_start: datetime
) -> list[PlannedEvent]:
    """Every event of the cycle ending at `due`, in the order they go out.

    authorizedFirst: an authorisation at each attempt time, a capture at the due date and at
    each attempt time after it (negative hours). Otherwise a capture at each attempt time.
    A termination at due + grace. Of the events scheduled before `cycle_start` only the latest
    of each action is kept: they are overdue and fire at once, once.
    """
    wanted: set[tuple[datetime, str]] = set()
    for hours in settings.payment_attempts:
        at = due - timedelta(hours=hours)
        if settings.authorized_first:
            wanted.add((at, ACTION_AUTHORISE))
            if hours < 0:
                wanted.add((at, ACTION_CAPTURE))
        else:
            wanted.add((at, ACTION_CAPTURE))
    if settings.authorized_first:
        wanted.add((due, ACTION_CAPTURE))
    wanted.add((due + timedelta(hours=settings.grace_period_hours), ACTION_TERMINATE))

    overdue_latest: dict[str, datetime] = {}
    for at, action in wanted:
        if at < cycle_start and at > overdue_latest.get(
            action, datetime.min.replace(tzinfo=at.tzinfo)
        ):
            overdue_latest[action] = at
    kept = [
        (at, action)
        for at, action in wanted
        if at >= cycle_start or overdue_latest.get(action) == at
    ]
    return sorted(
        PlannedEvent(
            at=at, rank=_ACTION_ORDER[action], action=action, key=f"{action}@{at.isoformat()}"
        )
        for at, action in kept
    )
