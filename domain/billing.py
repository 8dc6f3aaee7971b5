"""Inputs, outputs and states of the RecurringBilling workflow (one per subscription cycle).

These dataclasses travel through Temporal payloads: add fields only with defaults, never
rename or retype one, because running workflows hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from domain.operations import DEFAULT_POLL_SCHEDULE_SECONDS

# What Cleeng asks for (one signal per webhook).
EVENT_AUTHORISE: Final = "authorise"
EVENT_CAPTURE: Final = "capture"
EVENT_TERMINATE: Final = "terminate"

# Where the cycle stands.
CYCLE_OPEN: Final = "open"
"""Nothing authorised or captured yet (or the last attempt was declined)."""
CYCLE_AUTHORISED: Final = "authorised"
CYCLE_CHARGING: Final = "charging"
"""A capture-only charge is pending at Mollie (SEPA can take days)."""
CYCLE_SETTLING: Final = "settling"
"""A charge is pending at Mollie (a direct debit: days) and recorded `authorized` in Cleeng,
which keeps the renewal order alive until Mollie settles it."""
CYCLE_CAPTURED: Final = "captured"
CYCLE_TERMINATED: Final = "terminated"
CYCLE_ALREADY_PAID: Final = "already_paid"
"""Cleeng shows this cycle paid already: a late duplicate, nothing done."""
CYCLE_ABANDONED: Final = "abandoned"
"""No webhook for the cycle for a long time: the workflow ends, nothing is open at Mollie."""
FINISHED_STATES: Final = frozenset(
    {CYCLE_CAPTURED, CYCLE_TERMINATED, CYCLE_ALREADY_PAID, CYCLE_ABANDONED}
)

# Outcomes of single attempts, as shown in the view.
OUTCOME_AUTHORISED: Final = "authorised"
OUTCOME_CAPTURED: Final = "captured"
OUTCOME_REJECTED: Final = "rejected"
OUTCOME_IGNORED: Final = "ignored"
OUTCOME_DEFERRED: Final = "deferred_to_capture"
OUTCOME_PENDING: Final = "pending_recorded_authorized"
"""Charged; Mollie has it pending, Cleeng has it `authorized` until it settles."""
OUTCOME_RELEASED: Final = "released"
OUTCOME_TERMINATED: Final = "terminated"


def billing_workflow_id(subscription_id: str, expiration_date: str) -> str:
    """`billing:{subscriptionId}:{expirationDate}`: every webhook of one cycle finds it."""
    return f"billing:{subscription_id}:{expiration_date}"


@dataclass(frozen=True, kw_only=True)
class BillingCycleInput:
    subscription_id: str
    expiration_date: str
    """The cycle's due date, ISO 8601 UTC with `Z` (normalised by the shim)."""
    manual_capture: bool = True
    """Authorise with Mollie's manual capture; off → the capture webhook charges instead."""
    poll_schedule_seconds: tuple[int, ...] = DEFAULT_POLL_SCHEDULE_SECONDS
    compact_history: bool = False
    """Steps as local activities, search attributes set once per workflow task (setting
    `renewal_compact_history`). False for cycles started before it existed: they replay as
    they ran."""


@dataclass(frozen=True, kw_only=True)
class BillingEvent:
    """One Cleeng dunning webhook, normalised."""

    kind: str
    attempt_date: str
    customer_id: str
    offer_id: str
    payment_details_id: str | None = None
    token: str | None = None
    currency: str | None = None
    country: str | None = None
    payment_method_id: str | None = None

    @property
    def attempt_key(self) -> str:
        return f"{self.kind}:{self.attempt_date}"


@dataclass(frozen=True, kw_only=True)
class AttemptRecord:
    kind: str
    attempt_date: str
    outcome: str
    mollie_payment_id: str | None = None
    cleeng_payment_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class BillingView:
    subscription_id: str
    expiration_date: str
    status: str
    mollie_payment_id: str | None = None
    cleeng_payment_id: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    error: str | None = None
