"""The renewal strategy per mandate method (docs/flows.md, "Renewal strategy per mandate method").

Mollie holds funds only on card mandates; a SEPA Direct Debit stays `pending` for days while
Cleeng lets an order expire 24 hours after creation unless its payment is recorded. So:
- an authorisation on a mandate that cannot be held is a charge, never a request for manual
  capture and never a `rejected` record against a valid mandate;
- a pending charge is recorded `authorized` at once and updated when Mollie settles it;
- money taken whose order expired anyway is recorded against a new order, never refunded;
- a free trial paid with a method that takes no 0.00 pays the smallest amount, refunded.

Cycles run on the time-skipping server (days pass in seconds) against emulators of their own,
whose clocks these tests move; Mollie's webhooks go nowhere, so only polling sees settlements.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.cleeng_payloads import iso_utc
from domain.billing import BillingView
from domain.payment_details import DeactivationInput, deactivation_workflow_id
from settings import Settings
from tests.conftest import Connector, Emulators
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
from tests.support.shop import (
    TEST_SHOP_ORIGIN,
    advance_clock,
    choose_on_checkout,
    cleeng_payments,
    frontend_headers,
    mollie_payments_for_order,
    seed_order,
    set_faults,
)
from workflows.payment_details import DetailsDeactivationWorkflow
from workflows.recurring_billing import RecurringBillingWorkflow

pytestmark = pytest.mark.asyncio

COMPACT = pytest.mark.parametrize("compact", [False, True], ids=["activity-tasks", "local"])


@COMPACT
async def test_an_authorisation_on_a_direct_debit_mandate_is_charged_and_recorded_while_pending(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators, compact: bool
) -> None:
    env, settings = connected
    sub = await mandate_subscriber(private_emulators, "directdebit")
    three_days_early = iso_utc(sub.due - timedelta(hours=72))
    handle = await start_cycle(
        env, settings, sub, "authorise", compact=compact, attempt_date=three_days_early
    )
    await env.sleep(timedelta(hours=12))
    pending = await handle.query(RecurringBillingWorkflow.view)
    assert pending.status == "settling"
    assert pending.mollie_payment_id is not None
    debit = await mollie_payment(private_emulators, pending.mollie_payment_id)
    # Charged, not held: Mollie cannot hold funds on a direct debit.
    assert debit["status"] == "pending"
    assert debit.get("captureMode", "automatic") == "automatic"
    assert debit["method"] == "directdebit"
    [record] = await renewal_records(private_emulators, sub.subscription_id)
    assert record["status"] == "authorized"
    assert record["externalPaymentId"] == pending.mollie_payment_id

    await settle(private_emulators, pending.mollie_payment_id, {"status": "paid"})
    await env.sleep(timedelta(hours=2))
    final = await handle.result()
    assert final.status == "captured"
    [captured] = await renewal_records(private_emulators, sub.subscription_id)
    assert captured["id"] == record["id"]
    assert captured["status"] == "captured"
    assert [a.outcome for a in final.attempts] == ["pending_recorded_authorized", "captured"]
    await keep_history(handle, "RecurringBilling-sepa-authorise" + ("-compact" if compact else ""))


async def test_an_authorisation_on_a_paypal_mandate_is_charged_and_captured_at_once(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    env, settings = connected
    sub = await mandate_subscriber(private_emulators, "paypal")
    early = iso_utc(sub.due - timedelta(hours=72))
    handle = await start_cycle(env, settings, sub, "authorise", compact=True, attempt_date=early)
    final = await handle.result()
    assert final.status == "captured"
    [payment] = await mollie_customer_payments(private_emulators, sub.mollie_customer_id)
    assert payment["status"] == "paid"
    assert payment["method"] == "paypal"
    [record] = await renewal_records(private_emulators, sub.subscription_id)
    assert record["status"] == "captured"
    assert record["externalPaymentId"] == payment["id"]


async def test_a_direct_debit_that_fails_is_rejected_with_the_bank_reason_and_charged_again(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    env, settings = connected
    sub = await mandate_subscriber(private_emulators, "directdebit")
    first_attempt = iso_utc(sub.due - timedelta(hours=72))
    handle = await start_cycle(
        env, settings, sub, "authorise", compact=True, attempt_date=first_attempt
    )
    await env.sleep(timedelta(hours=1))
    first = await handle.query(RecurringBillingWorkflow.view)
    assert first.mollie_payment_id is not None
    await settle(
        private_emulators,
        first.mollie_payment_id,
        {"status": "failed", "failureReason": "insufficient_funds"},
    )
    await env.sleep(timedelta(hours=2))
    reopened = await handle.query(RecurringBillingWorkflow.view)
    assert reopened.status == "open"
    [rejected] = await renewal_records(private_emulators, sub.subscription_id)
    assert rejected["status"] == "rejected"
    assert rejected["externalPaymentId"] == first.mollie_payment_id
    assert "insufficient_funds" in rejected["rejectedReason"]

    # Cleeng's next dunning attempt: a new debit, recorded and settled the same way.
    await handle.signal(
        RecurringBillingWorkflow.event,
        sub.event("authorise", iso_utc(sub.due - timedelta(hours=48))),
    )
    await env.sleep(timedelta(hours=1))
    second = await handle.query(RecurringBillingWorkflow.view)
    assert second.mollie_payment_id not in (None, first.mollie_payment_id)
    assert second.mollie_payment_id is not None
    await settle(private_emulators, second.mollie_payment_id, {"status": "paid"})
    await env.sleep(timedelta(hours=2))
    assert (await handle.result()).status == "captured"
    await keep_history(handle, "RecurringBilling-sepa-declined-compact")
    records = {
        r["externalPaymentId"]: r["status"]
        for r in await renewal_records(private_emulators, sub.subscription_id)
    }
    assert records == {first.mollie_payment_id: "rejected", second.mollie_payment_id: "captured"}


async def test_a_revoked_mandate_is_still_a_rejection(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    """The per-method strategy never charges a mandate Mollie no longer calls valid."""
    env, settings = connected
    sub = await mandate_subscriber(private_emulators, "directdebit")
    async with httpx.AsyncClient() as http:
        revoked = await http.delete(
            f"{private_emulators.mollie_url}/v2/customers/{sub.mollie_customer_id}"
            f"/mandates/{sub.mandate_id}",
            headers=MOLLIE_HEADERS,
        )
    assert revoked.status_code == 204
    early = iso_utc(sub.due - timedelta(hours=72))
    handle = await start_cycle(env, settings, sub, "authorise", compact=True, attempt_date=early)
    await env.sleep(timedelta(hours=1))
    view = await handle.query(RecurringBillingWorkflow.view)
    assert view.status == "open"
    assert [a.outcome for a in view.attempts] == ["rejected"]
    assert await mollie_customer_payments(private_emulators, sub.mollie_customer_id) == []


@pytest.mark.parametrize(
    ("method", "compact"),
    [("paypal", False), ("paypal", True), ("directdebit", True)],
    ids=["paypal-activity-tasks", "paypal-local", "directdebit-local"],
)
async def test_money_taken_for_an_order_that_expired_is_recorded_on_a_new_order_not_refunded(
    connected: tuple[WorkflowEnvironment, Settings],
    private_emulators: Emulators,
    method: str,
    compact: bool,
) -> None:
    """Cleeng is unreachable for a day after the charge: the renewal order expires. The
    renewal is recorded against a new order for the same subscription, and Mollie's payment is
    pointed at that order, so refunds and chargebacks find it; nothing goes back."""
    env, settings = connected
    sub = await mandate_subscriber(private_emulators, method)
    await set_faults(
        private_emulators.cleeng_url,
        {"failNext": [{"method": "POST", "pathPrefix": "/3.1/payments", "count": 10_000}]},
    )
    handle = await start_cycle(env, settings, sub, "capture", compact=compact)
    async with asyncio.timeout(30):
        while not (
            payments := await mollie_customer_payments(private_emulators, sub.mollie_customer_id)
        ):
            await env.sleep(timedelta(seconds=30))
    [payment] = payments
    expired_order = payment["metadata"]["orderId"]
    await advance_clock(private_emulators.cleeng_url, 25 * 3600)
    async with httpx.AsyncClient() as http:
        await http.delete(f"{private_emulators.cleeng_url}/_emulator/faults")

    if payment["status"] == "pending":
        async with asyncio.timeout(30):
            while not await renewal_records(private_emulators, sub.subscription_id):
                await env.sleep(timedelta(minutes=5))
        await settle(private_emulators, payment["id"], {"status": "paid"})
    final = await handle.result()
    assert final.status == "captured"
    await keep_history(
        handle, f"RecurringBilling-reordered-{method}" + ("-compact" if compact else "")
    )
    [record] = await renewal_records(private_emulators, sub.subscription_id)
    assert record["status"] == "captured"
    assert record["externalPaymentId"] == payment["id"]
    assert str(record["orderId"]) != str(expired_order)
    settled = await mollie_payment(private_emulators, payment["id"])
    assert settled["status"] == "paid"
    assert str(settled["metadata"]["orderId"]) == str(record["orderId"])
    assert settled.get("amountRefunded", {"value": "0.00"})["value"] == "0.00"


async def test_a_free_trial_paid_with_ideal_pays_the_smallest_amount_and_gets_it_back(
    connector: Connector,
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url, price=0, currency="EUR")
    order_id = str(seeded["orderId"])
    async with httpx.AsyncClient(timeout=60) as http:
        started = await http.post(
            f"{connector.api_url}/purchases",
            json={
                "orderId": order_id,
                "redirectUrl": f"{TEST_SHOP_ORIGIN}/thanks",
                "method": "ideal",
            },
            headers=frontend_headers(connector.settings, seeded["customerId"]),
        )
    assert started.status_code == 201, started.text
    assert started.json()["amount"] == {"minor": 1, "currency": "EUR"}
    await choose_on_checkout(started.json()["checkoutUrl"], "paid")
    final = await connector.client.get_workflow_handle(f"purchase:{order_id}").result()
    assert final["status"] == "captured"

    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, order_id)
    assert recorded["status"] == "captured"
    assert recorded["paymentOperation"] == "initial-free-transaction"
    [payment] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert payment["id"] == recorded["externalPaymentId"]
    assert payment["amount"] == {"currency": "EUR", "value": "0.01"}
    # The verification cent goes back; the SEPA mandate iDEAL left stays for the renewals.
    assert payment["amountRefunded"] == {"currency": "EUR", "value": "0.01"}
    assert payment["mandateId"].startswith("mdt_")


async def test_replaced_details_leave_a_pending_direct_debit_to_its_cycle(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    """Cleeng lists the pending debit among the old details' authorisations, but it is no hold
    Mollie can release: the old-details saga leaves its record to the cycle, which records
    the settlement. Cancelling it would hide money on its way from the customer."""
    env, settings = connected
    sub = await mandate_subscriber(private_emulators, "directdebit")
    early = iso_utc(sub.due - timedelta(hours=72))
    cycle = await start_cycle(env, settings, sub, "authorise", compact=True, attempt_date=early)
    await env.sleep(timedelta(hours=1))
    pending = await cycle.query(RecurringBillingWorkflow.view)
    assert pending.status == "settling"
    assert pending.mollie_payment_id is not None

    deactivation_handle = await env.client.start_workflow(
        DetailsDeactivationWorkflow.run,
        DeactivationInput(
            payment_details_id=sub.payment_details_id,
            customer_id=sub.customer_id,
            token=sub.token,
        ),
        id=deactivation_workflow_id(sub.payment_details_id),
        task_queue=settings.temporal_task_queue,
    )
    deactivation = await deactivation_handle.result()
    await keep_history(deactivation_handle, "DetailsDeactivation-pending-debit")
    assert deactivation.cancelled == []
    assert [a.mollie_payment_id for a in deactivation.left_to_billing] == [
        pending.mollie_payment_id
    ]
    [record] = await renewal_records(private_emulators, sub.subscription_id)
    assert record["status"] == "authorized"

    await settle(private_emulators, pending.mollie_payment_id, {"status": "paid"})
    await env.sleep(timedelta(hours=2))
    assert (await cycle.result()).status == "captured"
    [captured] = await renewal_records(private_emulators, sub.subscription_id)
    assert captured["status"] == "captured"


async def webhooks_queued_behind_a_pending_debit(
    env: WorkflowEnvironment, settings: Settings, emulators: Emulators
) -> tuple[MandateSubscriber, WorkflowHandle[Any, BillingView], str]:
    """A capture-only SEPA cycle whose debit is pending, with Cleeng's next capture attempt and
    its termination (due date + grace, nothing captured yet) queued behind it; the debit's id."""
    sub = await mandate_subscriber(emulators, "directdebit")
    handle = await start_cycle(env, settings, sub, "capture", compact=True)
    await env.sleep(timedelta(hours=1))
    pending = await handle.query(RecurringBillingWorkflow.view)
    assert pending.status == "settling"
    assert pending.mollie_payment_id is not None
    await handle.signal(
        RecurringBillingWorkflow.event,
        sub.event("capture", iso_utc(sub.due + timedelta(hours=1))),
    )
    await handle.signal(
        RecurringBillingWorkflow.event,
        sub.event("terminate", iso_utc(sub.due + timedelta(hours=2))),
    )
    return sub, handle, pending.mollie_payment_id


