"""Registering the connector in Cleeng keeps every other connector's endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from api.cleeng_webhooks import HANDLED_TOPICS
from clients.cleeng import CleengClient
from emulators.cleeng.app import create_app as create_cleeng_app
from emulators.cleeng.config import CleengEmulatorConfig
from settings import EMULATOR_PUBLISHER_TOKEN
from tests.support.servers import serve_in_thread
from webhook_registration import register

SECRET = "a-shared-secret-of-32-bytes-long"
OURS = "https://connector.example/webhooks/cleeng"
OTHER = {
    "url": "https://other-gateway.example/hooks",
    "filters": [{"name": "paymentMethodId", "options": {"value": 42}}],
}


@pytest.fixture
async def cleeng() -> AsyncIterator[CleengClient]:
    # A Cleeng of its own: registration changes its webhook list for every test using it.
    app = create_cleeng_app(CleengEmulatorConfig(publisher_token=EMULATOR_PUBLISHER_TOKEN))
    with serve_in_thread(app) as url:
        client = CleengClient(f"{url}/3.1", EMULATOR_PUBLISHER_TOKEN)
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
