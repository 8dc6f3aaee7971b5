"""One writer per payment: the races and give-ups that moved money without a matching record.

- A card change racing a capture never cancels the record of money taken.
- A Cleeng write made after money moved is never given up (one 401 is retried, not final);
  nor is the wait on a charge already made (a failed look-up is looked at again).
- A new run of a cycle whose earlier run moved money never charges again.
- The order recorded is the order the money names.
- A rejection names only its own attempt's payment; a capture is never made twice.
- A deactivation without a token leaves records that are not Mollie payments alone.

Cycles run on the time-skipping server against emulators of this module's own; Mollie's
webhooks go nowhere, so polling sees every change.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.mollie_activities import MollieActivities
from api.cleeng_payloads import iso_utc
from clients.mollie import MollieGateway
from domain.billing import BillingCycleInput, BillingView, billing_workflow_id
from domain.operations import CaptureInput
from domain.payment_details import DeactivationInput, deactivation_workflow_id
from settings import EMULATOR_PUBLISHER_TOKEN, Settings
from tests.conftest import Emulators
from tests.emulators.test_mollie_support import API_KEY, running_emulator
from tests.support.histories import keep_history
from tests.support.ledgers import (
    mollie_customer_payments,
    mollie_payment,
    renewal_records,
    settle,
)
from tests.support.mandates import (
    MOLLIE_HEADERS,
    MandateSubscriber,
    mandate_subscriber,
    start_cycle,
)
from tests.support.shop import advance_clock, set_faults
from workflows.payment_details import DetailsDeactivationWorkflow
from workflows.recurring_billing import RecurringBillingWorkflow

pytestmark = pytest.mark.asyncio

FOREVER = 10_000


async def until(env: WorkflowEnvironment, condition: Any, step: timedelta) -> None:
    """Let workflow time pass in `step`s until `condition()` (an awaitable factory) holds."""
    async with asyncio.timeout(30):
        while not await condition():
            await env.sleep(step)


async def authorised_card_cycle(
    env: WorkflowEnvironment, settings: Settings, emulators: Emulators
) -> tuple[MandateSubscriber, WorkflowHandle[Any, BillingView], str]:
    """A card subscriber whose cycle holds an authorisation, recorded `authorized`."""
    sub = await mandate_subscriber(emulators, "creditcard")
    early = iso_utc(sub.due - timedelta(hours=72))
    handle = await start_cycle(env, settings, sub, "authorise", compact=True, attempt_date=early)

    async def authorised() -> bool:
        return (await handle.query(RecurringBillingWorkflow.view)).status == "authorised"

    await until(env, authorised, timedelta(minutes=1))
    view = await handle.query(RecurringBillingWorkflow.view)
    assert view.mollie_payment_id is not None
    return sub, handle, view.mollie_payment_id


async def test_a_card_change_racing_a_capture_never_cancels_the_record_of_money_taken(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    env, settings = connected
    sub, cycle, held = await authorised_card_cycle(env, settings, private_emulators)
    # The capture reaches Mollie (the cycle's capture call committed there; its reply, and so
    # the cycle's PATCH `captured`, still on the way) when the card change deactivates the
    # old details.
    async with httpx.AsyncClient() as http:
        captured = await http.post(
            f"{private_emulators.mollie_url}/v2/payments/{held}/captures",
            json={"description": "Renewal"},
            headers=MOLLIE_HEADERS,
        )
    assert captured.status_code == 201, captured.text
    assert (await mollie_payment(private_emulators, held))["status"] == "paid"
    # Real time only: skipped time would let the waiting cycle run out its idle limit.
    with env.auto_time_skipping_disabled():
        deactivation = await env.client.execute_workflow(
            DetailsDeactivationWorkflow.run,
            DeactivationInput(
                payment_details_id=sub.payment_details_id,
                customer_id=sub.customer_id,
                token=sub.token,
            ),
            id=deactivation_workflow_id(sub.payment_details_id),
            task_queue=settings.temporal_task_queue,
        )
    assert deactivation.cancelled == []
    assert [a.mollie_payment_id for a in deactivation.left_to_billing] == [held]
    [record] = await renewal_records(private_emulators, sub.subscription_id)
    assert record["status"] == "authorized"

    await cycle.signal(RecurringBillingWorkflow.event, sub.event("capture", iso_utc(sub.due)))
    final = await cycle.result()
    assert final.status == "captured"
    [record] = await renewal_records(private_emulators, sub.subscription_id)
    assert record["status"] == "captured"
    paid = [
        p
        for p in await mollie_customer_payments(private_emulators, sub.mollie_customer_id)
        if p["status"] == "paid" and p["sequenceType"] == "recurring"
    ]
    assert [p["id"] for p in paid] == [held]


async def test_a_refused_capture_record_is_retried_never_given_up(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    """One 401 on the PATCH `captured` (a token rotation): the cycle keeps trying, and the
    record lands; the cycle never fails with the customer's money taken."""
    env, settings = connected
    sub, cycle, held = await authorised_card_cycle(env, settings, private_emulators)
    await set_faults(
        private_emulators.cleeng_url,
        {"failNext": [{"method": "PATCH", "pathPrefix": "/3.1/payments", "status": 401}]},
    )
    await cycle.signal(RecurringBillingWorkflow.event, sub.event("capture", iso_utc(sub.due)))
    final = await cycle.result()
    assert final.status == "captured"
    await keep_history(cycle, "RecurringBilling-capture-record-retried-compact")
    [record] = await renewal_records(private_emulators, sub.subscription_id)
    assert record["status"] == "captured"
    assert record["externalPaymentId"] == held


