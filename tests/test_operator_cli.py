"""The operator CLI (`python -m connector_ops`), run as its own process against the running
connector: a real Temporal dev server, the shim and both emulators as real servers, with
payloads encrypted as `scripts/run` encrypts them by default.

Each command is answered from what really happened: renewals and purchases bought and renewed
through the shim, a purchase failed by a Cleeng outage, card holds left open at Mollie, and
every Cleeng webhook topic the connector acts on, redelivered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.cleeng_payloads import iso_utc
from codec.keys import new_key_entry
from connector_ops import webhook
from connector_ops.history import HistoryReading, Signal
from domain.billing import BillingView, billing_workflow_id
from domain.payment_details import DeactivationView, deactivation_workflow_id
from domain.purchase import PurchaseInput, PurchaseView, purchase_workflow_id
from domain.refunds import RefundStatusView, refund_request_key, refund_workflow_id
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.billing import (
    Subscriber,
    authorised_renewal,
    cleeng_subscription_payments,
    mollie_customer_payments,
    result_when_started,
    send_cleeng_webhook,
    subscribed_customer,
)
from tests.support.cli import ops
from tests.support.shop import (
    choose_on_checkout,
    cleeng_payments,
    mollie_payments_for_order,
    paid_purchase,
    seed_order,
    set_faults,
    start_purchase,
)
from workflows.initial_purchase import InitialPurchaseWorkflow
from workflows.recurring_billing import RecurringBillingWorkflow

KEY_ID = "cli1"


@pytest.fixture(scope="module")
async def connector(temporal_env: WorkflowEnvironment) -> AsyncIterator[Connector]:
    """The connector as `scripts/run` runs it by default: every payload (and failure message)
    encrypted in Temporal's history. Its own emulators and task queue; its histories are not
    saved for the replay tests (they would need this throwaway key)."""
    async with connector_on_own_emulators(
        temporal_env,
        keep_histories=False,
        payload_encryption_keys=SecretStr(new_key_entry(KEY_ID)),
    ) as connector:
        yield connector


@pytest.fixture
async def clean_faults(connector: Connector) -> AsyncIterator[None]:
    """This module's emulators' fault injection reset after a test that used it."""
    yield
    async with httpx.AsyncClient() as http:
        await http.delete(f"{connector.emulators.mollie_url}/_emulator/faults")
        await http.delete(f"{connector.emulators.cleeng_url}/_emulator/faults")


@pytest.fixture
def cli_dir(tmp_path: Path) -> Path:
    """An empty working directory, so no developer's `.env` configures the CLI."""
    return tmp_path


@dataclass(frozen=True)
class Renewed:
    subscriber: Subscriber
    workflow_id: str
    view: BillingView


@pytest.fixture(scope="module")
async def renewed(connector: Connector) -> Renewed:
    """A subscriber whose renewal was authorised, then captured, through Cleeng's webhooks."""
    sub = await subscribed_customer(connector)
    assert (await send_cleeng_webhook(connector, sub.dunning_data("authorize", 24))).is_success
    workflow_id = billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date))
    handle = connector.client.get_workflow_handle(workflow_id, result_type=BillingView)
    async with asyncio.timeout(30):
        while (await handle.query(RecurringBillingWorkflow.view)).status != "authorised":
            await asyncio.sleep(0.05)
    assert (await send_cleeng_webhook(connector, sub.dunning_data("capture"))).is_success
    view: BillingView = await result_when_started(handle)
    assert view.status == "captured"
    return Renewed(subscriber=sub, workflow_id=workflow_id, view=view)


