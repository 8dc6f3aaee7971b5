"""Cleeng activities: thin adapters over the Cleeng client, shared by every workflow.

Cleeng has no idempotency keys, so each write first looks for what an earlier attempt may
already have recorded (a payment for the order, details with the same token) and adopts it.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import (
    CLEENG_REFUSED,
    ORDER_NOT_FOUND,
    service_errors_as_application_errors,
)
from clients import cleeng_contract as contract
from clients.cleeng import CleengClient, CleengOrder, CleengPayment, parse_cleeng_time
from clients.errors import ServiceError
from domain.money import Money
from domain.operations import (
    CycleCheckInput,
    OrderSnapshot,
    RecordDetailsInput,
    RecordPaymentInput,
    RenewalOrderInput,
    UpdatePaymentInput,
)
from domain.payment_details import CancelledAuthorisation
from domain.refunds import CleengPaymentState, CleengRefundInput

# Cleeng answers that mean "never, whatever you retry" for a payment record.
_REFUSALS = (400, 403, 404, 422)


def order_snapshot(order: CleengOrder) -> OrderSnapshot:
    with service_errors_as_application_errors():
        amount = order.amount()
    return OrderSnapshot(
        order_id=order.id,
        customer_id=order.customer_id,
        customer_email=order.customer_email,
        offer_id=order.offer_id,
        amount=amount,
        country=order.country,
        payment_method_id=order.payment_method_id,
    )


def _payment_state(payment: CleengPayment) -> CleengPaymentState:
    refunded = 0
    if payment.refunded_amount and payment.currency:
        refunded = Money.from_decimal(payment.refunded_amount, payment.currency).minor
    return CleengPaymentState(
        cleeng_payment_id=payment.id,
        payment_operation=payment.payment_operation,
        refunded_minor=refunded,
        currency=payment.currency,
    )


def _refused(what: str, error: ServiceError) -> ApplicationError:
    return ApplicationError(
        f"Cleeng refused to {what}: {error.message}", type=CLEENG_REFUSED, non_retryable=True
    )


class CleengActivities:
    """Every Cleeng call the workflows make; the client comes in through the constructor."""

    def __init__(self, cleeng: CleengClient, payment_method_id: str) -> None:
        self._cleeng = cleeng
        self._payment_method_id = payment_method_id

    @activity.defn
    async def load_order(self, order_id: str) -> OrderSnapshot:
        """The order as Cleeng has it: amount and currency come from here, never the caller."""
        try:
            order = await self._cleeng.get_order(order_id)
        except ServiceError as error:
            if error.status == 404:
                raise ApplicationError(
                    f"Cleeng has no order {order_id}", type=ORDER_NOT_FOUND, non_retryable=True
                ) from error
            with service_errors_as_application_errors():
                raise
        return order_snapshot(order)

    @activity.defn
    async def create_renewal_order(self, request: RenewalOrderInput) -> OrderSnapshot:
        """A recurring-payment order for one renewal attempt; Cleeng prices it."""
        fields: dict[str, Any] = {
            "customerId": request.customer_id,
            "offerId": request.offer_id,
            "paymentMethodId": request.payment_method_id or self._payment_method_id,
            "paymentOperation": contract.PAYMENT_OPERATION_RECURRING,
            "subscriptionId": request.subscription_id,
        }
        if request.currency:
            fields["currency"] = request.currency
        if request.country:
            fields["country"] = request.country
        try:
            order = await self._cleeng.create_order(fields)
        except ServiceError as error:
            if error.status in _REFUSALS:
                raise _refused(
                    f"create a renewal order for {request.subscription_id}", error
                ) from error
            with service_errors_as_application_errors():
                raise
        return order_snapshot(order)

    @activity.defn
    async def cycle_already_paid(self, request: CycleCheckInput) -> bool:
        """Has the subscription already moved past this cycle's due date (paid elsewhere)?"""
        with service_errors_as_application_errors():
            subscription = await self._cleeng.get_subscription(request.subscription_id)
        if subscription.date_to is None:
            return False
        return subscription.date_to > parse_cleeng_time(request.expiration_date)

    @activity.defn
    async def record_payment_details(self, request: RecordDetailsInput) -> str:
        """Store the recurring token in Cleeng as payment details (once)."""
        with service_errors_as_application_errors():
            for details in await self._cleeng.list_customer_payment_details(
                request.cleeng_customer_id
            ):
                if details.token == request.token:
                    return details.id
            created = await self._cleeng.create_payment_details(
                {
                    "customerId": request.cleeng_customer_id,
                    "token": request.token,
                    "paymentMethodId": request.payment_method_id or self._payment_method_id,
                    "paymentMethodSpecificParams": request.card_params,
                    "active": True,
                }
            )
        return created.id

    @activity.defn
    async def record_payment(self, request: RecordPaymentInput) -> str:
        """POST the outcome to Cleeng once; an earlier identical record is adopted."""
        try:
            for payment in await self._cleeng.find_payments_for_order(request.order_id) or []:
                if (
                    payment.external_payment_id == request.external_payment_id
                    and payment.status == request.status
                ):
                    return payment.id
            fields: dict[str, Any] = {
                "orderId": request.order_id,
                "status": request.status,
                "paymentOperation": request.payment_operation,
                "externalPaymentId": request.external_payment_id,
            }
            if request.payment_details_id:
                fields["paymentDetailsId"] = request.payment_details_id
            if request.rejected_reason:
                fields["rejectedReason"] = request.rejected_reason
            if request.subscription_id:
                fields["subscriptionId"] = request.subscription_id
            created = await self._cleeng.create_payment(fields)
        except ServiceError as error:
            if error.status in _REFUSALS:
                raise _refused(
                    f"record payment {request.external_payment_id} as {request.status} "
                    f"for order {request.order_id}",
                    error,
                ) from error
            with service_errors_as_application_errors():
                raise
        return created.id

    @activity.defn
    async def update_payment(self, request: UpdatePaymentInput) -> str:
        """PATCH a recorded payment (captured / rejected); repeating it changes nothing."""
        fields: dict[str, Any] = {"status": request.status}
        if request.external_payment_id:
            fields["externalPaymentId"] = request.external_payment_id
        if request.rejected_reason:
            fields["rejectedReason"] = request.rejected_reason
        try:
            updated = await self._cleeng.update_payment(request.payment_id, fields)
        except ServiceError as error:
            if error.status in _REFUSALS:
                raise _refused(
                    f"mark payment {request.payment_id} {request.status}", error
                ) from error
            with service_errors_as_application_errors():
                raise
        return updated.status

    @activity.defn
    async def cancel_payment(self, payment_id: str) -> str:
        with service_errors_as_application_errors():
            return (await self._cleeng.cancel_payment(payment_id)).status

    @activity.defn
    async def authorised_payments(self, payment_details_id: str) -> list[CancelledAuthorisation]:
        """The authorised, not yet captured payments on some payment details."""
        with service_errors_as_application_errors():
            payments = await self._cleeng.authorised_payments(payment_details_id)
        return [
            CancelledAuthorisation(cleeng_payment_id=p.id, mollie_payment_id=p.external_payment_id)
            for p in payments
        ]

    @activity.defn
    async def delete_payment_details(self, payment_details_id: str) -> None:
        with service_errors_as_application_errors():
            await self._cleeng.delete_payment_details(payment_details_id)

    @activity.defn
    async def find_payment(self, lookup: list[str]) -> CleengPaymentState | None:
        """[order id, Cleeng payment id or Mollie payment id] → the recorded payment."""
        order_id, wanted = lookup
        with service_errors_as_application_errors():
            payments = await self._cleeng.find_payments_for_order(order_id) or []
        for payment in payments:
            if wanted in (payment.id, payment.external_payment_id):
                return _payment_state(payment)
        return None

    @activity.defn
    async def record_refund(self, request: CleengRefundInput) -> str:
        """PATCH the payment `refunded` once: Cleeng adds refunded amounts up, so a retry whose
        earlier PATCH landed (reply lost) must not add the amount again."""
        if request.order_id:
            current = await self.find_payment([request.order_id, request.cleeng_payment_id])
            target = request.already_refunded_minor + request.amount.minor
            if current is not None and current.refunded_minor >= target:
                return contract.PAYMENT_STATUS_REFUNDED
        fields: dict[str, Any] = {
            "status": contract.PAYMENT_STATUS_REFUNDED,
            contract.REFUNDED_AMOUNT_KEY: float(request.amount.to_decimal()),
            contract.REFUND_TYPE_KEY: request.refund_type,
        }
        if request.reason:
            fields["refundedReason"] = request.reason
        if request.order_id:
            fields["orderId"] = request.order_id
        if request.payment_operation:
            fields["paymentOperation"] = request.payment_operation
        try:
            updated = await self._cleeng.update_payment(request.cleeng_payment_id, fields)
        except ServiceError as error:
            if error.status in _REFUSALS:
                raise _refused(
                    f"mark payment {request.cleeng_payment_id} refunded", error
                ) from error
            with service_errors_as_application_errors():
                raise
        return updated.status

    @activity.defn
    async def terminate_subscription(self, subscription_id: str) -> str:
        with service_errors_as_application_errors():
            subscription = await self._cleeng.update_subscription(
                subscription_id, {"status": "terminated"}
            )
        return subscription.status or "terminated"
