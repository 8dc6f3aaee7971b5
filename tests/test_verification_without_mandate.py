"""A card change whose verification payment is paid but leaves no mandate gets its money back.

Neither emulator can make that payment (a paid first payment always leaves a mandate there), so
the Mollie activities are stubs here, registered under the real activities' names: the
workflow is the real one, and its history is saved for the replay tests when the run saves
histories (`NewPaymentDetails-mandateless-*`). Run unchanged on the release that shipped
(bf66b6e), the same test recorded the path before the `refund-mandateless-verification` patch
(`NewPaymentDetails-shipped-mandateless-*`: failed, nothing refunded).
"""

from __future__ import annotations

import uuid

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.money import Money
from domain.operations import (
    CheckoutPaymentInput,
    EnsureCustomerInput,
    GatewayPaymentView,
    MolliePaymentRef,
    RefundInput,
    RefundView,
)
from domain.payment_details import NewDetailsInput, new_details_workflow_id
from tests.support.histories import keep_history
from workflows.payment_details import NewPaymentDetailsWorkflow

VERIFICATION = Money(minor=1, currency="EUR")


class MollieStub:
    """Mollie as the workflow sees it: the checkout payment ends `paid` with no mandate."""

    def __init__(self) -> None:
        self.refunds: list[RefundInput] = []

    @activity.defn(name="ensure_mollie_customer")
    async def ensure_mollie_customer(self, request: EnsureCustomerInput) -> str:
        return "cst_stub0001"

    @activity.defn(name="create_checkout_payment")
    async def create_checkout_payment(self, request: CheckoutPaymentInput) -> GatewayPaymentView:
        return GatewayPaymentView(
            payment_id="tr_stub0001",
            status="open",
            amount=VERIFICATION,
            checkout_url="https://www.mollie.com/checkout/stub",
            customer_id="cst_stub0001",
        )

    @activity.defn(name="fetch_payment")
    async def fetch_payment(self, request: MolliePaymentRef) -> GatewayPaymentView:
        return GatewayPaymentView(
            payment_id=request.payment_id,
            status="paid",
            amount=VERIFICATION,
            customer_id="cst_stub0001",
            mandate_id=None,
        )

    @activity.defn(name="refund_payment")
    async def refund_payment(self, request: RefundInput) -> RefundView:
        self.refunds.append(request)
        return RefundView(refund_id="re_stub0001", status="pending")


async def test_a_paid_verification_that_left_no_mandate_is_refunded(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    mollie = MollieStub()
    queue = f"mandateless-{uuid.uuid4().hex[:8]}"
    customer_id = str(900_000_000 + uuid.uuid4().int % 99_999_999)
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[NewPaymentDetailsWorkflow],
        activities=[
            mollie.ensure_mollie_customer,
            mollie.create_checkout_payment,
            mollie.fetch_payment,
            mollie.refund_payment,
        ],
    ):
        handle = await env.client.start_workflow(
            NewPaymentDetailsWorkflow.run,
            NewDetailsInput(
                customer_id=customer_id, redirect_url="https://shop.example/return", method=None
            ),
            id=new_details_workflow_id(customer_id),
            task_queue=queue,
        )
        view = await handle.result()
        await keep_history(handle, "NewPaymentDetails-mandateless")
    assert view.status == "failed"
    assert view.payment_details_id is None
    assert [(r.payment_id, r.amount) for r in mollie.refunds] == [("tr_stub0001", VERIFICATION)]
