"""Mollie activities: thin adapters over the gateway, shared by every workflow.

Each money-moving call is idempotent by business identity: it carries an Idempotency-Key built
from the workflow id and the step, and first looks for a payment already made for that
operation (metadata match), because Mollie forgets keys after an hour.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import (
    CYCLE_CHARGED_BEFORE,
    REFUND_REFUSED,
    service_errors_as_application_errors,
)
from clients import cleeng_contract as contract
from clients.errors import ServiceError
from clients.mollie import (
    OPERATION_METADATA_KEY,
    WORKFLOW_METADATA_KEY,
    GatewayChargeback,
    GatewayPayment,
    GatewayPaymentEvent,
    GatewayRefund,
    MollieGateway,
    money_to_mollie,
)
from domain.operations import (
    CaptureInput,
    CheckoutPaymentInput,
    EnsureCustomerInput,
    GatewayPaymentView,
    MandateRef,
    MandateView,
    MolliePaymentIds,
    MolliePaymentRef,
    PaymentOrderInput,
    RecurringChargeInput,
    RefundInput,
    RefundView,
    ReleaseInput,
)
from domain.reconciliation import (
    ConnectorPayment,
    MollieRefundSeen,
    PaymentIdsInWindow,
    PaymentsInWindow,
    PaymentsWindowRequest,
)
from domain.refunds import (
    ChargebackInput,
    ChargebackShare,
    RefundAmountSeen,
    RefundLookup,
    RefundRecordContext,
    chargeback_share,
)

# Payment statuses that mean money moved, is moving or is held (or may still be, for `open`).
_LIVE = frozenset({"open", "pending", "authorized", "paid"})

# A capture in one of these states has taken (or is taking) the held money.
_CAPTURE_UNDER_WAY = frozenset({"pending", "succeeded"})

# Metadata key naming the workflow run that asked for a refund: a later run of the same
# workflow id (after retention) can tell a refund it inherits from one it made itself.
RUN_METADATA_KEY = "workflowRunId"


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
        order_id=str(payment.metadata["orderId"]) if payment.metadata.get("orderId") else None,
    )


def _refund_view(refund: GatewayRefund) -> RefundView:
    run = refund.metadata.get(RUN_METADATA_KEY)
    return RefundView(
        refund_id=refund.id, status=refund.status, made_by_run=str(run) if run else None
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


def _chargeback_input(payment_id: str, chargeback: GatewayChargeback) -> ChargebackInput:
    return ChargebackInput(
        mollie_payment_id=payment_id,
        chargeback_id=chargeback.id,
        amount=chargeback.amount,
        reason=chargeback.reason,
        reversed_at=chargeback.reversed_at,
    )


def _connector_payment(payment: GatewayPayment) -> ConnectorPayment | None:
    """The payment as reconciliation checks it, or None when the connector did not make it
    (no workflow in its metadata)."""
    owner = payment.metadata.get(WORKFLOW_METADATA_KEY)
    if not owner:
        return None
    order_id = payment.metadata.get("orderId")
    return ConnectorPayment(
        payment_id=payment.id,
        status=payment.status,
        amount=payment.amount,
        created_at=payment.created_at or "",
        owner_workflow_id=str(owner),
        order_id=str(order_id) if order_id else None,
        refunded=payment.amount_refunded,
        charged_back=payment.amount_charged_back,
    )


def _payments_named(events: list[GatewayPaymentEvent], covered: bool) -> PaymentIdsInWindow:
    return PaymentIdsInWindow(
        payment_ids=list(dict.fromkeys(event.payment_id for event in events)),
        items=len(events),
        window_covered=covered,
    )


class MollieActivities:
    """Every Mollie call the workflows make; the gateway comes in through the constructor."""

    def __init__(self, gateway: MollieGateway, webhook_url_for: Callable[[str], str]) -> None:
        self._mollie = gateway
        self._webhook_url_for = webhook_url_for

    async def _adopt_or_create(
        self, customer_id: str, operation_key: str, body: dict[str, Any]
    ) -> GatewayPaymentView:
        earlier = await self._mollie.find_customer_payment(customer_id, operation_key)
        if earlier is not None:
            activity.logger.info("adopting payment %s for %s", earlier.id, operation_key)
            return payment_view(earlier)
        return payment_view(await self._mollie.create_payment(body, operation_key))

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
        """The `first` payment of a purchase: the shopper pays on Mollie's checkout page."""
        body: dict[str, Any] = {
            "amount": money_to_mollie(request.amount),
            "description": request.description,
            "redirectUrl": request.redirect_url,
            "webhookUrl": self._webhook_url_for(request.workflow_id),
            "sequenceType": "first",
            "customerId": request.mollie_customer_id,
            "metadata": {
                WORKFLOW_METADATA_KEY: request.workflow_id,
                OPERATION_METADATA_KEY: request.operation_key,
            },
        }
        if request.order_id:
            body["metadata"]["orderId"] = request.order_id
        if request.method:
            body["method"] = request.method
        with service_errors_as_application_errors():
            return await self._adopt_or_create(
                request.mollie_customer_id, request.operation_key, body
            )

    @activity.defn
    async def create_recurring_payment(self, request: RecurringChargeInput) -> GatewayPaymentView:
        """Charge (or, with manual capture, authorise) a mandate with no customer present."""
        body: dict[str, Any] = {
            "amount": money_to_mollie(request.amount),
            "description": request.description,
            "webhookUrl": self._webhook_url_for(request.workflow_id),
            "sequenceType": "recurring",
            "customerId": request.mollie_customer_id,
            "mandateId": request.mandate_id,
            "metadata": {
                **request.metadata,
                WORKFLOW_METADATA_KEY: request.workflow_id,
                OPERATION_METADATA_KEY: request.operation_key,
            },
        }
        if request.manual_capture:
            body["captureMode"] = "manual"
        with service_errors_as_application_errors():
            made = await self._mollie.workflow_payments(
                request.mollie_customer_id, request.workflow_id
            )
            for earlier in made:
                if earlier.metadata.get(OPERATION_METADATA_KEY) == request.operation_key:
                    activity.logger.info(
                        "adopting payment %s for %s", earlier.id, request.operation_key
                    )
                    return payment_view(earlier)
            live = [p for p in made if p.status in _LIVE and p.id not in request.known_payment_ids]
            if live:
                raise ApplicationError(
                    f"billing cycle {request.workflow_id} already has Mollie payment "
                    f"{live[0].id} ({live[0].status}) from an earlier run: not charging again; "
                    "record that payment's outcome in Cleeng (operator runbook)",
                    type=CYCLE_CHARGED_BEFORE,
                    non_retryable=True,
                )
            return payment_view(await self._mollie.create_payment(body, request.operation_key))

    @activity.defn
    async def fetch_payment(self, request: MolliePaymentRef | str) -> GatewayPaymentView:
        payment_id = request if isinstance(request, str) else request.payment_id
        with service_errors_as_application_errors():
            return payment_view(await self._mollie.get_payment(payment_id))

    @activity.defn
    async def point_payment_at_order(self, request: PaymentOrderInput) -> GatewayPaymentView:
        """Make the payment's metadata name the Cleeng order that records it (refunds and
        chargebacks find the order there); the rest of the metadata stays as it was."""
        with service_errors_as_application_errors():
            payment = await self._mollie.get_payment(request.payment_id)
            if str(payment.metadata.get("orderId")) != request.order_id:
                payment = await self._mollie.update_payment_metadata(
                    request.payment_id,
                    {**payment.metadata, "orderId": request.order_id},
                    request.idempotency_key,
                )
        return payment_view(payment)

    @activity.defn
    async def describe_mandate(self, ref: MandateRef) -> MandateView:
        """The mandate's status and card details."""
        with service_errors_as_application_errors():
            mandate = await self._mollie.get_mandate(ref.customer_id, ref.mandate_id)
        return MandateView(
            mandate_id=mandate.id,
            customer_id=ref.customer_id,
            status=mandate.status,
            method=mandate.method,
            card_params=card_params(mandate.details),
        )

    @activity.defn
    async def capture_payment(self, request: CaptureInput) -> GatewayPaymentView:
        """Capture an authorisation once; a capture already made is not repeated, even after
        Mollie forgot the idempotency key (an hour): one still pending or succeeded counts."""
        with service_errors_as_application_errors():
            payment = await self._mollie.get_payment(request.payment_id)
            if payment.status == "authorized" and not any(
                status in _CAPTURE_UNDER_WAY
                for status in await self._mollie.capture_statuses(request.payment_id)
            ):
                await self._mollie.create_capture(
                    request.payment_id,
                    description=request.description,
                    idempotency_key=request.operation_key,
                )
                payment = await self._mollie.get_payment(request.payment_id)
        return payment_view(payment)

    @activity.defn
    async def release_authorization(self, request: ReleaseInput) -> GatewayPaymentView:
        """Release an open authorisation; anything no longer authorised is left as it is."""
        with service_errors_as_application_errors():
            payment = await self._mollie.get_payment(request.payment_id)
            if payment.status == "authorized":
                await self._mollie.release_authorization(request.payment_id, request.operation_key)
                payment = await self._mollie.get_payment(request.payment_id)
        return payment_view(payment)

    async def _refund_for(self, payment_id: str, operation_key: str) -> RefundView | None:
        for refund in await self._mollie.list_refunds(payment_id):
            if refund.metadata.get(OPERATION_METADATA_KEY) == operation_key:
                return _refund_view(refund)
        return None

    @activity.defn
    async def refund_payment(self, request: RefundInput) -> RefundView:
        """Refund once per operation key: an earlier refund for it is adopted, and Mollie's
        "duplicate refund" 409 resolves to that refund. Over-refunds are refused for good."""
        metadata = {**request.metadata, OPERATION_METADATA_KEY: request.idempotency_key}
        try:
            earlier = await self._refund_for(request.payment_id, request.idempotency_key)
            if earlier is not None:
                return earlier
            refund = await self._mollie.create_refund(
                request.payment_id,
                amount=request.amount,
                description=request.description,
                metadata=metadata,
                idempotency_key=request.idempotency_key,
            )
        except ServiceError as error:
            if error.status == 409:
                found = await self._refund_for(request.payment_id, request.idempotency_key)
                if found is not None:
                    return found
            if error.status in (400, 404, 422):
                raise ApplicationError(
                    f"Mollie refused to refund {request.amount} of {request.payment_id}: "
                    f"{error.message}",
                    type=REFUND_REFUSED,
                    non_retryable=True,
                ) from error
            with service_errors_as_application_errors():
                raise
        return _refund_view(refund)

    @activity.defn
    async def fetch_refund(self, lookup: RefundLookup) -> RefundView:
        with service_errors_as_application_errors():
            refund = await self._mollie.get_refund(lookup.payment_id, lookup.refund_id)
        return _refund_view(refund)

    @activity.defn
    async def refund_context(self, request: MolliePaymentRef | str) -> RefundRecordContext | None:
        """The Cleeng order and payment operation of a payment the connector made, read from
        the metadata it gave the payment; None for a payment that carries no order."""
        payment_id = request if isinstance(request, str) else request.payment_id
        with service_errors_as_application_errors():
            payment = await self._mollie.get_payment(payment_id)
        order_id = payment.metadata.get("orderId")
        if not order_id:
            return None
        renewal = bool(payment.metadata.get("subscriptionId"))
        return RefundRecordContext(
            order_id=str(order_id),
            payment_operation=(
                contract.PAYMENT_OPERATION_RECURRING
                if renewal
                else contract.PAYMENT_OPERATION_INITIAL
            ),
        )

    @activity.defn
    async def revoke_mandate(self, ref: MandateRef) -> None:
        """Revoke the mandate; one already revoked counts as done."""
        with service_errors_as_application_errors():
            await self._mollie.revoke_mandate(ref.customer_id, ref.mandate_id)

    @activity.defn
    async def list_chargebacks(self, request: MolliePaymentRef | str) -> list[ChargebackInput]:
        payment_id = request if isinstance(request, str) else request.payment_id
        try:
            chargebacks = await self._mollie.list_chargebacks(payment_id)
        except ServiceError as error:
            if error.status == 404:
                return []  # an unknown (or forged) payment id has no chargebacks
            with service_errors_as_application_errors():
                raise
        return [_chargeback_input(payment_id, chargeback) for chargeback in chargebacks]

    @activity.defn
    async def chargeback_share(self, chargeback: ChargebackInput) -> ChargebackShare:
        """How much of the chargeback Cleeng can still take, from Mollie's own ledger: the
        payment ("get-payment") less its refunds that did not fail or get cancelled
        ("list-refunds") and what its earlier chargebacks took ("list-payment-chargebacks", in
        `createdAt` order). Never from a guess of what Cleeng holds: Cleeng cannot be read."""
        payment_id = chargeback.mollie_payment_id
        with service_errors_as_application_errors():
            payment = await self._mollie.get_payment(payment_id)
            refunds = await self._mollie.list_refunds(payment_id)
            listed = await self._mollie.list_chargebacks(payment_id)
        ordered = sorted(
            enumerate(listed),
            key=lambda item: (
                datetime.fromisoformat(item[1].created_at).timestamp()
                if item[1].created_at
                else float("inf"),
                item[0],
            ),
        )
        return chargeback_share(
            chargeback,
            paid=payment.amount,
            refunds=[RefundAmountSeen(status=r.status, amount=r.amount) for r in refunds],
            chargebacks=[_chargeback_input(payment_id, c) for _, c in ordered],
        )

    @activity.defn
    async def payment_metadata(self, request: MolliePaymentRef | str) -> dict[str, str]:
        """The payment's metadata (which order, subscription and workflow it belongs to)."""
        payment_id = request if isinstance(request, str) else request.payment_id
        with service_errors_as_application_errors():
            payment = await self._mollie.get_payment(payment_id)
        return {str(key): str(value) for key, value in payment.metadata.items()}

    @activity.defn
    async def connector_payments_since(self, request: PaymentsWindowRequest) -> PaymentsInWindow:
        """The payments the connector made (metadata names a workflow) since `request.since`,
        newest first, read from "list-payments"."""
        with service_errors_as_application_errors():
            payments, covered = await self._mollie.payments_created_since(
                datetime.fromisoformat(request.since), max_pages=request.max_pages
            )
        mine = [
            ConnectorPayment(
                payment_id=payment.id,
                status=payment.status,
                amount=payment.amount,
                created_at=payment.created_at or "",
                owner_workflow_id=str(payment.metadata[WORKFLOW_METADATA_KEY]),
                order_id=(
                    str(payment.metadata["orderId"]) if payment.metadata.get("orderId") else None
                ),
                refunded=payment.amount_refunded,
                charged_back=payment.amount_charged_back,
            )
            for payment in payments
            if payment.metadata.get(WORKFLOW_METADATA_KEY)
        ]
        return PaymentsInWindow(
            payments=mine, others_skipped=len(payments) - len(mine), window_covered=covered
        )

    @activity.defn
    async def refunds_seen(self, request: MolliePaymentRef | str) -> list[MollieRefundSeen]:
        """Every refund of the payment, with the connector's operation key where it made it."""
        payment_id = request if isinstance(request, str) else request.payment_id
        with service_errors_as_application_errors():
            refunds = await self._mollie.list_refunds(payment_id)
        return [
            MollieRefundSeen(
                refund_id=refund.id,
                status=refund.status,
                amount=refund.amount,
                operation_key=(
                    str(refund.metadata[OPERATION_METADATA_KEY])
                    if refund.metadata.get(OPERATION_METADATA_KEY)
                    else None
                ),
            )
            for refund in refunds
        ]

    @activity.defn
    async def payments_refunded_since(self, request: PaymentsWindowRequest) -> PaymentIdsInWindow:
        """The payments of the refunds created since `request.since`, whoever made them and
        however old the payment, read from "list-all-refunds" newest first."""
        with service_errors_as_application_errors():
            refunds, covered = await self._mollie.refunds_created_since(
                datetime.fromisoformat(request.since), max_pages=request.max_pages
            )
        return _payments_named(refunds, covered)

    @activity.defn
    async def payments_charged_back_since(
        self, request: PaymentsWindowRequest
    ) -> PaymentIdsInWindow:
        """The payments of the chargebacks created since `request.since`, however old the
        payment, read from "list-all-chargebacks" newest first."""
        with service_errors_as_application_errors():
            chargebacks, covered = await self._mollie.chargebacks_created_since(
                datetime.fromisoformat(request.since), max_pages=request.max_pages
            )
        return _payments_named(chargebacks, covered)

    @activity.defn
    async def connector_payments(
        self, request: MolliePaymentIds | list[str]
    ) -> list[ConnectorPayment]:
        """Each payment the connector made among `payment_ids`, read now ("get-payment");
        one Mollie does not know, or the connector did not make, is left out."""
        payment_ids = request if isinstance(request, list) else request.payment_ids
        found: list[ConnectorPayment] = []
        for payment_id in payment_ids:
            try:
                payment = await self._mollie.get_payment(payment_id)
            except ServiceError as error:
                if error.status == 404:
                    continue
                with service_errors_as_application_errors():
                    raise
            mine = _connector_payment(payment)
            if mine is not None:
                found.append(mine)
        return found
