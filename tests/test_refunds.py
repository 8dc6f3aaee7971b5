"""Refunds asked for by Cleeng, and chargebacks reported by Mollie, end to end."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, RetryState
from temporalio.service import RPCError, RPCStatusCode

from benchmarks import chaos
from domain.money import Money
from domain.refunds import (
    ChargebackInput,
    RecordResolution,
    RefundAmountSeen,
    RefundRequest,
    RefundStatusView,
    chargeback_share,
    refund_request_key,
    refund_workflow_id,
)
from settings import EMULATOR_MOLLIE_API_KEY
from tests.conftest import Connector
from tests.support.billing import send_cleeng_webhook
from tests.support.histories import keep_history
from tests.support.shop import (
    cleeng_payments,
    paid_purchase,
)
from workflows.failures import failure_message, failure_type
from workflows.refund import ChargebackWorkflow, PaymentFollowUpWorkflow, RefundWorkflow


def refund_data(
    payment: dict[str, Any], amount: float, reason: str = "customer asked"
) -> dict[str, Any]:
    return {
        "paymentId": payment["id"],
        "orderId": payment["orderId"],
        "customerId": payment["customerId"],
        "externalPaymentId": payment["externalPaymentId"],
        "amount": amount,
        "currency": "EUR",
        "reason": reason,
        "paymentMethodId": 555000001,
    }


async def request_refund(connector: Connector, data: dict[str, Any]) -> httpx.Response:
    return await send_cleeng_webhook(connector, data, topic="refundPayment")


async def mollie_refunds(connector: Connector, payment_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        ledger = (await http.get(f"{connector.emulators.mollie_url}/_emulator/ledger")).json()
    [payment] = [p for p in ledger["payments"] if p["id"] == payment_id]
    refunds: list[dict[str, Any]] = payment["refunds"]
    return refunds


async def settle_refund(connector: Connector, data: dict[str, Any], outcome: str) -> None:
    """Mollie settles the refund (hours later in reality) and sends its webhook."""
    [refund] = [
        r
        for r in await mollie_refunds(connector, data["externalPaymentId"])
        if Money.from_decimal(r["amount"]["value"], "EUR").minor
        == Money.from_decimal(data["amount"], "EUR").minor
        and r["status"] in ("pending", "queued", "processing")
    ]
    # Mollie's webhook for the settled refund goes to the payment's own (finished) purchase
    # workflow URL; the shim passes it on to the payment's running refunds.
    await force_refund_status(connector, refund["id"], outcome)


async def force_refund_status(connector: Connector, refund_id: str, status: str) -> None:
    async with httpx.AsyncClient() as http:
        forced = await http.post(
            f"{connector.emulators.mollie_url}/_emulator/refunds/{refund_id}/status",
            json={"status": status},
        )
        forced.raise_for_status()


def refund_handle(connector: Connector, data: dict[str, Any]) -> Any:
    return connector.client.get_workflow_handle_for(
        RefundWorkflow.run, refund_workflow_id(str(data["paymentId"]), refund_request_key(data))
    )


async def wait_for_mollie_refunds(connector: Connector, payment_id: str, count: int) -> None:
    async with asyncio.timeout(30):
        while len(await mollie_refunds(connector, payment_id)) < count:
            await asyncio.sleep(0.05)


async def refund_settles_or_holds(handle: Any) -> RefundStatusView:
    """The refund's view once it left `requested` / `pending_at_mollie`: held for a person
    (`record_unknown`), or finished."""
    async with asyncio.timeout(30):
        while True:
            try:
                view: RefundStatusView = await handle.query(RefundWorkflow.view)
            except RPCError:
                view = await handle.result()  # closed before the query could be answered
            if view.status not in ("requested", "pending_at_mollie"):
                return view
            await asyncio.sleep(0.05)


async def set_faults(url: str, faults: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{url}/_emulator/faults", json=faults)).raise_for_status()


def lose_next_refund_reply(payment: dict[str, Any], *, after_commit: bool) -> dict[str, Any]:
    """Cleeng's fault: the next PATCH of this payment hangs until the client gives up, after
    (or before) Cleeng applied it."""
    return {
        "failNext": [
            {
                "method": "PATCH",
                "pathPrefix": f"/3.1/payments/{payment['id']}",
                "status": "timeout",
                "afterCommit": after_commit,
            }
        ]
    }


def refunded_minor(refunds: list[dict[str, Any]]) -> int:
    return sum(
        Money.from_decimal(r["amount"]["value"], "EUR").minor
        for r in refunds
        if r["status"] == "refunded"
    )


async def test_partial_refunds_then_the_rest_are_recorded_in_cleeng(connector: Connector) -> None:
    payment = await paid_purchase(connector, price=20.00)
    first = refund_data(payment, 5.00, "partial")
    assert (await request_refund(connector, first)).json()["status"] == "accepted"
    async with asyncio.timeout(30):
        while not await mollie_refunds(connector, payment["externalPaymentId"]):
            await asyncio.sleep(0.05)
    await settle_refund(connector, first, "refunded")
    assert (await refund_handle(connector, first).result()).status == "refunded"

    rest = refund_data(payment, 15.00, "the rest")
    await request_refund(connector, rest)
    async with asyncio.timeout(30):
        while len(await mollie_refunds(connector, payment["externalPaymentId"])) < 2:
            await asyncio.sleep(0.05)
    await settle_refund(connector, rest, "refunded")
    await refund_handle(connector, rest).result()

    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["status"] == "refunded"
    assert recorded["refundedAmount"] == 20.00
    assert recorded["refundType"] == "refund"


async def test_refund_webhook_delivered_twice_refunds_once(connector: Connector) -> None:
    payment = await paid_purchase(connector)
    data = refund_data(payment, 20.00)
    answers = await asyncio.gather(request_refund(connector, data), request_refund(connector, data))
    assert {a.status_code for a in answers} == {200}
    async with asyncio.timeout(30):
        while not await mollie_refunds(connector, payment["externalPaymentId"]):
            await asyncio.sleep(0.05)
    await settle_refund(connector, data, "refunded")
    await refund_handle(connector, data).result()
    late = await request_refund(connector, data)
    assert late.json()["status"] == "duplicate"
    assert len(await mollie_refunds(connector, payment["externalPaymentId"])) == 1
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["refundedAmount"] == 20.00


async def test_two_equal_refunds_asked_apart_each_land_once_at_mollie_and_in_cleeng(
    connector: Connector,
) -> None:
    payment = await paid_purchase(connector, price=20.00)
    # Same amount and reason; Cleeng's payload differs in something else (here a request id
    # it may carry): two refunds, in flight together, settled one after the other.
    first = {**refund_data(payment, 5.00, "goodwill"), "refundRequestId": "a"}
    second = {**refund_data(payment, 5.00, "goodwill"), "refundRequestId": "b"}
    answers = await asyncio.gather(
        request_refund(connector, first), request_refund(connector, second)
    )
    assert [a.json()["status"] for a in answers] == ["accepted", "accepted"]
    await wait_for_mollie_refunds(connector, payment["externalPaymentId"], 2)
    first_refund, second_refund = await mollie_refunds(connector, payment["externalPaymentId"])
    await force_refund_status(connector, first_refund["id"], "refunded")
    async with asyncio.timeout(30):
        while (await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"])))[
            0
        ].get("refundedAmount") != 5.00:
            await asyncio.sleep(0.05)
    await force_refund_status(connector, second_refund["id"], "refunded")
    assert (await refund_handle(connector, first).result()).status == "refunded"
    assert (await refund_handle(connector, second).result()).status == "refunded"
    assert refunded_minor(await mollie_refunds(connector, payment["externalPaymentId"])) == 1000
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["refundedAmount"] == 10.00


async def test_refund_without_order_in_the_webhook_is_recorded_with_every_required_field(
    connector: Connector,
) -> None:
    payment = await paid_purchase(connector, price=8.00)
    data = refund_data(payment, 8.00)
    del data["orderId"], data["reason"]
    await request_refund(connector, data)
    await wait_for_mollie_refunds(connector, payment["externalPaymentId"], 1)
    await settle_refund(connector, data, "refunded")
    assert (await refund_handle(connector, data).result()).status == "refunded"
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["status"] == "refunded"
    assert recorded["refundedAmount"] == 8.00
    assert recorded["refundedReason"]


async def test_refund_replayed_after_its_history_expired_changes_nothing(
    connector: Connector,
) -> None:
    payment = await paid_purchase(connector, price=9.00)
    data = refund_data(payment, 4.00, "replayed later")
    await request_refund(connector, data)
    await wait_for_mollie_refunds(connector, payment["externalPaymentId"], 1)
    await settle_refund(connector, data, "refunded")
    handle = refund_handle(connector, data)
    await handle.result()
    first_run = (await handle.describe()).run_id
    within_retention = await request_refund(connector, data)
    assert within_retention.json()["status"] == "duplicate"
    # After retention the closed workflow is gone and the same webhook starts a new run of
    # the same id, with no memory of the first: that run is started here directly.
    replay = await connector.client.start_workflow(
        RefundWorkflow.run,
        RefundRequest(
            cleeng_payment_id=str(data["paymentId"]),
            order_id=str(data["orderId"]),
            external_payment_id=data["externalPaymentId"],
            amount=Money.from_decimal(data["amount"], "EUR"),
            reason=data["reason"],
        ),
        id=handle.id,
        task_queue=connector.settings.temporal_task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    assert replay.result_run_id != first_run
    # Whether the first run recorded the refund is not known to the replay: a person says.
    held = await refund_settles_or_holds(replay)
    assert held.status == "record_unknown"
    assert first_run in (held.error or "")
    await replay.signal(RefundWorkflow.resolve_record, RecordResolution(recorded=True))
    assert (await replay.result()).status == "refunded"
    assert len(await mollie_refunds(connector, payment["externalPaymentId"])) == 1
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["refundedAmount"] == 4.00


async def test_a_refund_replayed_after_it_was_not_settled_is_recorded_before_reported_refunded(
    connector: Connector,
) -> None:
    # The first run gives up (RefundNotSettled) while Mollie still has the refund pending, so
    # it records nothing; Mollie settles it later; after retention the same webhook starts a
    # new run, which adopts the refund, now refunded. It must not say `refunded` while Cleeng
    # has no record of it.
    payment = await paid_purchase(connector, price=9.00)
    data = refund_data(payment, 4.00, "settled after the deadline")
    request = RefundRequest(
        cleeng_payment_id=str(data["paymentId"]),
        order_id=str(data["orderId"]),
        external_payment_id=data["externalPaymentId"],
        amount=Money.from_decimal(data["amount"], "EUR"),
        reason=data["reason"],
        poll_schedule_seconds=(1,),
        settle_within_seconds=2,
    )
    workflow_id = refund_workflow_id(str(data["paymentId"]), refund_request_key(data))
    first = await connector.client.start_workflow(
        RefundWorkflow.run,
        request,
        id=workflow_id,
        task_queue=connector.settings.temporal_task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await first.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "RefundNotSettled"
    [refund] = await mollie_refunds(connector, data["externalPaymentId"])
    await force_refund_status(connector, refund["id"], "refunded")

    replay = await connector.client.start_workflow(
        RefundWorkflow.run,
        replace(request, poll_schedule_seconds=(60,), settle_within_seconds=3600),
        id=workflow_id,
        task_queue=connector.settings.temporal_task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    held = await refund_settles_or_holds(replay)
    assert held.status == "record_unknown"
    [untouched] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert untouched["status"] == "captured"
    # The person finds no refund on the Cleeng payment: the connector records it now.
    await replay.signal(RefundWorkflow.resolve_record, RecordResolution(recorded=False))
    assert (await replay.result()).status == "refunded"
    assert len(await mollie_refunds(connector, data["externalPaymentId"])) == 1
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert (recorded["status"], recorded["refundedAmount"]) == ("refunded", 4.00)


async def test_refund_failed_at_mollie_is_not_marked_refunded(connector: Connector) -> None:
    payment = await paid_purchase(connector)
    data = refund_data(payment, 20.00, "goodwill")
    await request_refund(connector, data)
    async with asyncio.timeout(30):
        while not await mollie_refunds(connector, payment["externalPaymentId"]):
            await asyncio.sleep(0.05)
    await settle_refund(connector, data, "failed")
    with pytest.raises(WorkflowFailureError) as failure:
        await refund_handle(connector, data).result()
    assert "not marked refunded" in str(failure.value.cause)
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["status"] == "captured"


async def test_over_refund_is_refused_with_a_clear_reason(connector: Connector) -> None:
    payment = await paid_purchase(connector, price=10.00)
    data = refund_data(payment, 25.00, "too much")
    await request_refund(connector, data)
    handle = refund_handle(connector, data)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "Mollie refused to refund 25.00 EUR" in str(failure.value.cause)
    state = await handle.query(RefundWorkflow.view)
    assert state.status == "refused"
    assert await mollie_refunds(connector, payment["externalPaymentId"]) == []
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["status"] == "captured"


@pytest.mark.parametrize(
    ("data_change", "named"),
    [
        ({"externalPaymentId": "not-mollie"}, "data.externalPaymentId"),
        ({"amount": -5}, "data.amount"),
        ({"amount": "5.001"}, "data.amount"),
        ({"paymentId": None}, "data.paymentId"),
    ],
)
async def test_malformed_refund_webhooks_name_the_field(
    connector: Connector, data_change: dict[str, Any], named: str
) -> None:
    data = {
        "paymentId": 1,
        "orderId": 2,
        "externalPaymentId": "tr_abc",
        "amount": 5,
        "currency": "EUR",
        **data_change,
    }
    response = await request_refund(connector, data)
    assert response.status_code == 422
    assert named in response.json()["detail"]


async def test_chargeback_is_reported_to_cleeng_once(connector: Connector) -> None:
    payment = await paid_purchase(connector, price=12.00)
    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{connector.emulators.mollie_url}/_emulator/payments/"
            f"{payment['externalPaymentId']}/chargeback",
            json={},
        )
        created.raise_for_status()
    chargeback_id = created.json()["id"]
    # Mollie's webhook reaches the finished purchase workflow's URL; a follow-up reports it.
    handle = connector.client.get_workflow_handle(f"chargeback:{chargeback_id}")
    async with asyncio.timeout(30):
        while True:
            try:
                await handle.result()
                break
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.1)  # not started yet
    # A duplicate webhook reports nothing again.
    async with httpx.AsyncClient() as http:
        again = await http.post(
            f"{connector.api_url}/webhooks/mollie",
            params={"workflow": f"purchase:{payment['orderId']}"},
            data={"id": payment["externalPaymentId"]},
        )
        assert again.status_code == 200
    await connector.client.get_workflow_handle(
        f"payment-followup:{payment['externalPaymentId']}"
    ).result()
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["status"] == "refunded"
    assert recorded["refundType"] == "chargeback"
    assert recorded["refundedAmount"] == 12.00


async def test_an_unmatched_chargeback_is_reported_and_the_next_one_still_handled(
    connector: Connector,
) -> None:
    # A paid payment the connector never recorded in Cleeng (no order, no workflow in its
    # metadata), charged back twice: neither chargeback can be matched to a Cleeng payment.
    mollie = connector.emulators.mollie_url
    auth = {"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"}
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(
            f"{mollie}/v2/payments",
            json={
                "amount": {"currency": "EUR", "value": "30.00"},
                "description": "Not the connector's",
                "redirectUrl": "https://shop.example/thanks",
            },
            headers=auth,
        )
        payment_id = str(created.json()["id"])
        paid = await http.post(
            f"{mollie}/_emulator/payments/{payment_id}/status", json={"status": "paid"}
        )
        paid.raise_for_status()
        chargeback_ids = []
        for value in ("10.00", "5.00"):
            charged_back = await http.post(
                f"{mollie}/_emulator/payments/{payment_id}/chargeback",
                json={"amount": {"currency": "EUR", "value": value}},
            )
            charged_back.raise_for_status()
            chargeback_ids.append(str(charged_back.json()["id"]))

    follow_up = await connector.client.start_workflow(
        PaymentFollowUpWorkflow.run,
        payment_id,
        id=f"payment-followup:{payment_id}",
        task_queue=connector.settings.temporal_task_queue,
    )
    assert await follow_up.result() == []
    view = await follow_up.query(PaymentFollowUpWorkflow.view)
    assert sorted(u.chargeback_id for u in view.unreported) == sorted(chargeback_ids)
    assert all("ChargebackUnmatched" in u.error for u in view.unreported)
    for chargeback_id in chargeback_ids:
        with pytest.raises(WorkflowFailureError) as failure:
            await connector.client.get_workflow_handle(f"chargeback:{chargeback_id}").result()
        assert isinstance(failure.value.cause, ApplicationError)
        assert failure.value.cause.type == "ChargebackUnmatched"
        assert payment_id in failure.value.cause.message


async def refund_with_lost_reply(
    connector: Connector,
    payment: dict[str, Any],
    amount: float,
    reason: str,
    *,
    refunds_at_mollie: int,
    after_commit: bool,
) -> tuple[Any, RefundStatusView]:
    """A refund of `payment` made at Mollie and settled, whose PATCH reply from Cleeng is lost
    (after or before Cleeng applied it): its workflow handle, and its view once it settled or
    held."""
    data = refund_data(payment, amount, reason)
    await request_refund(connector, data)
    await wait_for_mollie_refunds(connector, payment["externalPaymentId"], refunds_at_mollie)
    await set_faults(
        connector.emulators.cleeng_url, lose_next_refund_reply(payment, after_commit=after_commit)
    )
    await settle_refund(connector, data, "refunded")
    handle = refund_handle(connector, data)
    return handle, await refund_settles_or_holds(handle)


@pytest.mark.long_running(seconds=15)
async def test_lost_replies_to_the_refund_patch_are_held_never_written_twice(
    connector: Connector, clean_faults: None
) -> None:
    # Three partial refunds, each PATCH's reply lost after Cleeng applied it (the retry used
    # to PATCH again: 2.00 refunded at Mollie, 4.00 in Cleeng), then one lost before Cleeng
    # applied it. Nothing is written a second time without a person's answer.
    payment = await paid_purchase(connector, price=9.00)
    cleeng, tr_id = connector.emulators.cleeng_url, payment["externalPaymentId"]
    for count, amount in enumerate((1.00, 2.00, 3.00), start=1):
        handle, held = await refund_with_lost_reply(
            connector, payment, amount, f"lost reply {count}", refunds_at_mollie=count,
            after_commit=True,
        )  # fmt: skip
        assert held.status == "record_unknown", held
        assert "was lost" in (held.error or "")
        [recorded] = await cleeng_payments(cleeng, str(payment["orderId"]))
        assert Money.from_decimal(recorded["refundedAmount"], "EUR").minor == refunded_minor(
            await mollie_refunds(connector, tr_id)
        )
        # The person sees the refund on the Cleeng payment.
        await handle.signal(RefundWorkflow.resolve_record, RecordResolution(recorded=True))
        assert (await handle.result()).status == "refunded"

    handle, held = await refund_with_lost_reply(
        connector, payment, 1.50, "lost before Cleeng applied it", refunds_at_mollie=4,
        after_commit=False,
    )  # fmt: skip
    assert held.status == "record_unknown"
    [recorded] = await cleeng_payments(cleeng, str(payment["orderId"]))
    assert recorded["refundedAmount"] == 6.00
    # The person finds it missing: the connector writes it now, once.
    await handle.signal(RefundWorkflow.resolve_record, RecordResolution(recorded=False))
    assert (await handle.result()).status == "refunded"
    [recorded] = await cleeng_payments(cleeng, str(payment["orderId"]))
    assert recorded["refundedAmount"] == 7.50
    assert refunded_minor(await mollie_refunds(connector, tr_id)) == 750


async def test_residual_a_5xx_after_cleeng_applied_the_refund_patch_records_it_twice(
    connector: Connector, clean_faults: None
) -> None:
    # The measured residual (docs/cleeng-contract.md): a 5xx does not say the write was not
    # applied, but the client classes it retryable, so a 5xx that Cleeng sends after applying
    # the PATCH is retried and counted twice: one double record per such fault.
    payment = await paid_purchase(connector, price=9.00)
    data = refund_data(payment, 2.00, "5xx after commit")
    await request_refund(connector, data)
    await wait_for_mollie_refunds(connector, payment["externalPaymentId"], 1)
    await set_faults(
        connector.emulators.cleeng_url,
        {
            "failNext": [
                {
                    "method": "PATCH",
                    "pathPrefix": f"/3.1/payments/{payment['id']}",
                    "status": 503,
                    "afterCommit": True,
                }
            ]
        },
    )
    await settle_refund(connector, data, "refunded")
    assert (await refund_handle(connector, data).result()).status == "refunded"
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["refundedAmount"] == 4.00


async def chargeback_at_mollie(connector: Connector, payment_id: str) -> str:
    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{connector.emulators.mollie_url}/_emulator/payments/{payment_id}/chargeback",
            json={},
        )
        created.raise_for_status()
    return str(created.json()["id"])


async def reverse_at_mollie(connector: Connector, payment_id: str, chargeback_id: str) -> None:
    async with httpx.AsyncClient() as http:
        reversed_ = await http.post(
            f"{connector.emulators.mollie_url}/_emulator/payments/{payment_id}/chargebacks/"
            f"{chargeback_id}/reverse"
        )
        reversed_.raise_for_status()
        assert reversed_.json()["reversedAt"]


async def follow_up(connector: Connector, payment_id: str, name: str) -> Any:
    """A follow-up of the payment, started here (Mollie's webhooks are dropped)."""
    handle = await connector.client.start_workflow(
        PaymentFollowUpWorkflow.run,
        payment_id,
        id=f"payment-followup:{payment_id}:{name}",
        task_queue=connector.settings.temporal_task_queue,
    )
    await handle.result()
    return await handle.query(PaymentFollowUpWorkflow.view)


async def test_a_chargeback_whose_report_failed_is_reported_by_the_next_follow_up(
    connector: Connector, clean_faults: None
) -> None:
    payment = await paid_purchase(connector, price=12.00)
    tr_id = payment["externalPaymentId"]
    await set_faults(connector.emulators.mollie_url, {"dropWebhookRate": 1.0})
    chargeback_id = await chargeback_at_mollie(connector, tr_id)
    # An earlier report of this chargeback failed (here: it named a payment Mollie does not
    # know, so no Cleeng payment could be found).
    failed = await connector.client.start_workflow(
        ChargebackWorkflow.run,
        ChargebackInput(
            mollie_payment_id="tr_unknown0",
            chargeback_id=chargeback_id,
            amount=Money.from_decimal(12, "EUR"),
            reason=None,
        ),
        id=f"chargeback:{chargeback_id}",
        task_queue=connector.settings.temporal_task_queue,
    )
    with pytest.raises(WorkflowFailureError):
        await failed.result()

    view = await follow_up(connector, tr_id, "after-failure")
    assert view.reported == [chargeback_id]
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert (recorded["status"], recorded["refundType"]) == ("refunded", "chargeback")
    assert recorded["refundedAmount"] == 12.00
    # Reported now: a further follow-up counts it, and writes nothing again.
    assert (await follow_up(connector, tr_id, "again")).reported == [chargeback_id]
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["refundedAmount"] == 12.00


async def test_a_reversed_chargeback_is_never_reported_as_a_refund(
    connector: Connector, clean_faults: None
) -> None:
    payment = await paid_purchase(connector, price=12.00)
    tr_id = payment["externalPaymentId"]
    await set_faults(connector.emulators.mollie_url, {"dropWebhookRate": 1.0})
    chargeback_id = await chargeback_at_mollie(connector, tr_id)
    await reverse_at_mollie(connector, tr_id, chargeback_id)  # the merchant won the dispute

    view = await follow_up(connector, tr_id, "reversed")
    assert (view.reported, view.reversed, view.unreported) == ([], [chargeback_id], [])
    # Nor when the report is started with the reversed chargeback (as reconciliation repairs).
    repair = await connector.client.start_workflow(
        ChargebackWorkflow.run,
        ChargebackInput(
            mollie_payment_id=tr_id,
            chargeback_id=chargeback_id,
            amount=Money.from_decimal(12, "EUR"),
            reason=None,
            reversed_at="2026-12-07T00:00:00+00:00",
        ),
        id=f"chargeback:{chargeback_id}:repair",
        task_queue=connector.settings.temporal_task_queue,
    )
    assert await repair.result() == ""
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert (recorded["status"], recorded["refundedAmount"]) == ("captured", 0.0)


async def test_a_chargeback_reversed_after_its_report_is_listed_for_a_person(
    connector: Connector, clean_faults: None
) -> None:
    payment = await paid_purchase(connector, price=12.00)
    tr_id = payment["externalPaymentId"]
    await set_faults(connector.emulators.mollie_url, {"dropWebhookRate": 1.0})
    chargeback_id = await chargeback_at_mollie(connector, tr_id)
    assert (await follow_up(connector, tr_id, "charged-back")).reported == [chargeback_id]
    await reverse_at_mollie(connector, tr_id, chargeback_id)

    view = await follow_up(connector, tr_id, "reversed-later")
    assert view.reported == []
    [unreported] = view.unreported
    assert unreported.chargeback_id == chargeback_id
    assert unreported.error.startswith("ChargebackReversedAfterReport")
    # Cleeng keeps the report (no documented call takes it back); nothing is written again.
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert (recorded["status"], recorded["refundedAmount"]) == ("refunded", 12.00)


async def cleeng_refund_records(connector: Connector, payment_id: int) -> list[tuple[int, str]]:
    """Each refund Cleeng's emulator holds for the payment: (minor units, refund type)."""
    async with httpx.AsyncClient() as http:
        ledger = (await http.get(f"{connector.emulators.cleeng_url}/_emulator/ledger")).json()
    [item] = [i for i in ledger["items"] if i["paymentId"] == payment_id]
    return [(r["amountMinor"], r["refundType"]) for r in item["refunds"]]


async def refunded_in_full_or_part(
    connector: Connector, payment: dict[str, Any], amount: float
) -> None:
    """Cleeng asks for a refund, Mollie settles it, and the Refund workflow records it."""
    data = refund_data(payment, amount, "goodwill")
    assert (await request_refund(connector, data)).json()["status"] == "accepted"
    await wait_for_mollie_refunds(connector, payment["externalPaymentId"], 1)
    await settle_refund(connector, data, "refunded")
    assert (await refund_handle(connector, data).result()).status == "refunded"


async def test_a_refund_of_money_already_charged_back_reports_the_chargeback_and_refunds_nothing(
    connector: Connector, clean_faults: None
) -> None:
    """The customer charged the whole payment back at their bank and Mollie's webhook was lost,
    so Cleeng still thinks the payment can be refunded and asks for 5.00. Mollie refuses (none
    of it is left): the connector reports the chargeback, which Cleeng records, and the refund
    ends `charged_back` with nothing refunded, instead of failing for a person."""
    payment = await paid_purchase(connector, price=9.99)
    tr_id = payment["externalPaymentId"]
    await set_faults(connector.emulators.mollie_url, {"dropWebhookRate": 1.0})
    chargeback_id = await chargeback_at_mollie(connector, tr_id)

    data = refund_data(payment, 5.00, "customer asked")
    assert (await request_refund(connector, data)).json()["status"] == "accepted"
    handle = refund_handle(connector, data)
    async with asyncio.timeout(60):
        view = await handle.result()
    assert view.status == "charged_back"
    assert view.error is not None
    assert f"chargeback ({chargeback_id} of 9.99 EUR)" in view.error
    assert "higher than the remaining refundable amount" in view.error
    assert await mollie_refunds(connector, tr_id) == []
    assert await cleeng_refund_records(connector, payment["id"]) == [(999, "chargeback")]
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert recorded["status"] == "refunded"
    await keep_history(handle, "Refund-charged-back")


async def test_a_refund_above_what_a_chargeback_left_is_refused_after_reporting_it(
    connector: Connector, clean_faults: None
) -> None:
    """A chargeback of 4.00 of a 10.00 payment (webhook lost), then Cleeng asks to refund all
    10.00: Mollie refuses (6.00 is left). The chargeback is reported all the same, and the
    refund fails `RefundRefused` for a person, naming it: the connector does not decide to
    refund the 6.00 instead."""
    payment = await paid_purchase(connector, price=10.00)
    tr_id = payment["externalPaymentId"]
    await set_faults(connector.emulators.mollie_url, {"dropWebhookRate": 1.0})
    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{connector.emulators.mollie_url}/_emulator/payments/{tr_id}/chargeback",
            json={"amount": {"currency": "EUR", "value": "4.00"}},
        )
        created.raise_for_status()
    chargeback_id = created.json()["id"]

    data = refund_data(payment, 10.00, "customer asked")
    await request_refund(connector, data)
    handle = refund_handle(connector, data)
    with pytest.raises(WorkflowFailureError) as failure:
        async with asyncio.timeout(60):
            await handle.result()
    assert "Mollie refused to refund 10.00 EUR" in str(failure.value.cause)
    view = await handle.query(RefundWorkflow.view)
    assert view.status == "refused"
    assert view.error is not None
    assert f"chargebacks ({chargeback_id} of 4.00 EUR) were reported to Cleeng" in view.error
    assert await mollie_refunds(connector, tr_id) == []
    assert await cleeng_refund_records(connector, payment["id"]) == [(400, "chargeback")]
    await keep_history(handle, "Refund-refused-after-chargeback")


