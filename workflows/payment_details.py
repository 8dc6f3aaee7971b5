"""Update payment details: the new-details and old-details connector roles.

NewPaymentDetails (`payment-details:{customerId}`): a Mollie `first` payment (0.00 for cards
and PayPal, else the smallest amount, refunded right after) makes a mandate; once it is valid
the connector stores it in Cleeng as active payment details. Cleeng then deactivates the
customer's old details and tells their connector.

DetailsDeactivation (`details-deactivated:{paymentDetailsId}`): a saga over the old details.
For each payment authorised on them, release the Mollie authorisation and cancel the Cleeng
payment; then revoke the Mollie mandate and (if configured) delete the details. Every step is
idempotent; one step failing for good does not stop the others, and the result lists what an
operator must look at.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from domain.methods import first_payment_amount
from domain.operation_keys import (
    customer_key,
    details_owner,
    details_payment_key,
    release_key,
    verification_refund_key,
)
from domain.operations import (
    MOLLIE_AUTHORIZED,
    MOLLIE_CANCELED,
    MOLLIE_PAID,
    CheckoutPaymentInput,
    CleengPaymentRef,
    EnsureCustomerInput,
    GatewayPaymentView,
    MandateRef,
    MolliePaymentRef,
    PaymentDetailsRef,
    PaymentNotice,
    RecordDetailsInput,
    RefundInput,
    ReleaseInput,
    payment_is_final,
)
from domain.payment_details import (
    DEACTIVATION_DONE,
    DEACTIVATION_NEEDS_OPERATOR,
    DEACTIVATION_NOT_OURS,
    STATUS_ACTIVE,
    STATUS_AWAITING_PAYMENT,
    STATUS_FAILED,
    STATUS_STARTING,
    ZERO_AMOUNT,
    CancelledAuthorisation,
    DeactivationFailure,
    DeactivationInput,
    DeactivationView,
    NewDetailsInput,
    NewDetailsView,
)
from domain.tokens import MollieToken
from workflows.failures import failure_message
from workflows.payment_watch import PaymentWatch
from workflows.policies import CALL, RECORD, SETUP

with workflow.unsafe.imports_passed_through():
    from activities.cleeng_activities import CleengActivities
    from activities.mollie_activities import MollieActivities


# Versioning (docs/development.md "Patches and their removal dates"). Deprecated: the
# verification amount is refunded before the details are stored in Cleeng; the release that
# shipped (bf66b6e) always did, and its histories carry this marker, which only a call of
# `deprecate_patch` lets replay.
# remove after 2027-02-05: when no workflow started before the release after bf66b6e can still run
PATCH_REFUND_VERIFICATION_FIRST = "refund-verification-first"
# Versioning: a verification payment that was paid but made no mandate is refunded too.
# remove after 2027-02-05: when no workflow started before the release after bf66b6e can still run
PATCH_REFUND_MANDATELESS_VERIFICATION = "refund-mandateless-verification"
# Versioning: a Cleeng authorisation is cancelled only once its Mollie payment reads `canceled`
# (a pending direct debit or a paid payment is left to the billing cycle that owns it).
# remove after 2027-01-07: when no workflow started before the release after bf66b6e can still run
PATCH_CANCEL_ONLY_RELEASED = "cancel-only-released"
# How often, and how far apart, a released hold is re-read until Mollie shows it released.
RELEASE_CHECKS = 10
RELEASE_CHECK_INTERVAL = timedelta(seconds=30)


@workflow.defn(name="NewPaymentDetails")
class NewPaymentDetailsWorkflow:
    @workflow.init
    def __init__(self, request: NewDetailsInput) -> None:
        self._request = request
        self._status = STATUS_STARTING
        self._payment: GatewayPaymentView | None = None
        self._details_id: str | None = None
        self._failure: str | None = None
        self._watch = PaymentWatch()

    @workflow.run
    async def run(self, request: NewDetailsInput) -> NewDetailsView:
        info = workflow.info()
        # The id is reused by the customer's next card change: keys carry the run too.
        key = details_owner(info.workflow_id, info.run_id)
        try:
            payment = await self._open_checkout(request, key)
        except ActivityError as error:
            self._status, self._failure = STATUS_FAILED, failure_message(error)
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(self._failure, type="CheckoutFailed") from error
        payment = await self._watch.until(payment, payment_is_final, request.poll_schedule_seconds)
        self._payment = payment
        if payment.status != MOLLIE_PAID or not payment.mandate_id or not payment.customer_id:
            self._status = STATUS_FAILED
            self._failure = payment.failure_reason or payment.status
            if (
                payment.status == MOLLIE_PAID
                and payment.amount.minor > 0
                and workflow.patched(PATCH_REFUND_MANDATELESS_VERIFICATION)
            ):
                # Paid, yet Mollie made no mandate: the verification proved nothing to keep,
                # and no outcome keeps the shopper's money.
                self._failure = "the verification payment left no mandate"
                await self._refund_verification(payment, key)
        else:
            await self._store_details(request, payment, key)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def _open_checkout(self, request: NewDetailsInput, key: str) -> GatewayPaymentView:
        customer_id = await workflow.execute_activity_method(
            MollieActivities.ensure_mollie_customer,
            EnsureCustomerInput(
                cleeng_customer_id=request.customer_id,
                email=None,
                idempotency_key=customer_key(key),
            ),
            **SETUP,
        )
        payment = await workflow.execute_activity_method(
            MollieActivities.create_checkout_payment,
            CheckoutPaymentInput(
                workflow_id=workflow.info().workflow_id,
                order_id="",
                mollie_customer_id=customer_id,
                # 0.00 where Mollie takes it for the method, else the smallest amount, refunded.
                amount=first_payment_amount(ZERO_AMOUNT, request.method),
                description="New payment details",
                redirect_url=request.redirect_url,
                method=request.method,
                operation_key=details_payment_key(key),
            ),
            **SETUP,
        )
        self._payment = payment
        self._status = STATUS_AWAITING_PAYMENT
        return payment

    async def _store_details(
        self, request: NewDetailsInput, payment: GatewayPaymentView, key: str
    ) -> None:
        assert payment.customer_id is not None
        assert payment.mandate_id is not None
        mandate = await workflow.execute_activity_method(
            MollieActivities.describe_mandate,
            MandateRef(customer_id=payment.customer_id, mandate_id=payment.mandate_id),
            **CALL,
        )
        if payment.amount.minor > 0:
            # The verification amount only proved the account: give it back before anything
            # else can fail, so no outcome keeps it.
            workflow.deprecate_patch(PATCH_REFUND_VERIFICATION_FIRST)
            await self._refund_verification(payment, key)
        if mandate.status != "valid":
            self._status, self._failure = STATUS_FAILED, f"mandate is {mandate.status}"
            return
        try:
            self._details_id = await workflow.execute_activity_method(
                CleengActivities.record_payment_details,
                RecordDetailsInput(
                    cleeng_customer_id=request.customer_id,
                    token=MollieToken(
                        customer_id=payment.customer_id, mandate_id=payment.mandate_id
                    ).encode(),
                    payment_method_id=None,
                    card_params=mandate.card_params,
                ),
                **RECORD,
            )
        except ActivityError as error:
            # Cleeng refused the details (e.g. it does not know the customer): the mandate
            # would never be charged, so revoke it and fail where an operator sees it.
            self._status, self._failure = STATUS_FAILED, failure_message(error)
            await workflow.execute_activity_method(
                MollieActivities.revoke_mandate,
                MandateRef(customer_id=payment.customer_id, mandate_id=payment.mandate_id),
                **RECORD,
            )
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(
                f"customer {request.customer_id}: Cleeng did not store the new payment "
                f"details; mandate {payment.mandate_id} revoked: {self._failure}",
                type="PaymentDetailsRefused",
            ) from error
        self._status = STATUS_ACTIVE

    async def _refund_verification(self, payment: GatewayPaymentView, key: str) -> None:
        await workflow.execute_activity_method(
            MollieActivities.refund_payment,
            RefundInput(
                payment_id=payment.payment_id,
                amount=payment.amount,
                description="Verification of new payment details",
                idempotency_key=verification_refund_key(key),
            ),
            **RECORD,
        )

    @workflow.update
    async def checkout(self) -> NewDetailsView:
        await workflow.wait_condition(lambda: self._status != STATUS_STARTING)
        if self._payment is None:
            raise ApplicationError(self._failure or "checkout failed", type="CheckoutFailed")
        return self.view()

    @workflow.signal
    def payment_changed(self, notice: PaymentNotice) -> None:
        self._watch.notify(notice.payment_id)

    @workflow.query
    def view(self) -> NewDetailsView:
        return NewDetailsView(
            customer_id=self._request.customer_id,
            status=self._status,
            checkout_url=self._payment.checkout_url if self._payment else None,
            mollie_payment_id=self._payment.payment_id if self._payment else None,
            payment_details_id=self._details_id,
            failure_reason=self._failure,
        )


@workflow.defn(name="DetailsDeactivation")
class DetailsDeactivationWorkflow:
    @workflow.init
    def __init__(self, request: DeactivationInput) -> None:
        self._request = request
        self._status = "running"
        self._cancelled: list[CancelledAuthorisation] = []
        self._failures: list[DeactivationFailure] = []
        self._mandate_revoked = False
        self._deleted = False
        self._left_to_billing: list[CancelledAuthorisation] = []

    @workflow.run
    async def run(self, request: DeactivationInput) -> DeactivationView:
        token = MollieToken.parse(request.token or "")
        if token is None and request.token:
            # Another gateway's details: its own connector cleans them up.
            self._status = DEACTIVATION_NOT_OURS
            return self.view()
        authorised = await workflow.execute_activity_method(
            CleengActivities.authorised_payments,
            PaymentDetailsRef(payment_details_id=request.payment_details_id),
            **CALL,
        )
        for authorisation in authorised:
            await self._cancel(authorisation)
        if token is None:
            # The webhook named no token and Core API 3.1 has no call that reads details by
            # id: the authorisations are released above, the mandate cannot be found.
            self._failures.append(
                DeactivationFailure(
                    step="revoke mandate",
                    target=request.payment_details_id,
                    error="the webhook carried no token: the Mollie mandate is unknown",
                )
            )
        elif await self._step(
            "revoke mandate",
            token.mandate_id,
            MollieActivities.revoke_mandate,
            MandateRef(customer_id=token.customer_id, mandate_id=token.mandate_id),
        ):
            self._mandate_revoked = True
        if request.delete_details and await self._step(
            "delete payment details",
            request.payment_details_id,
            CleengActivities.delete_payment_details,
            PaymentDetailsRef(payment_details_id=request.payment_details_id),
        ):
            self._deleted = True
        self._status = DEACTIVATION_NEEDS_OPERATOR if self._failures else DEACTIVATION_DONE
        if self._failures:
            workflow.logger.error(
                "payment details %s: %d step(s) need an operator: %s",
                request.payment_details_id,
                len(self._failures),
                "; ".join(f"{f.step} {f.target}: {f.error}" for f in self._failures),
            )
        if token is None:
            raise ApplicationError(
                f"payment details {request.payment_details_id} deactivated without a token: "
                f"{len(self._cancelled)} authorisation(s) released, the Mollie mandate is not "
                "revoked; find it by the customer at Mollie and revoke it by hand",
                type="DeactivationIncomplete",
            )
        return self.view()

    async def _cancel(self, authorisation: CancelledAuthorisation) -> None:
        """Release at Mollie first: cancelling in Cleeng while funds stay held would hide them."""
        mollie_id = authorisation.mollie_payment_id
        if not (mollie_id and mollie_id.startswith("tr_")) and workflow.patched(
            PATCH_CANCEL_ONLY_RELEASED
        ):
            # Not a Mollie payment: nothing here can release whatever holds its money, so its
            # record is not the connector's to cancel.
            self._failures.append(
                DeactivationFailure(
                    step="cancel Cleeng payment",
                    target=authorisation.cleeng_payment_id,
                    error=f"external payment {mollie_id!r} is not a Mollie payment: left alone",
                )
            )
            return
        if mollie_id and mollie_id.startswith("tr_"):
            release = ReleaseInput(
                payment_id=mollie_id,
                operation_key=release_key(workflow.info().workflow_id, mollie_id),
            )
            if workflow.patched(PATCH_CANCEL_ONLY_RELEASED):
                released = await self._release(mollie_id, release)
                if released is None:
                    return
                released = await self._until_release_lands(released)
                if released.status != MOLLIE_CANCELED:
                    # Not a hold: a direct debit on its way, or money already taken. Its billing
                    # cycle owns the record and writes `captured` or `rejected` when Mollie
                    # settles; cancelling it here would hide money that moved.
                    workflow.logger.info(
                        "Cleeng payment %s left to its billing cycle: Mollie payment %s is %s",
                        authorisation.cleeng_payment_id,
                        mollie_id,
                        released.status,
                    )
                    self._left_to_billing.append(authorisation)
                    return
            elif not await self._step(
                "release authorisation",
                mollie_id,
                MollieActivities.release_authorization,
                release,
            ):
                return
        if await self._step(
            "cancel Cleeng payment",
            authorisation.cleeng_payment_id,
            CleengActivities.cancel_payment,
            CleengPaymentRef(payment_id=authorisation.cleeng_payment_id),
        ):
            self._cancelled.append(authorisation)

    async def _until_release_lands(self, payment: GatewayPaymentView) -> GatewayPaymentView:
        """Mollie releases a hold asynchronously (202 Accepted): re-read the payment until it
        is no longer `authorized`, or give up after RELEASE_CHECKS and say so."""
        for _ in range(RELEASE_CHECKS):
            if payment.status != MOLLIE_AUTHORIZED:
                return payment
            await workflow.sleep(RELEASE_CHECK_INTERVAL)
            payment = await workflow.execute_activity_method(
                MollieActivities.fetch_payment,
                MolliePaymentRef(payment_id=payment.payment_id),
                **CALL,
            )
        if payment.status == MOLLIE_AUTHORIZED:
            self._failures.append(
                DeactivationFailure(
                    step="release authorisation",
                    target=payment.payment_id,
                    error="Mollie accepted the release but the payment still reads authorized",
                )
            )
        return payment

    async def _release(self, mollie_id: str, release: ReleaseInput) -> GatewayPaymentView | None:
        """Release the hold; the payment as Mollie shows it afterwards, or None (a failure,
        recorded) when the release failed for good."""
        try:
            return await workflow.execute_activity_method(
                MollieActivities.release_authorization, release, **CALL
            )
        except ActivityError as error:
            self._failures.append(
                DeactivationFailure(
                    step="release authorisation", target=mollie_id, error=failure_message(error)
                )
            )
            return None

    async def _step(
        self,
        step: str,
        target: str,
        activity: Callable[[Any, Any], Awaitable[Any]],
        argument: Any,
    ) -> bool:
        """Run one idempotent step; a permanent failure is recorded, not raised."""
        try:
            await workflow.execute_activity_method(
                activity,
                argument,
                **CALL,
            )
        except ActivityError as error:
            self._failures.append(
                DeactivationFailure(step=step, target=target, error=failure_message(error))
            )
            return False
        return True

    @workflow.query
    def view(self) -> DeactivationView:
        return DeactivationView(
            payment_details_id=self._request.payment_details_id,
            status=self._status,
            cancelled=list(self._cancelled),
            failures=list(self._failures),
            mandate_revoked=self._mandate_revoked,
            details_deleted=self._deleted,
            left_to_billing=list(self._left_to_billing),
        )
