"""In-memory state of one emulated Mollie account and every transition it goes through.

All methods are synchronous and run on the server's single event loop, so each one is atomic
with respect to other requests; callers never hold state across an `await`. Time comes from
the emulator clock only. Whenever a payment reaches a status that Mollie announces (or one of
its refunds, captures or chargebacks changes), `notify` is called with the payment.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from . import validation as v
from .aftercare import Aftercare
from .clock import iso_date
from .errors import MollieError, not_found, unprocessable
from .models import (
    AUTHORIZED,
    CANCELED,
    EXPIRED,
    FAILED,
    FINAL_STATUSES,
    KNOWN_METHODS,
    MANUAL_CAPTURE_METHODS,
    NOTIFY_STATUSES,
    OPEN,
    PAID,
    PENDING,
    Customer,
    Mandate,
    Outcome,
    Payment,
    mandate_method_for,
    new_id,
)
from .money import parse_amount

SEQUENCE_TYPES = frozenset({"oneoff", "first", "recurring"})
CAPTURE_MODES = frozenset({"automatic", "manual"})
CHECKOUT_CHOICES = frozenset({PAID, FAILED, CANCELED, EXPIRED, AUTHORIZED})
FORCEABLE = frozenset({PAID, FAILED, CANCELED, EXPIRED, AUTHORIZED, PENDING})
ZERO_AMOUNT_METHODS = frozenset({"creditcard", "paypal"})

# Test data the emulator pretends the customer entered on the checkout page.
_CARD_NUMBER = "6787"
_CARD_LABEL = "Mastercard"
_IBAN = "NL55INGB0000000000"
_BIC = "INGBNL2A"


def _card_expiry(now: datetime) -> str:
    """A card that stays valid for two more years: the last day of that month."""
    year, month = now.year + 2, now.month
    return f"{year:04d}-{month:02d}-{calendar.monthrange(year, month)[1]:02d}"


def _holder(customer: Customer | None) -> str:
    return (customer.name if customer and customer.name else None) or "T. TEST"


class MollieStore(Aftercare):
    """Customers, mandates and payments of one account, and every timed change."""

    # ----------------------------------------------------------------- customers

    def create_customer(self, body: dict[str, Any]) -> Customer:
        customer = Customer(
            id=new_id("cst_"),
            mode=self.mode,
            created_at=self.clock.now(),
            name=v.optional_str(body, "name"),
            email=v.optional_email(body),
            locale=v.optional_locale(body),
            metadata=v.metadata(body),
        )
        self.customers[customer.id] = customer
        return customer

    def customer(self, customer_id: str) -> Customer:
        customer = self.customers.get(customer_id)
        if customer is None:
            raise not_found("customer", customer_id)
        if customer.deleted:
            raise MollieError(410, f"The customer {customer_id} has been deleted.")
        return customer

    def update_customer(self, customer_id: str, body: dict[str, Any]) -> Customer:
        customer = self.customer(customer_id)
        # Validate everything before changing anything, so a 422 leaves the record intact.
        name = v.optional_str(body, "name")
        email = v.optional_email(body)
        locale = v.optional_locale(body)
        meta = v.metadata(body)
        if "name" in body:
            customer.name = name
        if "email" in body:
            customer.email = email
        if "locale" in body:
            customer.locale = locale
        if "metadata" in body:
            customer.metadata = meta
        return customer

    def delete_customer(self, customer_id: str) -> None:
        customer = self.customer(customer_id)
        customer.deleted = True
        for mandate in self.mandates.values():
            if mandate.customer_id == customer_id:
                mandate.status = "invalid"

    def list_customers(self) -> list[Customer]:
        return [c for c in self.customers.values() if not c.deleted]

    def set_next_outcomes(self, customer_id: str, outcomes: Iterable[Outcome]) -> Customer:
        customer = self.customer(customer_id)
        customer.next_outcomes.extend(outcomes)
        return customer

    # ------------------------------------------------------------------ mandates

    def mandate(self, customer_id: str, mandate_id: str) -> Mandate:
        self.customer(customer_id)
        mandate = self.mandates.get(mandate_id)
        if mandate is None or mandate.customer_id != customer_id:
            raise not_found("mandate", mandate_id)
        return mandate

    def list_mandates(self, customer_id: str) -> list[Mandate]:
        self.customer(customer_id)
        return list(self.mandates_by_customer.get(customer_id, []))

    def create_mandate(self, customer_id: str, body: dict[str, Any]) -> Mandate:
        customer = self.customer(customer_id)
        method = v.choice(body, "method", frozenset({"directdebit", "paypal"}), "")
        if not method:
            raise unprocessable("The 'method' field is required.", "method")
        consumer_name = v.required_str(body, "consumerName")
        details: dict[str, Any]
        if method == "directdebit":
            details = {
                "consumerName": consumer_name,
                "consumerAccount": v.iban(body),
                "consumerBic": v.optional_str(body, "consumerBic") or _BIC,
            }
        else:
            details = {
                "consumerName": consumer_name,
                "consumerAccount": v.optional_email(body, "consumerEmail")
                or customer.email
                or "paypal@example.com",
            }
        signature_date = v.optional_date(body, "signatureDate") or iso_date(self.clock.now())
        return self._add_mandate(
            customer_id,
            method,
            details,
            reference=v.optional_str(body, "mandateReference"),
            signature_date=signature_date,
        )

    def revoke_mandate(self, customer_id: str, mandate_id: str) -> None:
        mandate = self.mandate(customer_id, mandate_id)
        if mandate.status == "invalid":
            raise unprocessable(f"The mandate {mandate_id} has already been revoked.")
        mandate.status = "invalid"

    def _add_mandate(
        self,
        customer_id: str,
        method: str,
        details: dict[str, Any],
        *,
        reference: str | None = None,
        signature_date: str | None = None,
    ) -> Mandate:
        now = self.clock.now()
        mandate = Mandate(
            id=new_id("mdt_"),
            mode=self.mode,
            customer_id=customer_id,
            method=method,
            status="valid",
            details=details,
            mandate_reference=reference,
            signature_date=signature_date or iso_date(now),
            created_at=now,
        )
        self.add_mandate(mandate)
        return mandate

    def _mandate_from_first_payment(self, payment: Payment) -> Mandate:
        assert payment.customer_id is not None
        customer = self.customers.get(payment.customer_id)
        kind = mandate_method_for(payment.method)
        if kind == "creditcard":
            details = {key: payment.details[key] for key in _CARD_DETAIL_KEYS}
        elif kind == "paypal":
            details = {
                "consumerName": _holder(customer),
                "consumerAccount": (customer.email if customer else None) or "paypal@example.com",
            }
        else:
            details = {
                "consumerName": _holder(customer),
                "consumerAccount": _IBAN,
                "consumerBic": _BIC,
            }
        return self._add_mandate(payment.customer_id, kind, details)

    # ------------------------------------------------------------------ payments

    def list_payments(self, customer_id: str | None = None) -> list[Payment]:
        if customer_id is None:
            return list(self.payments.values())
        self.customer(customer_id)
        return list(self.payments_by_customer.get(customer_id, []))

    def create_payment(self, body: dict[str, Any], customer_id: str | None = None) -> Payment:
        """Validate like Mollie, then create; recurring charges resolve right away."""
        amount = parse_amount(body.get("amount"))
        description = v.required_str(body, "description")
        sequence_type = v.choice(body, "sequenceType", SEQUENCE_TYPES, "oneoff")
        capture_mode = v.choice(body, "captureMode", CAPTURE_MODES, "automatic")
        redirect_url = v.optional_url(body, "redirectUrl")
        cancel_url = v.optional_url(body, "cancelUrl")
        webhook_url = v.optional_url(body, "webhookUrl")
        locale = v.optional_locale(body)
        meta = v.metadata(body)
        method = self._requested_method(body.get("method"))
        customer_id = customer_id or v.optional_str(body, "customerId")
        mandate_id = v.optional_str(body, "mandateId")

        if sequence_type != "recurring" and redirect_url is None:
            raise unprocessable("The 'redirectUrl' field is required.", "redirectUrl")
        customer = None
        if customer_id is not None:
            customer = self.customers.get(customer_id)
            if customer is None or customer.deleted:
                raise unprocessable(f"The customer {customer_id} does not exist.", "customerId")
        if sequence_type in {"first", "recurring"} and customer is None:
            raise unprocessable(
                f"A customerId is required for {sequence_type} payments.", "customerId"
            )
        if amount.minor < 0:
            raise unprocessable("The amount cannot be negative.", "amount")
        if amount.minor == 0 and not (
            sequence_type == "first" and (method is None or method in ZERO_AMOUNT_METHODS)
        ):
            raise unprocessable(
                "An amount of zero is only allowed for first payments by creditcard or paypal.",
                "amount",
            )
        if capture_mode == "manual" and method is not None and method not in MANUAL_CAPTURE_METHODS:
            raise unprocessable(
                f"Manual capture is not supported for payment method {method}.", "captureMode"
            )

        mandate = None
        if sequence_type == "recurring":
            assert customer is not None
            mandate = self._recurring_mandate(customer, mandate_id, method)
            if capture_mode == "manual" and mandate.method not in MANUAL_CAPTURE_METHODS:
                raise unprocessable(
                    f"Manual capture is not supported for {mandate.method} mandates.",
                    "captureMode",
                )
        elif mandate_id is not None:
            raise unprocessable("A mandateId is only allowed for recurring payments.", "mandateId")

        now = self.clock.now()
        payment = Payment(
            id=new_id("tr_"),
            mode=self.mode,
            created_at=now,
            amount=amount,
            description=description,
            status=OPEN,
            sequence_type=sequence_type,
            capture_mode=capture_mode,
            profile_id=self.config.profile_id,
            method=mandate.method if mandate else method,
            metadata=meta,
            redirect_url=redirect_url,
            cancel_url=cancel_url,
            webhook_url=webhook_url,
            locale=locale,
            customer_id=customer_id,
            mandate_id=mandate.id if mandate else None,
        )
        self.add_payment(payment)
        if mandate is None:
            payment.expires_at = now + timedelta(seconds=self.config.payment_expiry_seconds)
        else:
            assert customer is not None
            self._charge_mandate(payment, mandate, customer)
        return payment

    @staticmethod
    def _requested_method(raw: Any) -> str | None:
        # Mollie accepts one method or a list to choose from; the first one stands for the
        # list, because the emulator's checkout has no method picker.
        methods = raw if isinstance(raw, list) else [raw] if raw is not None else []
        for method in methods:
            if not isinstance(method, str) or method not in KNOWN_METHODS:
                raise unprocessable(f"The payment method '{method}' is invalid.", "method")
        return methods[0] if methods else None

    def _recurring_mandate(
        self, customer: Customer, mandate_id: str | None, method: str | None
    ) -> Mandate:
        wanted = mandate_method_for(method) if method else None
        if mandate_id is not None:
            mandate = self.mandates.get(mandate_id)
            if mandate is None or mandate.customer_id != customer.id:
                raise unprocessable(
                    f"The mandate {mandate_id} does not exist for this customer.", "mandateId"
                )
            if mandate.status != "valid" or (wanted and mandate.method != wanted):
                raise unprocessable(f"The mandate {mandate_id} is not valid.", "mandateId")
            return mandate
        candidates = [
            m
            for m in self.mandates_by_customer.get(customer.id, [])
            if m.status == "valid" and (wanted is None or m.method == wanted)
        ]
        if not candidates:
            raise unprocessable("No suitable mandates found for customer", "customerId")
        # Like Mollie, charge the most recent valid mandate when none is named.
        return candidates[-1]

    def _charge_mandate(self, payment: Payment, mandate: Mandate, customer: Customer) -> None:
        """Decide a recurring charge: forced outcome, magic amount, or success."""
        if customer.next_outcomes:
            outcome = customer.next_outcomes.pop(0)
        elif (reason := payment.magic_failure()) is not None:
            outcome = Outcome(FAILED, reason)
        else:
            outcome = Outcome(AUTHORIZED if payment.capture_mode == "manual" else PAID)
        payment.details = dict(mandate.details)
        payment.reversal = outcome.reversal
        if mandate.method == "directdebit" or outcome.status == PENDING:
            # SEPA direct debits only settle days later; a forced `pending` behaves the same.
            final = (
                outcome if outcome.status != PENDING else Outcome(PAID, reversal=outcome.reversal)
            )
            payment.status = PENDING
            payment.pending_at = self.clock.now()
            payment.settle_at = payment.pending_at + timedelta(
                seconds=self.config.pending_settle_seconds
            )
            payment.settle_outcome = final
            if mandate.method == "directdebit":
                payment.details["dueDate"] = iso_date(payment.settle_at)
            return
        self._transition(payment, outcome)

    def update_payment(self, payment_id: str, body: dict[str, Any]) -> Payment:
        payment = self.payment(payment_id)
        changes: dict[str, Any] = {}
        if "description" in body:
            changes["description"] = v.required_str(body, "description")
        for name, attr in (
            ("redirectUrl", "redirect_url"),
            ("cancelUrl", "cancel_url"),
            ("webhookUrl", "webhook_url"),
        ):
            if name in body:
                changes[attr] = v.optional_url(body, name)
        if "metadata" in body:
            changes["metadata"] = v.metadata(body)
        if "locale" in body:
            changes["locale"] = v.optional_locale(body)
        if payment.status in FINAL_STATUSES and set(changes) - {"metadata", "description"}:
            raise unprocessable(f"The payment {payment_id} can no longer be updated.")
        for attr, value in changes.items():
            setattr(payment, attr, value)
        return payment

    def is_cancelable(self, payment: Payment) -> bool:
        if payment.status in {OPEN, AUTHORIZED}:
            return not payment.capture_ids
        # A SEPA debit can be stopped until the bank collects it.
        return payment.status == PENDING and payment.method == "directdebit"

    def cancel_payment(self, payment_id: str) -> Payment:
        payment = self.payment(payment_id)
        if not self.is_cancelable(payment):
            raise unprocessable(
                f"The payment {payment_id} cannot be canceled (status: {payment.status})."
            )
        self._transition(payment, Outcome(CANCELED))
        return payment

    def release_authorization(self, payment_id: str) -> Payment:
        payment = self.payment(payment_id)
        if payment.status != AUTHORIZED or payment.capture_ids:
            raise unprocessable(
                f"The payment {payment_id} is not authorized (status: {payment.status}), "
                "so there is no authorization to release."
            )
        self._transition(payment, Outcome(CANCELED))
        return payment

    def choose_at_checkout(self, payment_id: str, choice: str) -> Payment:
        """What the person picked on the hosted checkout page of an open payment."""
        payment = self.payment(payment_id)
        if payment.status != OPEN:
            raise MollieError(
                409, f"The payment {payment_id} is no longer open (status: {payment.status})."
            )
        if choice not in CHECKOUT_CHOICES:
            raise MollieError(400, f"Unknown checkout choice '{choice}'.")
        manual = payment.capture_mode == "manual"
        if choice == AUTHORIZED and not manual:
            raise MollieError(400, "Only payments with captureMode manual can be authorized.")
        if choice == PAID and manual:
            raise MollieError(400, "A manual-capture payment is authorized, not paid, at checkout.")
        outcome = Outcome(choice)
        if choice in {PAID, AUTHORIZED} and (reason := payment.magic_failure()) is not None:
            outcome = Outcome(FAILED, reason)
        self._transition(payment, outcome)
        return payment

    def force_status(self, payment_id: str, outcome: Outcome) -> Payment:
        """Operator override (`_links.changePaymentState`): any non-final payment, any status."""
        payment = self.payment(payment_id)
        if outcome.status not in FORCEABLE:
            raise MollieError(400, f"Unknown payment status '{outcome.status}'.", field="status")
        if payment.status in FINAL_STATUSES:
            raise MollieError(
                409, f"The payment {payment_id} is already final (status: {payment.status})."
            )
        if outcome.reversal is not None:
            payment.reversal = outcome.reversal
        if outcome.status == PENDING:
            payment.status = PENDING
            payment.pending_at = self.clock.now()
            payment.expires_at = None
            payment.settle_at = None
            payment.settle_outcome = None
            self._resolve_method(payment)
            return payment
        self._transition(payment, outcome)
        return payment

    def _resolve_method(self, payment: Payment) -> None:
        if payment.method is None:
            payment.method = "creditcard"
        if payment.details:
            return
        customer = self.customers.get(payment.customer_id or "")
        if payment.method == "creditcard":
            now = self.clock.now()
            payment.details = {
                "cardHolder": _holder(customer),
                "cardNumber": _CARD_NUMBER,
                "cardLabel": _CARD_LABEL,
                "cardExpiryDate": _card_expiry(now),
                "cardFingerprint": f"fp{payment.id[3:]}",
                "cardAudience": "consumer",
                "cardCountryCode": "NL",
                "cardSecurity": "normal",
            }
        elif payment.method == "paypal":
            payment.details = {
                "consumerName": _holder(customer),
                "consumerAccount": (customer.email if customer else None) or "paypal@example.com",
                "paypalReference": f"9AL{payment.id[3:]}",
            }
        else:
            payment.details = {
                "consumerName": _holder(customer),
                "consumerAccount": _IBAN,
                "consumerBic": _BIC,
            }

    def _transition(self, payment: Payment, outcome: Outcome, at: datetime | None = None) -> None:
        """Move a payment to a new status with the timestamps and side effects Mollie shows.

        `at` is the scheduled moment of a timed change (settlement, expiry), so timestamps
        show when it was due rather than when the ticker happened to notice it.
        """
        now = at or self.clock.now()
        status = outcome.status
        payment.status = status
        payment.expires_at = None
        payment.settle_at = None
        payment.settle_outcome = None
        if status in {PAID, AUTHORIZED, FAILED}:
            self._resolve_method(payment)
        if status == PAID:
            payment.paid_at = now
            payment.capture_before = None
            if payment.reversal is not None and payment.reverse_at is None:
                # Taken back later: stays in motion until its chargeback is created.
                payment.reverse_at = now + timedelta(seconds=payment.reversal.after_seconds)
                self.payments_in_motion[payment.id] = payment
        elif status == AUTHORIZED:
            payment.authorized_at = now
            payment.capture_before = now + timedelta(seconds=self.config.authorization_hold_seconds)
        elif status == FAILED:
            payment.failed_at = now
            reason = outcome.failure_reason
            if reason is None and payment.method == "creditcard":
                reason = "card_declined"
            if reason is not None:
                payment.details["failureReason"] = reason
            if payment.method == "directdebit":
                payment.details["bankReasonCode"] = "AM04"
                payment.details["bankReason"] = "Insufficient funds"
        elif status == CANCELED:
            payment.canceled_at = now
            payment.capture_before = None
        elif status == EXPIRED:
            payment.expired_at = now
            payment.capture_before = None
        if (
            status in {PAID, AUTHORIZED}
            and payment.sequence_type == "first"
            and payment.customer_id is not None
            and payment.mandate_id is None
        ):
            payment.mandate_id = self._mandate_from_first_payment(payment).id
        if status in NOTIFY_STATUSES:
            self._notify(payment)

    # ---------------------------------------------------------------- scheduling

    def next_due(self) -> datetime | None:
        """The earliest moment at which something changes without anyone acting."""
        self._forget_settled()
        moments: list[datetime] = []
        for payment in self.payments_in_motion.values():
            if payment.status == OPEN and payment.expires_at is not None:
                moments.append(payment.expires_at)
            elif payment.status == PENDING and payment.settle_at is not None:
                moments.append(payment.settle_at)
            elif (
                payment.status == AUTHORIZED
                and payment.capture_before is not None
                and not payment.capture_ids
            ):
                moments.append(payment.capture_before)
            elif payment.status == PAID and payment.reverse_at is not None:
                moments.append(payment.reverse_at)
        moments.extend(
            c.settle_at
            for c in self.captures_in_motion.values()
            if c.status == "pending" and c.settle_at
        )
        moments.extend(
            r.settle_at
            for r in self.refunds_in_motion.values()
            if r.status in _REFUND_UNSETTLED and r.settle_at
        )
        return min(moments, default=None)

    def process_due(self, now: datetime) -> None:
        """Apply every scheduled change whose moment has come."""
        self._forget_settled()
        for capture in list(self.captures_in_motion.values()):
            if capture.status == "pending" and capture.settle_at and capture.settle_at <= now:
                self._settle_capture(capture)
        for payment in list(self.payments_in_motion.values()):
            if payment.status == OPEN and payment.expires_at and payment.expires_at <= now:
                self._transition(payment, Outcome(EXPIRED), payment.expires_at)
            elif payment.status == PENDING and payment.settle_at and payment.settle_at <= now:
                outcome = payment.settle_outcome or Outcome(PAID)
                self._transition(payment, outcome, payment.settle_at)
            elif (
                payment.status == AUTHORIZED
                and payment.capture_before
                and payment.capture_before <= now
                and not payment.capture_ids
            ):
                self._transition(payment, Outcome(EXPIRED), payment.capture_before)
            elif payment.status == PAID and payment.reverse_at and payment.reverse_at <= now:
                self._reverse(payment)
        for refund in list(self.refunds_in_motion.values()):
            if refund.status in _REFUND_UNSETTLED and refund.settle_at and refund.settle_at <= now:
                refund.status = "refunded"
                refund.settle_at = None
                self._notify(self.payments[refund.payment_id])

    def _reverse(self, payment: Payment) -> None:
        """The bank takes a paid charge back: a chargeback of what is left to dispute, dated
        at the scheduled moment, announced through the payment's webhook."""
        at, reversal = payment.reverse_at, payment.reversal
        payment.reverse_at = None
        assert reversal is not None
        amount = self.amount_disputable(payment)
        if amount.minor <= 0:
            return  # already charged back in full (an operator's chargeback came first)
        reason = {"code": reversal.reason_code, "description": reversal.description}
        self._add_chargeback(payment, amount, reason, at)

    def _forget_settled(self) -> None:
        """Drop the records nothing is scheduled for any more: a payment leaves open,
        pending and authorized only for a final status (a paid one only once its scheduled
        reversal happened); a capture and a refund settle once."""
        for key in [
            k
            for k, p in self.payments_in_motion.items()
            if p.status not in _UNSETTLED and p.reverse_at is None
        ]:
            del self.payments_in_motion[key]
        for key in [k for k, c in self.captures_in_motion.items() if c.status != "pending"]:
            del self.captures_in_motion[key]
        for key in [
            k for k, r in self.refunds_in_motion.items() if r.status not in _REFUND_UNSETTLED
        ]:
            del self.refunds_in_motion[key]


_UNSETTLED = frozenset({OPEN, PENDING, AUTHORIZED})
_REFUND_UNSETTLED = frozenset({"pending", "processing"})


_CARD_DETAIL_KEYS = ("cardHolder", "cardNumber", "cardLabel", "cardExpiryDate")
