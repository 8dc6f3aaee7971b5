"""Inputs, outputs and states of the Refund workflow (`refund:{paymentId}:{refundKey}`)
and of chargeback reporting. Payload dataclasses: add fields only with defaults."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from domain.money import Money
from domain.operations import DEFAULT_POLL_SCHEDULE_SECONDS, RefundView

REFUND_REQUESTED: Final = "requested"
REFUND_PENDING: Final = "pending_at_mollie"
REFUND_REFUNDED: Final = "refunded"
REFUND_FAILED: Final = "failed"
REFUND_REFUSED: Final = "refused"
REFUND_NOT_SETTLED: Final = "not_settled"
"""Mollie had not settled the refund by the deadline: nothing recorded in Cleeng."""
REFUND_CHARGED_BACK: Final = "charged_back"
"""Mollie refused the refund because the payment's money had already gone back by chargeback,
as much as the refund asked or more: nothing refunded; the chargebacks are recorded in Cleeng,
each by its own `chargeback:{id}` workflow."""
REFUND_RECORD_UNKNOWN: Final = "record_unknown"
"""Mollie refunded, and whether Cleeng holds the record is not known (a reply to the refund
PATCH was lost, or an earlier run of the request made the refund): a person checks Cleeng and
answers with the `resolve_record` signal. Never reported as `refunded` until then."""

CLEENG_RECORD_UNKNOWN: Final = "CleengRefundRecordUnknown"
"""ApplicationError type of a refund PATCH whose reply was lost: Cleeng may have recorded it,
and writing it again could record the refund twice (docs/cleeng-contract.md)."""
RESOLVE_RECORD_SIGNAL: Final = "resolve_record"
CHARGEBACK_REVERSED_AFTER_REPORT: Final = "ChargebackReversedAfterReport"
"""A chargeback reported to Cleeng as `refunded` that Mollie later reversed: Core API 3.1
documents no call that takes a refund back, so a person corrects Cleeng."""

MOLLIE_REFUND_DONE: Final = "refunded"
MOLLIE_REFUND_FAILURES: Final = frozenset({"failed", "canceled"})

# How long a refund may stay queued or pending at Mollie (a queued refund waits for the
# merchant's balance) before an operator is asked to look.
DEFAULT_SETTLE_WITHIN_SECONDS: Final = 30 * 24 * 3600
# Polls per workflow run: the run then continues as new, so its history stays short.
DEFAULT_POLLS_PER_RUN: Final = 100


def refund_is_final(status: str) -> bool:
    """Mollie will not change this refund any more: refunded, or failed for good."""
    return status == MOLLIE_REFUND_DONE or status in MOLLIE_REFUND_FAILURES


REFUND_TYPE_REFUND: Final = "refund"
REFUND_TYPE_CHARGEBACK: Final = "chargeback"


def refund_request_key(data: Mapping[str, Any]) -> str:
    """A `refundPayment` webhook's identity: a digest of its whole `data`.

    Cleeng publishes no payload and no event id for this topic, so a redelivery (the same
    data) cannot be told from a second refund with exactly the same data. The rule: the same
    data is the same refund request; any difference (amount, reason, a date or id Cleeng
    adds) makes a new one. Ids are compared as text, so `"123"` and `123` are one request."""
    canonical = json.dumps(_ids_as_text(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def _ids_as_text(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _ids_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_ids_as_text(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def refund_workflow_id(payment_id: str, request_key: str) -> str:
    """`refund:{cleengPaymentId}:{requestKey}`: a redelivered webhook finds its workflow."""
    return f"refund:{payment_id}:{request_key}"


def chargeback_workflow_id(chargeback_id: str) -> str:
    return f"chargeback:{chargeback_id}"


def follow_up_workflow_id(payment_id: str, started_by: str | None = None) -> str:
    """`payment-followup:{tr_id}` for the one Mollie's webhooks start; another workflow that
    needs the payment's chargebacks reported starts its own, named after itself."""
    own = f"payment-followup:{payment_id}"
    return own if started_by is None else f"{own}:{started_by}"


@dataclass(frozen=True, kw_only=True)
class RefundRecordContext:
    """What "update-a-payment" needs beside the amount, known before any money moves."""

    order_id: str
    payment_operation: str


@dataclass(frozen=True, kw_only=True)
class RefundWaitState:
    """A refund made at Mollie and awaited: what a run hands the run it continues as."""

    refund: RefundView
    context: RefundRecordContext
    settle_by: str
    """ISO 8601 UTC: when the wait gives up (RefundNotSettled)."""
    polls_done: int
    """Polls that timed out so far: where the polling schedule's backoff carries on."""


@dataclass(frozen=True, kw_only=True)
class RefundRequest:
    cleeng_payment_id: str
    order_id: str | None
    external_payment_id: str
    amount: Money
    reason: str | None = None
    refund_type: str = REFUND_TYPE_REFUND
    poll_schedule_seconds: tuple[int, ...] = DEFAULT_POLL_SCHEDULE_SECONDS
    payment_operation: str | None = None
    """Cleeng's paymentOperation of the payment, when the webhook says it."""
    settle_within_seconds: int = DEFAULT_SETTLE_WITHIN_SECONDS
    polls_per_run: int = DEFAULT_POLLS_PER_RUN
    waiting: RefundWaitState | None = None
    """Set only on a run continued from an earlier one: the refund is made, await it."""


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
    """One Mollie refund (or chargeback), to be recorded once in Cleeng."""

    cleeng_payment_id: str
    order_id: str
    amount: Money
    refund_type: str
    reason: str | None
    payment_operation: str


