"""Inputs, outputs and states of the InitialPurchase workflow and its activities.

These dataclasses travel through Temporal payloads: add fields only with defaults, never
rename or retype one, because running workflows hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from domain.money import Money

# Workflow-visible purchase states (strings, so histories stay readable in the Web UI).
STATUS_STARTING: Final = "starting"
STATUS_AWAITING_PAYMENT: Final = "awaiting_payment"
STATUS_RECORDING: Final = "recording"
STATUS_CAPTURED: Final = "captured"
STATUS_REJECTED: Final = "rejected"
STATUS_REFUNDED: Final = "refunded_cleeng_refused"
STATUS_FAILED: Final = "failed"

# Mollie payment statuses that end a checkout.
MOLLIE_PAID: Final = "paid"
MOLLIE_FINAL_FAILURES: Final = frozenset({"failed", "canceled", "expired"})

# Re-check schedule when no webhook arrives: 1, 5, 15, 60 minutes, then hourly.
DEFAULT_POLL_SCHEDULE_SECONDS: Final = (60, 300, 900, 3600)


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


@dataclass(frozen=True, kw_only=True)
class PaymentNotice:
    """A Mollie webhook: "payment X changed, look it up"."""

    payment_id: str


@dataclass(frozen=True, kw_only=True)
class OrderSnapshot:
    order_id: str
    customer_id: str
    customer_email: str | None
    offer_id: str
    amount: Money
    country: str | None
    payment_method_id: str | None


@dataclass(frozen=True, kw_only=True)
class EnsureCustomerInput:
    cleeng_customer_id: str
    email: str | None
    idempotency_key: str


@dataclass(frozen=True, kw_only=True)
class CheckoutPaymentInput:
    workflow_id: str
    order_id: str
    mollie_customer_id: str
    amount: Money
    description: str
    redirect_url: str
    method: str | None
    operation_key: str


@dataclass(frozen=True, kw_only=True)
class GatewayPaymentView:
    """The parts of a Mollie payment the workflows decide on."""

    payment_id: str
    status: str
    amount: Money
    checkout_url: str | None = None
    customer_id: str | None = None
    mandate_id: str | None = None
    failure_reason: str | None = None
    method: str | None = None


@dataclass(frozen=True, kw_only=True)
class RecordDetailsInput:
    cleeng_customer_id: str
    mollie_customer_id: str
    mandate_id: str
    payment_method_id: str | None


@dataclass(frozen=True, kw_only=True)
class RecordPaymentInput:
    order_id: str
    status: str
    payment_operation: str
    external_payment_id: str
    payment_details_id: str | None = None
    rejected_reason: str | None = None
    subscription_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class RefundInput:
    payment_id: str
    amount: Money
    description: str
    idempotency_key: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RefundView:
    refund_id: str
    status: str
