"""The emulator's records: what Mollie would hold for one account.

Plain mutable dataclasses; the store owns every transition. Field names are snake_case here
and become camelCase only in `render`.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .money import Money

_ALPHABET = string.ascii_letters + string.digits

OPEN = "open"
PENDING = "pending"
AUTHORIZED = "authorized"
PAID = "paid"
CANCELED = "canceled"
EXPIRED = "expired"
FAILED = "failed"

# Statuses that Mollie announces through the webhook.
NOTIFY_STATUSES = frozenset({PAID, AUTHORIZED, FAILED, CANCELED, EXPIRED})
FINAL_STATUSES = frozenset({PAID, CANCELED, EXPIRED, FAILED})

# Test-mode magic amounts: a card charge of exactly this many units fails with this reason.
MAGIC_FAILURES: dict[int, str] = {
    1001: "invalid_card_number",
    1002: "invalid_cvv",
    1003: "invalid_card_holder_name",
    1004: "card_expired",
    1005: "invalid_card_type",
    1006: "refused_by_issuer",
    1007: "insufficient_funds",
    1008: "inactive_card",
    1009: "possible_fraud",
    1010: "authentication_failed",
    1011: "card_declined",
}

# Which kind of mandate a `first` payment leaves behind, by the method it was paid with.
# (Trustly's page: its first payment leaves a SEPA Direct Debit mandate; giropay and SOFORT
# are gone from Mollie's method list but kept for payments made with them before.)
SEPA_FIRST_METHODS = frozenset(
    {"directdebit", "ideal", "bancontact", "belfius", "kbc", "eps", "giropay", "sofort", "trustly"}
)
KNOWN_METHODS = frozenset(
    SEPA_FIRST_METHODS
    | {
        "creditcard", "paypal", "applepay", "banktransfer", "przelewy24", "klarna",
        "klarnapaylater", "klarnasliceit", "paysafecard", "riverty", "billie", "twint",
        "trustly", "blik", "mybank", "satispay", "in3", "alma", "bancomatpay", "payconiq",
    }
)  # fmt: skip
MANUAL_CAPTURE_METHODS = frozenset(
    {"creditcard", "klarna", "klarnapaylater", "klarnasliceit", "billie", "riverty"}
)


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(10))


def mandate_method_for(payment_method: str | None) -> str:
    if payment_method in SEPA_FIRST_METHODS:
        return "directdebit"
    if payment_method == "paypal":
        return "paypal"
    return "creditcard"


# SEPA return reason codes a bank gives when it takes a paid debit back (Mollie reports the
# code on the chargeback); any other code is shown with a generic description.
REVERSAL_REASONS: dict[str, str] = {
    "AC04": "Account closed",
    "AC06": "Account blocked",
    "AM04": "Insufficient funds",
    "MD01": "No valid mandate",
    "MD06": "Refund requested by the customer",
    "MS02": "Refused by the customer",
    "MS03": "Reason not specified",
}


@dataclass(frozen=True)
class Reversal:
    """A paid charge the customer's bank takes back later: a SEPA debit can still fail up to
    five business days after it was paid (and be disputed for eight weeks); Mollie reports
    either as a chargeback on the payment. `after_seconds` counts from the moment it was paid."""

    reason_code: str
    after_seconds: float

    @property
    def description(self) -> str:
        return REVERSAL_REASONS.get(self.reason_code, "Reversed by the bank")


@dataclass(frozen=True)
class Outcome:
    """How a charge ends: a status and, for failures, Mollie's failure reason; a charge that
    ends paid may carry a `reversal` that charges it back later."""

    status: str
    failure_reason: str | None = None
    reversal: Reversal | None = None


@dataclass
class Customer:
    """A Mollie customer (`cst_`)."""

    id: str
    mode: str
    created_at: datetime
    name: str | None = None
    email: str | None = None
    locale: str | None = None
    metadata: Any = None
    deleted: bool = False
    # Outcomes forced by a test for this customer's next recurring charges, consumed in order.
    next_outcomes: list[Outcome] = field(default_factory=list)


@dataclass
class Mandate:
    """Permission to charge a customer without them present (`mdt_`)."""

    id: str
    mode: str
    customer_id: str
    method: str
    status: str
    details: dict[str, Any]
    mandate_reference: str | None
    signature_date: str
    created_at: datetime


@dataclass
class Capture:
    """Collection of (part of) an authorised amount (`cpt_`)."""

    id: str
    mode: str
    payment_id: str
    amount: Money
    status: str
    created_at: datetime
    settle_at: datetime | None
    description: str | None = None
    metadata: Any = None


@dataclass
class Refund:
    """Money returned to the customer (`re_`); counts against the payment from creation."""

    id: str
    mode: str
    payment_id: str
    amount: Money
    status: str
    created_at: datetime
    settle_at: datetime | None
    description: str = ""
    metadata: Any = None


@dataclass
class Chargeback:
    """A disputed payment reversed by the issuer (`chb_`)."""

    id: str
    payment_id: str
    amount: Money
    created_at: datetime
    reason: dict[str, str] | None = None
    # The merchant won the dispute: the money came back ("get-payment-chargeback": reversedAt).
    reversed_at: datetime | None = None


@dataclass
class Payment:
    """A payment (`tr_`) with everything the API shows and the emulator's own schedule."""

    id: str
    mode: str
    created_at: datetime
    amount: Money
    description: str
    status: str
    sequence_type: str
    capture_mode: str
    profile_id: str
    method: str | None = None
    metadata: Any = None
    redirect_url: str | None = None
    cancel_url: str | None = None
    webhook_url: str | None = None
    locale: str | None = None
    customer_id: str | None = None
    mandate_id: str | None = None
    expires_at: datetime | None = None
    authorized_at: datetime | None = None
    paid_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    capture_before: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # A pending charge resolves to `settle_outcome` once the clock passes `settle_at`.
    settle_at: datetime | None = None
    settle_outcome: Outcome | None = None
    # When the payment went `pending` (a SEPA debit waiting for the bank), if it ever did.
    pending_at: datetime | None = None
    # A reversal forced on the charge: once paid it is scheduled at `reverse_at`, when a
    # chargeback is created and the payment's webhook fires.
    reversal: Reversal | None = None
    reverse_at: datetime | None = None
    capture_ids: list[str] = field(default_factory=list)
    refund_ids: list[str] = field(default_factory=list)
    chargeback_ids: list[str] = field(default_factory=list)

    def magic_failure(self) -> str | None:
        units = self.amount.whole_units()
        return MAGIC_FAILURES.get(units) if units is not None else None