async def test_a_chargeback_after_a_partial_refund_records_what_the_refund_left(
    connector: Connector,
) -> None:
    # The demo's story (docs/demos.md): 5.00 of a 9.99 payment refunded, then the customer
    # charges back all 9.99 at their bank. Cleeng cannot hold more than the payment: the
    # chargeback is recorded for the 4.99 the refund left, and the workflow completes.
    payment = await paid_purchase(connector, price=9.99)
    tr_id = payment["externalPaymentId"]
    await refunded_in_full_or_part(connector, payment, 5.00)

    chargeback_id = await chargeback_at_mollie(connector, tr_id)  # 9.99: the whole payment
    # Mollie's webhook reaches the finished purchase's URL; the shim starts a follow-up,
    # whose child reports the chargeback.
    handle = connector.client.get_workflow_handle(f"chargeback:{chargeback_id}", result_type=str)
    async with asyncio.timeout(30):
        while True:
            try:
                assert await handle.result() == str(payment["id"])
                break
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.1)  # not started yet
    view = await handle.query(ChargebackWorkflow.view)
    assert (view.status, view.amount_minor, view.recorded_minor) == ("recorded", 999, 499)
    assert view.note is not None
    assert "5.00 EUR was given back already (refunds 5.00 EUR)" in view.note
    assert view.note.endswith("recorded the remaining 4.99 EUR")

    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert (recorded["status"], recorded["refundedAmount"]) == ("refunded", 9.99)
    assert "chargeback " + chargeback_id + " of 9.99 EUR" in recorded["refundedReason"]
    assert "5.00 EUR of it given back already" in recorded["refundedReason"]
    assert await cleeng_refund_records(connector, payment["id"]) == [
        (500, "refund"),
        (499, "chargeback"),
    ]
    await keep_history(handle, "Chargeback-after-partial-refund")


