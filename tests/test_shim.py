"""The shim's answers to bad input and outages: 4xx naming the problem, 503 when Temporal is
down, and nothing started in either case."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.service import RPCError

from api.app import create_app
from domain.purchase import purchase_workflow_id
from tests.conftest import Connector, Emulators, connector_settings
from tests.support.servers import free_port
from tests.support.shop import frontend_headers, seed_order

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def shim(connector: Connector) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(connector.settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://shim"
    ) as http:
        yield http


@pytest.fixture
async def shim_without_temporal(emulators: Emulators) -> AsyncIterator[httpx.AsyncClient]:
    dead_port = free_port()  # nothing listens there
    settings = connector_settings(
        emulators, f"127.0.0.1:{dead_port}", "http://127.0.0.1:1", "unused"
    )
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://shim"
    ) as http:
        yield http


async def assert_not_started(connector: Connector, order_id: str) -> None:
    handle = connector.client.get_workflow_handle(purchase_workflow_id(order_id))
    with pytest.raises(RPCError, match="not found"):
        await handle.describe()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"redirectUrl": "https://shop.example/ok"}, "orderId"),
        ({"orderId": "12ab", "redirectUrl": "https://shop.example/ok"}, "orderId"),
        ({"orderId": True, "redirectUrl": "https://shop.example/ok"}, "orderId"),
        ({"orderId": "123"}, "redirectUrl"),
        ({"orderId": "123", "redirectUrl": "javascript:alert(1)"}, "redirectUrl"),
        ({"orderId": "123", "redirectUrl": "https://shop.example/ok", "method": 7}, "method"),
    ],
)
async def test_malformed_purchase_bodies_are_refused_naming_the_field(
    shim: httpx.AsyncClient, connector: Connector, body: dict[str, object], field: str
) -> None:
    response = await shim.post(
        "/purchases", json=body, headers=frontend_headers(connector.settings, 123456789)
    )
    assert response.status_code == 422
    locations = [error["loc"][-1] for error in response.json()["detail"]]
    assert field in locations


async def test_non_json_body_is_refused(shim: httpx.AsyncClient, connector: Connector) -> None:
    response = await shim.post(
        "/purchases",
        content=b"orderId=1",
        headers={"content-type": "text/plain", **frontend_headers(connector.settings, 1)},
    )
    assert response.status_code == 422


async def test_unknown_order_is_refused_and_starts_nothing(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    response = await shim.post(
        "/purchases",
        json={"orderId": "987654321", "redirectUrl": "https://shop.example/ok"},
        headers=frontend_headers(connector.settings, 123456789),
    )
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "orderId"]
    assert "987654321" in problem["msg"]
    await assert_not_started(connector, "987654321")


async def test_integer_order_ids_are_accepted(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    response = await shim.post(
        "/purchases",
        json={"orderId": int(seeded["orderId"]), "redirectUrl": "https://shop.example/ok"},
        headers=frontend_headers(connector.settings, int(seeded["customerId"])),
    )
    assert response.status_code == 201
    assert response.json()["orderId"] == str(seeded["orderId"])


async def test_oversized_body_is_refused(shim: httpx.AsyncClient) -> None:
    response = await shim.post(
        "/purchases",
        content=b"{" + b" " * 100_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


async def test_unknown_purchase_is_404(shim: httpx.AsyncClient, connector: Connector) -> None:
    response = await shim.get(
        "/purchases/123123123", headers=frontend_headers(connector.settings, 123456789)
    )
    assert response.status_code == 404
    assert "no purchase" in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "form"),
    [
        ({"workflow": "purchase:1"}, {"id": "not-a-mollie-id"}),
        ({"workflow": "purchase:1"}, {}),
    ],
)
async def test_malformed_mollie_webhooks_are_refused(
    shim: httpx.AsyncClient, params: dict[str, str], form: dict[str, str]
) -> None:
    response = await shim.post("/webhooks/mollie", params=params, data=form)
    assert response.status_code == 422


async def test_temporal_down_answers_503_so_senders_retry(
    shim_without_temporal: httpx.AsyncClient, emulators: Emulators
) -> None:
    seeded = await seed_order(emulators.cleeng_url)
    purchase = await shim_without_temporal.post(
        "/purchases",
        json={"orderId": str(seeded["orderId"]), "redirectUrl": "https://shop.example/ok"},
        headers=frontend_headers(
            connector_settings(emulators, "127.0.0.1:1", "http://127.0.0.1:1", "unused"),
            seeded["customerId"],
        ),
    )
    assert purchase.status_code == 503
    # Mollie webhooks: see tests/test_webhook_routing.py (only a real payment reaches Temporal).
    health = await shim_without_temporal.get("/health")
    assert health.status_code == 503


async def test_health_and_metrics(shim: httpx.AsyncClient) -> None:
    assert (await shim.get("/health")).status_code == 200
    await shim.post(
        "/webhooks/mollie", params={"workflow": "subscription:1"}, data={"id": "tr_abc"}
    )
    metrics = await shim.get("/metrics")
    assert 'connector_webhooks_total{outcome="ignored",source="mollie"} 1.0' in metrics.text
