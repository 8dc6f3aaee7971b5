"""Cleeng activities: thin adapters over the Cleeng client, shared by every workflow.

Cleeng has no idempotency keys and Core API 3.1 documents no way to list an order's payments,
so a write is never preceded by a look-up: workflow state is the record of what was written,
and a reply lost after Cleeng committed can leave one duplicate record (never a second charge;
see docs/cleeng-contract.md). Recording an outcome after money moved is never given up: only
Cleeng's documented refusal (the order expired) stops it; anything else retries, visibly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import (
    CLEENG_REFUSED,
    ORDER_EXPIRED,
    ORDER_NOT_FOUND,
    RECORD_NOT_ACCEPTED,
    service_errors_as_application_errors,
    to_application_error,
)
from clients import cleeng_contract as contract
from clients.cleeng import (
    CleengClient,
    CleengOrder,
    parse_cleeng_time,
    payment_details_fields,
)
from clients.errors import FailureKind, ServiceError
from domain.operations import (
    CleengOrderRef,
    CleengPaymentRef,
    CycleCheckInput,
    OrderSnapshot,
    PaymentDetailsRef,
    PrepareRenewalInput,
    RecordDetailsInput,
    RecordPaymentInput,
    RenewalOrderInput,
    RenewalPreparation,
    SubscriptionRef,
    UpdatePaymentInput,
)
from domain.payment_details import CancelledAuthorisation
from domain.refunds import CLEENG_RECORD_UNKNOWN, CleengRefundInput


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


@contextmanager
def cleeng_refusals_are_final(what: str) -> Iterator[None]:
    """For a request with no money behind it: a refusal (4xx, or a request the client will
    not send) ends the step for good as `CleengRefusedPayment`; the rest is retried."""
    try:
        yield
    except ServiceError as error:
        if error.retryable:
            raise to_application_error(error) from error
        raise ApplicationError(
            f"Cleeng refused to {what}: {error.message}", type=CLEENG_REFUSED, non_retryable=True
        ) from error


@contextmanager
def records_are_never_given_up(what: str) -> Iterator[None]:
    """For a write that records money already moved (a capture, a refund, a chargeback): no
    refusal ends it. A 4xx here may be a rotated token, a contract mismatch a fix will cure, or
    the write having landed already; giving up would leave a paying customer unrecorded (and
    terminated by Cleeng's dunning). It is logged as an error and retried with the RECORD
    policy (capped backoff, no end), visible as a pending activity with its last failure, and
    counted in the worker's `temporal_activity_execution_failed` metric, until it lands."""
    try:
        yield
    except ServiceError as error:
        if error.retryable:
            raise to_application_error(error) from error
        activity.logger.error("Cleeng did not accept: %s: %s; retrying", what, error)
        raise ApplicationError(
            f"Cleeng did not accept: {what}: {error.message}. Recording money that moved is "
            "never given up: retrying until it lands or an operator resolves the cause",
            type=RECORD_NOT_ACCEPTED,
        ) from error


class CleengActivities:
    """Every Cleeng call the workflows make; the client comes in through the constructor."""

    def __init__(
        self,
        cleeng: CleengClient,
        payment_method_id: str,
        *,
        termination_call: str = contract.TERMINATE_BY_POST,
    ) -> None:
        self._cleeng = cleeng
        self._payment_method_id = payment_method_id
        self._termination_call = termination_call

    @activity.defn
    async def load_order(self, request: CleengOrderRef | str) -> OrderSnapshot:
        """The order as Cleeng has it: amount and currency come from here, never the caller."""
        order_id = request if isinstance(request, str) else request.order_id
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
        """A recurring-payment order for one renewal attempt; Cleeng prices it.

        A reply lost after Cleeng created the order makes the retry create a second one: the
        orphan is never paid and expires after 24 hours (docs/cleeng-contract.md)."""
        if not request.currency or not request.country:
            raise ApplicationError(
                f"renewal of subscription {request.subscription_id}: the webhook carries no "
                "currency or paymentCountry, which 'create-an-order' requires",
                type=CLEENG_REFUSED,
                non_retryable=True,
            )
        with cleeng_refusals_are_final(f"create a renewal order for {request.subscription_id}"):
            order = await self._cleeng.create_renewal_order(
                customer_id=request.customer_id,
                offer_id=request.offer_id,
                subscription_id=request.subscription_id,
                currency=request.currency,
                country=request.country,
                payment_method_id=request.payment_method_id or self._payment_method_id,
            )
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
    async def prepare_renewal(self, request: PrepareRenewalInput) -> RenewalPreparation:
        """`cycle_already_paid`, then (still unpaid) `create_renewal_order`, in one step: a
        renewal's history records one result instead of two."""
        if await self.cycle_already_paid(request.cycle):
            return RenewalPreparation(order=None)
        return RenewalPreparation(order=await self.create_renewal_order(request.order))

    @activity.defn
    async def record_payment_details(self, request: RecordDetailsInput) -> str:
        """Store the recurring token in Cleeng as active payment details."""
        with cleeng_refusals_are_final(
            f"store payment details for customer {request.cleeng_customer_id}"
        ):
            created = await self._cleeng.create_payment_details(
                customer_id=request.cleeng_customer_id,
                token=request.token,
                payment_method_id=request.payment_method_id or self._payment_method_id,
                card_params=request.card_params,
            )
        return created.id

    @activity.defn
    async def record_payment(self, request: RecordPaymentInput) -> str:
        """POST the outcome of a charge to Cleeng.

        Money may already have moved, so only Cleeng's documented refusal ends this for good:
        the order expired ("create-an-order": orders expire after 24 hours unless paid). Any
        other refusal is retried by Temporal and logged as an error for an operator, because
        it may be a contract mismatch that a fix will cure, or a record that already landed."""
        inline = request.inline_details
        try:
            created = await self._cleeng.create_payment(
                order_id=request.order_id,
                status=request.status,
                payment_operation=request.payment_operation,
                external_payment_id=request.external_payment_id,
                payment_details_id=request.payment_details_id,
                inline_details=(
                    payment_details_fields(
                        customer_id=inline.customer_id,
                        token=inline.token,
                        payment_method_id=inline.payment_method_id or self._payment_method_id,
                        card_params=inline.card_params,
                        active=inline.active,
                    )
                    if inline is not None
                    else None
                ),
                rejected_reason=request.rejected_reason,
                subscription_id=request.subscription_id,
            )
        except ServiceError as error:
            if error.retryable:
                with service_errors_as_application_errors():
                    raise
            if await self._order_expired(request.order_id):
                raise ApplicationError(
                    f"Cleeng order {request.order_id} expired before payment "
                    f"{request.external_payment_id} could be recorded: {error.message}",
                    type=ORDER_EXPIRED,
                    non_retryable=True,
                ) from error
            activity.logger.error(
                "Cleeng did not accept payment %s (%s) for order %s: %s; retrying",
                request.external_payment_id,
                request.status,
                request.order_id,
                error,
            )
            raise ApplicationError(
                f"Cleeng did not accept payment {request.external_payment_id} as "
                f"{request.status} for order {request.order_id}: {error}. Not a documented "
                "refusal: retrying until it lands or an operator resolves it",
                type=RECORD_NOT_ACCEPTED,
            ) from error
        return created.id

    async def _order_expired(self, order_id: str) -> bool:
        """Does Cleeng's own order say it expired unpaid? A failed look-up says no."""
        try:
            return await self._cleeng.order_expired(order_id)
        except ServiceError as error:
            activity.logger.warning("could not read order %s: %s", order_id, error)
            return False

    @activity.defn
    async def update_payment(self, request: UpdatePaymentInput) -> str:
        """PATCH a recorded payment (captured / rejected); repeating it changes nothing. Never
        given up: a capture's money moved, and a rejection's record is what Cleeng's dunning
        counts on."""
        with records_are_never_given_up(f"mark payment {request.payment_id} {request.status}"):
            updated = await self._cleeng.update_payment(
                request.payment_id,
                status=request.status,
                external_payment_id=request.external_payment_id,
                rejected_reason=request.rejected_reason,
            )
        return updated.status

    @activity.defn
    async def cancel_payment(self, request: CleengPaymentRef | str) -> str:
        payment_id = request if isinstance(request, str) else request.payment_id
        with service_errors_as_application_errors():
            return (await self._cleeng.cancel_payment(payment_id)).status

    @activity.defn
    async def authorised_payments(
        self, request: PaymentDetailsRef | str
    ) -> list[CancelledAuthorisation]:
        """The authorised, not yet captured payments on some payment details."""
        payment_details_id = request if isinstance(request, str) else request.payment_details_id
        with service_errors_as_application_errors():
            payments = await self._cleeng.authorised_payments(payment_details_id)
        return [
            CancelledAuthorisation(cleeng_payment_id=p.id, mollie_payment_id=p.external_payment_id)
            for p in payments
        ]

    @activity.defn
    async def delete_payment_details(self, request: PaymentDetailsRef | str) -> None:
        payment_details_id = request if isinstance(request, str) else request.payment_details_id
        with service_errors_as_application_errors():
            await self._cleeng.delete_payment_details(payment_details_id)

    @activity.defn
    async def record_refund(self, request: CleengRefundInput) -> str:
        """PATCH the payment `refunded` for one Mollie refund, with every field "update-a-payment"
        requires. The workflow calls this once per Mollie refund and keeps that in its state.

        Never written twice blindly: the refunded amount is this refund's (docs/cleeng-contract.md)
        and Core API 3.1 documents no read of a payment, so a reply lost after the request went
        out (timeout, dropped connection) ends the attempt as `CleengRefundRecordUnknown`, not
        retried; the workflow holds the refund for a person who checks Cleeng."""
        with records_are_never_given_up(f"mark payment {request.cleeng_payment_id} refunded"):
            try:
                updated = await self._cleeng.record_refund(
                    request.cleeng_payment_id,
                    order_id=request.order_id,
                    payment_operation=request.payment_operation,
                    refunded_reason=request.reason or contract.DEFAULT_REFUNDED_REASON,
                    amount=request.amount,
                    refund_type=request.refund_type,
                )
            except ServiceError as error:
                if error.kind is not FailureKind.UNKNOWN_OUTCOME:
                    raise
                activity.logger.error(
                    "reply to PATCH refunded %s of Cleeng payment %s lost: %s; not repeated",
                    request.amount,
                    request.cleeng_payment_id,
                    error,
                )
                raise ApplicationError(
                    f"the reply to PATCH refunded {request.amount} ({request.refund_type}) of "
                    f"Cleeng payment {request.cleeng_payment_id} was lost ({error}): Cleeng may "
                    "have recorded it, and a second PATCH could record it twice",
                    type=CLEENG_RECORD_UNKNOWN,
                    non_retryable=True,
                ) from error
        return updated.status

    @activity.defn
    async def terminate_subscription(self, request: SubscriptionRef | str) -> str:
        """Terminate after Cleeng's dunning gave up ("terminate-subscription"; the deprecated
        PATCH only when configured)."""
        subscription_id = request if isinstance(request, str) else request.subscription_id
        with service_errors_as_application_errors():
            if self._termination_call == contract.TERMINATE_BY_PATCH:
                await self._cleeng.terminate_subscription_by_patch(subscription_id)
            else:
                await self._cleeng.terminate_subscription(
                    subscription_id, contract.TERMINATION_REASON_PAYMENT
                )
        return "terminated"
