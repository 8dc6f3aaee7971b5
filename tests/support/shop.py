"""Test helpers that act like the people around the connector: the publisher seeding orders,
the shopper on Mollie's checkout page, the operator reading both ledgers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from settings import Settings

if TYPE_CHECKING:
    from tests.conftest import Connector

# The publisher site tests send shoppers back to: the connector under test allows this origin
# (FRONTEND_REDIRECT_ORIGINS, see tests/conftest.py).
TEST_SHOP_ORIGIN = "https://shop.example"


def frontend_headers(settings: Settings, customer_id: str | int) -> dict[str, str]:
    """What the publisher's backend sends the front-end API: its key, and the customer it
    acts for."""
    return {
        "Authorization": f"Bearer {settings.effective_frontend_api_keys[0]}",
        "X-Cleeng-Customer-Id": str(customer_id),
    }


async def seed_order(cleeng_url: str, **overrides: Any) -> dict[str, Any]:
    """A fresh Cleeng order for a fresh customer (overrides: price, currency, email...)."""
    body = {"email": f"shopper-{uuid.uuid4().hex[:12]}@example.com", **overrides}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{cleeng_url}/_emulator/seed/purchase", json=body)
        response.raise_for_status()
        seeded: dict[str, Any] = response.json()
        return seeded


async def choose_on_checkout(checkout_url: str, outcome: str) -> httpx.Response:
    """Press a button on the Mollie checkout page, as a shopper would (no JavaScript)."""
    async with httpx.AsyncClient() as http:
        page = await http.get(checkout_url)
        page.raise_for_status()
        assert f'value="{outcome}"' in page.text, f"checkout page offers no {outcome!r} button"
        return await http.post(checkout_url, data={"status": outcome}, follow_redirects=False)


async def cleeng_payments(cleeng_url: str, order_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{cleeng_url}/_emulator/payments", params={"orderId": order_id})
        response.raise_for_status()
        body = response.json()
        items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
        return items


async def mollie_payments_for_order(mollie_url: str, order_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{mollie_url}/_emulator/ledger")
        response.raise_for_status()
        body = response.json()
        payments = body["payments"] if isinstance(body, dict) else body
        return [p for p in payments if (p.get("metadata") or {}).get("orderId") == order_id]


async def set_faults(base_url: str, faults: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}/_emulator/faults", json=faults)
        response.raise_for_status()


async def lose_the_next_reply(base_url: str, method: str, path_prefix: str) -> None:
    """The emulator carries out the next such request, then the reply never arrives: the
    client times out not knowing whether it happened."""
    fault = {
        "method": method,
        "pathPrefix": path_prefix,
        "status": "timeout",
        "afterCommit": True,
        "count": 1,
    }
    await set_faults(base_url, {"failNext": [fault]})


async def advance_clock(base_url: str, seconds: float) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}/_emulator/clock/advance", json={"seconds": seconds})
        response.raise_for_status()


async def start_purchase(connector: Connector, seeded: Mapping[str, Any]) -> str:
    """`POST /purchases` for a seeded order, as the publisher's backend sends it (its key, the
    customer it acts for); the checkout URL the shopper is sent to."""
    async with httpx.AsyncClient(timeout=60) as http:
        started = await http.post(
            f"{connector.api_url}/purchases",
            json={"orderId": str(seeded["orderId"]), "redirectUrl": f"{TEST_SHOP_ORIGIN}/thanks"},
            headers=frontend_headers(connector.settings, seeded["customerId"]),
        )
    assert started.status_code == 201, started.text
    checkout_url: str = started.json()["checkoutUrl"]
    return checkout_url


async def paid_purchase(connector: Connector, price: float = 20.00) -> dict[str, Any]:
    """A captured initial payment: its Cleeng record (id, orderId, externalPaymentId...)."""
    seeded = await seed_order(connector.emulators.cleeng_url, price=price, currency="EUR")
    order_id = str(seeded["orderId"])
    checkout_url = await start_purchase(connector, seeded)
    await choose_on_checkout(checkout_url, "paid")
    await connector.client.get_workflow_handle(f"purchase:{order_id}").result()
    [payment] = await cleeng_payments(connector.emulators.cleeng_url, order_id)
    return payment
