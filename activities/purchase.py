"""Activities of the InitialPurchase workflow: thin adapters over the Cleeng and Mollie clients.

Each money-moving call is idempotent by business identity: Mollie writes carry an
Idempotency-Key built from the workflow id and the step, and look for an earlier result before
writing; Cleeng writes look for an earlier record first, since Cleeng has no idempotency keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import service_errors_as_application_errors
from clients.cleeng import CleengClient
from clients.errors import ServiceError
from clients.mollie import (
    OPERATION_METADATA_KEY,
    GatewayPayment,
    MollieGateway,
    money_to_mollie,
)
from domain.purchase import (
    CheckoutPaymentInput,
    EnsureCustomerInput,
    GatewayPaymentView,
    OrderSnapshot,
    RecordDetailsInput,
    RecordPaymentInput,
    RefundInput,
    RefundView,
)
from domain.tokens import MollieToken

ORDER_NOT_FOUND = "OrderNotFound"
CLEENG_REFUSED = "CleengRefusedPayment"


def payment_view(payment: GatewayPayment) -> GatewayPaymentView:
    return GatewayPaymentView(
        payment_id=payment.id,
        status=payment.status,
        amount=payment.amount,
        checkout_url=payment.checkout_url,
        customer_id=payment.customer_id,
        mandate_id=payment.mandate_id,
        failure_reason=payment.failure_reason,
        method=payment.method,
    )


def card_params(details: Mapping[str, Any]) -> dict[str, str]:
    """Cleeng's paymentMethodSpecificParams from a Mollie mandate's details."""
    mapping = {
        "variant": details.get("cardLabel"),
        "lastCardFourDigits": details.get("cardNumber"),
        "holderName": details.get("cardHolder") or details.get("consumerName"),
        "cardExpirationDate": details.get("cardExpiryDate"),
    }
    return {key: str(value) for key, value in mapping.items() if value}


class PurchaseActivities:
    """Cleeng and Mollie calls of an initial purchase; clients come in through the constructor."""

    def __init__(
        self,
        cleeng: CleengClient,
        mollie: MollieGateway,
        webhook_url_for: Callable[[str], str],
    ) -> None:
        self._cleeng = cleeng
        self._mollie = mollie
        self._webhook_url_for = webhook_url_for

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

    @activity.defn
    async def ensure_mollie_customer(self, request: EnsureCustomerInput) -> str:
        with service_errors_as_application_errors():
            existing = await self._mollie.find_customer(request.cleeng_customer_id)
            if existing is not None:
                return existing
            return await self._mollie.create_customer(
                cleeng_customer_id=request.cleeng_customer_id,
                email=request.email,
                idempotency_key=request.idempotency_key,
            )

    @activity.defn
    async def create_checkout_payment(self, request: CheckoutPaymentInput) -> GatewayPaymentView:
        """Create the `first` payment once; a retry adopts the payment already created."""
        with service_errors_as_application_errors():
            earlier = await self._mollie.find_customer_payment(
                request.mollie_customer_id, request.operation_key
            )
            if earlier is not None:
                activity.logger.info(
                    "adopting payment %s for %s", earlier.id, request.operation_key
                )
                return payment_view(earlier)
            body: dict[str, Any] = {
                "amount": money_to_mollie(request.amount),
                "description": request.description,
                "redirectUrl": request.redirect_url,
                "webhookUrl": self._webhook_url_for(request.workflow_id),
                "sequenceType": "first",
                "customerId": request.mollie_customer_id,
                "metadata": {
                    "orderId": request.order_id,
                    "workflowId": request.workflow_id,
                    OPERATION_METADATA_KEY: request.operation_key,
                },
            }
            if request.method:
                body["method"] = request.method
            payment = await self._mollie.create_payment(body, request.operation_key)
        return payment_view(payment)

    @activity.defn
    async def fetch_payment(self, payment_id: str) -> GatewayPaymentView:
        with service_errors_as_application_errors():
            return payment_view(await self._mollie.get_payment(payment_id))

    @activity.defn
    async def record_payment_details(self, request: RecordDetailsInput) -> str:
        """Store the Mollie customer + mandate in Cleeng as payment details (once)."""
        token = MollieToken(customer_id=request.mollie_customer_id, mandate_id=request.mandate_id)
        encoded = token.encode()
        with service_errors_as_application_errors():
            for details in await self._cleeng.list_customer_payment_details(
                request.cleeng_customer_id
            ):
                if details.token == encoded:
                    return details.id
            mandate = await self._mollie.get_mandate(request.mollie_customer_id, request.mandate_id)
            fields: dict[str, Any] = {
                "customerId": request.cleeng_customer_id,
                "token": encoded,
                "paymentMethodSpecificParams": card_params(mandate.details),
                "active": True,
            }
            if request.payment_method_id:
                fields["paymentMethodId"] = request.payment_method_id
            created = await self._cleeng.create_payment_details(fields)
        return created.id

    @activity.defn
    async def record_cleeng_payment(self, request: RecordPaymentInput) -> str:
        """POST the outcome to Cleeng once; an earlier identical record is adopted."""
        try:
            earlier = await self._cleeng.find_payments_for_order(request.order_id)
            for payment in earlier or []:
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
            if error.status in (400, 403, 404, 422):
                raise ApplicationError(
                    f"Cleeng refused to record payment {request.external_payment_id} "
                    f"as {request.status} for order {request.order_id}: {error.message}",
                    type=CLEENG_REFUSED,
                    non_retryable=True,
                ) from error
            with service_errors_as_application_errors():
                raise
        return created.id

    @activity.defn
    async def refund_payment(self, request: RefundInput) -> RefundView:
        with service_errors_as_application_errors():
            refund = await self._mollie.create_refund(
                request.payment_id,
                amount=request.amount,
                description=request.description,
                metadata=request.metadata,
                idempotency_key=request.idempotency_key,
            )
        return RefundView(refund_id=refund.id, status=refund.status)