async def test_subscription_shows_each_cycle_with_its_payments_and_story(
    connector: Connector, renewed: Renewed, cli_dir: Path
) -> None:
    sub = renewed.subscriber
    shown = await ops(connector, "subscription", sub.subscription_id, "--json", cwd=cli_dir)
    [cycle] = shown.json()["cycles"]
    assert cycle["workflow_id"] == renewed.workflow_id
    assert (cycle["workflow_status"], cycle["state"]) == ("COMPLETED", "captured")
    payment_id = renewed.view.mollie_payment_id
    assert payment_id is not None
    assert cycle["mollie_payment_ids"] == [payment_id]
    assert {"payment_id": payment_id, "status": "paid", "amount": "9.99 EUR"} in cycle["payments"]
    assert renewed.view.cleeng_payment_id in cycle["cleeng_payment_ids"]
    assert [a["outcome"] for a in cycle["view"]["attempts"]] == ["authorised", "captured"]

    story = [(s["kind"], s["name"], s["outcome"]) for s in cycle["story"]]
    assert story[0] == ("workflow", "RecurringBilling", "started")
    assert story[-1] == ("workflow", "", "completed")
    signals = [
        s["detail"] for s in cycle["story"] if s["kind"] == "signal" and s["name"] == "event"
    ]
    assert [detail.split(" attempt ")[0] for detail in signals] == ["authorise", "capture"]
    assert ("local activity", "create_recurring_payment", "completed") in story
    assert ("activity", "record_payment", "completed") in story
    times = [s["at"] for s in cycle["story"]]
    assert times == sorted(times)

    text = await ops(connector, "subscription", sub.subscription_id, cwd=cli_dir)
    assert text.exit_code == 0, text.stderr
    assert renewed.workflow_id in text.stdout
    assert f"Mollie    {payment_id} paid 9.99 EUR" in text.stdout
    assert f"attempt   capture {iso_utc(sub.expiration_date)} → captured" in text.stdout
    # The customer's mandate token and email travel in the history; never in the output.
    for output in (shown.stdout, text.stdout):
        assert sub.token not in output
        assert "@example.com" not in output

    # Decrypted with the key ring: the activities' results and the signals' details.
    assert "local activity capture_payment: completed" in text.stdout
    assert f"({payment_id} paid 9.99 EUR)" in text.stdout

    missing = await ops(connector, "subscription", "999999999", cwd=cli_dir)
    assert missing.exit_code == 1
    assert "no billing cycle found for subscription 999999999" in missing.stderr
    assert "Traceback" not in missing.stderr
    malformed = await ops(connector, "subscription", "12;DROP", cwd=cli_dir)
    assert malformed.exit_code == 2


async def test_purchase_shows_a_captured_purchase(connector: Connector, cli_dir: Path) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url, price=12.00, currency="EUR")
    order_id = str(seeded["orderId"])
    checkout_url = await start_purchase(connector, seeded)
    await choose_on_checkout(checkout_url, "paid")
    final = await purchase_handle(connector, order_id).result()

    shown = (await ops(connector, "purchase", order_id, "--json", cwd=cli_dir)).json()
    purchase = shown["purchase"]
    assert (purchase["workflow_status"], purchase["state"]) == ("COMPLETED", "captured")
    assert purchase["mollie_payment_ids"] == [final.mollie_payment_id]
    assert purchase["cleeng_payment_ids"] == [final.cleeng_payment_id]
    text = await ops(connector, "purchase", order_id, cwd=cli_dir)
    assert "state     captured" in text.stdout
    assert "amount    12.00 EUR" in text.stdout
    assert f"Mollie    {final.mollie_payment_id} paid 12.00 EUR" in text.stdout
    assert "@example.com" not in text.stdout + json.dumps(shown)

    missing = await ops(connector, "purchase", "999999998", cwd=cli_dir)
    assert missing.exit_code == 1
    assert "no workflow purchase:999999998" in missing.stderr
    not_from_cleeng = await ops(
        connector, "webhook", "redeliver", purchase_workflow_id(order_id), cwd=cli_dir
    )
    assert not_from_cleeng.exit_code == 1
    assert "InitialPurchase that no Cleeng webhook starts" in not_from_cleeng.stderr


async def test_purchase_is_told_from_its_history_when_no_worker_answers(
    connector: Connector, cli_dir: Path
) -> None:
    """At night the worker may be down: the query cannot be answered, the history still is."""
    order_id = "999999997"
    handle = await connector.client.start_workflow(
        InitialPurchaseWorkflow.run,
        PurchaseInput(order_id=order_id, redirect_url="https://shop.example/thanks"),
        id=purchase_workflow_id(order_id),
        task_queue=f"{connector.settings.temporal_task_queue}-no-worker",
    )
    try:
        shown = (await ops(connector, "purchase", order_id, "--json", cwd=cli_dir)).json()
    finally:
        await handle.terminate("test over")
    purchase = shown["purchase"]
    assert (purchase["workflow_status"], purchase["state"]) == ("RUNNING", None)
    assert "view query unavailable" in purchase["view_note"]
    assert purchase["story"][0]["outcome"] == "started"


