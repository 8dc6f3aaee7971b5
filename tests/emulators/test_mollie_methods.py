"""The emulator's "List payment methods" (`GET /v2/methods`), read by the official client.

`mollie-api-python`'s `client.methods.list(...)` is the contract test: it writes the amount as
`amount[value]` / `amount[currency]` and reads `_embedded.methods`. Facts checked here come from
docs.mollie.com (the "List payment methods" reference and each method's page); see
emulators/mollie/methods.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mollie.api.error import UnprocessableEntityError

from tests.emulators.test_mollie_support import API_KEY, RunningEmulator, running_emulator

# What Mollie documents as able to start a recurring sequence, Apple Pay aside (a wallet).
SEPA_FIRST_METHODS = ["ideal", "bancontact", "eps", "belfius", "kbc", "trustly"]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with running_emulator(deliver_webhooks=False) as running:
        yield running


def listed(emulator: RunningEmulator, **params: Any) -> list[str]:
    """The ids the official client reads from the list."""
    return [method.id for method in emulator.client().methods.list(**params)]


def raw(emulator: RunningEmulator, params: dict[str, str]) -> httpx.Response:
    return httpx.get(
        f"{emulator.base_url}/v2/methods",
        params=params,
        headers={"Authorization": f"Bearer {API_KEY}"},
    )


def eur(value: str) -> dict[str, str]:
    return {"value": value, "currency": "EUR"}


def test_the_official_client_reads_every_field(emulator: RunningEmulator) -> None:
    methods = emulator.client().methods.list(sequenceType="first", amount=eur("9.99"))
    assert methods.count == len(list(methods)) > 0
    card = next(method for method in methods if method.id == "creditcard")
    assert card.resource == "method"
    assert card.description == "Card"
    assert card.minimum_amount == eur("0.00")  # a card's first payment may be 0.00
    assert card.maximum_amount == eur("10000.00")
    assert card.image_svg.endswith("/creditcard.svg")
    assert card.image_size1x.endswith("/creditcard.png")
    assert card.image_size2x.endswith(".png")
    assert card["status"] == "activated"
    assert card["_links"]["self"]["href"] == f"{emulator.base_url}/v2/methods/creditcard"
    ideal = next(method for method in methods if method.id == "ideal")
    assert ideal.minimum_amount == eur("0.01")


def test_first_lists_only_the_methods_that_start_a_recurring_sequence(
    emulator: RunningEmulator,
) -> None:
    first = listed(emulator, sequenceType="first", amount=eur("10.00"))
    assert first == ["creditcard", "paypal", *SEPA_FIRST_METHODS]
    oneoff = listed(emulator, sequenceType="oneoff", amount=eur("10.00"))
    assert {"banktransfer", *first} <= set(oneoff)
    assert "directdebit" not in oneoff
    assert listed(emulator, sequenceType="recurring") == ["creditcard", "paypal", "directdebit"]


def test_apple_pay_only_when_the_wallet_is_included(emulator: RunningEmulator) -> None:
    assert "applepay" not in listed(emulator, sequenceType="first")
    with_wallet = listed(emulator, sequenceType="first", includeWallets="applepay")
    assert with_wallet[:3] == ["creditcard", "applepay", "paypal"]


def test_a_zero_first_payment_lists_only_cards_and_paypal(emulator: RunningEmulator) -> None:
    zero = listed(emulator, sequenceType="first", amount=eur("0.00"), includeWallets="applepay")
    assert zero == ["creditcard", "paypal"]
    assert listed(emulator, sequenceType="oneoff", amount=eur("0.00")) == []


def test_amount_limits_and_currency(emulator: RunningEmulator) -> None:
    # Bancontact starts at EUR 0.02, EPS at EUR 1.00.
    cent = listed(emulator, sequenceType="first", amount=eur("0.01"))
    assert "bancontact" not in cent
    assert "eps" not in cent
    assert "ideal" in cent
    assert "eps" in listed(emulator, sequenceType="first", amount=eur("1.00"))
    # Over a card's default limit of EUR 10,000.
    assert "creditcard" not in listed(emulator, sequenceType="first", amount=eur("10000.01"))
    # SEPA methods take euros only; cards and PayPal take others.
    gbp = listed(emulator, sequenceType="first", amount={"value": "5.00", "currency": "GBP"})
    assert gbp == ["creditcard", "paypal"]
    methods = emulator.client().methods.list(amount={"value": "500", "currency": "JPY"})
    assert next(iter(methods)).minimum_amount == {"value": "1", "currency": "JPY"}


def test_without_an_amount_only_euro_methods_are_listed(emulator: RunningEmulator) -> None:
    # "By default, only payment methods for the Euro currency are returned."
    methods = emulator.client().methods.list(sequenceType="first")
    assert all(method.minimum_amount["currency"] == "EUR" for method in methods)
    assert "ideal" in [method.id for method in methods]


def test_country_bound_methods_follow_the_billing_country(emulator: RunningEmulator) -> None:
    belgian = listed(emulator, sequenceType="first", amount=eur("10.00"), billingCountry="BE")
    assert belgian == ["creditcard", "paypal", "bancontact", "belfius", "kbc", "trustly"]
    dutch = listed(emulator, sequenceType="first", amount=eur("10.00"), billingCountry="NL")
    assert dutch == ["creditcard", "paypal", "ideal", "trustly"]
    american = listed(emulator, sequenceType="first", amount=eur("10.00"), billingCountry="US")
    assert american == ["creditcard", "paypal"]


def test_the_list_is_one_page_with_its_own_links(emulator: RunningEmulator) -> None:
    response = raw(emulator, {"sequenceType": "first", "locale": "nl_NL", "resource": "payments"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/hal+json")
    body = response.json()
    assert body["count"] == len(body["_embedded"]["methods"])
    assert body["_links"]["self"]["href"].startswith(f"{emulator.base_url}/v2/methods?")
    assert "next" not in body["_links"]
    assert body["_links"]["documentation"]["href"].endswith("/list-methods")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sequenceType": "weekly"}, "sequenceType"),
        ({"amount[value]": "10"}, "amount"),
        ({"amount[currency]": "EUR"}, "amount"),
        ({"amount[value]": "10", "amount[currency]": "EUR"}, "amount"),
        ({"amount[value]": "10.00", "amount[currency]": "XYZ"}, "amount"),
        ({"amount[value]": "ten", "amount[currency]": "EUR"}, "amount"),
        ({"amount": "10.00"}, "amount"),
        ({"billingCountry": "Belgium"}, "billingCountry"),
        ({"locale": "nl"}, "locale"),
        ({"includeWallets": "googlepay"}, "includeWallets"),
        ({"resource": "subscriptions"}, "resource"),
    ],
)
def test_a_malformed_filter_is_a_422_naming_it(
    emulator: RunningEmulator, params: dict[str, str], field: str
) -> None:
    response = raw(emulator, params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status"] == 422
    assert body["title"] == "Unprocessable Entity"
    assert body["field"] == field
    assert body["detail"]


def test_the_official_client_raises_the_422(emulator: RunningEmulator) -> None:
    with pytest.raises(UnprocessableEntityError) as raised:
        emulator.client().methods.list(sequenceType="sometimes")
    assert raised.value.field == "sequenceType"


def test_each_listed_method_links_to_itself(emulator: RunningEmulator) -> None:
    client = emulator.client()
    for listed_method in client.methods.list(sequenceType="first", includeWallets="applepay"):
        href = listed_method["_links"]["self"]["href"]
        fetched = httpx.get(href, headers={"Authorization": f"Bearer {API_KEY}"})
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["id"] == listed_method.id
    paypal = client.methods.get("paypal", currency="GBP")
    assert paypal.minimum_amount == {"value": "0.01", "currency": "GBP"}


def test_get_method_refuses_an_unknown_method_or_currency(emulator: RunningEmulator) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    unknown = httpx.get(f"{emulator.base_url}/v2/methods/bitcoin", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json()["status"] == 404
    pounds = httpx.get(
        f"{emulator.base_url}/v2/methods/ideal", params={"currency": "GBP"}, headers=headers
    )
    assert pounds.status_code == 422
    assert pounds.json()["field"] == "currency"


def test_an_undocumented_methods_path_is_404(emulator: RunningEmulator) -> None:
    response = httpx.get(
        f"{emulator.base_url}/v2/methods/",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 404
    assert response.json()["status"] == 404


AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_a_trustly_first_payment_leaves_a_sepa_direct_debit_mandate() -> None:
    """Mollie's Trustly page: a first payment with Trustly leaves a `directdebit` mandate."""
    with running_emulator(deliver_webhooks=False) as emulator:
        customer = emulator.http.post("/v2/customers", json={}, headers=AUTH).json()["id"]
        first = emulator.http.post(
            "/v2/payments",
            json={
                "amount": {"currency": "EUR", "value": "0.01"},
                "description": "First",
                "redirectUrl": "https://shop.example/",
                "sequenceType": "first",
                "customerId": customer,
                "method": "trustly",
            },
            headers=AUTH,
        ).json()
        emulator.http.post(f"/_emulator/payments/{first['id']}/status", json={"status": "paid"})
        paid = emulator.http.get(f"/v2/payments/{first['id']}", headers=AUTH).json()
        mandate = emulator.http.get(
            f"/v2/customers/{customer}/mandates/{paid['mandateId']}", headers=AUTH
        ).json()
    assert mandate["method"] == "directdebit"
