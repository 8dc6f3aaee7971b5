"""Inputs, outputs and states of the Refund workflow (`refund:{paymentId}:{refundKey}`)
and of chargeback reporting. Payload dataclasses: add fields only with defaults."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from domain.money import Money
from domain.operations import DEFAULT_POLL_SCHEDULE_SECONDS

REFUND_REQUESTED: Final = "requested"
REFUND_PENDING: Final = "pending_at_mollie"
REFUND_REFUNDED: Final = "refunded"
REFUND_FAILED: Final = "failed"
REFUND_REFUSED: Final = "refused"

MOLLIE_REFUND_DONE: Final = "refunded"
MOLLIE_REFUND_FAILURES: Final = frozenset({"failed", "canceled"})

REFUND_TYPE_REFUND: Final = "refund"
REFUND_TYPE_CHARGEBACK: Final = "chargeback"


def refund_workflow_id(payment_id: str, amount: Money, reason: str | None) -> str:
    """One workflow per Cleeng payment and requested refund: a redelivered webhook finds it.

    Cleeng's `refundPayment` carries no refund id, so the key is the amount plus the reason.
    """
    digest = hashlib.sha256((reason or "").encode()).hexdigest()[:8]
    return f"refund:{payment_id}:{amount.minor}{amount.currency}:{digest}"


def chargeback_workflow_id(chargeback_id: str) -> str:
    return f"chargeback:{chargeback_id}"


@dataclass(frozen=True, kw_only=True)
class RefundRequest:
    cleeng_payment_id: str
    order_id: str | None
    external_payment_id: str
    amount: Money
    reason: str | None = None
    refund_type: str = REFUND_TYPE_REFUND
    poll_schedule_seconds: tuple[int, ...] = DEFAULT_POLL_SCHEDULE_SECONDS


@dataclass(frozen=True, kw_only=True)
class RefundStatusView:
    cleeng_payment_id: str
    status: str
    amount_minor: int
    currency: str
    mollie_refund_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class RefundLookup:
    payment_id: str
    refund_id: str


@dataclass(frozen=True, kw_only=True)
class CleengRefundInput:
    cleeng_payment_id: str
    order_id: str | None
    amount: Money
    refund_type: str
    reason: str | None
    already_refunded_minor: int
    """Cleeng's refundedAmount before this refund: tells a retried PATCH it already landed."""
    payment_operation: str | None = None


@dataclass(frozen=True, kw_only=True)
class CleengPaymentState:
    cleeng_payment_id: str
    payment_operation: str | None
    refunded_minor: int
    currency: str | None


@dataclass(frozen=True, kw_only=True)
class ChargebackInput:
    mollie_payment_id: str
    chargeback_id: str
    amount: Money
    reason: str | None