async def test_a_chargeback_after_a_full_refund_writes_nothing_and_says_why(
    connector: Connector, clean_faults: None
) -> None:
    payment = await paid_purchase(connector, price=9.99)
    tr_id = payment["externalPaymentId"]
    await refunded_in_full_or_part(connector, payment, 9.99)
    await set_faults(connector.emulators.mollie_url, {"dropWebhookRate": 1.0})
    chargeback_id = await chargeback_at_mollie(connector, tr_id)

    async with asyncio.timeout(30):
        follow = await follow_up(connector, tr_id, "after-full-refund")
    assert (follow.reported, follow.unreported) == ([chargeback_id], [])
    handle = connector.client.get_workflow_handle(f"chargeback:{chargeback_id}", result_type=str)
    assert await handle.result() == ""
    view = await handle.query(ChargebackWorkflow.view)
    assert (view.status, view.recorded_minor) == ("nothing_to_record", 0)
    assert view.note is not None
    assert view.note.endswith("nothing written")
    assert "9.99 EUR was given back already (refunds 9.99 EUR)" in view.note
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, str(payment["orderId"]))
    assert (recorded["refundedAmount"], recorded["refundType"]) == (9.99, "refund")
    assert await cleeng_refund_records(connector, payment["id"]) == [(999, "refund")]
    await keep_history(handle, "Chargeback-after-full-refund")


