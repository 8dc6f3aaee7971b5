"""Inputs, outputs and states of the payment-details workflows.

NewPaymentDetails (`payment-details:{customerId}`) collects a new card or account through a
Mollie `first` payment; DetailsDeactivation (`details-deactivated:{paymentDetailsId}`) cleans up
after details Cleeng replaced. Payload dataclasses: add fields only with defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from domain.money import Money
from domain.operations import DEFAULT_POLL_SCHEDULE_SECONDS

STATUS_STARTING: Final = "starting"
STATUS_AWAITING_PAYMENT: Final = "awaiting_payment"
STATUS_ACTIVE: Final = "active"
STATUS_FAILED: Final = "failed"

# What new details are verified with, before domain.methods.first_payment_amount applies the
# method's rule (0.00 where Mollie takes it, else the smallest amount, refunded right after).
ZERO_AMOUNT: Final = Money(minor=0, currency="EUR")

DEACTIVATION_DONE: Final = "done"
DEACTIVATION_NOT_OURS: Final = "not_ours"
DEACTIVATION_NEEDS_OPERATOR: Final = "needs_operator"


def new_details_workflow_id(customer_id: str) -> str:
    return f"payment-details:{customer_id}"


def deactivation_workflow_id(payment_details_id: str) -> str:
    return f"details-deactivated:{payment_details_id}"


@dataclass(frozen=True, kw_only=True)
class NewDetailsInput:
    customer_id: str
    redirect_url: str
    method: str | None = None
    poll_schedule_seconds: tuple[int, ...] = DEFAULT_POLL_SCHEDULE_SECONDS


@dataclass(frozen=True, kw_only=True)
class NewDetailsView:
    customer_id: str
    status: str
    checkout_url: str | None = None
    mollie_payment_id: str | None = None
    payment_details_id: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class DeactivationInput:
    payment_details_id: str
    customer_id: str
    token: str | None
    delete_details: bool = False


@dataclass(frozen=True, kw_only=True)
class CancelledAuthorisation:
    cleeng_payment_id: str
    mollie_payment_id: str | None


@dataclass(frozen=True, kw_only=True)
class DeactivationFailure:
    step: str
    target: str
    error: str


@dataclass(frozen=True, kw_only=True)
class DeactivationView:
    payment_details_id: str
    status: str
    cancelled: list[CancelledAuthorisation] = field(default_factory=list)
    failures: list[DeactivationFailure] = field(default_factory=list)
    mandate_revoked: bool = False
    details_deleted: bool = False
    left_to_billing: list[CancelledAuthorisation] = field(default_factory=list)
    """Cleeng `authorized` records whose Mollie payment is not a hold that could be released
    (a direct debit on its way, or already paid): their billing cycle records the outcome."""
