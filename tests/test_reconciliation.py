"""Reconciliation: drift injected into the emulators is found, repaired once, and reported.

Each test has emulators of its own: a run reads every payment Mollie holds in its window, and
on the shared emulators it would find (and repair) other tests' payments.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.cleeng_payloads import iso_utc
from connector_ops.schedules import (
    RECONCILIATION_SCHEDULE_ID,
    ensure_schedules,
    reconcile_now,
)
from domain.billing import billing_workflow_id
from domain.purchase import PurchaseInput, purchase_workflow_id
from domain.reconciliation import (
    CHARGEBACK_NOT_RECORDED,
    FOR_A_PERSON,
    ORPHAN_HOLD,
    PAID_NOT_RECORDED,
    PAID_TWICE,
    REFUND_NOT_RECORDED,
    REPAIRED,
    ReconciliationInput,
    ReconciliationReport,
)
from settings import EMULATOR_MOLLIE_API_KEY
from tests.conftest import Connector, connector_on_own_emulators, connector_settings, own_emulators
from tests.support.billing import (
    authorised_renewal,
    cleeng_subscription_payments,
    result_when_started,
    send_cleeng_webhook,
)
from tests.support.cli import ops
from tests.support.histories import keep_history
from tests.support.shop import (
    choose_on_checkout,
    cleeng_payments,
    paid_purchase,
    seed_order,
    set_faults,
    start_purchase,
)
from worker import build_worker
from workflows.initial_purchase import InitialPurchaseWorkflow
from workflows.reconciliation import ReconciliationWorkflow

MOLLIE_AUTH = {"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"}


@pytest.fixture
async def connector(temporal_env: WorkflowEnvironment) -> AsyncIterator[Connector]:
    async with connector_on_own_emulators(temporal_env) as own:
        yield own


async def reconcile(connector: Connector, *, repair: bool = True) -> ReconciliationReport:
    return await reconcile_now(connector.client, connector.settings, window_hours=1, repair=repair)


def kinds(report: ReconciliationReport) -> list[tuple[str, str]]:
    return sorted((finding.kind, finding.action) for finding in report.findings)


async def mollie_payment(connector: Connector, payment_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{connector.emulators.mollie_url}/v2/payments/{payment_id}", headers=MOLLIE_AUTH
        )
    response.raise_for_status()
    payment: dict[str, Any] = response.json()
    return payment


async def mollie_requests(connector: Connector, method: str, path_end: str) -> int:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{connector.emulators.mollie_url}/_emulator/requests")
    journal = response.json()["requests"]
    return sum(1 for r in journal if r["method"] == method and str(r["path"]).endswith(path_end))


async def test_an_orphan_hold_is_released_once_and_a_live_one_is_left_alone(
    connector: Connector,
) -> None:
    sub, mollie_payment_id = await authorised_renewal(connector)

    # The cycle is waiting for Cleeng's capture webhook: its hold is not drift.
    live = await reconcile(connector)
    assert live.holds_checked == 1
    assert live.findings == []
    assert (await mollie_payment(connector, mollie_payment_id))["status"] == "authorized"

    # Someone terminates the cycle: nobody will capture or release the hold any more.
    cycle = billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date))
    await connector.client.get_workflow_handle(cycle).terminate("operator mistake")

    # A run without repairs reports it and changes nothing.
    dry = await reconcile(connector, repair=False)
    assert kinds(dry) == [(ORPHAN_HOLD, FOR_A_PERSON)]
    assert (await mollie_payment(connector, mollie_payment_id))["status"] == "authorized"

    repaired = await reconcile(connector)
    assert kinds(repaired) == [(ORPHAN_HOLD, REPAIRED)]
    assert (await mollie_payment(connector, mollie_payment_id))["status"] == "canceled"
    [record] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert record["externalPaymentId"] == mollie_payment_id
    assert record["status"] == "cancelled"

    # Found once, repaired once: the next run sees a released hold and nothing to do.
    again = await reconcile(connector)
    assert again.findings == []
    assert await mollie_requests(connector, "POST", "/release-authorization") == 1


async def test_a_refund_made_outside_the_connector_and_a_lost_chargeback_reach_cleeng_once(
    connector: Connector,
) -> None:
    payment = await paid_purchase(connector, price=20.00)
    mollie_payment_id = payment["externalPaymentId"]
    mollie = connector.emulators.mollie_url
    # Mollie's webhooks are lost from here on: only reconciliation can notice.
    await set_faults(mollie, {"dropWebhookRate": 1.0})
    async with httpx.AsyncClient() as http:
        refund = await http.post(
            f"{mollie}/v2/payments/{mollie_payment_id}/refunds",
            json={"amount": {"currency": "EUR", "value": "5.00"}, "description": "Dashboard"},
            headers=MOLLIE_AUTH,
        )
        refund.raise_for_status()
        settled = await http.post(
            f"{mollie}/_emulator/refunds/{refund.json()['id']}/status", json={"status": "refunded"}
        )
        settled.raise_for_status()
        chargeback = await http.post(
            f"{mollie}/_emulator/payments/{mollie_payment_id}/chargeback",
            json={"amount": {"currency": "EUR", "value": "7.00"}, "reason": "fraud"},
        )
        chargeback.raise_for_status()

    report = await reconcile(connector)
    assert kinds(report) == [(CHARGEBACK_NOT_RECORDED, REPAIRED), (REFUND_NOT_RECORDED, REPAIRED)]
    assert report.refunds_checked == 1
    assert report.chargebacks_checked == 1
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, payment["orderId"])
    assert recorded["status"] == "refunded"
    refunded_after_repair = recorded["refundedAmount"]
    assert refunded_after_repair == 12.00  # the 5.00 refund and the 7.00 chargeback

    again = await reconcile(connector)
    assert again.findings == []
    [unchanged] = await cleeng_payments(connector.emulators.cleeng_url, payment["orderId"])
    assert unchanged["refundedAmount"] == refunded_after_repair


async def test_money_taken_but_never_recorded_is_left_for_a_person(connector: Connector) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url, price=15.00, currency="EUR")
    order_id = str(seeded["orderId"])
    checkout_url = await start_purchase(connector, seeded)
    # Cleeng stops taking payment records; the workflow keeps trying to record.
    await set_faults(
        connector.emulators.cleeng_url,
        {"failNext": [{"method": "POST", "pathPrefix": "/3.1/payments", "count": 1000}]},
    )
    await choose_on_checkout(checkout_url, "paid")
    purchase = connector.client.get_workflow_handle(f"purchase:{order_id}")

    still_trying = await reconcile(connector)
    assert still_trying.findings == []
    assert still_trying.in_progress >= 1

    await purchase.terminate("operator gave up")
    assert (await purchase.describe()).status == WorkflowExecutionStatus.TERMINATED
    report = await reconcile(connector)
    [finding] = report.findings
    assert (finding.kind, finding.action) == (PAID_NOT_RECORDED, FOR_A_PERSON)
    assert finding.workflow_id == f"purchase:{order_id}"
    assert order_id in finding.detail
    # Reported, not guessed: the money stays where it is.
    mollie_payment_id = finding.mollie_payment_id
    paid = await mollie_payment(connector, mollie_payment_id)
    assert paid["status"] == "paid"
    assert paid.get("amountRefunded", {"value": "0.00"})["value"] == "0.00"


async def test_the_schedule_is_created_once_and_follows_the_settings(connector: Connector) -> None:
    settings = connector.settings.model_copy(
        update={"reconciliation_interval_minutes": 30, "reconciliation_window_hours": 12}
    )
    handle = connector.client.get_schedule_handle(RECONCILIATION_SCHEDULE_ID)
    try:
        assert await ensure_schedules(connector.client, settings) in ("created", "updated")
        described = await handle.describe()
        [interval] = described.schedule.spec.intervals
        assert interval.every.total_seconds() == 30 * 60
        assert not described.schedule.state.paused

        paused = settings.model_copy(update={"reconciliation_interval_minutes": 0})
        assert await ensure_schedules(connector.client, paused) == "updated"
        assert (await handle.describe()).schedule.state.paused
    finally:
        await handle.delete()


async def test_an_operator_reconciles_from_the_command_line(
    connector: Connector, tmp_path: Path
) -> None:
    sub, mollie_payment_id = await authorised_renewal(connector)
    cycle = billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date))
    await connector.client.get_workflow_handle(cycle).terminate("operator mistake")

    dry = await ops(
        connector, "reconcile", "now", "--dry-run", "--fail-on-drift", "--window-hours", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert dry.exit_code == 1, dry.stderr
    assert "1 finding(s) left for a person" in dry.stderr
    assert f"orphan_hold              left_for_a_person  {mollie_payment_id}" in dry.stdout
    assert (await mollie_payment(connector, mollie_payment_id))["status"] == "authorized"

    report = (await ops(connector, "reconcile", "now", "--json", cwd=tmp_path)).json()
    assert report["repaired"] == 1
    [finding] = report["findings"]
    assert finding["kind"] == ORPHAN_HOLD
    assert finding["workflow_id"] == f"orphan-hold:{mollie_payment_id}"
    assert (await mollie_payment(connector, mollie_payment_id))["status"] == "canceled"


async def dashboard_refund(mollie_url: str, payment_id: str, value: str) -> str:
    """A refund made in Mollie's Dashboard (no metadata from the connector), settled."""
    async with httpx.AsyncClient() as http:
        refund = await http.post(
            f"{mollie_url}/v2/payments/{payment_id}/refunds",
            json={"amount": {"currency": "EUR", "value": value}, "description": "Dashboard"},
            headers=MOLLIE_AUTH,
        )
        refund.raise_for_status()
        refund_id = str(refund.json()["id"])
        settled = await http.post(
            f"{mollie_url}/_emulator/refunds/{refund_id}/status", json={"status": "refunded"}
        )
        settled.raise_for_status()
    return refund_id


