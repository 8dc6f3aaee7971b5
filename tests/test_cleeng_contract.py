"""Every request the Cleeng client can send is in docs/cleeng-contract.md, with its page.

The client is driven method by method against a transport that records the wire; each
(method, path) must appear in the contract table. A new client method fails this test until it
is called here and listed in the table.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.cleeng import CleengClient
from clients.errors import ServiceError
from domain.money import Money

CONTRACT = Path(__file__).resolve().parent.parent / "docs" / "cleeng-contract.md"

# Sample arguments for every public call of the client.
CALLS: dict[str, dict[str, Any]] = {
    "get_order": {"order_id": "11"},
    "order_expired": {"order_id": "11"},
    "create_renewal_order": {
        "customer_id": "12",
        "offer_id": "S1_US",
        "subscription_id": "13",
        "currency": "EUR",
        "country": "NL",
        "payment_method_id": "14",
    },
    "create_payment": {
        "order_id": "11",
        "status": "captured",
        "payment_operation": "initial-payment",
        "external_payment_id": "tr_1",
        "payment_details_id": "15",
    },
    "update_payment": {"payment_id": "16", "status": "captured"},
    "record_refund": {
        "payment_id": "16",
        "order_id": "11",
        "payment_operation": "initial-payment",
        "refunded_reason": "asked",
        "amount": Money(minor=100, currency="EUR"),
        "refund_type": "refund",
    },
    "cancel_payment": {"payment_id": "16"},
    "get_subscription": {"subscription_id": "13"},
    "terminate_subscription": {"subscription_id": "13", "reason": "paymentCancel"},
    "terminate_subscription_by_patch": {"subscription_id": "13"},
    "webhook_subscriptions": {},
    "replace_webhook_subscriptions": {"topic": "refundPayment", "endpoints": []},
    "create_payment_details": {
        "customer_id": "12",
        "token": "t",
        "payment_method_id": "14",
        "card_params": {},
    },
    "authorised_payments": {"payment_details_id": "15"},
    "delete_payment_details": {"payment_details_id": "15"},
}


def documented_calls() -> set[tuple[str, str]]:
    """(METHOD, /3.1/path with {id}) from the calls table of the contract document."""
    text = CONTRACT.read_text()
    table = text.split("## Calls", 1)[1].split("\n## ", 1)[0]
    found: set[tuple[str, str]] = set()
    for method, path in re.findall(r"`(GET|POST|PATCH|PUT|DELETE) (/3\.1/[^`]*)`", table):
        found.add((method, re.sub(r"\{[^}]+\}", "{id}", path)))
    return found


def template(path: str) -> str:
    parts = path.split("/")
    return "/".join("{id}" if part.isdigit() or part == "refundPayment" else part for part in parts)


async def test_every_path_the_cleeng_client_can_call_is_in_the_contract_table() -> None:
    seen: list[tuple[str, str]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, template(request.url.path)))
        return httpx.Response(200, json={})

    client = CleengClient("http://cleeng.test/3.1", "token", transport=httpx.MockTransport(record))
    public = {
        name
        for name, member in inspect.getmembers(CleengClient, inspect.iscoroutinefunction)
        if not name.startswith("_") and name != "aclose"
    }
    assert public == set(CALLS), f"call each client method here, list it: {public ^ set(CALLS)}"
    for name, arguments in CALLS.items():
        # An empty answer may not parse; the request went out, which is what counts here.
        with contextlib.suppress(ServiceError):
            await getattr(client, name)(**arguments)
    await client.aclose()

    documented = documented_calls()
    missing = sorted(set(seen) - documented)
    assert not missing, f"calls missing from docs/cleeng-contract.md: {missing}"
    assert len(seen) >= len(CALLS)


@pytest.mark.parametrize(
    "undocumented",
    [
        ("GET", "/3.1/customers/{id}/payment_details"),
        ("GET", "/3.1/payments"),
        ("GET", "/3.1/payment_details/{id}"),
    ],
)
def test_undocumented_endpoints_stay_out_of_the_calls_table(undocumented: tuple[str, str]) -> None:
    assert undocumented not in documented_calls()
