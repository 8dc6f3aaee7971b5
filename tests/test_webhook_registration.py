"""Registering the connector in Cleeng keeps every other connector's endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.cleeng_webhooks import HANDLED_TOPICS
from clients.cleeng import CleengClient
from clients.errors import FailureKind, ServiceError
from emulators.cleeng.app import create_app as create_cleeng_app
from emulators.cleeng.config import CleengEmulatorConfig
from settings import EMULATOR_PUBLISHER_TOKEN
from tests.support.servers import serve_in_thread
from tests.support.shop import set_faults
from webhook_registration import register

SECRET = "a-shared-secret-of-32-bytes-long"
OURS = "https://connector.example/webhooks/cleeng"
OTHER = {
    "url": "https://other-gateway.example/hooks",
    "filters": [{"name": "paymentMethodId", "options": {"value": 42}}],
}


@pytest.fixture
async def cleeng_url() -> AsyncIterator[str]:
    # A Cleeng of its own: registration changes its webhook list for every test using it.
    app = create_cleeng_app(CleengEmulatorConfig(publisher_token=EMULATOR_PUBLISHER_TOKEN))
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
async def cleeng(cleeng_url: str) -> AsyncIterator[CleengClient]:
    client = CleengClient(f"{cleeng_url}/3.1", EMULATOR_PUBLISHER_TOKEN)
    yield client
    await client.aclose()


async def test_registration_merges_with_other_connectors_endpoints(cleeng: CleengClient) -> None:
    topic = HANDLED_TOPICS[0]
    await cleeng.replace_webhook_subscriptions(topic, [OTHER])

    changed = await register(cleeng, OURS, SECRET, 555000001)

    assert set(changed) == set(HANDLED_TOPICS)
    subscriptions = await cleeng.webhook_subscriptions()
    endpoints: list[dict[str, Any]] = subscriptions[topic]
    assert [e["url"] for e in endpoints] == [OTHER["url"], OURS]
    ours = endpoints[1]
    assert ours["verification"]["options"]["sharedSecret"] == SECRET
    assert ours["filters"] == [{"name": "paymentMethodId", "options": {"value": 555000001}}]
    for other_topic in HANDLED_TOPICS[1:]:
        assert [e["url"] for e in subscriptions[other_topic]] == [OURS]


async def test_registering_again_changes_nothing_and_updates_our_own_entry(
    cleeng: CleengClient,
) -> None:
    await register(cleeng, OURS, SECRET, 555000001)
    assert await register(cleeng, OURS, SECRET, 555000001) == []

    rotated = "another-secret-of-at-least-16b"
    assert set(await register(cleeng, OURS, rotated, 555000001)) == set(HANDLED_TOPICS)
    endpoints = (await cleeng.webhook_subscriptions())[HANDLED_TOPICS[0]]
    assert len(endpoints) == 1
    assert endpoints[0]["verification"]["options"]["sharedSecret"] == rotated


async def test_secret_of_the_wrong_length_is_refused(cleeng: CleengClient) -> None:
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        await register(cleeng, OURS, "short", 555000001)
    assert all(not v for v in (await cleeng.webhook_subscriptions()).values())


async def test_an_unreadable_list_is_never_overwritten(
    cleeng: CleengClient, cleeng_url: str
) -> None:
    """Cleeng (here the emulator's own HTTP, answering an injected fault with 200 and an
    error-shaped body) returns something that is not the list of subscriptions: registration
    must fail naming the call and PUT nothing, so the other connector keeps its endpoint."""
    topic = HANDLED_TOPICS[0]
    await cleeng.replace_webhook_subscriptions(topic, [OTHER])
    await set_faults(
        cleeng_url,
        {
            "failNext": [
                {"method": "GET", "pathPrefix": "/3.1/webhook_subscriptions", "status": 200}
            ]
        },
    )

    with pytest.raises(ServiceError, match="GET /webhook_subscriptions") as unread:
        await register(cleeng, OURS, SECRET, 555000001)

    assert unread.value.kind is FailureKind.RETRYABLE
    subscriptions = await cleeng.webhook_subscriptions()
    assert subscriptions[topic] == [OTHER]
    assert all(not subscriptions[t] for t in HANDLED_TOPICS[1:])


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"", id="empty body"),
        pytest.param(b'{"items": null}', id="wrapper without a list"),
        pytest.param(b'{"refundPayment": [{"filters": []}]}', id="endpoint without url"),
        pytest.param(b'[{"endpoints": []}]', id="list item without topic"),
    ],
)
async def test_shapes_the_emulator_never_answers_are_not_read_as_empty(answer: bytes) -> None:
    """Handler-level: these 200 answers are shapes the Cleeng emulator can never produce (it
    always answers `{topic: [endpoint, ...]}` with a url in each endpoint), so an
    httpx.MockTransport stands in. None of them may read as "no endpoints", and no PUT
    follows."""
    sent: list[httpx.Request] = []

    def cleeng_answers(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=answer, headers={"Content-Type": "application/json"})

    client = CleengClient(
        "http://cleeng.test/3.1", "token", transport=httpx.MockTransport(cleeng_answers)
    )
    try:
        with pytest.raises(ServiceError, match="GET /webhook_subscriptions"):
            await register(client, OURS, SECRET, 555000001)
    finally:
        await client.aclose()
    assert [(r.method, r.url.path) for r in sent] == [("GET", "/3.1/webhook_subscriptions")]


async def test_registration_subscribes_every_topic_cleeng_lists_as_required(
    cleeng: CleengClient,
) -> None:
    """payments-pre-configuration: "The following webhooks are required" names these six;
    capturePayment is acknowledged without action (see docs/cleeng-contract.md)."""
    required = {
        "subscriptionReadyForPaymentAuthorisation",
        "subscriptionReadyForPaymentCapture",
        "subscriptionReadyForTermination",
        "refundPayment",
        "capturePayment",
        "paymentDetailsDeactivated",
    }
    await register(cleeng, OURS, SECRET, 555000001)
    subscriptions = await cleeng.webhook_subscriptions()
    assert {t for t, endpoints in subscriptions.items() if endpoints} == required