def purchase_handle(connector: Connector, order_id: str) -> WorkflowHandle[Any, PurchaseView]:
    return connector.client.get_workflow_handle_for(
        InitialPurchaseWorkflow.run, purchase_workflow_id(order_id)
    )


async def test_workflow_retry_runs_a_purchase_failed_by_an_outage_again(
    connector: Connector, clean_faults: None, cli_dir: Path
) -> None:
    cleeng = connector.emulators.cleeng_url
    seeded = await seed_order(cleeng, price=14.00, currency="EUR")
    order_id = str(seeded["orderId"])
    workflow_id = purchase_workflow_id(order_id)
    await set_faults(cleeng, {"errorRate": 1.0})
    handle = await connector.client.start_workflow(
        InitialPurchaseWorkflow.run,
        PurchaseInput(
            order_id=order_id, redirect_url="https://shop.example/thanks", setup_seconds=3
        ),
        id=workflow_id,
        task_queue=connector.settings.temporal_task_queue,
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    async with httpx.AsyncClient() as http:
        (await http.delete(f"{cleeng}/_emulator/faults")).raise_for_status()

    failed = (await ops(connector, "purchase", order_id, "--json", cwd=cli_dir)).json()
    assert failed["purchase"]["workflow_status"] == "FAILED"
    assert failed["purchase"]["failure_type"] == "CheckoutUnavailable"
    # The message the failure converter encrypted, read back with the key ring.
    assert f"order {order_id}" in failed["purchase"]["failure"]
    assert "Encoded failure" not in json.dumps(failed)

    retried = (await ops(connector, "workflow", "retry", workflow_id, "--json", cwd=cli_dir)).json()
    assert retried["was"] == "failed"
    assert retried["new_run_id"] != handle.result_run_id
    # The new run sets the purchase up again and hands out a checkout.
    view = await purchase_handle(connector, order_id).execute_update(
        InitialPurchaseWorkflow.checkout
    )
    assert view.status == "awaiting_payment"
    described = await connector.client.get_workflow_handle(workflow_id).describe()
    assert described.run_id == retried["new_run_id"]

    # Running and healthy (waiting for the shopper): refused without --force.
    refused = await ops(connector, "workflow", "retry", workflow_id, cwd=cli_dir)
    assert refused.exit_code == 1
    assert "running and healthy" in refused.stderr

    assert view.checkout_url is not None
    await choose_on_checkout(view.checkout_url, "paid")
    assert (await purchase_handle(connector, order_id).result()).status == "captured"
    [charge] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert charge["status"] == "paid"


async def test_workflow_retry_resets_a_purchase_stuck_on_cleeng(
    connector: Connector, clean_faults: None, cli_dir: Path
) -> None:
    cleeng = connector.emulators.cleeng_url
    seeded = await seed_order(cleeng, price=16.00, currency="EUR")
    order_id = str(seeded["orderId"])
    workflow_id = purchase_workflow_id(order_id)
    # Cleeng refuses to record payments: the purchase is paid and waits, retrying the record.
    refuse_records = {"method": "POST", "pathPrefix": "/3.1/payments", "status": 500, "count": 1000}
    await set_faults(cleeng, {"failNext": [refuse_records]})
    checkout_url = await start_purchase(connector, seeded)
    await choose_on_checkout(checkout_url, "paid")
    handle = connector.client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(60):
        while not any(
            a.attempt > 1 for a in (await handle.describe()).raw_description.pending_activities
        ):
            await asyncio.sleep(0.1)

    shown = (await ops(connector, "purchase", order_id, "--json", cwd=cli_dir)).json()["purchase"]
    assert (shown["workflow_status"], shown["state"]) == ("RUNNING", "recording")
    [pending] = [s for s in shown["story"] if s["kind"] == "pending activity"]
    assert (pending["name"], pending["outcome"]) == ("record_payment", "retrying")
    assert "last failure" in pending["detail"]

    retried = (await ops(connector, "workflow", "retry", workflow_id, "--json", cwd=cli_dir)).json()
    assert retried["was"].startswith("stuck: record_payment")
    async with httpx.AsyncClient() as http:
        (await http.delete(f"{cleeng}/_emulator/faults")).raise_for_status()
    final = await purchase_handle(connector, order_id).result()
    assert final.status == "captured"
    [recorded] = await cleeng_payments(cleeng, order_id)
    assert recorded["status"] == "captured"
    [charge] = await mollie_payments_for_order(connector.emulators.mollie_url, order_id)
    assert charge["status"] == "paid"


async def test_webhook_redeliver_reaches_the_shim_and_charges_nothing_twice(
    connector: Connector, renewed: Renewed, cli_dir: Path
) -> None:
    sub = renewed.subscriber
    again = await ops(
        connector, "webhook", "redeliver", renewed.workflow_id, "--kind", "capture", "--json",
        cwd=cli_dir,
    )  # fmt: skip
    sent = again.json()
    assert sent["status"] == 200
    assert sent["answer"] == {
        "status": "duplicate",
        "topic": "subscriptionReadyForPaymentCapture",
    }
    assert sub.token not in again.stdout
    [charge] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert charge["status"] == "paid"
    [recorded] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert recorded["status"] == "captured"


async def test_without_the_key_ring_an_encrypted_history_is_named_not_guessed(
    connector: Connector, renewed: Renewed, cli_dir: Path
) -> None:
    history = await connector.client.get_workflow_handle(renewed.workflow_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata["encoding"] == b"binary/encrypted"

    shown = await ops(
        connector, "subscription", renewed.subscriber.subscription_id, cwd=cli_dir,
        with_keys=False,
    )  # fmt: skip
    assert shown.exit_code == 1
    assert f"encrypted (key id '{KEY_ID}')" in shown.stderr
    assert "PAYLOAD_ENCRYPTION_KEYS" in shown.stderr
    assert "Traceback" not in shown.stderr
    assert len(shown.stderr.strip().splitlines()) == 1


async def test_webhook_redeliver_into_a_running_cycle_is_accepted_once(
    connector: Connector, cli_dir: Path
) -> None:
    sub, payment_id = await authorised_renewal(connector)
    workflow_id = billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date))
    sent = (await ops(connector, "webhook", "redeliver", workflow_id, "--json", cwd=cli_dir)).json()
    assert sent["answer"]["status"] == "accepted"
    handle = connector.client.get_workflow_handle(workflow_id, result_type=BillingView)
    history = await handle.fetch_history()
    assert (
        sum(
            1
            for e in history.events
            if e.workflow_execution_signaled_event_attributes.signal_name == "event"
        )
        == 2
    )
    view = await handle.query(RecurringBillingWorkflow.view)
    assert [a.outcome for a in view.attempts] == ["authorised"]
    [hold] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert (hold["id"], hold["status"]) == (payment_id, "authorized")


