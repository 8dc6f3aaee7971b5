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

# Failure type of a purchase whose checkout could not be set up in time because Mollie or
# Cleeng stayed unreachable: no Mollie payment exists, and the next POST /purchases for the
# order starts it again.
CHECKOUT_UNAVAILABLE: Final = "CheckoutUnavailable"

# How long a purchase's setup (Cleeng order, Mollie customer, Mollie payment) keeps retrying
# through an outage before it gives up as CHECKOUT_UNAVAILABLE. The shopper's request answers
# long before (202, then polling); the order itself lives 24 hours.
DEFAULT_SETUP_SECONDS: Final = 15 * 60


def purchase_workflow_id(order_id: str) -> str:
    return f"purchase:{order_id}"


@dataclass(frozen=True, kw_only=True)
class PurchaseInput:
    order_id: str
    redirect_url: str
    method: str | None = None
    poll_schedule_seconds: tuple[int, ...] = DEFAULT_POLL_SCHEDULE_SECONDS
    setup_seconds: int = DEFAULT_SETUP_SECONDS
    # The earlier run of this order that failed before any Mollie payment existed, when this
    # run starts the purchase again; its Mollie keys then carry this run's id, so nothing the
    # failed run may have left at Mollie is ever adopted.
    restarts_run: str | None = None


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