async def test_a_failed_look_at_a_pending_debit_does_not_end_the_wait(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    env, settings = connected
    sub = await mandate_subscriber(private_emulators, "directdebit")
    cycle = await start_cycle(env, settings, sub, "capture", compact=True)

    async def pending_recorded() -> bool:
        return bool(await renewal_records(private_emulators, sub.subscription_id))

    await until(env, pending_recorded, timedelta(minutes=1))
    [debit] = await mollie_customer_payments(private_emulators, sub.mollie_customer_id)
    # Mollie answers the cycle's next looks with 401 (a rotated key), then recovers.
    await set_faults(
        private_emulators.mollie_url,
        {"failNext": [{"method": "GET", "pathPrefix": "/v2/payments/", "status": 401, "count": 3}]},
    )
    await env.sleep(timedelta(hours=3))
    assert (await cycle.query(RecurringBillingWorkflow.view)).status == "settling"
    await settle(private_emulators, debit["id"], {"status": "paid"})
    await env.sleep(timedelta(hours=6))
    assert (await cycle.result()).status == "captured"
    await keep_history(cycle, "RecurringBilling-poll-failed-compact")


async def run_that_charged_and_was_lost(
    env: WorkflowEnvironment, settings: Settings, emulators: Emulators
) -> tuple[MandateSubscriber, dict[str, Any]]:
    """A capture-only cycle whose run charged PayPal (paid at once) and then ended before
    Cleeng heard of it (Cleeng refusing, the run terminated by hand)."""
    sub = await mandate_subscriber(emulators, "paypal")
    await set_faults(
        emulators.cleeng_url,
        {"failNext": [{"method": "POST", "pathPrefix": "/3.1/payments", "count": FOREVER}]},
    )
    first = await start_cycle(env, settings, sub, "capture", compact=True)

    async def charged() -> bool:
        return bool(await mollie_customer_payments(emulators, sub.mollie_customer_id))

    await until(env, charged, timedelta(seconds=30))
    await first.terminate("lost for the test")
    async with httpx.AsyncClient() as http:
        await http.delete(f"{emulators.cleeng_url}/_emulator/faults")
    [payment] = await mollie_customer_payments(emulators, sub.mollie_customer_id)
    assert payment["status"] == "paid"
    return sub, payment


async def start_again(
    env: WorkflowEnvironment, settings: Settings, sub: MandateSubscriber, attempt_date: str
) -> WorkflowHandle[Any, BillingView]:
    due = iso_utc(sub.due)
    return await env.client.start_workflow(
        RecurringBillingWorkflow.run,
        BillingCycleInput(
            subscription_id=sub.subscription_id, expiration_date=due, compact_history=True
        ),
        id=billing_workflow_id(sub.subscription_id, due),
        task_queue=settings.temporal_task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        start_signal="event",
        start_signal_args=[sub.event("capture", attempt_date)],
    )


async def test_a_new_run_after_a_run_that_moved_money_never_charges_again(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    env, settings = connected
    sub, paid = await run_that_charged_and_was_lost(env, settings, private_emulators)
    # Cleeng's next capture attempt starts a new run of the same cycle.
    later = iso_utc(sub.due + timedelta(hours=1))
    second = await start_again(env, settings, sub, later)
    with pytest.raises(WorkflowFailureError) as failed:
        await second.result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "CycleChargedBefore"
    assert paid["id"] in failed.value.cause.message
    assert [
        p["id"] for p in await mollie_customer_payments(private_emulators, sub.mollie_customer_id)
    ] == [paid["id"]]


async def test_an_adopted_payment_is_recorded_on_the_order_its_metadata_names(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    """The same attempt redelivered to a new run adopts the payment the lost run made (same
    operation key) and makes a new renewal order; the record goes on the payment's order."""
    env, settings = connected
    sub, paid = await run_that_charged_and_was_lost(env, settings, private_emulators)
    second = await start_again(env, settings, sub, iso_utc(sub.due))
    assert (await second.result()).status == "captured"
    await keep_history(second, "RecurringBilling-adopted-order-compact")
    [record] = await renewal_records(private_emulators, sub.subscription_id)
    assert record["externalPaymentId"] == paid["id"]
    assert str(record["orderId"]) == str(paid["metadata"]["orderId"])
    assert len(await mollie_customer_payments(private_emulators, sub.mollie_customer_id)) == 1


async def test_a_rejection_names_only_its_own_attempts_payment(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    """A hold expires before the capture (rejected, naming it); the mandate is then revoked
    and the next attempt makes no payment: its rejection names none, not the expired hold."""
    env, settings = connected
    sub, cycle, held = await authorised_card_cycle(env, settings, private_emulators)
    await advance_clock(private_emulators.mollie_url, 8 * 24 * 3600)
    await cycle.signal(RecurringBillingWorkflow.event, sub.event("capture", iso_utc(sub.due)))

    async def reopened() -> bool:
        return (await cycle.query(RecurringBillingWorkflow.view)).status == "open"

    await until(env, reopened, timedelta(minutes=1))
    async with httpx.AsyncClient() as http:
        revoked = await http.delete(
            f"{private_emulators.mollie_url}/v2/customers/{sub.mollie_customer_id}"
            f"/mandates/{sub.mandate_id}",
            headers=MOLLIE_HEADERS,
        )
    assert revoked.status_code == 204
    await cycle.signal(
        RecurringBillingWorkflow.event,
        sub.event("authorise", iso_utc(sub.due + timedelta(hours=1))),
    )

    async def two_rejections() -> bool:
        records = await renewal_records(private_emulators, sub.subscription_id)
        return len([r for r in records if r["status"] == "rejected"]) == 2

    await until(env, two_rejections, timedelta(minutes=1))
    externals = [
        r["externalPaymentId"]
        for r in await renewal_records(private_emulators, sub.subscription_id)
    ]
    assert externals[0] == held
    assert externals[1].startswith("none:")


async def test_a_capture_retried_after_mollie_forgot_its_key_is_not_made_twice() -> None:
    """The capture is still pending at Mollie when the step is retried an hour later (the
    key forgotten): the retry sees the capture under way and makes none."""
    with running_emulator(capture_settle_seconds=6 * 3600.0, deliver_webhooks=False) as emulator:
        gateway = MollieGateway(emulator.base_url, API_KEY, timeout_seconds=5)
        activities = MollieActivities(gateway, lambda workflow_id: "https://connector.example/")
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=emulator.base_url, headers=headers) as http:
            customer = (await http.post("/v2/customers", json={})).json()["id"]
            first = (
                await http.post(
                    "/v2/payments",
                    json={
                        "amount": {"currency": "EUR", "value": "0.00"},
                        "description": "card",
                        "redirectUrl": "https://shop.example/",
                        "sequenceType": "first",
                        "customerId": customer,
                        "method": "creditcard",
                    },
                )
            ).json()
            await http.post(f"/_emulator/payments/{first['id']}/status", json={"status": "paid"})
            held = (
                await http.post(
                    "/v2/payments",
                    json={
                        "amount": {"currency": "EUR", "value": "9.99"},
                        "description": "Renewal",
                        "sequenceType": "recurring",
                        "customerId": customer,
                        "captureMode": "manual",
                    },
                )
            ).json()
            assert held["status"] == "authorized"
            capture = CaptureInput(
                payment_id=held["id"], description="Renewal", operation_key="cycle:capture"
            )
            await activities.capture_payment(capture)
            await http.post("/_emulator/clock/advance", json={"seconds": 2 * 3600})
            await activities.capture_payment(capture)
            captures = (await http.get(f"/v2/payments/{held['id']}/captures")).json()
        await gateway.aclose()
    assert captures["count"] == 1


async def test_a_deactivation_without_a_token_leaves_other_gateways_records_alone(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    env, settings = connected
    sub = await mandate_subscriber(private_emulators, "directdebit")
    cleeng = {"X-Publisher-Token": EMULATOR_PUBLISHER_TOKEN}
    async with httpx.AsyncClient(base_url=private_emulators.cleeng_url, headers=cleeng) as http:
        order = (
            await http.post(
                "/3.1/orders",
                json={
                    "customerId": int(sub.customer_id),
                    "offerId": sub.offer_id,
                    "currency": "EUR",
                    "country": "NL",
                    "paymentMethodId": 555000001,
                },
            )
        ).json()
        order_id = (order.get("order") or order)["id"]
        recorded = await http.post(
            "/3.1/payments",
            json={
                "orderId": str(order_id),
                "status": "authorized",
                "paymentOperation": "initial-payment",
                "paymentDetailsId": sub.payment_details_id,
                "externalPaymentId": "psp-elsewhere-123",
            },
        )
        assert recorded.status_code in (200, 201), recorded.text
    handle = await env.client.start_workflow(
        DetailsDeactivationWorkflow.run,
        DeactivationInput(
            payment_details_id=sub.payment_details_id, customer_id=sub.customer_id, token=None
        ),
        id=deactivation_workflow_id(sub.payment_details_id),
        task_queue=settings.temporal_task_queue,
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    await keep_history(handle, "DetailsDeactivation-no-token-foreign-record")
    view = await handle.query(DetailsDeactivationWorkflow.view)
    assert view.cancelled == []
    assert any("psp-elsewhere-123" in failure.error for failure in view.failures)
    async with httpx.AsyncClient() as http:
        payments = (
            await http.get(
                f"{private_emulators.cleeng_url}/_emulator/payments", params={"orderId": order_id}
            )
        ).json()["items"]
    assert [p["status"] for p in payments] == ["authorized"]
