"""`MollieGateway` look-ups against the Mollie emulator served as a real HTTP server.

Mollie answers lists at most 250 items a page, newest first. The look-ups that stop a second
customer or a second charge from being created must read every page, or an old customer (or
an old payment) falls off the first page and is created again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clients.mollie import OPERATION_METADATA_KEY, MollieGateway
from tests.emulators.test_mollie_support import API_KEY, RunningEmulator, running_emulator

AUTH = {"Authorization": f"Bearer {API_KEY}"}
REDIRECT = "https://shop.example/return"
PAGE = 250


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    # An emulator of its own: the shared one would carry hundreds of extra customers into
    # every other test's look-ups.
    with running_emulator(deliver_webhooks=False) as running:
        yield running


@pytest.fixture
def emulator(server: RunningEmulator) -> RunningEmulator:
    server.control("POST", "/reset")
    return server


@pytest.fixture
def gateway(emulator: RunningEmulator) -> MollieGateway:
    return MollieGateway(emulator.base_url, API_KEY, timeout_seconds=5)


def post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(f"/v2{path}", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def create_customer(http: httpx.Client, cleeng_customer_id: str) -> str:
    body = {
        "name": f"Customer {cleeng_customer_id}",
        "metadata": {"cleengCustomerId": cleeng_customer_id},
    }
    return str(post(http, "/customers", body)["id"])


async def test_find_customer_reads_past_the_first_page(
    emulator: RunningEmulator, gateway: MollieGateway
) -> None:
    returning = create_customer(emulator.http, "returning-1")
    newer = [create_customer(emulator.http, f"newer-{n}") for n in range(PAGE + 1)]

    # Newest first: the returning customer is on the second page of 250.
    first_page = emulator.http.get("/v2/customers", params={"limit": PAGE}, headers=AUTH).json()
    assert returning not in [c["id"] for c in first_page["_embedded"]["customers"]]
    assert first_page["_links"]["next"] is not None

    assert await gateway.find_customer("returning-1") == returning
    assert await gateway.find_customer(f"newer-{PAGE}") == newer[-1]
    assert await gateway.find_customer("nobody") is None


async def test_find_customer_payment_reads_every_page(
    emulator: RunningEmulator, gateway: MollieGateway
) -> None:
    customer = create_customer(emulator.http, "many-payments")
    charge = {"amount": {"currency": "EUR", "value": "1.00"}, "redirectUrl": REDIRECT}
    target = post(
        emulator.http,
        f"/customers/{customer}/payments",
        charge | {"description": "Target", "metadata": {OPERATION_METADATA_KEY: "op-target"}},
    )["id"]
    # Four full pages of newer payments put the target on the fifth page.
    for n in range(4 * PAGE):
        post(emulator.http, f"/customers/{customer}/payments", charge | {"description": f"#{n}"})

    found = await gateway.find_customer_payment(customer, "op-target")
    assert found is not None
    assert found.id == target
    assert found.metadata[OPERATION_METADATA_KEY] == "op-target"
    assert await gateway.find_customer_payment(customer, "op-unknown") is None
    # A caller may still bound the scan explicitly.
    assert await gateway.find_customer_payment(customer, "op-target", max_pages=4) is None


async def paid_first_payment(emulator: RunningEmulator, gateway: MollieGateway) -> tuple[str, str]:
    """A customer with a valid card mandate from a paid `first` payment."""
    customer = create_customer(emulator.http, "mandate-holder")
    first = await gateway.create_payment(
        {
            "amount": {"currency": "EUR", "value": "10.00"},
            "description": "First",
            "redirectUrl": REDIRECT,
            "sequenceType": "first",
            "customerId": customer,
        },
        "first:1",
    )
    assert first.checkout_url is not None
    emulator.checkout(first.checkout_url, "paid")
    mandate_id = (await gateway.get_payment(first.id)).mandate_id
    assert mandate_id is not None
    return customer, mandate_id


async def test_a_mandate_mollie_answers_gone_for_is_invalid(
    emulator: RunningEmulator, gateway: MollieGateway
) -> None:
    customer, mandate_id = await paid_first_payment(emulator, gateway)
    assert (await gateway.get_mandate(customer, mandate_id)).status == "valid"
    # The reference: "Trying to retrieve a revoked mandate will result in a 410".
    emulator.set_faults(
        failNext=[
            {"method": "GET", "pathPrefix": f"/v2/customers/{customer}/mandates/", "status": 410}
        ]
    )
    gone = await gateway.get_mandate(customer, mandate_id)
    assert (gone.id, gone.status) == (mandate_id, "invalid")


async def test_revoking_twice_counts_as_revoked(
    emulator: RunningEmulator, gateway: MollieGateway
) -> None:
    customer, mandate_id = await paid_first_payment(emulator, gateway)
    await gateway.revoke_mandate(customer, mandate_id)
    emulator.advance(3601)  # Mollie forgot the idempotency key: the retry is a new request
    await gateway.revoke_mandate(customer, mandate_id)
    assert (await gateway.get_mandate(customer, mandate_id)).status == "invalid"
