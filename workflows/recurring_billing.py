"""RecurringBilling: one workflow per subscription billing cycle,
`billing:{subscriptionId}:{expirationDate}`.

Every Cleeng dunning webhook of the cycle is a signal into it (signal-with-start), processed
one at a time by a small state machine:

    open ──authorise ok──► authorised ──capture ok──► captured (done)
      │  ◄─declined──────────┘ capture declined
      ├──capture (no authorisation): charge ─► charging ─► captured | open (declined)
      └──terminate (from any state): release the authorisation, terminate ─► terminated (done)

Declines are outcomes recorded as `rejected`, never retried here: Cleeng's dunning schedule
sends the next attempt. Before every charge the workflow asks Cleeng whether the cycle is
already paid, and the Mollie activity looks for a payment already made for the same operation,
so a duplicate that outlives this workflow's history still charges nothing.

With `compact_history` (setting `renewal_compact_history`) the reads and the writes that are safe
to repeat run as local activities, and search attributes are set when the workflow next waits:
a capture-only renewal is 15 history events (19 when Mollie's webhook lands mid-renewal)
instead of 33. Writes to Cleeng stay activity tasks. Cycles started without it run as they
always did. How a step runs is workflows/steps.py's: here each step is named by what it may do
(`call` a read, `write_safe_to_repeat`, `record` a write money depends on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from clients import cleeng_contract as contract
from domain import search_attributes
from domain.billing import (
    CYCLE_ABANDONED,
    CYCLE_ALREADY_PAID,
    CYCLE_AUTHORISED,
    CYCLE_CAPTURED,
    CYCLE_CHARGING,
    CYCLE_OPEN,
    CYCLE_SETTLING,
    CYCLE_TERMINATED,
    EVENT_AUTHORISE,
    EVENT_CAPTURE,
    EVENT_TERMINATE,
    FINISHED_STATES,
    OUTCOME_AUTHORISED,
    OUTCOME_CAPTURED,
    OUTCOME_DEFERRED,
    OUTCOME_IGNORED,
    OUTCOME_PENDING,
    OUTCOME_REJECTED,
    OUTCOME_RELEASED,
    OUTCOME_TERMINATED,
    AttemptRecord,
    BillingCycleInput,
    BillingEvent,
    BillingView,
)
from domain.methods import mandate_can_hold
from domain.operation_keys import (
    capture_key,
    compensating_refund_key,
    point_at_order_key,
    release_key,
    renewal_charge_key,
)
from domain.operations import (
    MANDATE_VALID,
    MOLLIE_AUTHORIZED,
    MOLLIE_OPEN,
    MOLLIE_PAID,
    CaptureInput,
    CleengPaymentRef,
    CycleCheckInput,
    GatewayPaymentView,
    InlineDetails,
    MandateRef,
    MandateView,
    OrderSnapshot,
    PaymentNotice,
    PaymentOrderInput,
    PrepareRenewalInput,
    RecordPaymentInput,
    RecurringChargeInput,
    RefundInput,
    ReleaseInput,
    RenewalOrderInput,
    SubscriptionRef,
    UpdatePaymentInput,
    payment_is_final,
)
from domain.tokens import MollieToken, no_mandate_token
from workflows.failures import failure_message, failure_type, refused_for_good
from workflows.payment_watch import PaymentWatch
from workflows.steps import Steps

with workflow.unsafe.imports_passed_through():
    from activities.cleeng_activities import CleengActivities
    from activities.errors import CLEENG_REFUSED, CYCLE_CHARGED_BEFORE, ORDER_EXPIRED
    from activities.mollie_activities import MollieActivities

# Versioning (docs/development.md "Patches and their removal dates"). Deprecated: a hold whose
# capture Mollie refused is released at once; the release that shipped (bf66b6e) always did,
# and its histories carry this marker, which only a call of `deprecate_patch` lets replay.
# remove after 2027-03-17: when no workflow started before the release after bf66b6e can still run
PATCH_RELEASE_HOLDS = "release-holds-per-payment"
# Versioning: the renewal strategy per mandate method (docs/flows.md "Renewal strategy per mandate
# method"): the authorisation webhook reads the mandate first, a mandate that cannot hold funds
# is charged there, and a charge still pending is recorded `authorized` before it is awaited.
# Cycles started before replay as they ran.
# remove after 2027-03-17: when no workflow started before the release after bf66b6e can still run
PATCH_METHOD_STRATEGY = "renewal-strategy-per-mandate-method"
# Versioning: a queued dunning webhook that a later one supersedes is answered without acting
# (cycles that processed such a queue in order replay as they ran).
# remove after 2027-03-17: when no workflow started before the release after bf66b6e can still run
PATCH_SUPERSEDE_QUEUED = "supersede-queued-webhooks"

# How far a dunning webhook goes: a later webhook that reaches as far makes an earlier one
# stale.
_REACH = {EVENT_AUTHORISE: 0, EVENT_CAPTURE: 1, EVENT_TERMINATE: 2}

# A cycle with no webhook for this long is over (Cleeng's schedule spans days, not weeks).
IDLE_LIMIT = timedelta(days=40)


def _authorisation_settled(status: str) -> bool:
    """An authorisation is awaited until it holds funds or the payment is final."""
    return status == MOLLIE_AUTHORIZED or payment_is_final(status)


def _charge_started(status: str) -> bool:
    """A charge is awaited until the bank has it (`pending`) or it is final: only `open`, the
    moment between creation and submission, is waited out before Cleeng hears of it."""
    return status != MOLLIE_OPEN


def _details_if_unnamed(event: BillingEvent, payment_id: str) -> InlineDetails | None:
    """Cleeng wants paymentDetailsId or paymentDetails on every payment: a webhook that names
    no details gets inactive ones that charge nothing."""
    if event.payment_details_id:
        return None
    return InlineDetails(
        customer_id=event.customer_id,
        token=no_mandate_token(payment_id),
        payment_method_id=event.payment_method_id or "",
        active=False,
    )


class Declined(Exception):
    """A charge Mollie refused as a business outcome (recorded as `rejected`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@workflow.defn(name="RecurringBilling")
class RecurringBillingWorkflow:
    @workflow.init
    def __init__(self, cycle: BillingCycleInput) -> None:
        self._cycle = cycle
        self._status = CYCLE_OPEN
        self._queue: list[BillingEvent] = []
        self._handled: set[str] = set()
        self._attempts: list[AttemptRecord] = []
        # The authorised (or pending) Mollie payment of this cycle and its Cleeng record.
        self._payment: GatewayPaymentView | None = None
        self._cleeng_payment_id: str | None = None
        self._error: str | None = None
        self._watch = PaymentWatch()
        # Every Mollie payment this run made (or adopted): the cycle's own, never "earlier".
        self._made_payments: list[str] = []
        # How each step reaches Temporal (local or activity task, when attributes are set).
        self._steps = Steps(cycle.compact_history)

    @workflow.run
    async def run(self, cycle: BillingCycleInput) -> BillingView:
        while self._status not in FINISHED_STATES:
            self._steps.publish_attributes()
            try:
                await workflow.wait_condition(lambda: bool(self._queue), timeout=IDLE_LIMIT)
            except TimeoutError:
                await self._release_open_authorisation("cycle idle")
                self._status = CYCLE_ABANDONED
                break
            event = self._queue.pop(0)
            if event.attempt_key in self._handled:
                workflow.logger.info("duplicate webhook %s ignored", event.attempt_key)
                continue
            superseding = self._later_webhook_than(event)
            if superseding is not None and workflow.patched(PATCH_SUPERSEDE_QUEUED):
                # It waited behind a long step (a direct debit pending for days) while Cleeng's
                # schedule moved on: acting on it now would charge on a stale attempt, after
                # the due date, with the termination already sent. The later webhook decides.
                self._handled.add(event.attempt_key)
                self._note(event, OUTCOME_IGNORED, reason=f"superseded by {superseding}")
                continue
            self._handled.add(event.attempt_key)
            if event.kind == EVENT_AUTHORISE:
                await self._authorise(event)
            elif event.kind == EVENT_CAPTURE:
                await self._capture(event)
            else:
                await self._terminate(event)
        self._note_unprocessed()
        self._steps.publish_attributes()
        await self._steps.keep_local_steps()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    def _later_webhook_than(self, event: BillingEvent) -> str | None:
        """A queued webhook that makes `event` stale: one sent later by Cleeng that goes at
        least as far (an authorisation < a capture < the termination); its attempt key."""
        for waiting in self._queue:
            if (
                waiting.attempt_date > event.attempt_date
                and _REACH[waiting.kind] >= _REACH[event.kind]
                and waiting.attempt_key not in self._handled
            ):
                return waiting.attempt_key
        return None

    def _note_unprocessed(self) -> None:
        """Webhooks that waited behind a step which finished the cycle (a capture webhook, or
        Cleeng's termination, that came while a direct debit was pending and was then paid)
        are answered by the cycle's end: each stays in its story, so none vanishes unseen."""
        for event in self._queue:
            if event.attempt_key not in self._handled:
                self._handled.add(event.attempt_key)
                self._note(event, OUTCOME_IGNORED, reason=f"cycle is {self._status}")
        self._queue.clear()

    # Transitions

    async def _authorise(self, event: BillingEvent) -> None:
        if self._status != CYCLE_OPEN:
            self._note(event, OUTCOME_IGNORED, reason=f"cycle is {self._status}")
            return
        token = MollieToken.parse(event.token or "")
        if not workflow.patched(PATCH_METHOD_STRATEGY):
            await self._authorise_card_only(event, token)
            return
        mandate = await self._valid_mandate(token)
        if mandate is not None and not mandate_can_hold(mandate.method):
            # Mollie cannot hold funds on this mandate (SEPA Direct Debit, PayPal): asking for
            # manual capture would be refused, and a rejection would count against a valid
            # mandate. Charge now instead: a direct debit takes days to settle, and only the
            # authorisation webhooks come early enough for it to settle by the due date.
            order = await self._order_for_unpaid_cycle(event)
            if order is not None:
                await self._charge_and_record(event, order, token)
            return
        if not self._cycle.manual_capture and mandate is not None:
            # Without manual capture Mollie cannot hold funds: the mandate is valid, so the
            # capture webhook charges it (see "Recurring modes" in docs/flows.md).
            self._note(event, OUTCOME_DEFERRED, reason="manual capture disabled")
            return
        await self._hold(event, token)

    async def _authorise_card_only(self, event: BillingEvent, token: MollieToken | None) -> None:
        """The authorisation as cycles started before the per-method strategy ran it."""
        # Without manual capture Mollie cannot hold funds: check the mandate now and charge at
        # the capture webhook (see "Recurring modes" in docs/flows.md).
        if (
            not self._cycle.manual_capture
            and token is not None
            and await self._mandate_usable(token)
        ):
            self._note(event, OUTCOME_DEFERRED, reason="manual capture disabled")
            return
        await self._hold(event, token)

    async def _hold(self, event: BillingEvent, token: MollieToken | None) -> None:
        """Authorise with manual capture: Mollie holds the funds until the capture webhook."""
        order = await self._order_for_unpaid_cycle(event)
        if order is None:
            return
        attempt: GatewayPaymentView | None = None
        try:
            attempt = await self._charge(event, order, token, manual_capture=True)
            order = self._order_named_by(attempt, order)
            payment = await self._settle(attempt, _authorisation_settled)
            if payment.status not in (MOLLIE_AUTHORIZED, MOLLIE_PAID):
                raise Declined(payment.failure_reason or payment.status)
        except Declined as declined:
            # Only this attempt's payment is named: an earlier attempt's would be untrue.
            await self._record_rejection(event, order, declined.reason, attempt)
            return
        self._payment = payment
        self._cleeng_payment_id = await self._record_new(
            event, order, payment, contract.PAYMENT_STATUS_AUTHORIZED
        )
        self._status = CYCLE_AUTHORISED
        self._note(event, OUTCOME_AUTHORISED)

    async def _capture(self, event: BillingEvent) -> None:
        if self._status == CYCLE_AUTHORISED:
            await self._capture_authorisation(event)
        elif self._status == CYCLE_OPEN:
            await self._charge_directly(event)
        else:
            self._note(event, OUTCOME_IGNORED, reason=f"cycle is {self._status}")

    async def _capture_authorisation(self, event: BillingEvent) -> None:
        assert self._payment is not None
        assert self._cleeng_payment_id is not None
        workflow_id = workflow.info().workflow_id
        try:
            payment = await self._steps.write_safe_to_repeat(
                MollieActivities.capture_payment,
                CaptureInput(
                    payment_id=self._payment.payment_id,
                    description=(
                        f"Renewal {self._cycle.subscription_id} {self._cycle.expiration_date}"
                    ),
                    operation_key=capture_key(workflow_id, self._payment.payment_id),
                ),
            )
        except ActivityError as error:
            if not refused_for_good(error):
                raise
            # Mollie refused the capture; the authorisation may still hold funds, so it stays
            # known here and is released on termination (or before a direct charge).
            await self._reject_recorded(event, self._payment, failure_message(error))
            return
        if payment.status == "canceled":
            # Released before we captured: the customer replaced the payment details and the
            # old-details saga cancelled it at Mollie and in Cleeng. Charge the new details.
            self._note(event, OUTCOME_IGNORED, reason="authorisation was cancelled")
            self._payment, self._cleeng_payment_id = None, None
            self._status = CYCLE_OPEN
            await self._charge_directly(event)
            return
        payment = await self._settle(payment, payment_is_final)
        await self._record_settled(event, payment)

    async def _record_settled(self, event: BillingEvent, payment: GatewayPaymentView) -> None:
        """The cycle's `authorized` Cleeng payment after Mollie settled its charge: `captured`
        when paid, else `rejected` with Mollie's reason (the cycle is open again)."""
        assert self._cleeng_payment_id is not None
        if payment.status != MOLLIE_PAID:
            await self._reject_recorded(event, payment, payment.failure_reason or payment.status)
            return
        # Mollie keeps the payment id through a capture; PATCH it anyway so Cleeng's
        # externalPaymentId always names the payment refunds must target.
        await self._update_cleeng(
            UpdatePaymentInput(
                payment_id=self._cleeng_payment_id,
                status=contract.PAYMENT_STATUS_CAPTURED,
                external_payment_id=payment.payment_id,
            )
        )
        self._status = CYCLE_CAPTURED
        self._note(event, OUTCOME_CAPTURED)

    async def _reject_recorded(
        self, event: BillingEvent, payment: GatewayPaymentView, reason: str
    ) -> None:
        """The authorised Cleeng payment becomes `rejected`; the cycle is open again."""
        assert self._cleeng_payment_id is not None
        await self._update_cleeng(
            UpdatePaymentInput(
                payment_id=self._cleeng_payment_id,
                status=contract.PAYMENT_STATUS_REJECTED,
                rejected_reason=reason,
            )
        )
        rejected_record = self._cleeng_payment_id
        self._payment, self._cleeng_payment_id = payment, None
        # Cleeng now shows this payment rejected, so it will never be captured: if Mollie
        # still holds the funds (a refused capture), give them back before anything else.
        workflow.deprecate_patch(PATCH_RELEASE_HOLDS)
        await self._release_hold("capture refused")
        self._note(
            event,
            OUTCOME_REJECTED,
            mollie_payment_id=payment.payment_id,
            cleeng_payment_id=rejected_record,
            reason=reason,
        )
        self._status = CYCLE_OPEN

    async def _charge_directly(self, event: BillingEvent) -> None:
        """Capture-only mode: charge the mandate and wait (SEPA stays pending for days)."""
        if self._cycle.compact_history:
            prepared = await self._prepare_renewal(event)
            if prepared is None:
                return
            await self._release_open_authorisation("charging directly instead")
            order = prepared
        else:
            if await self._cycle_paid():
                return
            await self._release_open_authorisation("charging directly instead")
            order = await self._renewal_order(event)
        token = MollieToken.parse(event.token or "")
        await self._charge_and_record(event, order, token)

    async def _charge_and_record(
        self, event: BillingEvent, order: OrderSnapshot, token: MollieToken | None
    ) -> None:
        """Charge the mandate (automatic capture) and record it in Cleeng as it goes: `captured`
        when paid at once; `authorized` while it is pending, because Cleeng lets an order
        expire 24 hours after creation unless its payment is recorded and a direct debit
        settles days later; then `captured`, or `rejected` with Mollie's reason."""
        attempt: GatewayPaymentView | None = None
        try:
            attempt = await self._charge(event, order, token, manual_capture=False)
            order = self._order_named_by(attempt, order)
            self._status = CYCLE_CHARGING
            payment = await self._settle(attempt, _charge_started)
            if payment_is_final(payment.status) and payment.status != MOLLIE_PAID:
                raise Declined(payment.failure_reason or payment.status)
        except Declined as declined:
            self._status = CYCLE_OPEN
            # Only this attempt's payment is named: an earlier attempt's would be untrue.
            await self._record_rejection(event, order, declined.reason, attempt)
            self._payment = None
            return
        if payment.status != MOLLIE_PAID and not workflow.patched(PATCH_METHOD_STRATEGY):
            # A cycle started before the per-method strategy waited for the final status first.
            payment = await self._settle(payment, payment_is_final)
            if payment.status != MOLLIE_PAID:
                self._status = CYCLE_OPEN
                await self._record_rejection(
                    event, order, payment.failure_reason or payment.status, payment
                )
                self._payment = None
                return
        self._payment = payment
        if payment.status == MOLLIE_PAID:
            self._cleeng_payment_id = await self._record_new(
                event, order, payment, contract.PAYMENT_STATUS_CAPTURED
            )
            self._status = CYCLE_CAPTURED
            self._note(event, OUTCOME_CAPTURED)
            return
        self._cleeng_payment_id = await self._record_new(
            event, order, payment, contract.PAYMENT_STATUS_AUTHORIZED
        )
        self._status = CYCLE_SETTLING
        self._note(event, OUTCOME_PENDING, reason=f"Mollie payment is {payment.status}")
        payment = await self._settle(payment, payment_is_final)
        self._payment = payment
        await self._record_settled(event, payment)

    async def _terminate(self, event: BillingEvent) -> None:
        if self._status == CYCLE_CAPTURED:
            self._note(event, OUTCOME_IGNORED, reason="cycle already captured")
            return
        released = await self._release_open_authorisation("subscription terminated")
        await self._steps.record(
            CleengActivities.terminate_subscription,
            SubscriptionRef(subscription_id=self._cycle.subscription_id),
        )
        self._status = CYCLE_TERMINATED
        self._note(event, OUTCOME_TERMINATED, reason=OUTCOME_RELEASED if released else None)

    # Steps

    async def _order_for_unpaid_cycle(self, event: BillingEvent) -> OrderSnapshot | None:
        """The attempt's renewal order, or none when Cleeng shows the cycle paid already."""
        if self._cycle.compact_history:
            return await self._prepare_renewal(event)
        if await self._cycle_paid():
            return None
        return await self._renewal_order(event)

    async def _prepare_renewal(self, event: BillingEvent) -> OrderSnapshot | None:
        """The check and the order in one local step (compact history)."""
        prepared = await self._steps.write_safe_to_repeat(
            CleengActivities.prepare_renewal,
            PrepareRenewalInput(cycle=self._cycle_check(), order=self._order_request(event)),
        )
        if prepared.order is None:
            self._note_already_paid()
        return prepared.order

    def _cycle_check(self) -> CycleCheckInput:
        return CycleCheckInput(
            subscription_id=self._cycle.subscription_id,
            expiration_date=self._cycle.expiration_date,
        )

    def _order_request(self, event: BillingEvent) -> RenewalOrderInput:
        return RenewalOrderInput(
            customer_id=event.customer_id,
            offer_id=event.offer_id,
            subscription_id=self._cycle.subscription_id,
            currency=event.currency,
            country=event.country,
            payment_method_id=event.payment_method_id,
        )

    def _note_already_paid(self) -> None:
        workflow.logger.info("cycle %s already paid in Cleeng", self._cycle.expiration_date)
        self._status = CYCLE_ALREADY_PAID

    async def _cycle_paid(self) -> bool:
        paid = await self._steps.call(CleengActivities.cycle_already_paid, self._cycle_check())
        if paid:
            self._note_already_paid()
        return paid

    async def _valid_mandate(self, token: MollieToken | None) -> MandateView | None:
        """The token's mandate when Mollie says it is valid; None when there is no token, or
        Mollie does not know the mandate or calls it anything but valid (charging it is then
        declined by Mollie, which is recorded as the rejection it is)."""
        if token is None:
            return None
        try:
            mandate = await self._steps.call(
                MollieActivities.describe_mandate,
                MandateRef(customer_id=token.customer_id, mandate_id=token.mandate_id),
            )
        except ActivityError as error:
            if not refused_for_good(error):
                raise
            return None
        return mandate if mandate.status == MANDATE_VALID else None

    async def _mandate_usable(self, token: MollieToken) -> bool:
        mandate = await self._steps.call(
            MollieActivities.describe_mandate,
            MandateRef(customer_id=token.customer_id, mandate_id=token.mandate_id),
        )
        return mandate.status == "valid"

    async def _renewal_order(self, event: BillingEvent) -> OrderSnapshot:
        return await self._steps.write_safe_to_repeat(
            CleengActivities.create_renewal_order, self._order_request(event)
        )

    async def _charge(
        self,
        event: BillingEvent,
        order: OrderSnapshot,
        token: MollieToken | None,
        *,
        manual_capture: bool,
    ) -> GatewayPaymentView:
        """Create the Mollie recurring payment; a refused mandate is a decline, not a retry."""
        if token is None:
            raise Declined("payment details token is not a Mollie mandate")
        workflow_id = workflow.info().workflow_id
        try:
            payment = await self._steps.write_safe_to_repeat(
                MollieActivities.create_recurring_payment,
                RecurringChargeInput(
                    workflow_id=workflow_id,
                    mollie_customer_id=token.customer_id,
                    mandate_id=token.mandate_id,
                    amount=order.amount,
                    description=f"Renewal of subscription {self._cycle.subscription_id}",
                    operation_key=renewal_charge_key(
                        workflow_id,
                        manual_capture=manual_capture,
                        attempt_date=event.attempt_date,
                    ),
                    manual_capture=manual_capture,
                    metadata={
                        "subscriptionId": self._cycle.subscription_id,
                        "orderId": order.order_id,
                    },
                    known_payment_ids=list(self._made_payments),
                ),
            )
        except ActivityError as error:
            if failure_type(error) == CYCLE_CHARGED_BEFORE:
                # An earlier run of this cycle moved money (or holds it): charging again would
                # charge twice, and recording `rejected` would be untrue. Stop for an operator.
                self._error = failure_message(error)
                workflow.logger.error("not charging again: %s", self._error)
                raise ApplicationError(
                    self._error, type=CYCLE_CHARGED_BEFORE, non_retryable=True
                ) from error
            if refused_for_good(error):
                # e.g. 422 "No suitable mandates found": the customer must act, not us.
                raise Declined(f"mollie refused the charge: {failure_message(error)}") from error
            raise
        self._payment = payment
        self._made_payments.append(payment.payment_id)
        self._steps.set_attribute(search_attributes.MOLLIE_PAYMENT_ID.value_set(payment.payment_id))
        return payment

    def _order_named_by(self, payment: GatewayPaymentView, order: OrderSnapshot) -> OrderSnapshot:
        """The order a charge's record carries: the one its Mollie metadata names. An adopted
        payment (made before a worker was lost, after which the order was created again) was
        made for an earlier order, and refunds and chargebacks find the order in the metadata."""
        if payment.order_id is None or payment.order_id == order.order_id:
            return order
        workflow.logger.warning(
            "Mollie payment %s was made for order %s: recording it there, not on order %s",
            payment.payment_id,
            payment.order_id,
            order.order_id,
        )
        return replace(order, order_id=payment.order_id)

    async def _record_new(
        self, event: BillingEvent, order: OrderSnapshot, payment: GatewayPaymentView, status: str
    ) -> str:
        """POST the authorised/captured payment. Cleeng refuses it for good only when the
        order expired: a hold is then released; money that moved is recorded against a new
        order for the same renewal, never given back because the order aged."""
        while True:
            try:
                cleeng_id = await self._steps.record(
                    CleengActivities.record_payment,
                    RecordPaymentInput(
                        order_id=order.order_id,
                        status=status,
                        payment_operation=contract.PAYMENT_OPERATION_RECURRING,
                        external_payment_id=payment.payment_id,
                        payment_details_id=event.payment_details_id,
                        subscription_id=self._cycle.subscription_id,
                        inline_details=_details_if_unnamed(event, payment.payment_id),
                    ),
                )
                break
            except ActivityError as error:
                # Any failure to record other than the expired order is retried inside the
                # activity and never reaches here.
                if failure_type(error) != ORDER_EXPIRED:
                    raise
                if payment.status == MOLLIE_AUTHORIZED or not workflow.patched(
                    PATCH_METHOD_STRATEGY
                ):
                    await self._compensate_unrecorded(payment, error)
                order = await self._reorder_for_moved_money(event, order, payment)
        self._steps.set_attribute(search_attributes.CLEENG_PAYMENT_ID.value_set(cleeng_id))
        return cleeng_id

    async def _reorder_for_moved_money(
        self, event: BillingEvent, expired: OrderSnapshot, payment: GatewayPaymentView
    ) -> OrderSnapshot:
        """A new renewal order for money already taken (or on its way), and the Mollie payment
        pointed at it first, so the record, refunds and chargebacks all name the same order."""
        workflow.logger.warning(
            "renewal order %s expired before Mollie payment %s (%s) was recorded; recording it "
            "against a new order",
            expired.order_id,
            payment.payment_id,
            payment.status,
        )
        order = await self._renewal_order(event)
        await self._steps.write_safe_to_repeat(
            MollieActivities.point_payment_at_order,
            PaymentOrderInput(
                payment_id=payment.payment_id,
                order_id=order.order_id,
                idempotency_key=point_at_order_key(
                    workflow.info().workflow_id, payment.payment_id, order.order_id
                ),
            ),
        )
        return order

    async def _compensate_unrecorded(
        self, payment: GatewayPaymentView, error: ActivityError
    ) -> NoReturn:
        workflow_id = workflow.info().workflow_id
        self._error = str(error.cause or error)
        if payment.status == MOLLIE_AUTHORIZED:
            self._payment = payment
            await self._release_open_authorisation("Cleeng refused the authorisation")
        elif payment.status == MOLLIE_PAID:
            await self._steps.record(
                MollieActivities.refund_payment,
                RefundInput(
                    payment_id=payment.payment_id,
                    amount=payment.amount,
                    description=f"Renewal of {self._cycle.subscription_id} not recorded by Cleeng",
                    idempotency_key=compensating_refund_key(workflow_id),
                    metadata={"workflowId": workflow_id},
                ),
            )
        raise ApplicationError(
            f"Cleeng refused payment {payment.payment_id}; it was released/refunded: {self._error}",
            type=CLEENG_REFUSED,
            non_retryable=True,
        )

    async def _record_rejection(
        self,
        event: BillingEvent,
        order: OrderSnapshot,
        reason: str,
        payment: GatewayPaymentView | None,
    ) -> None:
        # Cleeng wants an externalPaymentId on every payment; a charge refused before Mollie
        # created a payment has none, so the order id stands in.
        external_id = payment.payment_id if payment else f"none:{order.order_id}"
        try:
            cleeng_id: str | None = await self._steps.record(
                CleengActivities.record_payment,
                RecordPaymentInput(
                    order_id=order.order_id,
                    status=contract.PAYMENT_STATUS_REJECTED,
                    payment_operation=contract.PAYMENT_OPERATION_RECURRING,
                    external_payment_id=external_id,
                    payment_details_id=event.payment_details_id,
                    rejected_reason=reason,
                    subscription_id=self._cycle.subscription_id,
                    inline_details=_details_if_unnamed(event, external_id),
                ),
            )
        except ActivityError as error:
            # No money moved, so nothing to compensate; the cycle stays open for Cleeng's next
            # attempt and the refusal stays in the cycle's story for an operator.
            if not refused_for_good(error):
                raise
            workflow.logger.error("Cleeng refused the rejected attempt: %s", failure_message(error))
            cleeng_id = None
            reason = f"{reason} (Cleeng refused the record: {failure_message(error)})"
        self._payment = None
        self._note(
            event,
            OUTCOME_REJECTED,
            mollie_payment_id=payment.payment_id if payment else None,
            cleeng_payment_id=cleeng_id,
            reason=reason,
        )

    async def _update_cleeng(self, update: UpdatePaymentInput) -> None:
        await self._steps.record(CleengActivities.update_payment, update)

    async def _release_open_authorisation(self, why: str) -> bool:
        """Compensation: give back funds held for a cycle that will not be captured."""
        if self._status != CYCLE_AUTHORISED and not (
            self._payment is not None and self._payment.status == MOLLIE_AUTHORIZED
        ):
            return False
        assert self._payment is not None
        await self._release(self._payment.payment_id, why)
        if self._cleeng_payment_id is not None:
            await self._steps.record(
                CleengActivities.cancel_payment,
                CleengPaymentRef(payment_id=self._cleeng_payment_id),
            )
        self._payment, self._cleeng_payment_id = None, None
        return True

    async def _release_hold(self, why: str) -> None:
        """Release the cycle's Mollie authorisation that Cleeng no longer counts on."""
        if self._payment is not None and self._payment.status == MOLLIE_AUTHORIZED:
            await self._release(self._payment.payment_id, why)
            self._payment = None

    async def _release(self, payment_id: str, why: str) -> None:
        workflow.logger.info("releasing %s: %s", payment_id, why)
        await self._steps.write_safe_to_repeat(
            MollieActivities.release_authorization,
            ReleaseInput(
                payment_id=payment_id,
                # One key per payment: each release is its own request at Mollie.
                operation_key=release_key(workflow.info().workflow_id, payment_id),
            ),
        )

    async def _settle(
        self, payment: GatewayPaymentView, is_done: Callable[[str], bool]
    ) -> GatewayPaymentView:
        """Wait until Mollie's status for `payment` is the one awaited (most are at once)."""
        return await self._watch.until(
            payment,
            is_done,
            self._cycle.poll_schedule_seconds,
            local=self._cycle.compact_history,
            # A payment that has to be waited for is findable by its id while it is.
            before_waiting=self._steps.publish_attributes,
        )

    def _note(
        self,
        event: BillingEvent,
        outcome: str,
        *,
        mollie_payment_id: str | None = None,
        cleeng_payment_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        payment_id = mollie_payment_id or (self._payment.payment_id if self._payment else None)
        self._attempts.append(
            AttemptRecord(
                kind=event.kind,
                attempt_date=event.attempt_date,
                outcome=outcome,
                mollie_payment_id=payment_id,
                cleeng_payment_id=cleeng_payment_id or self._cleeng_payment_id,
                reason=reason,
            )
        )

    # Messages

    @workflow.signal
    def event(self, event: BillingEvent) -> None:
        """A Cleeng dunning webhook for this cycle (duplicates are dropped when processed)."""
        if self._status in FINISHED_STATES:
            # The cycle is over and nothing will process this: say so, with what was dropped.
            workflow.logger.info(
                "cycle %s is %s: %s webhook of %s dropped",
                self._cycle.expiration_date,
                self._status,
                event.kind,
                event.attempt_date,
            )
            return
        self._queue.append(event)

    @workflow.signal
    def payment_changed(self, notice: PaymentNotice) -> None:
        """A Mollie webhook: re-check that payment."""
        self._watch.notify(notice.payment_id)

    @workflow.query
    def view(self) -> BillingView:
        return BillingView(
            subscription_id=self._cycle.subscription_id,
            expiration_date=self._cycle.expiration_date,
            status=self._status,
            mollie_payment_id=self._payment.payment_id if self._payment else None,
            cleeng_payment_id=self._cleeng_payment_id,
            attempts=list(self._attempts),
            error=self._error,
        )