async def redeliver_once_more(
    connector: Connector, workflow_id: str, cli_dir: Path, *kind: str
) -> dict[str, Any]:
    """`webhook redeliver` of a finished workflow: answered as a duplicate, nothing done."""
    again = await ops(connector, "webhook", "redeliver", workflow_id, *kind, "--json", cwd=cli_dir)
    sent: dict[str, Any] = again.json()
    assert sent["status"] == 200
    assert sent["answer"]["status"] == "duplicate"
    return sent


async def test_webhook_redeliver_of_a_termination(connector: Connector, cli_dir: Path) -> None:
    sub, payment_id = await authorised_renewal(connector)
    assert (await send_cleeng_webhook(connector, sub.dunning_data("terminate"))).is_success
    workflow_id = billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date))
    handle = connector.client.get_workflow_handle(workflow_id, result_type=BillingView)
    assert (await handle.result()).status == "terminated"

    for kind in ("terminate", "authorise"):
        sent = await redeliver_once_more(connector, workflow_id, cli_dir, "--kind", kind)
        assert sent["webhook"].startswith(
            "subscriptionReadyForTermination"
            if kind == "terminate"
            else "subscriptionReadyForPaymentAuthorisation"
        )
    [hold] = await mollie_customer_payments(connector, sub.mollie_customer_id)
    assert (hold["id"], hold["status"]) == (payment_id, "canceled")


