"""InitialPurchase: one workflow per Cleeng order (`purchase:{orderId}`).

Reads the order from Cleeng, creates a Mollie `first` payment, hands the checkout URL back
through an update, waits for the payment's final state (webhook signal, with a polling fallback
when webhooks are lost), then records the outcome in Cleeng. Money taken that Cleeng refuses
for good is refunded and the workflow fails so an operator sees it.

The setup retries through an outage for `PurchaseInput.setup_seconds`, then fails as
`CheckoutUnavailable` with no Mollie payment handed out. Only such a run (failed before any
Mollie payment existed) is followed by a new run of the same id (api/checkout_start.py), and
that run's Mollie payment key carries its own run id.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutError
from temporalio.workflow import ActivityConfig

# Pure modules load inside the sandbox, so its checks cover them too; only the activities
# (and the HTTP clients they pull in) pass through.
from clients import cleeng_contract as contract
from domain import search_attributes
from domain.methods import first_payment_amount
from domain.operation_keys import (
    compensating_refund_key,
    customer_key,
    purchase_payment_key,
    verification_refund_key,
)
from domain.operations import (
    MOLLIE_PAID,
    CheckoutPaymentInput,
    CleengOrderRef,
    EnsureCustomerInput,
    GatewayPaymentView,
    InlineDetails,
    MandateRef,
    OrderSnapshot,
    PaymentNotice,
    RecordPaymentInput,
    RefundInput,
    payment_is_final,
)
from domain.purchase import (
    CHECKOUT_UNAVAILABLE,
    STATUS_AWAITING_PAYMENT,
    STATUS_CAPTURED,
    STATUS_FAILED,
    STATUS_RECORDING,
    STATUS_REFUNDED,
    STATUS_REJECTED,
    STATUS_STARTING,
    PurchaseInput,
    PurchaseView,
)
from domain.tokens import MollieToken, no_mandate_token
from workflows.failures import describe_failure, failure_type
from workflows.payment_watch import PaymentWatch
from workflows.policies import RECORD, SETUP

with workflow.unsafe.imports_passed_through():
    from activities.cleeng_activities import CleengActivities
    from activities.errors import CLEENG_REFUSED, ORDER_EXPIRED
    from activities.mollie_activities import MollieActivities

# A step reached with the setup's time (nearly) used up still gets this long to try once.
_LAST_MOMENT = timedelta(seconds=1)

# Retries that ran out on a failure that might have passed: the checkout was unavailable, not
# refused.
_RETRIES_EXHAUSTED = frozenset({RetryState.TIMEOUT, RetryState.MAXIMUM_ATTEMPTS_REACHED})


@workflow.defn(name="InitialPurchase")
class InitialPurchaseWorkflow:
    @workflow.init
    def __init__(self, request: PurchaseInput) -> None:
        self._order_id = request.order_id
        self._status = STATUS_STARTING
        self._order: OrderSnapshot | None = None
        self._payment: GatewayPaymentView | None = None
        self._cleeng_payment_id: str | None = None
        self._failure_reason: str | None = None
        self._error: str | None = None
        self._error_type = "CheckoutFailed"
        self._watch = PaymentWatch()

    @workflow.run
    async def run(self, request: PurchaseInput) -> PurchaseView:
        workflow_id = workflow.info().workflow_id
        try:
            await self._open_checkout(request, workflow_id)
        except ActivityError as error:
            self._status = STATUS_FAILED
            self._error = describe_failure(error)
            self._error_type = (
                CHECKOUT_UNAVAILABLE
                if _retries_exhausted(error)
                else failure_type(error) or self._error_type
            )
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(
                f"order {self._order_id}: {self._error}",
                type=self._error_type,
                non_retryable=True,
            ) from error

        payment = await self._await_final_payment(request.poll_schedule_seconds)
        self._payment = payment
        self._status = STATUS_RECORDING
        if payment.status == MOLLIE_PAID:
            await self._record_captured(payment, workflow_id)
        else:
            await self._record_rejected(payment)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def _open_checkout(self, request: PurchaseInput, workflow_id: str) -> None:
        # One bound for the whole setup, however its time is spread over the three steps.
        deadline = workflow.now() + timedelta(seconds=request.setup_seconds)
        order = await workflow.execute_activity_method(
            CleengActivities.load_order,
            CleengOrderRef(order_id=request.order_id),
            **_setup_until(deadline, SETUP),
        )
        self._order = order
        customer_id = await workflow.execute_activity_method(
            MollieActivities.ensure_mollie_customer,
            EnsureCustomerInput(
                cleeng_customer_id=order.customer_id,
                email=order.customer_email,
                idempotency_key=customer_key(workflow_id),
            ),
            **_setup_until(deadline, SETUP),
        )
        # A run that starts a failed purchase again never adopts a payment the failed run may
        # have created at Mollie but never handed out (its checkout URL reached nobody, and it
        # may be stale or expired): it makes its own.
        payment_key = purchase_payment_key(
            workflow_id, workflow.info().run_id if request.restarts_run else None
        )
        payment = await workflow.execute_activity_method(
            MollieActivities.create_checkout_payment,
            CheckoutPaymentInput(
                workflow_id=workflow_id,
                order_id=order.order_id,
                mollie_customer_id=customer_id,
                amount=first_payment_amount(order.amount, request.method),
                description=f"Order {order.order_id}",
                redirect_url=request.redirect_url,
                method=request.method,
                operation_key=payment_key,
            ),
            **_setup_until(deadline, SETUP),
        )
        self._payment = payment
        self._status = STATUS_AWAITING_PAYMENT
        workflow.upsert_search_attributes(
            [search_attributes.MOLLIE_PAYMENT_ID.value_set(payment.payment_id)]
        )

    async def _await_final_payment(self, schedule: tuple[int, ...]) -> GatewayPaymentView:
        """Wait for a webhook, or re-check on the polling schedule, until the payment ends."""
        assert self._payment is not None
        return await self._watch.until(self._payment, payment_is_final, schedule)

    async def _record_captured(self, payment: GatewayPaymentView, workflow_id: str) -> None:
        order = self._order
        assert order is not None
        operation = (
            contract.PAYMENT_OPERATION_INITIAL
            if order.amount.minor > 0
            else contract.PAYMENT_OPERATION_FREE
        )
        details = await self._details_for(order, payment)
        try:
            self._cleeng_payment_id = await workflow.execute_activity_method(
                CleengActivities.record_payment,
                RecordPaymentInput(
                    order_id=order.order_id,
                    status=contract.PAYMENT_STATUS_CAPTURED,
                    payment_operation=operation,
                    external_payment_id=payment.payment_id,
                    inline_details=details,
                ),
                **RECORD,
            )
        except ActivityError as error:
            # Only Cleeng's documented refusal gives the money back; anything else is retried
            # inside the activity until it lands, so it never reaches here.
            if failure_type(error) != ORDER_EXPIRED:
                raise
            await self._refund_unrecorded(payment, workflow_id, error)
            return
        workflow.upsert_search_attributes(
            [search_attributes.CLEENG_PAYMENT_ID.value_set(self._cleeng_payment_id)]
        )
        if order.amount.minor == 0 and payment.amount.minor > 0:
            # A free trial paid with the smallest amount (its method takes no 0.00). No patch:
            # the release that shipped (bf66b6e) charged a free trial 0.00, so none of its
            # workflows reaches here.
            await self._refund_trial_verification(payment, workflow_id)
        self._status = STATUS_CAPTURED
        # The line an operator searches for: the outcome, with both ledgers' ids.
        workflow.logger.info(
            "Mollie payment %s captured; recorded in Cleeng as payment %s",
            payment.payment_id,
            self._cleeng_payment_id,
        )

    async def _refund_trial_verification(
        self, payment: GatewayPaymentView, workflow_id: str
    ) -> None:
        """A free trial's method could not take 0.00, so the shopper paid the smallest amount
        to make the mandate: it goes back at once (Cleeng recorded the free trial)."""
        workflow.logger.info(
            "refunding the verification amount %s of free-trial order %s",
            payment.amount,
            self._order_id,
        )
        await self._give_back(
            payment,
            workflow_id,
            f"Order {self._order_id}: verification for a free trial",
            verification_refund_key(workflow_id),
        )

    async def _give_back(
        self, payment: GatewayPaymentView, workflow_id: str, description: str, key: str
    ) -> None:
        """Refund the whole payment at Mollie, once (its operation key), however often the
        step is retried."""
        await workflow.execute_activity_method(
            MollieActivities.refund_payment,
            RefundInput(
                payment_id=payment.payment_id,
                amount=payment.amount,
                description=description,
                idempotency_key=key,
                metadata={"orderId": self._order_id, "workflowId": workflow_id},
            ),
            **RECORD,
        )

    async def _details_for(
        self, order: OrderSnapshot, payment: GatewayPaymentView
    ) -> InlineDetails:
        """Payment details Cleeng creates with the payment: active ones whose token lets
        renewals charge the mandate, or inactive ones where Mollie made no mandate."""
        if payment.mandate_id and payment.customer_id:
            mandate = await workflow.execute_activity_method(
                MollieActivities.describe_mandate,
                MandateRef(customer_id=payment.customer_id, mandate_id=payment.mandate_id),
                **RECORD,
            )
            return InlineDetails(
                customer_id=order.customer_id,
                token=MollieToken(
                    customer_id=payment.customer_id, mandate_id=payment.mandate_id
                ).encode(),
                payment_method_id=order.payment_method_id or "",
                active=True,
                card_params=mandate.card_params,
            )
        return InlineDetails(
            customer_id=order.customer_id,
            token=no_mandate_token(payment.payment_id),
            payment_method_id=order.payment_method_id or "",
            active=False,
        )

    async def _refund_unrecorded(
        self, payment: GatewayPaymentView, workflow_id: str, error: ActivityError
    ) -> None:
        """Compensation: the order expired, so Cleeng will never know of this money; give it
        back, then fail so an operator sees it."""
        self._error = describe_failure(error)
        workflow.logger.error(
            "Cleeng refused payment %s for order %s: %s; refunding",
            payment.payment_id,
            self._order_id,
            self._error,
        )
        if payment.amount.minor > 0:
            await self._give_back(
                payment,
                workflow_id,
                f"Order {self._order_id} could not be recorded in Cleeng",
                compensating_refund_key(workflow_id),
            )
        self._status = STATUS_REFUNDED
        await workflow.wait_condition(workflow.all_handlers_finished)
        raise ApplicationError(
            f"order {self._order_id}: payment {payment.payment_id} was refunded because "
            f"Cleeng refused it: {self._error}",
            type=CLEENG_REFUSED,
            non_retryable=True,
        )

    async def _record_rejected(self, payment: GatewayPaymentView) -> None:
        order = self._order
        assert order is not None
        self._failure_reason = payment.failure_reason or payment.status
        try:
            self._cleeng_payment_id = await workflow.execute_activity_method(
                CleengActivities.record_payment,
                RecordPaymentInput(
                    order_id=self._order_id,
                    status=contract.PAYMENT_STATUS_REJECTED,
                    payment_operation=contract.PAYMENT_OPERATION_INITIAL,
                    external_payment_id=payment.payment_id,
                    rejected_reason=self._failure_reason,
                    inline_details=await self._details_for(order, payment),
                ),
                **RECORD,
            )
        except ActivityError as error:
            # No money moved, so nothing to compensate; fail so an operator sees it.
            self._status = STATUS_FAILED
            self._error = describe_failure(error)
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(
                f"order {self._order_id}: could not record rejected payment: {self._error}",
                type=CLEENG_REFUSED,
                non_retryable=True,
            ) from error
        self._status = STATUS_REJECTED

    @workflow.update
    async def checkout(self) -> PurchaseView:
        """Answer once the checkout exists (or the purchase could not start)."""
        await workflow.wait_condition(lambda: self._status != STATUS_STARTING)
        if self._status == STATUS_FAILED and self._payment is None:
            raise ApplicationError(self._error or "checkout failed", type=self._error_type)
        return self.view()

    @workflow.signal
    def payment_changed(self, notice: PaymentNotice) -> None:
        """A Mollie webhook arrived: re-check that payment (only ours are ever looked at)."""
        self._watch.notify(notice.payment_id)

    @workflow.query
    def view(self) -> PurchaseView:
        payment = self._payment
        amount = payment.amount if payment else (self._order.amount if self._order else None)
        return PurchaseView(
            order_id=self._order_id,
            status=self._status,
            checkout_url=payment.checkout_url if payment else None,
            mollie_payment_id=payment.payment_id if payment else None,
            cleeng_payment_id=self._cleeng_payment_id,
            amount_minor=amount.minor if amount else None,
            currency=amount.currency if amount else None,
            failure_reason=self._failure_reason,
            error=self._error,
        )


def _setup_until(deadline: datetime, kind: ActivityConfig) -> ActivityConfig:
    """`kind`, given up at `deadline`, even within an attempt: the setup's bound is what the
    purchase promises, and an attempt cut short costs nothing (the next run starts afresh)."""
    remaining = max(deadline - workflow.now(), _LAST_MOMENT)
    return {**kind, "schedule_to_close_timeout": remaining}


def _retries_exhausted(error: ActivityError) -> bool:
    """The step kept failing in a way that might pass (an outage) until its time ran out."""
    return error.retry_state in _RETRIES_EXHAUSTED or isinstance(error.cause, TimeoutError)
