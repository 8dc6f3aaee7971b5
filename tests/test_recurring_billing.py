"""RecurringBilling through the real shim: Cleeng's signed webhooks in, Mollie and Cleeng
emulators behind, a real Temporal server in between."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle

from api.cleeng_payloads import iso_utc
from domain import search_attributes
from domain.billing import BillingCycleInput, BillingEvent, BillingView, billing_workflow_id
from tests.conftest import Connector
from tests.support.billing import (
    Subscriber,
    cleeng_subscription,
    cleeng_subscription_payments,
    mollie_customer_payments,
    send_cleeng_webhook,
    subscribed_customer,
)
from tests.support.shop import advance_clock, lose_the_next_reply, set_faults
from workflows.recurring_billing import RecurringBillingWorkflow

pytestmark = pytest.mark.asyncio


def cycle_handle(connector: Connector, sub: Subscriber) -> WorkflowHandle[Any, BillingView]:
    return connector.client.get_workflow_handle_for(
        RecurringBillingWorkflow.run,
        billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date)),
    )


async def cycle_reaches(
    handle: WorkflowHandle[Any, BillingView],
    condition: Callable[[BillingView], bool],
    timeout: float = 30,
) -> BillingView:
    """Await a cycle state seen from outside (the workflow's query), with a deadline."""
    async with asyncio.timeout(timeout):
        while True:
            view = await handle.query(RecurringBillingWorkflow.view)
            if condition(view):
                return view
            await asyncio.sleep(0.05)


async def deliver(connector: Connector, data: dict[str, Any]) -> None:
    response = await send_cleeng_webhook(connector, data)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"


async def fail_next_recurring(connector: Connector, sub: Subscriber, reason: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{connector.emulators.mollie_url}/_emulator/customers/"
            f"{sub.mollie_customer_id}/next-outcomes",
            json={"outcomes": [{"status": "failed", "failureReason": reason}]},
        )
        response.raise_for_status()


async def test_authorise_then_capture_renews_the_subscription(connector: Connector) -> None:
    sub = await subscribed_customer(connector)
    handle = cycle_handle(connector, sub)

    await deliver(connector, sub.dunning_data("authorize", 72))
    authorised = await cycle_reaches(handle, lambda v: v.status == "authorised")
    [held] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert held["status"] == "authorized"
    assert held["amount"] == {"currency": "EUR", "value": "9.99"}

    await deliver(connector, sub.dunning_data("capture", 0))
    final = await handle.result()

    assert final.status == "captured"
    [payment] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert payment["status"] == "captured"
    assert payment["externalPaymentId"] == held["id"] == authorised.mollie_payment_id
    [charged] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert charged["status"] == "paid"
    renewed = await cleeng_subscription(connector, sub.subscription_id)
    assert renewed["dateTo"] > sub.expiration_date.timestamp()


async def test_declined_authorisation_is_rejected_and_the_next_attempt_succeeds(
    connector: Connector,
) -> None:
    sub = await subscribed_customer(connector)
    handle = cycle_handle(connector, sub)
    await fail_next_recurring(connector, sub, "insufficient_funds")

    await deliver(connector, sub.dunning_data("authorize", 72))
    declined = await cycle_reaches(handle, lambda v: len(v.attempts) == 1)
    assert declined.status == "open"
    assert declined.attempts[0].outcome == "rejected"
    assert declined.attempts[0].reason == "insufficient_funds"

    await deliver(connector, sub.dunning_data("authorize", 48))
    await cycle_reaches(handle, lambda v: v.status == "authorised")

    payments = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert sorted((p["status"], p["rejectedReason"]) for p in payments) == [
        ("authorized", None),
        ("rejected", "insufficient_funds"),
    ]
    assert len(await mollie_customer_payments(connector, sub.mollie_customer_id)) == 2


async def test_failed_capture_is_rejected_then_termination_releases_and_terminates(
    connector: Connector, clean_faults: None
) -> None:
    sub = await subscribed_customer(connector)
    handle = cycle_handle(connector, sub)
    await deliver(connector, sub.dunning_data("authorize", 24))
    authorised = await cycle_reaches(handle, lambda v: v.status == "authorised")
    await set_faults(
        connector.emulators.mollie_url,
        {
            "failNext": [
                {
                    "method": "POST",
                    "pathPrefix": f"/v2/payments/{authorised.mollie_payment_id}/captures",
                    "status": 422,
                    "count": 1,
                }
            ]
        },
    )

    await deliver(connector, sub.dunning_data("capture", 0))
    rejected = await cycle_reaches(handle, lambda v: len(v.attempts) == 2)
    assert rejected.attempts[-1].outcome == "rejected"
    [payment] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert payment["status"] == "rejected"

    await deliver(connector, sub.dunning_data("terminate", -2))
    final = await handle.result()
    assert final.status == "terminated"
    [held] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert held["status"] == "canceled", "the authorisation must be released"
    assert (await cleeng_subscription(connector, sub.subscription_id))["status"] == "terminated"


async def test_capture_only_charges_once_and_renews(connector: Connector) -> None:
    sub = await subscribed_customer(connector)
    await deliver(connector, sub.dunning_data("capture", 0))
    final = await cycle_handle(connector, sub).result()
    assert final.status == "captured"
    [charged] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert charged["status"] == "paid"
    assert charged.get("captureMode") in (None, "automatic")
    [payment] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert (payment["status"], payment["externalPaymentId"]) == ("captured", charged["id"])


async def test_a_renewal_keeps_a_short_history_and_its_whole_story(connector: Connector) -> None:
    """A cycle with a compact history: the check with the order, and the
    charge, are two local steps, only Cleeng's record is an activity task, and the search
    attributes are set once; the cycle still ends `captured` with its ids findable."""
    sub = await subscribed_customer(connector)
    due = iso_utc(sub.expiration_date)
    handle = await connector.client.start_workflow(
        RecurringBillingWorkflow.run,
        BillingCycleInput(
            subscription_id=sub.subscription_id, expiration_date=due, compact_history=True
        ),
        id=billing_workflow_id(sub.subscription_id, due),
        task_queue=connector.settings.temporal_task_queue,
        start_signal="event",
        start_signal_args=[sub.billing_event("capture", due)],
    )
    final = await handle.result()
    assert final.status == "captured"
    assert [a.outcome for a in final.attempts] == ["captured"]

    events = [event async for event in handle.fetch_history_events()]
    kinds = [EventType.Name(event.event_type) for event in events]
    assert kinds.count("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED") == 1
    assert kinds.count("EVENT_TYPE_MARKER_RECORDED") == 2
    assert kinds.count("EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES") == 1
    # 60% of the 33 events a renewal takes as activity tasks.
    assert len(events) <= 19, " ".join(kinds)
    found = (await handle.describe()).typed_search_attributes
    assert found.get(search_attributes.MOLLIE_PAYMENT_ID) == final.mollie_payment_id
    assert found.get(search_attributes.CLEENG_PAYMENT_ID) == final.cleeng_payment_id


async def test_termination_without_a_running_cycle_terminates(connector: Connector) -> None:
    sub = await subscribed_customer(connector)
    await deliver(connector, sub.dunning_data("terminate", -2))
    final = await cycle_handle(connector, sub).result()
    assert final.status == "terminated"
    assert (await cleeng_subscription(connector, sub.subscription_id))["status"] == "terminated"
    assert await mollie_customer_payments(connector, sub.mollie_customer_id) == []


async def test_termination_goes_by_the_termination_guide_patch_by_default(
    connector: Connector,
) -> None:
    """With the default settings the connector terminates with PATCH
    /3.1/subscriptions/{id} {"status": "terminated"}, the call the Connector Checklist and the
    Termination guide name (the Cleeng emulator records which call terminated it)."""
    assert connector.settings.cleeng_termination_call == "patch"
    sub = await subscribed_customer(connector)
    await deliver(connector, sub.dunning_data("terminate", -2))
    final = await cycle_handle(connector, sub).result()
    assert final.status == "terminated"
    async with httpx.AsyncClient() as http:
        seen = (await http.get(f"{connector.emulators.cleeng_url}/_emulator/subscriptions")).json()
    [terminated] = [s for s in seen["items"] if str(s["subscriptionId"]) == sub.subscription_id]
    assert (terminated["status"], terminated["terminatedVia"]) == ("terminated", "patch")
    assert terminated["terminationReason"] is None


async def test_the_same_webhook_twenty_times_at_once_charges_once(connector: Connector) -> None:
    sub = await subscribed_customer(connector)
    data = sub.dunning_data("capture", 0)
    async with httpx.AsyncClient(timeout=60) as http:
        answers = await asyncio.gather(
            *(send_cleeng_webhook(connector, data, http=http) for _ in range(20))
        )
    assert {answer.status_code for answer in answers} == {200}
    final = await cycle_handle(connector, sub).result()
    assert final.status == "captured"
    assert len(await mollie_customer_payments(connector, sub.mollie_customer_id)) == 1
    assert len(await cleeng_subscription_payments(connector, sub.subscription_id)) == 1


async def test_capture_arriving_while_authorisation_runs_captures_that_authorisation(
    connector: Connector, clean_faults: None
) -> None:
    sub = await subscribed_customer(connector)
    # Slow Mollie down so the capture webhook lands while the authorisation is in flight.
    await set_faults(connector.emulators.mollie_url, {"latencyMs": 300})
    await deliver(connector, sub.dunning_data("authorize", 0))
    await deliver(connector, sub.dunning_data("capture", 0))
    final = await cycle_handle(connector, sub).result()
    assert final.status == "captured"
    assert [a.outcome for a in final.attempts] == ["authorised", "captured"]
    [charged] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert charged["status"] == "paid"
    [payment] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert payment["status"] == "captured"


async def test_webhooks_for_a_finished_cycle_charge_nothing(connector: Connector) -> None:
    sub = await subscribed_customer(connector)
    await deliver(connector, sub.dunning_data("capture", 0))
    handle = cycle_handle(connector, sub)
    await handle.result()

    late = await send_cleeng_webhook(connector, sub.dunning_data("capture", 0))
    assert (late.status_code, late.json()["status"]) == (200, "duplicate")

    # Once the history is gone (retention), the same webhook starts a fresh run: Cleeng's
    # own state must stop it. A fresh workflow id stands in for the purged one.
    late_event = sub.billing_event("capture", iso_utc(sub.expiration_date))
    again = await connector.client.execute_workflow(
        RecurringBillingWorkflow.run,
        BillingCycleInput(
            subscription_id=sub.subscription_id, expiration_date=iso_utc(sub.expiration_date)
        ),
        id=f"{handle.id}:after-retention",
        task_queue=connector.settings.temporal_task_queue,
        start_signal="event",
        start_signal_args=[late_event],
    )
    assert again.status == "already_paid"
    assert len(await mollie_customer_payments(connector, sub.mollie_customer_id)) == 1
    assert len(await cleeng_subscription_payments(connector, sub.subscription_id)) == 1


async def test_charge_retried_after_mollie_forgot_the_key_is_not_repeated(
    connector: Connector, clean_faults: None
) -> None:
    sub = await subscribed_customer(connector)
    # Mollie creates the payment but the reply never arrives (the client times out).
    await lose_the_next_reply(connector.emulators.mollie_url, "POST", "/v2/payments")
    await deliver(connector, sub.dunning_data("capture", 0))
    async with asyncio.timeout(30):
        while not await mollie_customer_payments(connector, sub.mollie_customer_id):
            await asyncio.sleep(0.05)
    # Two hours pass at Mollie before the retry: the idempotency key is forgotten.
    await advance_clock(connector.emulators.mollie_url, 2 * 3600)

    final = await cycle_handle(connector, sub).result()
    assert final.status == "captured"
    assert len(await mollie_customer_payments(connector, sub.mollie_customer_id)) == 1
    assert len(await cleeng_subscription_payments(connector, sub.subscription_id)) == 1


async def test_without_manual_capture_authorisation_defers_and_capture_charges(
    connector: Connector,
) -> None:
    sub = await subscribed_customer(connector)
    due = iso_utc(sub.expiration_date)

    def event(kind: str, hours_before_due: int) -> BillingEvent:
        data = sub.dunning_data("authorize", hours_before_due)
        return sub.billing_event(kind, data["dunningAttemptDate"])

    handle = await connector.client.start_workflow(
        RecurringBillingWorkflow.run,
        BillingCycleInput(
            subscription_id=sub.subscription_id, expiration_date=due, manual_capture=False
        ),
        id=billing_workflow_id(sub.subscription_id, due),
        task_queue=connector.settings.temporal_task_queue,
        start_signal="event",
        start_signal_args=[event("authorise", 72)],
    )
    deferred = await cycle_reaches(handle, lambda v: len(v.attempts) == 1)
    assert deferred.attempts[0].outcome == "deferred_to_capture"
    assert await mollie_customer_payments(connector, sub.mollie_customer_id) == []

    await handle.signal(RecurringBillingWorkflow.event, event("capture", 0))
    final = await handle.result()
    assert final.status == "captured"
    [charged] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert charged["status"] == "paid"
    [payment] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert payment["status"] == "captured"


async def test_a_failed_cycle_still_takes_the_termination(
    connector: Connector, clean_faults: None
) -> None:
    sub = await subscribed_customer(connector)
    # Cleeng refuses the renewal order for good: nothing is charged, the cycle fails.
    await set_faults(
        connector.emulators.cleeng_url,
        {"failNext": [{"method": "POST", "pathPrefix": "/3.1/orders", "status": 422}]},
    )
    await deliver(connector, sub.dunning_data("authorize", 0))
    with pytest.raises(WorkflowFailureError):
        await cycle_handle(connector, sub).result()
    assert await mollie_customer_payments(connector, sub.mollie_customer_id) == []

    await deliver(connector, sub.dunning_data("terminate", -2))
    final = await cycle_handle(connector, sub).result()
    assert final.status == "terminated"
    assert (await cleeng_subscription(connector, sub.subscription_id))["status"] == "terminated"


async def test_an_undocumented_refusal_of_the_record_is_retried_and_never_releases_the_money(
    connector: Connector, clean_faults: None
) -> None:
    sub = await subscribed_customer(connector)
    # A 422 that is not Cleeng's documented refusal (the order has not expired): the
    # authorisation must stay, and the record land once Cleeng takes it.
    await set_faults(
        connector.emulators.cleeng_url,
        {
            "failNext": [
                {"method": "POST", "pathPrefix": "/3.1/payments", "status": 422, "count": 2}
            ]
        },
    )
    await deliver(connector, sub.dunning_data("authorize", 0))
    view = await cycle_reaches(cycle_handle(connector, sub), lambda v: v.status == "authorised")
    assert view.cleeng_payment_id is not None
    [held] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert held["status"] == "authorized"
    [recorded] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert recorded["status"] == "authorized"


async def refused_capture_then_authorised_again(
    connector: Connector, sub: Subscriber, handle: WorkflowHandle[Any, BillingView]
) -> str:
    """Authorise, have Mollie refuse the capture, authorise again; the first payment's id."""
    await deliver(connector, sub.dunning_data("authorize", 24))
    first = await cycle_reaches(handle, lambda v: v.status == "authorised")
    assert first.mollie_payment_id is not None
    # Mollie refuses the capture (e.g. the hold cannot be captured): Cleeng marks the payment
    # rejected and its dunning tries again with a new authorisation.
    await set_faults(
        connector.emulators.mollie_url,
        {
            "failNext": [
                {
                    "method": "POST",
                    "pathPrefix": f"/v2/payments/{first.mollie_payment_id}/captures",
                    "status": 422,
                }
            ]
        },
    )
    await deliver(connector, sub.dunning_data("capture", 0))
    await cycle_reaches(handle, lambda v: v.status == "open" and len(v.attempts) == 2)
    # Cleeng now shows the payment rejected: nothing will ever capture that hold.
    [released] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert released["status"] == "canceled", "the refused capture's hold is left open"
    await deliver(connector, sub.dunning_data("authorize", -1))
    await cycle_reaches(handle, lambda v: v.status == "authorised")
    return first.mollie_payment_id


async def test_a_refused_capture_releases_its_hold_before_the_next_authorisation(
    connector: Connector, clean_faults: None
) -> None:
    sub = await subscribed_customer(connector)
    handle = cycle_handle(connector, sub)
    first = await refused_capture_then_authorised_again(connector, sub, handle)
    await deliver(connector, sub.dunning_data("capture", -2))
    final = await handle.result()

    assert final.status == "captured"
    payments = {
        p["id"]: p for p in await mollie_customer_payments(connector, sub.mollie_customer_id)
    }
    assert len(payments) == 2
    assert payments[first]["status"] == "canceled", "the first hold is left open"
    [paid] = [p for p in payments.values() if p["id"] != first]
    assert paid["status"] == "paid"
    statuses = sorted(
        p["status"] for p in await cleeng_subscription_payments(connector, sub.subscription_id)
    )
    assert statuses == ["captured", "rejected"]


async def test_two_releases_in_one_cycle_each_release_their_own_hold(
    connector: Connector, clean_faults: None
) -> None:
    """A cycle can release two authorisations (a refused capture, then a termination): each
    release is its own request at Mollie, under its own idempotency key. One key for both
    would make Mollie replay the first answer and leave the second hold open."""
    sub = await subscribed_customer(connector)
    handle = cycle_handle(connector, sub)
    first = await refused_capture_then_authorised_again(connector, sub, handle)
    await deliver(connector, sub.dunning_data("terminate", -3))
    final = await handle.result()

    assert final.status == "terminated"
    statuses = {
        p["id"]: p["status"]
        for p in await mollie_customer_payments(connector, sub.mollie_customer_id)
    }
    assert len(statuses) == 2
    assert set(statuses.values()) == {"canceled"}, statuses
    assert first in statuses


async def test_a_redelivered_attempt_after_its_decline_is_not_tried_again(
    connector: Connector,
) -> None:
    """Cleeng redelivers a webhook the cycle already handled (its first 200 was lost): the
    cycle must not charge or record that attempt twice, while the next attempt goes on."""
    sub = await subscribed_customer(connector)
    handle = cycle_handle(connector, sub)
    await fail_next_recurring(connector, sub, "insufficient_funds")
    await deliver(connector, sub.dunning_data("authorize", 72))
    await cycle_reaches(handle, lambda v: len(v.attempts) == 1)
    await deliver(connector, sub.dunning_data("authorize", 72))
    await deliver(connector, sub.dunning_data("authorize", 48))
    view = await cycle_reaches(handle, lambda v: v.status == "authorised")
    assert [(a.attempt_date, a.outcome) for a in view.attempts] == [
        (sub.dunning_data("authorize", 72)["dunningAttemptDate"], "rejected"),
        (sub.dunning_data("authorize", 48)["dunningAttemptDate"], "authorised"),
    ]
    statuses = sorted(
        p["status"] for p in await cleeng_subscription_payments(connector, sub.subscription_id)
    )
    assert statuses == ["authorized", "rejected"]


async def test_a_lost_reply_to_the_renewal_order_leaves_one_unpaid_order_and_one_charge(
    connector: Connector, clean_faults: None
) -> None:
    """The measured residual risk of an API without idempotency keys: Cleeng creates the
    renewal order, the reply is lost, the retry creates another. One order is paid, the
    orphan is never paid (it expires by itself), and the customer is charged once."""
    sub = await subscribed_customer(connector)
    await set_faults(
        connector.emulators.cleeng_url,
        {
            "failNext": [
                {
                    "method": "POST",
                    "pathPrefix": "/3.1/orders",
                    "status": "timeout",
                    "afterCommit": True,
                    "count": 1,
                }
            ]
        },
    )
    await deliver(connector, sub.dunning_data("capture", 0))
    final = await cycle_handle(connector, sub).result()
    assert final.status == "captured"
    async with httpx.AsyncClient() as http:
        orders = (await http.get(f"{connector.emulators.cleeng_url}/_emulator/orders")).json()
    renewal_orders = [
        o["id"] for o in orders["items"] if str(o.get("subscriptionId")) == sub.subscription_id
    ]
    assert len(renewal_orders) == 2
    [payment] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert payment["status"] == "captured"
    assert payment["orderId"] in renewal_orders
    [charge] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert charge["status"] == "paid"
