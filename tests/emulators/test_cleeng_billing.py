"""The Cleeng emulator's billing engine and webhooks, observed by a real webhook receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from emulators.cleeng.clock import utc_iso
from emulators.cleeng.config import DEFAULT_OFFER_ID, CleengEmulatorConfig
from emulators.cleeng.receiver import ReceivedWebhook, WebhookReceiver
from tests.emulators.cleeng_support import (
    MOLLIE,
    CleengServer,
    initial_payment_body,
    publisher_client,
    reset,
    running_cleeng,
)
from tests.support.servers import serve_in_thread

TOKEN = "billing-test-token"
SECRET = "a-shared-secret-of-32-bytes-long"
AUTH = "subscriptionReadyForPaymentAuthorisation"
CAPTURE = "subscriptionReadyForPaymentCapture"
TERMINATE = "subscriptionReadyForTermination"
CONFIG = CleengEmulatorConfig(
    publisher_token=TOKEN,
    publisher_id=123456789,
    id_seed=3,
    billing_tick_seconds=0.05,
    webhook_real_backoff_seconds=(0.05, 0.1),
    webhook_timeout_seconds=3,
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    hooks = WebhookReceiver(secret=SECRET)
    with serve_in_thread(hooks.app) as url:
        yield hooks, f"{url}/hook"


@pytest.fixture(scope="module")
def cleeng() -> Iterator[CleengServer]:
    with running_cleeng(CONFIG) as server:
        yield server


@dataclass
class Env:
    ops: httpx.Client
    api: httpx.Client
    hooks: WebhookReceiver
    hook_url: str

    def subscribe(self, *topics: str, **endpoint: Any) -> None:
        for topic in topics:
            body = [
                {
                    "url": self.hook_url,
                    "verification": {
                        "name": "HMAC",
                        "options": {"hashAlg": "SHA256", "sharedSecret": SECRET},
                    },
                    **endpoint,
                }
            ]
            assert self.api.put(f"/3.1/webhook_subscriptions/{topic}", json=body).is_success

    def now(self) -> datetime:
        return datetime.fromisoformat(self.ops.get("/_emulator/clock").json()["now"])

    def advance(self, **body: Any) -> dict[str, Any]:
        response = self.ops.post("/_emulator/clock/advance", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def customer_with_details(
        self, payment_method_id: int = MOLLIE, email: str = "demo@example.com"
    ) -> tuple[int, int]:
        customer = self.ops.post("/_emulator/customers", json={"email": email}).json()["id"]
        details = self.api.post(
            "/3.1/payment_details",
            json={
                "customerId": customer,
                "token": "cst_1:mdt_1",
                "paymentMethodId": payment_method_id,
            },
        ).json()["data"]["id"]
        return customer, details

    def subscription(
        self, due_in: timedelta, payment_method_id: int = MOLLIE, email: str = "demo@example.com"
    ) -> dict[str, Any]:
        customer, details = self.customer_with_details(payment_method_id, email)
        response = self.ops.post(
            "/_emulator/subscriptions",
            json={
                "customerId": customer,
                "offerId": DEFAULT_OFFER_ID,
                "paymentDetailsId": details,
                "dateTo": (self.now() + due_in).isoformat(),
            },
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def get_subscription(self, subscription_id: int) -> dict[str, Any]:
        response = self.api.get(f"/3.1/subscriptions/{subscription_id}")
        body: dict[str, Any] = response.json()["subscription"]
        return body

    def renewal_payment(self, subscription: dict[str, Any], status: str) -> dict[str, Any]:
        """What a connector does for a renewal: a recurring order, then its payment."""
        created = self.api.post(
            "/3.1/orders",
            json={
                "customerId": subscription["customerId"],
                "offerId": subscription["offerId"],
                "currency": "EUR",
                "country": "NL",
                "paymentMethodId": MOLLIE,
                "paymentOperation": "recurring-payment",
                "subscriptionId": str(subscription["subscriptionId"]),
            },
        )
        assert created.status_code == 200, created.text
        order = created.json()["order"]
        payment = self.api.post(
            "/3.1/payments",
            json={
                "orderId": str(order["id"]),
                "status": status,
                "paymentOperation": "recurring-payment",
                "subscriptionId": str(subscription["subscriptionId"]),
                "paymentDetailsId": str(subscription["paymentDetailsId"]),
                "externalPaymentId": f"tr_{order['id']}",
            },
        )
        assert payment.status_code == 200, payment.text
        body: dict[str, Any] = payment.json()["payment"]
        return body

    def purchase(self, status: str = "captured", **extra: Any) -> dict[str, Any]:
        """A seeded order paid the way a connector records an initial payment."""
        seeded = self.ops.post("/_emulator/seed/purchase", json={}).json()
        response = self.api.post(
            "/3.1/payments", json=initial_payment_body(seeded, status, **extra)
        )
        assert response.status_code == 200, response.text
        payment: dict[str, Any] = response.json()["payment"]
        return payment


@pytest.fixture
def env(cleeng: CleengServer, receiver: tuple[WebhookReceiver, str]) -> Iterator[Env]:
    hooks, hook_url = receiver
    with (
        httpx.Client(base_url=cleeng.url, timeout=15) as ops,
        publisher_client(cleeng, timeout=15) as api,
    ):
        reset(ops)
        hooks.reset()
        yield Env(ops, api, hooks, hook_url)
        reset(ops)


def topics(hooks: list[ReceivedWebhook]) -> list[str]:
    return [h.topic for h in hooks]


def test_authorise_first_renewal_cycle(env: Env) -> None:
    env.subscribe(AUTH, CAPTURE, TERMINATE)
    subscription = env.subscription(due_in=timedelta(hours=100))
    due = datetime.fromtimestamp(subscription["dateTo"]).astimezone()
    assert subscription["nextPaymentAction"] == "authorise"
    assert subscription["nextPaymentActionDate"] == subscription["dateTo"] - 72 * 3600

    # 72 h before the due date: the first authorisation request.
    assert env.advance(seconds=30 * 3600)["webhooksSent"] == 1
    (first,) = env.hooks.received
    assert first.signature_valid
    assert first.payload["broadcasterId"] == 123456789
    assert first.payload["topic"] == AUTH
    data = first.data
    assert data["subscriptionId"] == str(subscription["subscriptionId"])
    assert data["customerId"] == subscription["customerId"]
    assert data["customerEmail"] == "demo@example.com"
    assert data["paymentDetailsId"] == subscription["paymentDetailsId"]
    assert data["dunningStatus"] == "authorize"
    assert data["dunningAttemptDate"] == utc_iso(due - timedelta(hours=72))
    assert data["expirationDate"] == utc_iso(due)
    assert (data["currency"], data["paymentCountry"]) == ("EUR", "NL")
    assert (data["paymentMethodId"], data["paymentGateway"]) == (MOLLIE, "mollie")
    assert data["token"] == "cst_1:mdt_1"
    assert data["active"] is True

    # Not authorised yet: asked again at 48 h.
    env.advance(seconds=24 * 3600)
    assert [h.data["dunningAttemptDate"] for h in env.hooks.received][1:] == [
        utc_iso(due - timedelta(hours=48))
    ]
    authorised = env.renewal_payment(subscription, "authorized")
    assert env.get_subscription(subscription["subscriptionId"])["nextPaymentAction"] == "capture"

    # Authorised: no more authorisation requests, one capture request at the due date.
    env.advance(to=(due - timedelta(minutes=1)).isoformat())
    assert len(env.hooks.received) == 2
    env.advance(seconds=120)
    assert topics(env.hooks.received) == [AUTH, AUTH, CAPTURE]
    assert env.hooks.received[-1].data["dunningStatus"] == "capture"

    listed = env.api.get(
        f"/3.1/payment_details/{subscription['paymentDetailsId']}/authorised_payments"
    ).json()["items"]
    assert [p["id"] for p in listed] == [authorised["id"]]
    env.api.patch(f"/3.1/payments/{authorised['id']}", json={"status": "captured"})

    renewed = env.get_subscription(subscription["subscriptionId"])
    new_due = datetime.fromtimestamp(renewed["dateTo"]).astimezone()
    assert (new_due.year * 12 + new_due.month) - (due.year * 12 + due.month) == 1
    # Captured: no termination after the grace period, the next cycle is scheduled.
    env.advance(seconds=3 * 3600)
    assert topics(env.hooks.received) == [AUTH, AUTH, CAPTURE]
    schedule = env.ops.get("/_emulator/billing/schedule").json()["items"]
    assert schedule[0]["cycleDue"] == utc_iso(new_due)
    assert schedule[0]["at"] == utc_iso(new_due - timedelta(hours=72))


def test_nothing_captured_ends_in_a_termination_request(env: Env) -> None:
    env.subscribe(AUTH, CAPTURE, TERMINATE)
    # Due in one hour: the overdue attempts collapse into one immediate request.
    subscription = env.subscription(due_in=timedelta(hours=1))
    env.advance(seconds=4 * 3600)
    assert topics(env.hooks.received) == [AUTH, AUTH, CAPTURE, TERMINATE]
    assert env.hooks.received[-1].data["dunningStatus"] == "terminate"

    url = f"/3.1/subscriptions/{subscription['subscriptionId']}"
    assert env.api.patch(url, json={"status": "terminated"}).status_code == 200
    env.advance(seconds=60 * 86400)
    assert len(env.hooks.received) == 4
    assert env.ops.get("/_emulator/billing/schedule").json()["items"] == []


def test_capture_only_settings_send_capture_requests_until_captured(env: Env) -> None:
    env.ops.put(
        "/_emulator/dunning-settings",
        json={"billingCycle": "monthly", "authorizedFirst": False, "paymentAttempts": [48, 24, 0]},
    )
    env.subscribe(AUTH, CAPTURE, TERMINATE)
    subscription = env.subscription(due_in=timedelta(hours=60))
    env.advance(seconds=13 * 3600)
    env.advance(seconds=24 * 3600)
    assert topics(env.hooks.received) == [CAPTURE, CAPTURE]
    assert {h.data["dunningStatus"] for h in env.hooks.received} == {"capture"}

    env.renewal_payment(subscription, "captured")
    env.advance(seconds=30 * 3600)
    assert topics(env.hooks.received) == [CAPTURE, CAPTURE]


def test_payment_method_filter_and_non_mollie_subscriptions(env: Env) -> None:
    env.subscribe(AUTH, filters=[{"name": "paymentMethodId", "options": {"value": MOLLIE}}])
    other = {"url": env.hook_url, "filters": [{"name": "paymentMethodId", "options": {"value": 7}}]}
    current = env.api.get("/3.1/webhook_subscriptions").json()[AUTH]
    env.api.put(f"/3.1/webhook_subscriptions/{AUTH}", json=[*current, other])

    env.subscription(due_in=timedelta(hours=80))
    # Not a Mollie subscription: the engine leaves it to another connector.
    env.subscription(due_in=timedelta(hours=80), payment_method_id=7, email="other@example.com")
    env.advance(seconds=10 * 3600)
    assert len(env.hooks.received) == 1
    assert env.hooks.received[0].data["paymentMethodId"] == MOLLIE


def test_a_briefly_failing_receiver_gets_the_webhook_in_real_time(env: Env) -> None:
    env.subscribe("refundPayment")
    env.hooks.statuses.extend([500, 503])
    payment = env.purchase(externalPaymentId="tr_9")

    sent = env.ops.post(f"/_emulator/payments/{payment['id']}/refund", json={"reason": "asked"})
    assert sent.status_code == 200
    assert sent.json()["deliveries"][0]["status"] == "pending"
    assert env.hooks.wait_for(lambda got: len(got) == 3, timeout=10)
    assert [h.answered for h in env.hooks.received] == [500, 503, 200]
    # Redelivery sends the same signed body again.
    assert len({h.signature for h in env.hooks.received}) == 1
    # The receiver answered; the emulator records the answer a moment later.
    deadline = time.monotonic() + 5
    while True:
        log = env.ops.get("/_emulator/webhooks", params={"topic": "refundPayment"}).json()
        if log["items"][0]["status"] == "delivered" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert log["items"][0]["status"] == "delivered"
    assert [a["statusCode"] for a in log["items"][0]["attempts"]] == [500, 503, 200]


def test_redelivery_also_follows_the_emulator_clock(
    receiver: tuple[WebhookReceiver, str],
) -> None:
    hooks, hook_url = receiver
    hooks.reset()
    config = CleengEmulatorConfig(
        publisher_token=TOKEN,
        webhook_real_backoff_seconds=(3600.0,),  # never due in real time during the test
        webhook_clock_backoff_seconds=(600.0,),
    )
    with running_cleeng(config) as server, publisher_client(server) as client:
        env = Env(client, client, hooks, hook_url)
        env.subscribe(AUTH)
        hooks.statuses.append(500)
        env.subscription(due_in=timedelta(hours=73))
        env.advance(seconds=3600 + 5)
        assert [h.answered for h in hooks.received] == [500]
        env.advance(seconds=300)
        assert len(hooks.received) == 1
        env.advance(seconds=301)
        assert [h.answered for h in hooks.received] == [500, 200]


def test_refund_webhook_payload_and_refusals(env: Env) -> None:
    env.subscribe("refundPayment")
    payment = env.purchase(externalPaymentId="tr_5")
    order = payment["orderId"]
    url = f"/_emulator/payments/{payment['id']}/refund"
    too_much = env.ops.post(url, json={"amount": 10})
    assert too_much.status_code == 422
    assert "at most the 9.99 EUR" in too_much.json()["message"]

    result = env.ops.post(url, json={"amount": 2.5, "reason": "late stream"}).json()
    assert result["deliveries"][0]["status"] == "delivered"
    (hook,) = env.hooks.received
    assert hook.signature_valid
    assert hook.payload == result["webhook"]
    assert hook.data == {
        "paymentId": payment["id"],
        "orderId": order,
        "customerId": payment["customerId"],
        "externalPaymentId": "tr_5",
        "amount": 2.5,
        "currency": "EUR",
        "reason": "late stream",
        "paymentMethodId": MOLLIE,
    }
    # The request alone refunds nothing: the connector's PATCH does.
    stored = env.ops.get("/_emulator/payments", params={"orderId": order}).json()["items"][0]
    assert (stored["status"], stored["refundedAmount"]) == ("captured", 0.0)

    authorized = env.purchase("authorized")
    refused = env.ops.post(f"/_emulator/payments/{authorized['id']}/refund", json={})
    assert refused.status_code == 422


def test_new_payment_details_deactivate_the_old_ones_with_a_webhook(env: Env) -> None:
    env.subscribe("paymentDetailsDeactivated")
    customer, old = env.customer_with_details()
    assert env.hooks.received == []
    env.api.post(
        "/3.1/payment_details",
        json={"customerId": customer, "token": "cst_1:mdt_2", "paymentMethodId": MOLLIE},
    )
    assert env.hooks.wait_for(lambda got: len(got) == 1, timeout=5)
    assert env.hooks.received[0].data == {
        "paymentDetailsId": old,
        "customerId": customer,
        "paymentMethodId": MOLLIE,
        "token": "cst_1:mdt_1",
    }


def test_dropped_and_duplicated_webhooks(env: Env) -> None:
    env.subscribe("refundPayment")
    payment = env.purchase()
    url = f"/_emulator/payments/{payment['id']}/refund"

    env.ops.post("/_emulator/faults", json={"dropWebhookRate": 1.0})
    dropped = env.ops.post(url, json={"amount": 1}).json()
    assert [d["status"] for d in dropped["deliveries"]] == ["dropped"]
    assert env.hooks.received == []

    env.ops.post("/_emulator/faults", json={"dropWebhookRate": 0, "duplicateWebhookRate": 1.0})
    duplicated = env.ops.post(url, json={"amount": 1}).json()
    assert [d["duplicate"] for d in duplicated["deliveries"]] == [False, True]
    assert len(env.hooks.received) == 2
    assert env.hooks.received[0].payload == env.hooks.received[1].payload


def test_unsigned_endpoint_gets_no_signature(env: Env) -> None:
    env.api.put("/3.1/webhook_subscriptions/refundPayment", json=[{"url": env.hook_url}])
    payment = env.purchase()
    env.ops.post(f"/_emulator/payments/{payment['id']}/refund", json={})
    (hook,) = env.hooks.received
    assert hook.signature is None


def test_a_month_long_jump_plays_out_like_real_time_with_a_connector(env: Env) -> None:
    """With settleSeconds the engine waits for the receiver's reaction between events."""
    errors: list[str] = []

    def connector(hook: ReceivedWebhook) -> None:
        # A tiny connector: acknowledge first (done), then act through the Core API.
        try:
            data = hook.data
            subscription = env.get_subscription(int(data["subscriptionId"]))
            if hook.topic == AUTH:
                env.renewal_payment(subscription, "authorized")
            elif hook.topic == CAPTURE:
                listed = env.api.get(
                    f"/3.1/payment_details/{data['paymentDetailsId']}/authorised_payments"
                ).json()["items"]
                for payment in listed:
                    captured = env.api.patch(
                        f"/3.1/payments/{payment['id']}", json={"status": "captured"}
                    )
                    assert captured.status_code == 200, captured.text
        except Exception as exc:  # surfaced by the assertion below
            errors.append(repr(exc))

    env.hooks.on_webhook = connector
    env.subscribe(AUTH, CAPTURE, TERMINATE)
    subscription = env.subscription(due_in=timedelta(days=30))

    result = env.advance(seconds=35 * 86400, settleSeconds=5)
    assert errors == []
    assert topics(env.hooks.received) == [AUTH, CAPTURE]
    assert result["webhooksSent"] == 2
    renewed = env.get_subscription(subscription["subscriptionId"])
    assert renewed["status"] == "active"
    assert renewed["dateTo"] > subscription["dateTo"] + 27 * 86400
    ledger = env.ops.get("/_emulator/ledger").json()
    assert [(e["status"], e["amountMinor"]) for e in ledger["items"]] == [("captured", 999)]