@dataclass(frozen=True, kw_only=True)
class RecordResolution:
    """A person's answer to a held refund record (signal `resolve_record`)."""

    recorded: bool
    """True: Cleeng's payment shows this refund, so it is not written again. False: it does
    not, so the connector writes it now."""


@dataclass(frozen=True, kw_only=True)
class ChargebackInput:
    mollie_payment_id: str
    chargeback_id: str
    amount: Money
    reason: str | None
    reversed_at: str | None = None
    """Mollie's `reversedAt`: the merchant won the dispute and the money came back. A reversed
    chargeback is never reported to Cleeng as a refund."""


@dataclass(frozen=True, kw_only=True)
class UnreportedChargeback:
    """A chargeback whose report to Cleeng failed (e.g. `ChargebackUnmatched`)."""

    chargeback_id: str
    error: str


@dataclass(frozen=True, kw_only=True)
class FollowUpView:
    """What a payment's follow-up reported, and which chargebacks an operator must take up."""

    mollie_payment_id: str
    reported: list[str] = field(default_factory=list)
    unreported: list[UnreportedChargeback] = field(default_factory=list)
    reversed: list[str] = field(default_factory=list)
    """Chargebacks Mollie reversed before they were reported: nothing to tell Cleeng."""


CHARGEBACK_RECORDING: Final = "recording"
CHARGEBACK_RECORDED: Final = "recorded"
"""Recorded in Cleeng as `refunded` of type chargeback (possibly for less than Mollie's amount:
the part of the payment refunds and earlier chargebacks had not given back yet)."""
CHARGEBACK_NOTHING_TO_RECORD: Final = "nothing_to_record"
"""Refunds (and earlier chargebacks) had given the whole payment back already: Cleeng cannot
hold more than the payment, so nothing was written."""
CHARGEBACK_REVERSED: Final = "reversed"
CHARGEBACK_UNMATCHED_STATUS: Final = "unmatched"


@dataclass(frozen=True, kw_only=True)
class ChargebackShare:
    """How much of a chargeback Cleeng can still take, read from Mollie.

    Mollie's chargeback `amount` is what the consumer charged back, which may include money a
    refund gave back already; Cleeng cannot record more than the payment. The part recorded is
    what neither the payment's refunds nor its earlier chargebacks gave back
    (docs/cleeng-contract.md, "A chargeback after refunds")."""

    paid: Money
    refunded: Money
    """The payment's Mollie refunds that did not fail or get cancelled (settled or on their
    way: a pending refund is recorded in Cleeng by its own workflow once Mollie settles it)."""
    charged_back_before: Money
    """What the payment's earlier, unreversed chargebacks take of it (each at most what was
    left when it came)."""
    to_record: Money
    """min(the chargeback, paid - refunded - charged_back_before), never below zero."""


@dataclass(frozen=True, kw_only=True)
class RefundAmountSeen:
    """One Mollie refund of the payment: its status and amount."""

    status: str
    amount: Money


def chargeback_share(
    chargeback: ChargebackInput,
    *,
    paid: Money,
    refunds: list[RefundAmountSeen],
    chargebacks: list[ChargebackInput],
) -> ChargebackShare:
    """The part of `chargeback` Cleeng can still record: the payment less its refunds (those
    not failed or cancelled) and less what its earlier chargebacks took, at most the
    chargeback's own amount.

    `chargebacks` are the payment's chargebacks in the order Mollie created them; reversed ones
    take nothing (the money came back). One not listed (Mollie's list lags) counts every listed
    chargeback as earlier."""
    currency = paid.currency
    refunded = sum(
        refund.amount.minor for refund in refunds if refund.status not in MOLLIE_REFUND_FAILURES
    )
    remaining = max(paid.minor - refunded, 0)
    charged_back_before = 0
    for earlier in chargebacks:
        if earlier.chargeback_id == chargeback.chargeback_id:
            break
        if earlier.reversed_at is not None:
            continue
        taken = min(earlier.amount.minor, remaining)
        charged_back_before += taken
        remaining -= taken
    return ChargebackShare(
        paid=paid,
        refunded=Money(minor=refunded, currency=currency),
        charged_back_before=Money(minor=charged_back_before, currency=currency),
        to_record=Money(minor=min(chargeback.amount.minor, remaining), currency=currency),
    )


@dataclass(frozen=True, kw_only=True)
class ChargebackView:
    """What a `Chargeback` workflow did with its chargeback (query `view`)."""

    chargeback_id: str
    mollie_payment_id: str
    status: str
    amount_minor: int
    """Mollie's chargeback amount."""
    currency: str
    recorded_minor: int = 0
    """What was (or is being) written to Cleeng."""
    cleeng_payment_id: str | None = None
    note: str | None = None
    """Why less than Mollie's amount was recorded, or nothing; the question when held."""
