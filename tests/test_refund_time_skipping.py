"""A refund Mollie does not settle: the wait backs off, continues as new with its refund, and
ends at its deadline with `RefundNotSettled` (time-skipping server; webhooks go nowhere)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.money import Money
from domain.refunds import RefundRequest, RefundStatusView
from settings import EMULATOR_MOLLIE_API_KEY
from tests.conftest import Emulators, connector_settings
from worker import build_worker
from workflows.refund import RefundWorkflow

MOLLIE_AUTH = {"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"}


async def paid_mollie_payment(emulators: Emulators) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{emulators.mollie_url}/v2/payments",
            json={
                "amount": {"currency": "EUR", "value": "20.00"},
                "description": "Refunded later",
                "redirectUrl": "https://shop.example/thanks",
            },
            headers=MOLLIE_AUTH,
        )
        created.raise_for_status()
        payment_id = str(created.json()["id"])
        forced = await http.post(
            f"{emulators.mollie_url}/_emulator/payments/{payment_id}/status",
            json={"status": "paid"},
        )
        forced.raise_for_status()
    return payment_id


async def mollie_refunds(emulators: Emulators, payment_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        ledger = (await http.get(f"{emulators.mollie_url}/_emulator/ledger")).json()
    [payment] = [p for p in ledger["payments"] if p["id"] == payment_id]
    refunds: list[dict[str, Any]] = payment["refunds"]
    return refunds


def refund_request(payment_id: str) -> RefundRequest:
    return RefundRequest(
        cleeng_payment_id="700000001",
        order_id="800000001",
        payment_operation="initial-payment",
        external_payment_id=payment_id,
        amount=Money(minor=500, currency="EUR"),
        settle_within_seconds=int(timedelta(days=3).total_seconds()),
        polls_per_run=3,
    )


async def runs_of(client: Client, workflow_id: str, first_run_id: str) -> list[int]:
    """History length of each run of the chain, following continue-as-new from the first."""
    lengths: list[int] = []
    run_id: str | None = first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            else None
        )
    return lengths


@pytest.fixture
def settings_for(emulators: Emulators) -> Any:
    return connector_settings(
        emulators, "unused:0", "http://127.0.0.1:9", f"refund-wait-{uuid.uuid4().hex[:8]}"
    )


async def test_a_refund_mollie_never_settles_fails_at_its_deadline_naming_the_refund(
    time_skipping_env: WorkflowEnvironment, emulators: Emulators, settings_for: Any
) -> None:
    env, settings = time_skipping_env, settings_for
    payment_id = await paid_mollie_payment(emulators)
    async with build_worker(env.client, settings) as worker, worker:
        handle = await env.client.start_workflow(
            RefundWorkflow.run,
            refund_request(payment_id),
            id=f"refund:stuck:{uuid.uuid4().hex[:8]}",
            task_queue=settings.temporal_task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        final = await env.client.get_workflow_handle(handle.id, result_type=RefundStatusView).query(
            RefundWorkflow.view
        )
        started = (
            await env.client.get_workflow_handle(handle.id, run_id=handle.result_run_id).describe()
        ).start_time
        ended = (await env.client.get_workflow_handle(handle.id).describe()).close_time
        lengths = await runs_of(env.client, handle.id, str(handle.result_run_id))

    [refund] = await mollie_refunds(emulators, payment_id)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "RefundNotSettled"
    assert payment_id in cause.message
    assert refund["id"] in cause.message
    assert (final.status, final.mollie_refund_id) == ("not_settled", refund["id"])
    # The deadline is the first run's, carried through every continue-as-new.
    assert ended is not None
    assert timedelta(days=3) <= ended - started < timedelta(days=3, hours=1)
    # Several short runs instead of one long one; the backoff keeps the whole wait small.
    assert len(lengths) >= 3
    assert max(lengths) <= 60
    assert sum(lengths) <= 400


async def test_a_refund_continued_as_new_keeps_awaiting_the_same_refund(
    time_skipping_env: WorkflowEnvironment, emulators: Emulators, settings_for: Any
) -> None:
    env, settings = time_skipping_env, settings_for
    payment_id = await paid_mollie_payment(emulators)
    async with build_worker(env.client, settings) as worker, worker:
        handle = await env.client.start_workflow(
            RefundWorkflow.run,
            refund_request(payment_id),
            id=f"refund:continued:{uuid.uuid4().hex[:8]}",
            task_queue=settings.temporal_task_queue,
        )
        await env.sleep(timedelta(days=1))
        latest = env.client.get_workflow_handle(handle.id, result_type=RefundStatusView)
        assert (await latest.describe()).run_id != handle.result_run_id
        waiting = await latest.query(RefundWorkflow.view)
        [refund] = await mollie_refunds(emulators, payment_id)
        assert (waiting.status, waiting.mollie_refund_id) == ("pending_at_mollie", refund["id"])

        async with httpx.AsyncClient() as http:
            forced = await http.post(
                f"{emulators.mollie_url}/_emulator/refunds/{refund['id']}/status",
                json={"status": "failed"},
            )
            forced.raise_for_status()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "RefundFailed"
    assert refund["id"] in cause.message
    assert len(await mollie_refunds(emulators, payment_id)) == 1