async def test_webhooks_that_come_while_a_debit_is_pending_wait_for_its_outcome(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    """Cleeng's next capture attempt and its termination (due date + grace, nothing captured
    yet) arrive while the direct debit is pending. They wait for the bank: the debit is paid,
    so the renewal stands, the subscription is not terminated, and both webhooks stay in the
    cycle's story as answered by the capture."""
    env, settings = connected
    sub, handle, debit = await webhooks_queued_behind_a_pending_debit(
        env, settings, private_emulators
    )
    await settle(private_emulators, debit, {"status": "paid"})
    await env.sleep(timedelta(hours=2))
    final = await handle.result()
    assert final.status == "captured"
    assert [(a.kind, a.outcome) for a in final.attempts] == [
        ("capture", "pending_recorded_authorized"),
        ("capture", "captured"),
        ("capture", "ignored"),
        ("terminate", "ignored"),
    ]
    async with httpx.AsyncClient() as http:
        subscription = (
            await http.get(
                f"{private_emulators.cleeng_url}/_emulator/subscriptions",
                params={"customerId": sub.customer_id},
            )
        ).json()
    items = subscription["items"] if isinstance(subscription, dict) else subscription
    [mine] = [s for s in items if str(s["subscriptionId"]) == sub.subscription_id]
    assert mine["status"] == "active"


async def test_a_debit_that_fails_after_cleeng_gave_up_ends_in_the_termination_it_sent(
    connected: tuple[WorkflowEnvironment, Settings], private_emulators: Emulators
) -> None:
    """Cleeng's next capture attempt and its termination queue behind a pending debit, which
    then fails: the stale capture attempt charges nothing (the termination supersedes it), and
    the termination Cleeng sent is carried out."""
    env, settings = connected
    sub, handle, debit = await webhooks_queued_behind_a_pending_debit(
        env, settings, private_emulators
    )
    await settle(
        private_emulators,
        debit,
        {"status": "failed", "failureReason": "insufficient_funds"},
    )
    await env.sleep(timedelta(hours=2))
    assert (await handle.query(RecurringBillingWorkflow.view)).status == "terminated"
    final = await handle.result()
    await keep_history(handle, "RecurringBilling-superseded-compact")
    assert [(a.kind, a.outcome) for a in final.attempts] == [
        ("capture", "pending_recorded_authorized"),
        ("capture", "rejected"),
        ("capture", "ignored"),
        ("terminate", "terminated"),
    ]
    assert len(await mollie_customer_payments(private_emulators, sub.mollie_customer_id)) == 1