async def test_webhook_redeliver_of_a_refund(connector: Connector, cli_dir: Path) -> None:
    payment = await paid_purchase(connector, price=20.00)
    # What Cleeng sends, minus fields the refund workflow does not keep (customerId,
    # paymentMethodId): only then can its digest be rebuilt from the history.
    data = {
        "paymentId": payment["id"],
        "orderId": payment["orderId"],
        "externalPaymentId": payment["externalPaymentId"],
        "amount": 5.00,
        "currency": "EUR",
        "reason": "customer asked",
    }
    answer = await send_cleeng_webhook(connector, data, topic="refundPayment")
    assert answer.json()["status"] == "accepted"
    workflow_id = refund_workflow_id(str(payment["id"]), refund_request_key(data))
    mollie = connector.emulators.mollie_url
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        while not (refunds := await mollie_refunds(http, mollie, payment["externalPaymentId"])):
            await asyncio.sleep(0.05)
        [refund] = refunds
        forced = await http.post(
            f"{mollie}/_emulator/refunds/{refund['id']}/status", json={"status": "refunded"}
        )
        forced.raise_for_status()
    handle = connector.client.get_workflow_handle(workflow_id, result_type=RefundStatusView)
    assert (await handle.result()).status == "refunded"

    sent = await redeliver_once_more(connector, workflow_id, cli_dir)
    assert sent["webhook"].startswith("refundPayment (5.00 EUR")
    async with httpx.AsyncClient() as http:
        assert len(await mollie_refunds(http, mollie, payment["externalPaymentId"])) == 1


async def mollie_refunds(http: httpx.AsyncClient, mollie: str, payment_id: str) -> list[Any]:
    ledger = (await http.get(f"{mollie}/_emulator/ledger")).json()
    [payment] = [p for p in ledger["payments"] if p["id"] == payment_id]
    refunds: list[Any] = payment["refunds"]
    return refunds


async def test_webhook_redeliver_of_a_deactivation(connector: Connector, cli_dir: Path) -> None:
    sub = await subscribed_customer(connector)
    data = {
        "paymentDetailsId": int(sub.payment_details_id),
        "customerId": int(sub.customer_id),
        "token": sub.token,
    }
    answer = await send_cleeng_webhook(connector, data, topic="paymentDetailsDeactivated")
    assert answer.json()["status"] == "accepted"
    workflow_id = deactivation_workflow_id(sub.payment_details_id)
    handle = connector.client.get_workflow_handle(workflow_id, result_type=DeactivationView)
    assert (await result_when_started(handle)).status == "done"

    again = await ops(connector, "webhook", "redeliver", workflow_id, cwd=cli_dir)
    assert again.exit_code == 0, again.stderr
    assert "paymentDetailsDeactivated (details" in again.stdout
    assert '"status": "duplicate"' in again.stdout
    assert sub.token not in again.stdout


async def test_holds_list_shows_open_holds_and_marks_orphans(
    connector: Connector, cli_dir: Path
) -> None:
    held, held_payment = await authorised_renewal(connector)
    lost, lost_payment = await authorised_renewal(connector)
    lost_cycle = billing_workflow_id(lost.subscription_id, iso_utc(lost.expiration_date))
    await connector.client.get_workflow_handle(lost_cycle).terminate("lost by an operator")

    listed = (await ops(connector, "holds", "list", "--json", cwd=cli_dir)).json()
    holds = {hold["payment_id"]: hold for hold in listed["holds"]}
    assert holds[held_payment]["workflow_status"] == "RUNNING"
    assert holds[held_payment]["orphan"] is False
    assert holds[held_payment]["amount"] == "9.99 EUR"
    assert holds[lost_payment]["workflow_id"] == lost_cycle
    assert holds[lost_payment]["workflow_status"] == "TERMINATED"
    assert holds[lost_payment]["orphan"] is True

    text = await ops(connector, "holds", "list", cwd=cli_dir)
    [line] = [line for line in text.stdout.splitlines() if lost_payment in line]
    assert "ORPHAN" in line
    [line] = [line for line in text.stdout.splitlines() if held_payment in line]
    assert "ORPHAN" not in line
    assert held.token not in text.stdout


