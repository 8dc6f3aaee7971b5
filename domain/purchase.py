"""Inputs, outputs and states of the InitialPurchase workflow and its activities.

These dataclasses travel through Temporal payloads: add fields only with defaults, never
rename or retype one, because running workflows hold them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from domain.operations import DEFAULT_POLL_SCHEDULE_SECONDS

# Workflow-visible purchase states (strings, so histories stay readable in the Web UI).
STATUS_STARTING: Final = "starting"
STATUS_AWAITING_PAYMENT: Final = "awaiting_payment"
STATUS_RECORDING: Final = "recording"
STATUS_CAPTURED: Final = "captured"
STATUS_REJECTED: Final = "rejected"
STATUS_REFUNDED: Final = "refunded_cleeng_refused"
STATUS_FAILED: Final = "failed"


def purchase_workflow_id(order_id: str) -> str:
    return f"purchase:{order_id}"


@dataclass(frozen=True, kw_only=True)
class PurchaseInput:
    order_id: str
    redirect_url: str
    method: str | None = None
    poll_schedule_seconds: tuple[int, ...] = DEFAULT_POLL_SCHEDULE_SECONDS


@dataclass(frozen=True, kw_only=True)
class PurchaseView:
    """What the front end and operators see of a purchase (update result and query)."""

    order_id: str
    status: str
    checkout_url: str | None = None
    mollie_payment_id: str | None = None
    cleeng_payment_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    failure_reason: str | None = None
    error: str | None = None
