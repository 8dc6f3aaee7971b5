"""The Cleeng emulator's Core API 3.1 over real HTTP: shapes, rules and error bodies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from emulators.cleeng.app import create_app
from emulators.cleeng.config import DEFAULT_OFFER_ID, CleengEmulatorConfig
from tests.support.servers import serve_in_thread

TOKEN = "test-publisher-token"
MOLLIE = 555000001


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = create_app(CleengEmulatorConfig(publisher_token=TOKEN, id_seed=11))
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
def ops(base_url: str) -> Iterator[httpx.Client]:
    """Operator client; every test starts from a fresh emulator."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        client.post("/_emulator/reset", json={"keepWebhookSubscriptions": False})
        yield client


@pytest.fixture
def api(base_url: str, ops: httpx.Client) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=base_url, headers={"X-Publisher-Token": TOKEN}, timeout=10
    ) as client:
        yield client


def purchase(ops: httpx.Client, **body: Any) -> dict[str, Any]:
    response = ops.post("/_emulator/seed/purchase", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def add_details(api: httpx.Client, customer_id: int, token: str = "cst_1:mdt_1") -> int:
    response = api.post(
        "/3.1/payment_details",
        json={
            "customerId": str(customer_id),
            "token": token,
            "paymentMethodId": MOLLIE,
            "paymentMethodSpecificParams": {"variant": "visa", "lastCardFourDigits": "4242"},
        },
    )
    assert response.status_code == 200, response.text
    details_id: int = response.json()["data"]["id"]
    return details_id


def pay(api: httpx.Client, order_id: int, status: str, **extra: Any) -> httpx.Response:
    return api.post("/3.1/payments", json={"orderId": order_id, "status": status, **extra})


def subscription_of(api: httpx.Client, payment: dict[str, Any]) -> dict[str, Any]:
    response = api.get(f"/3.1/subscriptions/{payment['subscriptionId']}")
    assert response.status_code == 200, response.text
    subscription: dict[str, Any] = response.json()["subscription"]
    return subscription


# ------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"X-Publisher-Token": "wrong"}])
def test_core_api_requires_the_publisher_token(base_url: str, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=base_url, headers=headers) as client:
        for method, path in [("GET", "/3.1/orders/1"), ("POST", "/3.1/payments")]:
            response = client.request(method, path, json={})
            assert response.status_code == 401
            assert response.json() == {"message": "Invalid publisher token"}


def test_unknown_route_answers_cleeng_error_shape(api: httpx.Client) -> None:
    response = api.get("/3.1/nothing-here")
    assert response.status_code == 404
    assert "nothing-here" in response.json()["message"]


# ----------------------------------------------------------------------------- orders


def test_order_is_priced_from_the_offer_with_tax_split_out(
    ops: httpx.Client, api: httpx.Client
) -> None:
    ops.post(
        "/_emulator/offers",
        json={
            "offerId": "S123456789_US",
            "title": "Annual",
            "price": 121.0,
            "currency": "USD",
            "period": "year",
            "taxRate": 0.21,
        },
    )
    seeded = purchase(ops, offerId="S123456789_US")
    response = api.get(f"/3.1/orders/{seeded['orderId']}")
    assert response.status_code == 200
    order = response.json()["order"]
    assert order["totalPrice"] == 121.0
    assert order["currency"] == "USD"
    assert order["offerTitle"] == "Annual"
    assert order["priceBreakdown"]["offerPrice"] == 100.0
    assert order["priceBreakdown"]["taxValue"] == 21.0
    assert order["taxRate"] == 0.21
    assert order["customerEmail"] == "demo@example.com"
    assert order["paymentMethodId"] == MOLLIE
    assert order["expirationDate"] - order["createdAt"] == 24 * 3600


def test_post_order_accepts_string_ids(ops: httpx.Client, api: httpx.Client) -> None:
    customer = ops.post("/_emulator/customers", json={"email": "ann@example.com"}).json()
    response = api.post(
        "/3.1/orders",
        json={
            "customerId": str(customer["id"]),
            "offerId": DEFAULT_OFFER_ID,
            "currency": "EUR",
            "country": "DE",
            "paymentMethodId": str(MOLLIE),
        },
    )
    assert response.status_code == 200, response.text
    order = response.json()["order"]
    assert order["customerId"] == customer["id"]
    assert order["country"] == "DE"
    assert order["totalPrice"] == 9.99
    assert isinstance(order["id"], int)
    assert api.get(f"/3.1/orders/{order['id']}").json()["order"] == order


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"customerId": 1, "offerId": DEFAULT_OFFER_ID}, 404, "Customer 1 not found"),
        ({"offerId": "S999999999_NL"}, 404, "Offer S999999999_NL not found"),
        ({"currency": "USD"}, 422, "Field 'currency' must be EUR for offer S000000001_NL"),
        ({"customerId": "abc"}, 422, "Field 'customerId' is invalid"),
        ({"paymentOperation": "recurring-payment"}, 422, "Field 'subscriptionId' is required"),
    ],
)
def test_post_order_refusals(
    ops: httpx.Client, api: httpx.Client, body: dict[str, Any], status: int, message: str
) -> None:
    customer = ops.get("/_emulator/customers").json()["items"][0]
    response = api.post(
        "/3.1/orders", json={"customerId": customer["id"], "offerId": DEFAULT_OFFER_ID, **body}
    )
    assert response.status_code == status
    assert response.json()["message"].startswith(message)