def _chargeback(
    chargeback_id: str, value: str, *, reversed_at: str | None = None
) -> ChargebackInput:
    return ChargebackInput(
        mollie_payment_id="tr_x",
        chargeback_id=chargeback_id,
        amount=Money.from_decimal(value, "EUR"),
        reason=None,
        reversed_at=reversed_at,
    )


def _refund(status: str, value: str) -> RefundAmountSeen:
    return RefundAmountSeen(status=status, amount=Money.from_decimal(value, "EUR"))


@pytest.mark.parametrize(
    ("refunds", "earlier", "amount", "expected"),
    [
        ([], [], "9.99", 999),  # no refund: the whole chargeback
        ([_refund("refunded", "5.00")], [], "9.99", 499),  # the demo's story
        ([_refund("pending", "5.00")], [], "9.99", 499),  # on its way: its workflow records it
        ([_refund("refunded", "9.99")], [], "9.99", 0),  # all given back: nothing
        ([_refund("failed", "5.00"), _refund("canceled", "2.00")], [], "9.99", 999),
        ([_refund("refunded", "5.00")], [], "3.00", 300),  # fits in what remains
        ([_refund("refunded", "5.00")], [_chargeback("chb_a", "3.00")], "6.99", 199),
        ([], [_chargeback("chb_a", "3.00", reversed_at="2026-01-01T00:00:00Z")], "9.99", 999),
    ],
)
def test_a_chargeback_takes_what_refunds_and_earlier_chargebacks_left(
    refunds: list[RefundAmountSeen], earlier: list[ChargebackInput], amount: str, expected: int
) -> None:
    this = _chargeback("chb_this", amount)
    later = _chargeback("chb_later", "1.00")  # created after it: takes nothing from it
    share = chargeback_share(
        this,
        paid=Money.from_decimal("9.99", "EUR"),
        refunds=refunds,
        chargebacks=[*earlier, this, later],
    )
    assert share.to_record == Money(minor=expected, currency="EUR")