# Rebuilding a webhook from a history: only when parsing it as the shim does gives back exactly
# what the history holds.

CYCLE = {"subscription_id": "123", "expiration_date": "2027-01-01T00:00:00Z"}
CYCLE_ID = "billing:123:2027-01-01T00:00:00Z"
EVENT = {
    "kind": "capture",
    "attempt_date": "2027-01-01T00:00:00Z",
    "customer_id": "456",
    "offer_id": "S1_NL",
    "payment_details_id": "789",
    "token": "mollie:cst_A1:mdt_B2",
    "currency": "EUR",
    "country": "NL",
    "payment_method_id": None,
}


def cycle_history(event: dict[str, Any]) -> HistoryReading:
    at = datetime(2026, 12, 31, tzinfo=UTC)
    return HistoryReading(
        workflow_type="RecurringBilling",
        start_input=CYCLE,
        signals=[Signal(name="event", at=at, value=event)],
    )


def test_a_billing_webhook_is_rebuilt_from_the_cycle_history() -> None:
    envelope, what = webhook.billing_webhook(CYCLE_ID, cycle_history(EVENT), None)
    assert envelope["topic"] == "subscriptionReadyForPaymentCapture"
    assert envelope["data"]["dunningAttemptDate"] == EVENT["attempt_date"]
    assert "paymentMethodId" not in envelope["data"]  # not in the history: left out, not made up
    assert "attempt 2027-01-01T00:00:00Z" in what


def test_a_webhook_the_history_cannot_rebuild_faithfully_is_not_sent() -> None:
    without_offer = {key: value for key, value in EVENT.items() if key != "offer_id"}
    with pytest.raises(webhook.Unfaithful, match="lacks a field"):
        webhook.billing_webhook(CYCLE_ID, cycle_history(without_offer), None)
    # A date the shim would spell differently is not the webhook that was received.
    with pytest.raises(webhook.Unfaithful, match="not be the same webhook"):
        webhook.billing_webhook(
            CYCLE_ID, cycle_history({**EVENT, "attempt_date": "2027-01-01T00:00:00+00:00"}), None
        )
    with pytest.raises(webhook.Unfaithful, match="not be the same webhook"):
        webhook.billing_webhook("billing:999:2027-01-01T00:00:00Z", cycle_history(EVENT), None)


def test_a_refund_webhook_is_sent_only_when_its_digest_matches() -> None:
    data = {"paymentId": "55", "externalPaymentId": "tr_Ab1", "amount": 5.0, "currency": "EUR",
            "orderId": "66", "reason": "demo"}  # fmt: skip
    request = {"cleeng_payment_id": "55", "external_payment_id": "tr_Ab1", "order_id": "66",
               "amount": {"minor": 500, "currency": "EUR"}, "reason": "demo",
               "payment_operation": None}  # fmt: skip
    reading = HistoryReading(workflow_type="Refund", start_input=request)
    workflow_id = refund_workflow_id("55", refund_request_key(data))
    envelope, _ = webhook.refund_webhook(workflow_id, reading)
    assert refund_request_key(envelope["data"]) == refund_request_key(data)
    # Cleeng also sent a field the workflow does not keep: its digest cannot be rebuilt.
    with_customer = refund_workflow_id("55", refund_request_key({**data, "customerId": 7}))
    with pytest.raises(webhook.Unfaithful, match="digest"):
        webhook.refund_webhook(with_customer, reading)


def test_a_deactivation_webhook_is_rebuilt_from_the_saga_input() -> None:
    started = {"payment_details_id": "321", "customer_id": "456", "token": None}
    reading = HistoryReading(workflow_type="DetailsDeactivation", start_input=started)
    envelope, _ = webhook.deactivation_webhook("details-deactivated:321", reading)
    assert envelope == {
        "topic": "paymentDetailsDeactivated",
        "data": {"paymentDetailsId": "321", "customerId": "456"},
    }
    with pytest.raises(webhook.Unfaithful, match="another workflow"):
        webhook.deactivation_webhook("details-deactivated:999", reading)