@pytest.mark.parametrize("order_id", ["123", "not-a-number"])
def test_unknown_order_is_404(api: httpx.Client, order_id: str) -> None:
    response = api.get(f"/3.1/orders/{order_id}")
    assert response.status_code == 404
    assert response.json() == {"message": f"Order {order_id} not found"}


# ---------------------------------------------------------------------------- payments


def test_captured_initial_payment_starts_a_monthly_subscription(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    details_id = add_details(api, seeded["customerId"])
    response = pay(
        api,
        seeded["orderId"],
        "captured",
        paymentOperation="initial-payment",
        paymentDetailsId=str(details_id),
        externalPaymentId="tr_abc",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Payment created"
    payment = body["payment"]
    assert payment["status"] == "captured"
    assert payment["totalAmount"] == 9.99
    assert payment["currency"] == "EUR"
    assert payment["externalPaymentId"] == "tr_abc"
    assert payment["paymentGateway"] == "mollie"
    assert payment["paymentDetailsId"] == details_id

    subscription = subscription_of(api, payment)
    assert subscription["status"] == "active"
    assert subscription["paymentDetailsId"] == details_id
    assert subscription["offerId"] == DEFAULT_OFFER_ID
    assert subscription["totalPrice"] == 9.99
    date_from = datetime.fromtimestamp(subscription["dateFrom"], UTC)
    date_to = datetime.fromtimestamp(subscription["dateTo"], UTC)
    assert (date_to.month - date_from.month) % 12 == 1
    assert subscription["nextPaymentAction"] == "authorise"
    assert subscription["nextPaymentActionDate"] == subscription["dateTo"] - 72 * 3600

    details = api.get(f"/3.1/payment_details/{details_id}").json()["data"]
    assert details["bound"] is True
    assert details["subscriptionIds"] == [subscription["subscriptionId"]]


def test_one_off_offer_creates_no_subscription(ops: httpx.Client, api: httpx.Client) -> None:
    offer = ops.post(
        "/_emulator/offers", json={"title": "Match pass", "price": 4.5, "period": None}
    ).json()
    seeded = purchase(ops, offerId=offer["offerId"])
    payment = pay(api, seeded["orderId"], "captured").json()["payment"]
    assert payment["subscriptionId"] is None
    assert ops.get("/_emulator/subscriptions").json()["items"] == []


def test_a_paid_order_refuses_a_second_charge_and_lists_the_first(
    ops: httpx.Client, api: httpx.Client
) -> None:
    order_id = purchase(ops)["orderId"]
    first = pay(api, order_id, "captured", externalPaymentId="tr_1").json()["payment"]
    for status in ("captured", "authorized"):
        again = pay(api, order_id, status, externalPaymentId="tr_2")
        assert again.status_code == 422
        assert again.json() == {"message": f"Order {order_id} is already paid"}
    listed = api.get("/3.1/payments", params={"orderId": str(order_id)}).json()
    assert listed == {"items": [first]}
    assert api.get("/3.1/payments", params={"orderId": 1}).json() == {"items": []}


def test_rejected_attempts_do_not_block_a_later_capture(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    rejected = pay(api, seeded["orderId"], "rejected", rejectedReason="insufficient funds")
    assert rejected.json()["payment"]["rejectedReason"] == "insufficient funds"
    assert pay(api, seeded["orderId"], "captured").status_code == 200
    by_customer = api.get("/3.1/payments", params={"customerId": seeded["customerId"]}).json()
    assert [p["status"] for p in by_customer["items"]] == ["rejected", "captured"]


def test_an_order_expires_after_24_hours_unless_paid(ops: httpx.Client, api: httpx.Client) -> None:
    unpaid = purchase(ops)["orderId"]
    paid = purchase(ops, email="paid@example.com")["orderId"]
    assert pay(api, paid, "captured").status_code == 200
    ops.post("/_emulator/clock/advance", json={"seconds": 24 * 3600 + 5})

    expired = pay(api, unpaid, "captured")
    assert expired.status_code == 422
    assert expired.json() == {"message": f"Order {unpaid} has expired"}
    late_retry = pay(api, paid, "captured")
    assert late_retry.json() == {"message": f"Order {paid} is already paid"}


@pytest.mark.parametrize(
    ("extra", "status", "message"),
    [
        ({"status": "paid"}, 422, "Field 'status' must be one of captured, authorized, rejected"),
        ({"status": "authorised"}, 422, "Field 'status' must be one of"),
        ({"paymentDetailsId": 123456789}, 404, "Payment details 123456789 not found"),
        ({"orderId": 42}, 404, "Order 42 not found"),
        ({"paymentOperation": "gift"}, 422, "Field 'paymentOperation' must be one of"),
        ({"orderId": None}, 422, "Field 'orderId' is invalid"),
    ],
)
def test_post_payment_refusals(
    ops: httpx.Client, api: httpx.Client, extra: dict[str, Any], status: int, message: str
) -> None:
    order_id = purchase(ops)["orderId"]
    response = api.post("/3.1/payments", json={"orderId": order_id, "status": "captured", **extra})
    assert response.status_code == status
    assert response.json()["message"].startswith(message)
    assert ops.get("/_emulator/payments").json()["items"] == []


def test_missing_field_and_bad_json_are_named(api: httpx.Client) -> None:
    missing = api.post("/3.1/payments", json={"status": "captured"})
    assert missing.status_code == 422
    assert missing.json() == {"message": "Field 'orderId' is required"}
    broken = api.post(
        "/3.1/payments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json() == {"message": "Request body is not valid JSON"}


def test_inline_payment_details_are_stored_with_the_payment(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    payment = pay(
        api,
        seeded["orderId"],
        "captured",
        paymentDetails={"token": "cst_9:mdt_9", "paymentMethodId": MOLLIE},
    ).json()["payment"]
    details = api.get(f"/3.1/payment_details/{payment['paymentDetailsId']}").json()["data"]
    assert details["customerId"] == seeded["customerId"]
    assert details["token"] == "cst_9:mdt_9"


def test_authorise_then_capture_by_patch(ops: httpx.Client, api: httpx.Client) -> None:
    seeded = purchase(ops)
    details_id = add_details(api, seeded["customerId"])
    payment = pay(
        api, seeded["orderId"], "authorized", paymentDetailsId=details_id, externalPaymentId="tr_a"
    ).json()["payment"]
    assert payment["subscriptionId"] is None  # nothing is bought until captured
    for method in ("GET", "POST"):
        listed = api.request(method, f"/3.1/payment_details/{details_id}/authorised_payments")
        assert [p["id"] for p in listed.json()["items"]] == [payment["id"]]

    captured = api.patch(
        f"/3.1/payments/{payment['id']}", json={"status": "captured", "externalPaymentId": "tr_c"}
    )
    assert captured.status_code == 200
    body = captured.json()
    assert body["success"] is True
    assert body["payment"]["status"] == "captured"
    assert body["payment"]["externalPaymentId"] == "tr_c"
    assert subscription_of(api, body["payment"])["status"] == "active"
    listed = api.get(f"/3.1/payment_details/{details_id}/authorised_payments").json()
    assert listed == {"items": []}


@pytest.mark.parametrize(
    ("start", "target", "ok"),
    [
        ("authorized", "rejected", True),
        ("authorized", "refunded", False),
        ("captured", "rejected", False),
        ("rejected", "captured", False),
        ("rejected", "refunded", False),
        ("captured", "captured", True),
        ("rejected", "rejected", True),
    ],
)
def test_payment_status_transitions(
    ops: httpx.Client, api: httpx.Client, start: str, target: str, ok: bool
) -> None:
    payment = pay(api, purchase(ops)["orderId"], start).json()["payment"]
    response = api.patch(f"/3.1/payments/{payment['id']}", json={"status": target})
    if ok:
        assert response.status_code == 200
        assert response.json()["payment"]["status"] == target
    else:
        assert response.status_code == 422
        assert response.json() == {
            "message": f"Cannot change payment {payment['id']} from {start} to {target}"
        }
        current = ops.get("/_emulator/payments", params={"orderId": payment["orderId"]})
        assert current.json()["items"][0]["status"] == start


def test_patch_refusals(ops: httpx.Client, api: httpx.Client) -> None:
    payment = pay(api, purchase(ops)["orderId"], "captured").json()["payment"]
    unknown = api.patch("/3.1/payments/12345", json={"status": "captured"})
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "Payment 12345 not found"}
    bad = api.patch(f"/3.1/payments/{payment['id']}", json={"status": "cancelled"})
    assert bad.json() == {"message": "Field 'status' must be one of captured, rejected, refunded"}
    other_order = api.patch(
        f"/3.1/payments/{payment['id']}", json={"status": "refunded", "orderId": 1}
    )
    assert other_order.status_code == 422
    assert "belongs to order" in other_order.json()["message"]


def test_partial_refunds_accumulate_up_to_the_amount(ops: httpx.Client, api: httpx.Client) -> None:
    payment = pay(api, purchase(ops)["orderId"], "captured").json()["payment"]
    url = f"/3.1/payments/{payment['id']}"
    first = api.patch(
        url,
        json={"status": "refunded", "refundedAmount": 4.0, "refundedReason": "goodwill"},
    ).json()["payment"]
    assert first["status"] == "refunded"
    assert first["refundedAmount"] == 4.0
    assert first["refundType"] == "refund"
    assert first["refundedReason"] == "goodwill"

    too_much = api.patch(url, json={"status": "refunded", "refundedAmount": 6.0})
    assert too_much.status_code == 422
    assert "would exceed the amount 9.99 EUR" in too_much.json()["message"]

    second = api.patch(
        url, json={"status": "refunded", "refundedAmount": "5.99", "refundType": "chargeback"}
    ).json()["payment"]
    assert second["refundedAmount"] == 9.99
    assert second["refundType"] == "chargeback"
    # A full refund re-PATCHed changes nothing.
    assert api.patch(url, json={"status": "refunded"}).json()["payment"]["refundedAmount"] == 9.99
    wrong_type = api.patch(url, json={"status": "refunded", "refundType": "gift"})
    assert wrong_type.json() == {"message": "Field 'refundType' must be one of refund, chargeback"}


def test_full_refund_without_amount(ops: httpx.Client, api: httpx.Client) -> None:
    payment = pay(api, purchase(ops)["orderId"], "captured").json()["payment"]
    refunded = api.patch(f"/3.1/payments/{payment['id']}", json={"status": "refunded"}).json()
    assert refunded["payment"]["refundedAmount"] == 9.99


def test_cancel_voids_an_authorisation_only(ops: httpx.Client, api: httpx.Client) -> None:
    authorized = pay(api, purchase(ops)["orderId"], "authorized").json()["payment"]
    for _ in range(2):  # idempotent
        cancelled = api.patch(f"/3.1/payments/{authorized['id']}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["payment"]["status"] == "cancelled"
    captured = pay(api, purchase(ops, email="b@example.com")["orderId"], "captured").json()
    refused = api.patch(f"/3.1/payments/{captured['payment']['id']}/cancel")
    assert refused.status_code == 422
    assert refused.json() == {
        "message": f"Cannot cancel payment {captured['payment']['id']} with status captured"
    }
    # A cancelled authorisation leaves the order payable.
    assert pay(api, authorized["orderId"], "captured").status_code == 200


# ---------------------------------------------------------------------- payment details


def test_payment_details_lifecycle(ops: httpx.Client, api: httpx.Client) -> None:
    customer_id = purchase(ops)["customerId"]
    created = api.post(
        "/3.1/payment_details",
        json={
            "customerId": customer_id,
            "token": "cst_1:mdt_1",
            "paymentMethodId": MOLLIE,
            "paymentMethodSpecificParams": {
                "variant": "mastercard",
                "lastCardFourDigits": "1111",
                "holderName": "Ann",
                "cardExpirationDate": "12/2030",
            },
        },
    ).json()
    assert created["success"] is True
    data = created["data"]
    assert 100_000_000 <= data["id"] <= 999_999_999
    assert data["paymentGateway"] == "mollie"
    assert data["active"] is True
    assert data["bound"] is False
    assert data["paymentMethodSpecificParams"]["holderName"] == "Ann"

    listed = api.get(f"/3.1/customers/{customer_id}/payment_details").json()
    assert [d["id"] for d in listed["items"]] == [data["id"]]
    assert api.delete(f"/3.1/payment_details/{data['id']}").json() == {"success": True}
    gone = api.get(f"/3.1/payment_details/{data['id']}")
    assert gone.status_code == 404
    assert gone.json() == {"message": f"Payment details {data['id']} not found"}
    assert api.delete(f"/3.1/payment_details/{data['id']}").status_code == 404
    assert api.get(f"/3.1/payment_details/{data['id']}/authorised_payments").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"token": ""}, 422, "Field 'token' must not be empty"),
        ({"customerId": 1}, 404, "Customer 1 not found"),
        ({"paymentMethodId": None}, 422, "Field 'paymentMethodId' is invalid"),
    ],
)
def test_payment_details_refusals(
    ops: httpx.Client, api: httpx.Client, body: dict[str, Any], status: int, message: str
) -> None:
    customer_id = purchase(ops)["customerId"]
    response = api.post(
        "/3.1/payment_details",
        json={"customerId": customer_id, "token": "t", "paymentMethodId": MOLLIE, **body},
    )
    assert response.status_code == status
    assert response.json()["message"].startswith(message)


def test_new_details_replace_the_old_ones_on_subscriptions(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    old = add_details(api, seeded["customerId"], "old-token")
    payment = pay(api, seeded["orderId"], "captured", paymentDetailsId=old).json()["payment"]
    new = add_details(api, seeded["customerId"], "new-token")
    assert api.get(f"/3.1/payment_details/{old}").json()["data"]["active"] is False
    assert subscription_of(api, payment)["paymentDetailsId"] == new


# ------------------------------------------------------------------------ subscriptions


def test_subscription_errors_use_the_subscription_shape(api: httpx.Client) -> None:
    response = api.get("/3.1/subscriptions/999")
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "subscription": None,
        "message": "Subscription 999 not found",
    }


def test_subscription_patch_one_parameter_at_a_time(ops: httpx.Client, api: httpx.Client) -> None:
    payment = pay(api, purchase(ops)["orderId"], "captured").json()["payment"]
    url = f"/3.1/subscriptions/{payment['subscriptionId']}"

    two = api.patch(url, json={"status": "stopped", "couponCode": "X"})
    assert two.status_code == 422
    assert two.json()["success"] is False
    assert two.json()["message"].startswith("Only one parameter can be changed at a time")
    assert api.patch(url, json={}).status_code == 422
    bad = api.patch(url, json={"status": "paused"})
    assert bad.json()["message"] == "Field 'status' must be one of active, stopped, terminated"

    moved = api.patch(url, json={"expiresAt": "2031-01-02T03:04:05Z"}).json()
    assert moved["subscription"]["dateTo"] == int(
        datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    )
    as_unix = api.patch(url, json={"expiresAt": 1924992000}).json()
    assert as_unix["subscription"]["dateTo"] == 1924992000
    coupon = api.patch(url, json={"couponCode": "SPRING"}).json()
    assert coupon["subscription"]["couponCode"] == "SPRING"

    terminated = api.patch(url, json={"status": "terminated"}).json()
    assert terminated == {"success": True, "subscription": terminated["subscription"]}
    assert terminated["subscription"]["status"] == "terminated"
    assert api.patch(url, json={"status": "terminated"}).status_code == 200
    revived = api.patch(url, json={"status": "active"})
    assert revived.status_code == 422
    assert revived.json()["message"] == f"Subscription {payment['subscriptionId']} is terminated"


def test_renewal_is_priced_from_the_subscription_and_extends_it(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    details_id = add_details(api, seeded["customerId"])
    initial = pay(api, seeded["orderId"], "captured", paymentDetailsId=details_id).json()
    subscription_id = initial["payment"]["subscriptionId"]
    before = subscription_of(api, initial["payment"])
    # Repricing the offer does not change what an existing subscriber pays.
    ops.post("/_emulator/offers", json={"offerId": DEFAULT_OFFER_ID, "price": 12.99})

    order = api.post(
        "/3.1/orders",
        json={
            "customerId": seeded["customerId"],
            "offerId": DEFAULT_OFFER_ID,
            "currency": "EUR",
            "country": "NL",
            "paymentMethodId": MOLLIE,
            "paymentOperation": "recurring-payment",
            "subscriptionId": str(subscription_id),
        },
    ).json()["order"]
    assert order["totalPrice"] == 9.99
    assert order["subscriptionId"] == subscription_id
    assert order["paymentOperation"] == "recurring-payment"

    renewal = pay(
        api,
        order["id"],
        "captured",
        paymentOperation="recurring-payment",
        subscriptionId=subscription_id,
        externalPaymentId="tr_renew",
    ).json()["payment"]
    assert renewal["paymentDetailsId"] == details_id
    after = subscription_of(api, renewal)
    old_to = datetime.fromtimestamp(before["dateTo"], UTC)
    new_to = datetime.fromtimestamp(after["dateTo"], UTC)
    assert (new_to.year * 12 + new_to.month) - (old_to.year * 12 + old_to.month) == 1
    assert after["dateFrom"] == before["dateFrom"]


def test_recurring_payment_needs_a_subscription(ops: httpx.Client, api: httpx.Client) -> None:
    order_id = purchase(ops)["orderId"]
    response = pay(api, order_id, "captured", paymentOperation="recurring-payment")
    assert response.status_code == 422
    assert response.json() == {
        "message": "Field 'subscriptionId' is required for recurring-payment"
    }


# ------------------------------------------------------------------ webhook subscriptions


def test_put_replaces_the_list_for_the_topic(api: httpx.Client) -> None:
    topic = "subscriptionReadyForPaymentCapture"
    first = [
        {"url": "http://a.example/hook"},
        {
            "url": "https://b.example/hook",
            "filters": [{"name": "paymentMethodId", "options": {"value": MOLLIE}}],
            "verification": {
                "name": "HMAC",
                "options": {"hashAlg": "SHA256", "sharedSecret": "0123456789abcdef"},
            },
        },
    ]
    stored = api.put(f"/3.1/webhook_subscriptions/{topic}", json=first)
    assert stored.status_code == 200
    assert stored.json() == first
    listed = api.get("/3.1/webhook_subscriptions").json()
    assert listed[topic] == first
    assert listed["refundPayment"] == []

    replaced = api.put(f"/3.1/webhook_subscriptions/{topic}", json=[{"url": "http://c.example/"}])
    assert replaced.json() == [{"url": "http://c.example/"}]
    assert api.get("/3.1/webhook_subscriptions").json()[topic] == [{"url": "http://c.example/"}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "x"}, "Request body must be a JSON array of endpoint objects"),
        ([{"url": "ftp://x"}], "Field '[0].url' must be an http(s) URL"),
        ([{}], "Field '[0].url' must be an http(s) URL"),
        (
            [{"url": "http://x/", "filters": [{"name": "offerId", "options": {"value": 1}}]}],
            "Field '[0].filters[0].name' must be 'paymentMethodId'",
        ),
        (
            [{"url": "http://x/", "filters": [{"name": "paymentMethodId", "options": {}}]}],
            "Field '[0].filters[0].options.value' must be a paymentMethodId",
        ),
        (
            [
                {
                    "url": "http://x/",
                    "verification": {
                        "name": "HMAC",
                        "options": {"hashAlg": "SHA256", "sharedSecret": "short"},
                    },
                }
            ],
            "Field '[0].verification.options.sharedSecret' must be 16-64 bytes",
        ),
        (
            [
                {
                    "url": "http://x/",
                    "verification": {
                        "name": "HMAC",
                        "options": {"hashAlg": "MD5", "sharedSecret": "0123456789abcdef"},
                    },
                }
            ],
            "Field '[0].verification.options.hashAlg' must be 'SHA256'",
        ),
    ],
)
def test_put_webhook_subscriptions_validates(api: httpx.Client, body: Any, message: str) -> None:
    response = api.put("/3.1/webhook_subscriptions/refundPayment", json=body)
    assert response.status_code == 422
    assert response.json() == {"message": message}
    assert api.get("/3.1/webhook_subscriptions").json()["refundPayment"] == []


def test_put_webhook_subscriptions_refuses_unknown_topics(api: httpx.Client) -> None:
    response = api.put(
        "/3.1/webhook_subscriptions/subscriptionReadyForPaymentAuthorization",
        json=[{"url": "http://x/"}],
    )
    assert response.status_code == 422
    assert response.json()["message"].startswith(
        "Unknown topic 'subscriptionReadyForPaymentAuthorization'"
    )