def test_a_followup_names_the_type_and_message_of_a_child_that_failed_on_an_activity() -> None:
    reason = ApplicationError("Cleeng did not accept: the record", type="CleengRecordNotAccepted")
    activity_failed = ActivityError(
        "Activity task failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="record_refund",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    activity_failed.__cause__ = reason
    child_failed = ChildWorkflowError(
        "Child Workflow execution failed",
        namespace="default",
        workflow_id="chargeback:chb_x",
        run_id="run",
        workflow_type="Chargeback",
        initiated_event_id=7,
        started_event_id=8,
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    child_failed.__cause__ = activity_failed
    assert failure_type(child_failed) == "CleengRecordNotAccepted"
    assert failure_message(child_failed) == "Cleeng did not accept: the record"
    # An activity's own failure reads as before.
    assert failure_type(activity_failed) == "CleengRecordNotAccepted"


async def test_the_chaos_driver_answers_a_held_refund_record_as_an_operator_would(
    connector: Connector, clean_faults: None
) -> None:
    """benchmarks/chaos.py settles a run by answering records held for a person: it reads the
    held question, looks at Cleeng's ledger and signals `resolve_record`. One reply lost after
    Cleeng applied the refund: the driver finds it recorded, and the refund completes once."""
    payment = await paid_purchase(connector, price=9.00)
    cleeng = connector.emulators.cleeng_url
    handle, held = await refund_with_lost_reply(
        connector, payment, 1.00, "held for the chaos driver", refunds_at_mollie=1,
        after_commit=True,
    )  # fmt: skip
    assert held.status == "record_unknown"

    # Only the Cleeng emulator is reached: the driver reads its ledger.
    cleeng_port = int(cleeng.rsplit(":", 1)[1])
    ports = chaos.Ports(
        **dict.fromkeys(chaos.Ports.__dataclass_fields__, 0) | {"cleeng": cleeng_port}
    )
    async with httpx.AsyncClient(timeout=30) as http:
        run = chaos.Run(
            ports=ports,
            data_dir=Path("unused"),
            kills=False,
            kill_plan={},
            rng=random.Random(0),
            deadline=0.0,
            http=http,
        )
        # The dev server is shared with other tests: only this test's refund is looked at.
        await chaos.answer_held_records(run, connector.client, among=f'WorkflowId="{handle.id}"')

    assert run.held_records_answered == {"true": 1, "false": 0}
    async with asyncio.timeout(30):
        assert (await handle.result()).status == "refunded"
    [recorded] = await cleeng_payments(cleeng, str(payment["orderId"]))
    assert recorded["refundedAmount"] == 1.00
