"""Activity inputs and outputs shared by every flow, plus the Mollie statuses they decide on.

These dataclasses travel through Temporal payloads: add fields only with defaults, never
rename or retype one, because running workflows hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from domain.money import Money

# Mollie payment statuses.
MOLLIE_PAID: Final = "paid"
MOLLIE_AUTHORIZED: Final = "authorized"
MOLLIE_OPEN: Final = "open"
MOLLIE_PENDING: Final = "pending"
MOLLIE_CANCELED: Final = "canceled"
# A Mollie mandate that can be charged.
MANDATE_VALID: Final = "valid"
MOLLIE_FINAL_FAILURES: Final = frozenset({"failed", "canceled", "expired"})

# Re-check schedule when no webhook arrives: 1, 5, 15, 60 minutes, then doubling (2, 4 hours)
# up to MAX_POLL_INTERVAL_SECONDS, so a wait of days costs a few polls a day, not one an hour.
DEFAULT_POLL_SCHEDULE_SECONDS: Final = (60, 300, 900, 3600)
MAX_POLL_INTERVAL_SECONDS: Final = 6 * 3600


def payment_is_final(status: str) -> bool:
    """Mollie will not change this payment any more: paid, or failed for good."""
    return status == MOLLIE_PAID or status in MOLLIE_FINAL_FAILURES


def poll_delay_seconds(schedule: tuple[int, ...], polls_done: int) -> int:
    """The wait before the next look: the schedule's steps, then doubling up to the maximum
    (never below the schedule's last step, so a short test schedule stays short)."""
    if polls_done < len(schedule):
        return schedule[polls_done]
    last = schedule[-1]
    doublings = polls_done - len(schedule) + 1
    return max(last, min(last << min(doublings, 32), MAX_POLL_INTERVAL_SECONDS))


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
    order_id: str | None = None
    """The Cleeng order the payment's metadata names (the order its record must carry)."""


@dataclass(frozen=True, kw_only=True)
class MandateRef:
    """A Mollie mandate: the customer it belongs to and its id."""

    customer_id: str
    mandate_id: str


# Inputs of the activities that need only an id. Until 2027-03-17 ("Compatibility shims" in
# docs/development.md) those activities also accept the bare id (or list of ids) that the
# release before this one scheduled them with: an activity still retrying across a deploy
# decodes either shape.


@dataclass(frozen=True, kw_only=True)
class MolliePaymentRef:
    """A Mollie payment by its id (`tr_…`)."""

    payment_id: str


@dataclass(frozen=True, kw_only=True)
class MolliePaymentIds:
    payment_ids: list[str]


@dataclass(frozen=True, kw_only=True)
class CleengOrderRef:
    order_id: str


@dataclass(frozen=True, kw_only=True)
class CleengPaymentRef:
    """A payment record in Cleeng by its id (a number, sent as a string)."""

    payment_id: str


@dataclass(frozen=True, kw_only=True)
class PaymentDetailsRef:
    payment_details_id: str


@dataclass(frozen=True, kw_only=True)
class SubscriptionRef:
    subscription_id: str


@dataclass(frozen=True, kw_only=True)
class WorkflowRef:
    workflow_id: str


@dataclass(frozen=True, kw_only=True)
class WorkflowIds:
    workflow_ids: list[str]


@dataclass(frozen=True, kw_only=True)
class MandateView:
    mandate_id: str
    customer_id: str
    status: str
    method: str | None
    card_params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RecordDetailsInput:
    cleeng_customer_id: str
    token: str
    payment_method_id: str | None
    card_params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class InlineDetails:
    """Payment details Cleeng creates with the payment ("create-a-payment" `paymentDetails`).

    A payment needs `paymentDetailsId` or these; a payment without a mandate carries inactive
    details, which Cleeng never charges."""

    customer_id: str
    token: str
    payment_method_id: str
    active: bool
    card_params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RecordPaymentInput:
    order_id: str
    status: str
    payment_operation: str
    external_payment_id: str
    payment_details_id: str | None = None
    rejected_reason: str | None = None
    subscription_id: str | None = None
    inline_details: InlineDetails | None = None


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
    made_by_run: str | None = None
    """The workflow run whose request created this Mollie refund (from its metadata)."""


@dataclass(frozen=True, kw_only=True)
class RenewalOrderInput:
    customer_id: str
    offer_id: str
    subscription_id: str
    currency: str | None
    country: str | None
    payment_method_id: str | None


@dataclass(frozen=True, kw_only=True)
class RecurringChargeInput:
    """A charge on a mandate, with no customer present (renewals)."""

    workflow_id: str
    mollie_customer_id: str
    mandate_id: str
    amount: Money
    description: str
    operation_key: str
    manual_capture: bool
    metadata: dict[str, str] = field(default_factory=dict)
    known_payment_ids: list[str] = field(default_factory=list)
    """Payments this run of the cycle made already; any other live payment of the cycle at
    Mollie means an earlier run moved money, and nothing is charged again."""


@dataclass(frozen=True, kw_only=True)
class PaymentOrderInput:
    """Point a Mollie payment's metadata at the Cleeng order that records it."""

    payment_id: str
    order_id: str
    idempotency_key: str


@dataclass(frozen=True, kw_only=True)
class CaptureInput:
    payment_id: str
    description: str
    operation_key: str


@dataclass(frozen=True, kw_only=True)
class ReleaseInput:
    payment_id: str
    operation_key: str


@dataclass(frozen=True, kw_only=True)
class UpdatePaymentInput:
    payment_id: str
    status: str
    external_payment_id: str | None = None
    rejected_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class CycleCheckInput:
    subscription_id: str
    expiration_date: str
    """ISO 8601 UTC timestamp of the cycle's due date."""


@dataclass(frozen=True, kw_only=True)
class PrepareRenewalInput:
    """Is the cycle still unpaid, and if so a renewal order for this attempt."""

    cycle: CycleCheckInput
    order: RenewalOrderInput


@dataclass(frozen=True, kw_only=True)
class RenewalPreparation:
    order: OrderSnapshot | None
    """The attempt's order; none when Cleeng shows the cycle paid already."""
