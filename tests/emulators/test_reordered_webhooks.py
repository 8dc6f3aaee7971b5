"""The reordered-webhooks fault of both emulators: the order flips, nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mollie.api.client import Client

from emulators.cleeng.config import CleengEmulatorConfig
from emulators.cleeng.receiver import WebhookReceiver as CleengReceiver
from tests.emulators.cleeng_support import (
    CleengServer,
    initial_payment_body,
    publisher_client,
    reset,
    running_cleeng,
)
from tests.emulators.test_mollie_support import (
    RunningEmulator,
    WebhookReceiver,
    eur,
    running_emulator,
    wait_until,
)
from tests.support.servers import serve_in_thread

TOKEN = "reorder-test-token"
REFUND_TOPIC = "refundPayment"


# ------------------------------------------------------------------------------ Mollie


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture
def client(server: RunningEmulator) -> Client:
    return server.client()


def paid_oneoff(emulator: RunningEmulator, client: Client, webhook_url: str) -> str:
    payment = client.payments.create(
        {
            "amount": eur("10.00"),
            "description": "reorder",
            "redirectUrl": "https://shop.example/return",
            "webhookUrl": webhook_url,
        }
    )
    emulator.checkout(payment.checkout_url, "paid")
    return str(payment.id)


def test_mollie_reorders_pairs_at_rate_one_and_loses_nothing(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    emulator.set_faults(reorderWebhookRate=1.0, seed=7)
    first = paid_oneoff(emulator, client, receiver.url)
    # The first webhook is held until the next one to the same receiver has gone out.
    wait_until(lambda: emulator.deliveries(first)[0]["attempts"] != [], what="first attempt")
    assert receiver.received() == []
    second = paid_oneoff(emulator, client, receiver.url)

    assert receiver.wait_for(2) == [second, first]
    # The receiver may answer before the emulator has written the attempt down.
    wait_until(
        lambda: all(emulator.deliveries(p)[0]["state"] == "delivered" for p in (first, second)),
        what="both delivered",
    )
    held = emulator.deliveries(first)[0]["attempts"][0]
    assert held["heldBack"] is True
    assert held["statusCode"] == 200
    assert emulator.deliveries(second)[0]["attempts"][0]["heldBack"] is False


def test_mollie_sends_a_held_webhook_alone_after_the_bound(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    emulator.set_faults(reorderWebhookRate=1.0)
    only = paid_oneoff(emulator, client, receiver.url)
    assert receiver.wait_for(1, timeout=10) == [only]
    wait_until(lambda: emulator.deliveries(only)[0]["attempts"] != [], what="attempt recorded")
    assert emulator.deliveries(only)[0]["attempts"][0]["heldBack"] is True


def test_mollie_reordering_is_off_by_default(
    emulator: RunningEmulator, client: Client, receiver: WebhookReceiver
) -> None:
    assert emulator.control("GET", "/faults")["reorderWebhookRate"] == 0
    first = paid_oneoff(emulator, client, receiver.url)
    assert receiver.wait_for(1) == [first]
    second = paid_oneoff(emulator, client, receiver.url)
    assert receiver.wait_for(2) == [first, second]


# ------------------------------------------------------------------------------ Cleeng


@pytest.fixture(scope="module")
def cleeng() -> Iterator[CleengServer]:
    config = CleengEmulatorConfig(publisher_token=TOKEN, id_seed=5, webhook_timeout_seconds=3)
    with running_cleeng(config) as running:
        yield running


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[CleengReceiver, str]]:
    receiver = CleengReceiver()
    with serve_in_thread(receiver.app) as url:
        yield receiver, f"{url}/hook"


@pytest.fixture
def cleeng_ops(
    cleeng: CleengServer, hooks: tuple[CleengReceiver, str]
) -> Iterator[tuple[httpx.Client, CleengReceiver]]:
    receiver, hook_url = hooks
    with (
        httpx.Client(base_url=cleeng.url, timeout=15) as ops,
        publisher_client(cleeng) as api,
    ):
        reset(ops)
        receiver.reset()
        subscribed = api.put(f"/3.1/webhook_subscriptions/{REFUND_TOPIC}", json=[{"url": hook_url}])
        assert subscribed.is_success, subscribed.text
        seeded = ops.post("/_emulator/seed/purchase", json={}).json()
        paid = api.post("/3.1/payments", json=initial_payment_body(seeded))
        assert paid.status_code == 200, paid.text
        yield ops, receiver
        reset(ops)


def refund(ops: httpx.Client, reason: str) -> dict[str, Any]:
    payment_id = ops.get("/_emulator/payments").json()["items"][0]["id"]
    response = ops.post(
        f"/_emulator/payments/{payment_id}/refund", json={"amount": 1, "reason": reason}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_cleeng_reorders_pairs_at_rate_one_and_loses_nothing(
    cleeng_ops: tuple[httpx.Client, CleengReceiver],
) -> None:
    ops, receiver = cleeng_ops
    ops.post("/_emulator/faults", json={"reorderWebhookRate": 1.0, "seed": 11})
    held = refund(ops, "first")
    # Publishing did not wait for the held webhook, and it has not gone out yet.
    assert [d["heldBack"] for d in held["deliveries"]] == [True]
    assert held["deliveries"][0]["attempts"] == []
    assert receiver.received == []
    sent = refund(ops, "second")
    assert [d["heldBack"] for d in sent["deliveries"]] == [False]

    assert receiver.wait_for(lambda got: len(got) == 2, timeout=10)
    assert [h.data["reason"] for h in receiver.received] == ["second", "first"]

    def statuses() -> list[str]:
        log = ops.get("/_emulator/webhooks", params={"topic": REFUND_TOPIC}).json()["items"]
        return [d["status"] for d in log]

    # The receiver may answer before the emulator has written the delivery down.
    wait_until(lambda: statuses() == ["delivered", "delivered"], what="both delivered")


def test_cleeng_sends_a_held_webhook_alone_after_the_bound(
    cleeng_ops: tuple[httpx.Client, CleengReceiver],
) -> None:
    ops, receiver = cleeng_ops
    ops.post("/_emulator/faults", json={"reorderWebhookRate": 1.0})
    refund(ops, "alone")
    assert receiver.wait_for(lambda got: len(got) == 1, timeout=10)
    assert receiver.received[0].data["reason"] == "alone"
    assert ops.get("/_emulator/faults").json()["reorderWebhookRate"] == 1.0


def test_cleeng_reordering_is_off_by_default(
    cleeng_ops: tuple[httpx.Client, CleengReceiver],
) -> None:
    ops, receiver = cleeng_ops
    assert ops.get("/_emulator/faults").json()["reorderWebhookRate"] == 0
    refund(ops, "first")
    refund(ops, "second")
    assert receiver.wait_for(lambda got: len(got) == 2, timeout=10)
    assert [h.data["reason"] for h in receiver.received] == ["first", "second"]
