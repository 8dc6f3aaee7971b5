"""`GET /purchases/{orderId}/methods` on a running connector: the methods a shop may offer for
a Cleeng order, from Mollie's `sequenceType=first` list and domain/methods.py together.

Orders are seeded in the Cleeng emulator; the shim runs as a real server and asks the Mollie
emulator over HTTP. `POST /purchases` refusing a method that starts no subscription is here too.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from domain.methods import capability, first_payment_amount, zero_first_payment_allowed
from domain.money import Money
from tests.conftest import Connector
from tests.support.shop import TEST_SHOP_ORIGIN, frontend_headers, seed_order, set_faults

THANKS = f"{TEST_SHOP_ORIGIN}/thanks"


@pytest.fixture
async def api(connector: Connector) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=connector.api_url, timeout=15) as http:
        yield http


async def methods_of(
    api: httpx.AsyncClient, connector: Connector, **order: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh order seeded with `order`, and the call's answer (asserting a 200)."""
    seeded = await seed_order(connector.emulators.cleeng_url, **order)
    response = await api.get(
        f"/purchases/{seeded['orderId']}/methods",
        headers=frontend_headers(connector.settings, seeded["customerId"]),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return seeded, body


def ids(body: dict[str, Any]) -> list[str]:
    return [method["id"] for method in body["methods"]]


async def test_a_dutch_order_lists_the_methods_that_renew_at_the_order_amount(
    api: httpx.AsyncClient, connector: Connector
) -> None:
    seeded, body = await methods_of(api, connector, price=9.99, currency="EUR", country="NL")
    assert body["orderId"] == str(seeded["orderId"])
    assert body["amount"] == {"currency": "EUR", "value": "9.99", "minor": 999}
    assert body["billingCountry"] == "NL"
    # Cards, Apple Pay (asked for as a wallet), PayPal, and the Dutch and pan-European bank
    # methods that leave a SEPA mandate; never a one-off method such as bank transfer.
    assert ids(body) == ["creditcard", "applepay", "paypal", "ideal", "trustly"]
    for method in body["methods"]:
        row = capability(method["id"])
        assert row is not None
        assert method["mandateMethod"] == row.mandate_method
        assert method["firstPaymentAmount"] == body["amount"]
        assert method["description"]
    ideal = next(m for m in body["methods"] if m["id"] == "ideal")
    assert ideal["mandateMethod"] == "directdebit"
    assert ideal["description"] == "iDEAL"


async def test_a_belgian_order_gets_the_belgian_bank_methods(
    api: httpx.AsyncClient, connector: Connector
) -> None:
    _, body = await methods_of(api, connector, price=12.00, currency="EUR", country="BE")
    assert {"bancontact", "belfius", "kbc"} <= set(ids(body))
    assert "ideal" not in ids(body)


async def test_sepa_methods_are_not_offered_outside_the_euro(
    api: httpx.AsyncClient, connector: Connector
) -> None:
    _, body = await methods_of(api, connector, price=5.00, currency="GBP", country="NL")
    assert body["amount"]["currency"] == "GBP"
    assert ids(body) == ["creditcard", "applepay", "paypal"]


async def test_a_country_that_is_no_alpha_2_code_is_not_sent_to_mollie(
    api: httpx.AsyncClient, connector: Connector
) -> None:
    # Mollie would refuse the whole list for it: the list comes without the country filter.
    _, body = await methods_of(api, connector, price=9.99, currency="EUR", country="NLD")
    assert body["billingCountry"] is None
    assert {"ideal", "bancontact", "eps"} <= set(ids(body))


async def test_a_free_trial_shows_what_each_method_charges_first(
    api: httpx.AsyncClient, connector: Connector
) -> None:
    # A free offer of its own: the emulator reuses an existing offer for an unnamed price.
    _, body = await methods_of(
        api,
        connector,
        offerId=f"S{random.randrange(10**8, 10**9)}_BE",
        priceMinor=0,
        currency="EUR",
        country="BE",
    )
    assert body["amount"]["minor"] == 0
    charged = {m["id"]: m["firstPaymentAmount"]["value"] for m in body["methods"]}
    # Card and PayPal take a 0.00 first payment; the bank methods pay 0.01, refunded later.
    assert charged["creditcard"] == "0.00"
    assert charged["paypal"] == "0.00"
    assert charged["belfius"] == "0.01"
    assert charged["kbc"] == "0.01"
    # Bancontact starts at EUR 0.02: its free trial pays Mollie's minimum, not 0.01.
    assert charged["bancontact"] == "0.02"
    # Each method's first payment is what the purchase workflow will charge with it.
    free = Money(minor=0, currency="EUR")
    for method, value in charged.items():
        assert value == first_payment_amount(free, method).to_decimal_string(), method
        assert (value == "0.00") == zero_first_payment_allowed(method), method


async def test_someone_elses_order_and_a_missing_one_are_the_same_404(
    api: httpx.AsyncClient, connector: Connector
) -> None:
    mine = await seed_order(connector.emulators.cleeng_url)
    theirs = await seed_order(connector.emulators.cleeng_url)
    as_me = frontend_headers(connector.settings, mine["customerId"])
    someone_elses = await api.get(f"/purchases/{theirs['orderId']}/methods", headers=as_me)
    missing = await api.get("/purchases/2000000001/methods", headers=as_me)
    assert someone_elses.status_code == missing.status_code == 404
    assert someone_elses.json() == missing.json() == {"detail": "no such order for this customer"}
    malformed = await api.get("/purchases/abc/methods", headers=as_me)
    assert malformed.status_code == 422


async def test_without_the_api_key_it_is_401(api: httpx.AsyncClient, connector: Connector) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    response = await api.get(
        f"/purchases/{seeded['orderId']}/methods",
        headers={"X-Cleeng-Customer-Id": str(seeded["customerId"])},
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.usefixtures("clean_faults")
async def test_mollie_unavailable_is_a_503_naming_mollie(
    api: httpx.AsyncClient, connector: Connector
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    await set_faults(
        connector.emulators.mollie_url,
        {"failNext": [{"method": "GET", "pathPrefix": "/v2/methods", "status": 503}]},
    )
    response = await api.get(
        f"/purchases/{seeded['orderId']}/methods",
        headers=frontend_headers(connector.settings, seeded["customerId"]),
    )
    assert response.status_code == 503
    assert "Mollie" in response.json()["detail"]
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.usefixtures("clean_faults")
async def test_cleeng_unavailable_is_a_503_naming_cleeng(
    api: httpx.AsyncClient, connector: Connector
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    await set_faults(
        connector.emulators.cleeng_url,
        {"failNext": [{"method": "GET", "pathPrefix": "/3.1/orders", "status": 503}]},
    )
    response = await api.get(
        f"/purchases/{seeded['orderId']}/methods",
        headers=frontend_headers(connector.settings, seeded["customerId"]),
    )
    assert response.status_code == 503
    assert "Cleeng" in response.json()["detail"]


@pytest.mark.parametrize("method", ["banktransfer", "directdebit", "sofort", "bitcoin"])
async def test_a_purchase_with_a_method_that_starts_no_subscription_is_422(
    api: httpx.AsyncClient, connector: Connector, method: str
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    response = await api.post(
        "/purchases",
        json={"orderId": str(seeded["orderId"]), "redirectUrl": THANKS, "method": method},
        headers=frontend_headers(connector.settings, seeded["customerId"]),
    )
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "method"]
    assert "cannot start a subscription" in problem["msg"]
