"""What happens to a payment once money is held or moved: captures, refunds, chargebacks,
and the amounts Mollie derives from them (captured, refunded, remaining, charged back)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from . import validation as v
from .errors import MollieError, not_found, unprocessable
from .models import AUTHORIZED, PAID, Capture, Chargeback, Outcome, Payment, Refund, new_id
from .money import Money, parse_amount, zero
from .tables import AccountTables

REFUND_ACTIVE = frozenset({"queued", "pending", "processing", "refunded"})
REFUND_CANCELABLE = frozenset({"queued", "pending"})
REFUND_FORCEABLE = frozenset({"refunded", "failed", "processing", "canceled"})


class Aftercare(AccountTables):
    """Captures, refunds and chargebacks of the account's payments."""

    # ------------------------------------------------------------------- amounts

    def _sum(self, currency: str, amounts: Iterable[Money]) -> Money:
        total = zero(currency)
        for amount in amounts:
            total = total + amount
        return total

    def amount_captured(self, payment: Payment) -> Money:
        return self._sum(
            payment.amount.currency,
            (
                self.captures[c].amount
                for c in payment.capture_ids
                if self.captures[c].status == "succeeded"
            ),
        )

    def amount_refunded(self, payment: Payment) -> Money:
        return self._sum(
            payment.amount.currency,
            (
                self.refunds[r].amount
                for r in payment.refund_ids
                if self.refunds[r].status in REFUND_ACTIVE
            ),
        )

    def amount_charged_back(self, payment: Payment) -> Money:
        return self._sum(
            payment.amount.currency, (self.chargebacks[c].amount for c in payment.chargeback_ids)
        )

    def amount_settled(self, payment: Payment) -> Money:
        """What was actually collected: the captures for manual capture, else the amount."""
        if payment.status != PAID:
            return zero(payment.amount.currency)
        if payment.capture_mode == "manual":
            return self.amount_captured(payment)
        return payment.amount

    def amount_remaining(self, payment: Payment) -> Money:
        remaining = (
            self.amount_settled(payment)
            - self.amount_refunded(payment)
            - self.amount_charged_back(payment)
        )
        return remaining if remaining.minor > 0 else zero(payment.amount.currency)

    # ------------------------------------------------------------------ captures

    def capture(self, payment_id: str, capture_id: str) -> Capture:
        payment = self.payment(payment_id)
        return self._child(self.captures, payment.capture_ids, capture_id, "capture")

    def list_captures(self, payment_id: str) -> list[Capture]:
        return [self.captures[c] for c in self.payment(payment_id).capture_ids]

    def create_capture(self, payment_id: str, body: dict[str, Any]) -> Capture:
        payment = self.payment(payment_id)
        if payment.status != AUTHORIZED:
            raise unprocessable(
                f"The payment {payment_id} is not authorized (status: {payment.status})."
            )
        if payment.capture_ids:
            raise unprocessable(f"The payment {payment_id} has already been captured.")
        amount = payment.amount
        if body.get("amount") is not None:
            amount = parse_amount(body["amount"])
            if amount.currency != payment.amount.currency:
                raise unprocessable("The capture currency must match the payment.", "amount")
            if not 0 < amount.minor <= payment.amount.minor:
                raise unprocessable(
                    "The capture amount must be above zero and at most the authorized amount "
                    f"({payment.amount.to_json()['value']}).",
                    "amount",
                )
        now = self.clock.now()
        capture = Capture(
            id=new_id("cpt_"),
            mode=self.mode,
            payment_id=payment.id,
            amount=amount,
            status="pending",
            created_at=now,
            settle_at=now + timedelta(seconds=self.config.capture_settle_seconds),
            description=v.optional_str(body, "description"),
            metadata=v.metadata(body),
        )
        self.add_capture(capture)
        payment.capture_ids.append(capture.id)
        return capture

    def _settle_capture(self, capture: Capture) -> None:
        capture.status = "succeeded"
        capture.settle_at = None
        payment = self.payments[capture.payment_id]
        if payment.status == AUTHORIZED:
            self._transition(payment, Outcome(PAID))

    # ------------------------------------------------------------------- refunds

    def refund(self, payment_id: str, refund_id: str) -> Refund:
        payment = self.payment(payment_id)
        return self._child(self.refunds, payment.refund_ids, refund_id, "refund")

    def list_refunds(self, payment_id: str | None = None) -> list[Refund]:
        if payment_id is None:
            return list(self.refunds.values())
        return [self.refunds[r] for r in self.payment(payment_id).refund_ids]

    def create_refund(self, payment_id: str, body: dict[str, Any]) -> Refund:
        payment = self.payment(payment_id)
        if payment.status != PAID:
            raise unprocessable(
                f"The payment {payment_id} cannot be refunded (status: {payment.status})."
            )
        if body.get("amount") is None:
            raise unprocessable("The 'amount' field is required.", "amount")
        amount = parse_amount(body["amount"])
        description = v.optional_str(body, "description") or ""
        meta = v.metadata(body)
        if amount.currency != payment.amount.currency:
            raise unprocessable(
                f"The refund currency must be {payment.amount.currency}, like the payment.",
                "amount",
            )
        if amount.minor <= 0:
            raise unprocessable("The refund amount must be above zero.", "amount")
        remaining = self.amount_remaining(payment)
        if amount.minor > remaining.minor:
            raise unprocessable(
                f"The amount {amount.to_json()['value']} {amount.currency} is higher than the "
                f"remaining refundable amount of the payment "
                f"({remaining.to_json()['value']} {amount.currency}).",
                "amount",
            )
        now = self.clock.now()
        window = timedelta(seconds=self.config.duplicate_refund_window_seconds)
        for existing in (self.refunds[r] for r in payment.refund_ids):
            # Mollie guards against double clicks: the same refund again within a short
            # window is refused unless it came with the same Idempotency-Key (a replay).
            if (
                existing.amount == amount
                and existing.description == description
                and existing.status in REFUND_ACTIVE
                and now - existing.created_at < window
            ):
                raise MollieError(
                    409,
                    f"A duplicate refund has been detected: {existing.id} with the same amount "
                    "and description was created moments ago.",
                )
        refund = Refund(
            id=new_id("re_"),
            mode=self.mode,
            payment_id=payment.id,
            amount=amount,
            status="pending",
            created_at=now,
            settle_at=now + timedelta(seconds=self.config.refund_settle_seconds),
            description=description,
            metadata=meta,
        )
        self.add_refund(refund)
        payment.refund_ids.append(refund.id)
        return refund

    def cancel_refund(self, payment_id: str, refund_id: str) -> None:
        refund = self.refund(payment_id, refund_id)
        if refund.status not in REFUND_CANCELABLE:
            raise unprocessable(
                f"The refund {refund_id} can no longer be canceled (status: {refund.status})."
            )
        refund.status = "canceled"
        refund.settle_at = None

    def force_refund_status(self, refund_id: str, status: str) -> Refund:
        refund = self.refunds.get(refund_id)
        if refund is None:
            raise not_found("refund", refund_id)
        if status not in REFUND_FORCEABLE:
            raise MollieError(400, f"Unknown refund status '{status}'.", field="status")
        if refund.status in {"refunded", "failed", "canceled"}:
            raise MollieError(409, f"The refund {refund_id} is already final ({refund.status}).")
        refund.status = status
        if status != "processing":
            refund.settle_at = None
        if status in {"refunded", "failed"}:
            self._notify(self.payments[refund.payment_id])
        return refund

    # --------------------------------------------------------------- chargebacks

    def chargeback(self, payment_id: str, chargeback_id: str) -> Chargeback:
        payment = self.payment(payment_id)
        return self._child(self.chargebacks, payment.chargeback_ids, chargeback_id, "chargeback")

    def list_chargebacks(self, payment_id: str | None = None) -> list[Chargeback]:
        if payment_id is None:
            return list(self.chargebacks.values())
        return [self.chargebacks[c] for c in self.payment(payment_id).chargeback_ids]

    def create_chargeback(
        self,
        payment_id: str,
        amount_raw: Any,
        reason: str | None,
        reason_code: str = "AC06",
    ) -> Chargeback:
        payment = self.payment(payment_id)
        if payment.status != PAID:
            raise MollieError(
                409, f"Only paid payments can be charged back (status: {payment.status})."
            )
        disputable = self.amount_disputable(payment)
        amount = disputable if amount_raw is None else parse_amount(amount_raw)
        if amount.currency != payment.amount.currency or not 0 < amount.minor <= disputable.minor:
            raise unprocessable("The chargeback amount exceeds what was paid.", "amount")
        return self._add_chargeback(
            payment, amount, {"code": reason_code, "description": reason or "Account blocked"}
        )

    def reverse_chargeback(self, payment_id: str, chargeback_id: str) -> Chargeback:
        """The merchant won the dispute: the chargeback gets its `reversedAt` and the payment's
        webhook is called, as for any chargeback change. Reversing it again changes nothing."""
        chargeback = self.chargeback(payment_id, chargeback_id)
        if chargeback.reversed_at is None:
            chargeback.reversed_at = self.clock.now()
            self._notify(self.payment(payment_id))
        return chargeback

    def amount_disputable(self, payment: Payment) -> Money:
        """What can still be charged back: what was collected, less earlier chargebacks."""
        return self.amount_settled(payment) - self.amount_charged_back(payment)

    def _add_chargeback(
        self,
        payment: Payment,
        amount: Money,
        reason: dict[str, str],
        at: datetime | None = None,
    ) -> Chargeback:
        """Record a chargeback on a paid payment and announce it through its webhook."""
        chargeback = Chargeback(
            id=new_id("chb_"),
            payment_id=payment.id,
            amount=amount,
            created_at=at or self.clock.now(),
            reason=reason,
        )
        self.chargebacks[chargeback.id] = chargeback
        payment.chargeback_ids.append(chargeback.id)
        self._notify(payment)
        return chargeback