async def test_a_chargeback_and_a_dashboard_refund_weeks_after_the_payment_reach_cleeng_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Both come long after the payment, which is older than the window: only Mollie's lists
    of refunds and chargebacks, read by their own dates, show them (time-skipping server)."""
    env = time_skipping_env
    with own_emulators() as emulators:
        # Mollie's webhooks go to a closed port: every one is lost, so only reconciliation
        # can notice the refund and the chargeback.
        settings = connector_settings(
            emulators, "unused:0", "http://127.0.0.1:9", f"late-{uuid.uuid4().hex[:8]}"
        ).model_copy(update={"reconciliation_window_hours": 1})
        seeded = await seed_order(emulators.cleeng_url, price=20.00, currency="EUR")
        order_id = str(seeded["orderId"])
        async with build_worker(env.client, settings) as worker, worker:
            handle = await env.client.start_workflow(
                InitialPurchaseWorkflow.run,
                PurchaseInput(order_id=order_id, redirect_url="https://shop.example/thanks"),
                id=purchase_workflow_id(order_id),
                task_queue=settings.temporal_task_queue,
            )
            view = await handle.execute_update(InitialPurchaseWorkflow.checkout)
            assert view.checkout_url is not None
            await choose_on_checkout(view.checkout_url, "paid")
            assert (await handle.result()).status == "captured"
            [recorded] = await cleeng_payments(emulators.cleeng_url, order_id)
            mollie_payment_id = recorded["externalPaymentId"]

            # Weeks later, on both clocks: the payment is far older than the window.
            await env.sleep(timedelta(weeks=3))
            async with httpx.AsyncClient() as http:
                mollie_now = (await http.get(f"{emulators.mollie_url}/_emulator/clock")).json()
                behind = await env.get_current_time() - datetime.fromisoformat(mollie_now["now"])
                moved = await http.post(
                    f"{emulators.mollie_url}/_emulator/clock/advance",
                    json={"seconds": behind.total_seconds()},
                )
                moved.raise_for_status()
                refund_id = await dashboard_refund(emulators.mollie_url, mollie_payment_id, "5.00")
                chargeback = await http.post(
                    f"{emulators.mollie_url}/_emulator/payments/{mollie_payment_id}/chargeback",
                    json={"amount": {"currency": "EUR", "value": "7.00"}, "reason": "fraud"},
                )
                chargeback.raise_for_status()
            chargeback_id = chargeback.json()["id"]

            run = await env.client.start_workflow(
                ReconciliationWorkflow.run,
                ReconciliationInput(window_hours=settings.reconciliation_window_hours),
                id=f"reconciliation-late-{uuid.uuid4().hex[:8]}",
                task_queue=settings.temporal_task_queue,
            )
            report = await run.result()
            await keep_history(run, "Reconciliation-late-events")
            assert report.payments_checked == 0  # the payment itself is outside the window
            assert report.older_payments_checked == 1
            assert kinds(report) == [
                (CHARGEBACK_NOT_RECORDED, REPAIRED),
                (REFUND_NOT_RECORDED, REPAIRED),
            ]
            repairs = {finding.workflow_id for finding in report.findings}
            assert repairs == {f"chargeback:{chargeback_id}", f"mollie-refund:{refund_id}"}
            [refunded] = await cleeng_payments(emulators.cleeng_url, order_id)
            assert refunded["status"] == "refunded"
            assert refunded["refundedAmount"] == 12.00  # the 5.00 refund and the 7.00 chargeback

            # Found once, repaired once: a later run whose window still holds the refund and
            # the chargeback (the server's clock may have skipped ahead meanwhile) finds them
            # recorded.
            since_then = await env.get_current_time() - datetime.fromisoformat(
                chargeback.json()["createdAt"]
            )
            again = await reconcile_now(
                env.client,
                settings,
                window_hours=math.ceil(since_then / timedelta(hours=1)) + 1,
                repair=True,
            )
            assert again.payments_checked == 0
            assert again.findings == []
            assert again.older_payments_checked == 1
            [unchanged] = await cleeng_payments(emulators.cleeng_url, order_id)
            assert unchanged["refundedAmount"] == 12.00


async def test_a_cycle_paid_twice_is_reported_and_its_second_payments_refund_is_not_recorded(
    connector: Connector,
) -> None:
    sub, held_id = await authorised_renewal(connector)
    cycle = billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date))
    captured = await send_cleeng_webhook(connector, sub.dunning_data("capture", 0))
    assert captured.status_code == 200
    await result_when_started(connector.client.get_workflow_handle(cycle))
    [record] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert (record["externalPaymentId"], record["status"]) == (held_id, "captured")
    first = await mollie_payment(connector, held_id)
    assert first["status"] == "paid"

    # A second charge of the same cycle on the same mandate (as a restarted cycle would
    # make it): the same order and workflow in its metadata, another operation.
    mollie = connector.emulators.mollie_url
    async with httpx.AsyncClient() as http:
        again = await http.post(
            f"{mollie}/v2/payments",
            json={
                "amount": first["amount"],
                "description": "Renewal, charged again",
                "sequenceType": "recurring",
                "customerId": first["customerId"],
                "mandateId": first["mandateId"],
                "metadata": {**first["metadata"], "operation": f"{cycle}:charge-again"},
            },
            headers=MOLLIE_AUTH,
        )
        again.raise_for_status()
    second_id = str(again.json()["id"])
    assert (await mollie_payment(connector, second_id))["status"] == "paid"

    report = await reconcile(connector)
    [finding] = report.findings
    assert (finding.kind, finding.action) == (PAID_TWICE, FOR_A_PERSON)
    assert finding.workflow_id == cycle
    assert finding.mollie_payment_id == second_id
    assert held_id in finding.detail
    assert second_id in finding.detail
    assert "refund the other one" in finding.detail

    # An operator gives the second charge back in Mollie's Dashboard. That is no refund of
    # the cycle's Cleeng payment (which records the first charge): it is not recorded there.
    await dashboard_refund(mollie, second_id, first["amount"]["value"])
    after = await reconcile(connector)
    [left] = after.findings
    assert (left.kind, left.action) == (REFUND_NOT_RECORDED, FOR_A_PERSON)
    assert left.mollie_payment_id == second_id
    [unchanged] = await cleeng_subscription_payments(connector, sub.subscription_id)
    assert unchanged["status"] == "captured"
    assert not unchanged.get("refundedAmount")
