"""The Cleeng emulator's Core API 3.1 over real HTTP: behaviour, shapes and error bodies.

Type strictness, conditional requirements and the endpoints that are not served are covered
in ``test_cleeng_strict.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from emulators.cleeng.config import DEFAULT_OFFER_ID, CleengEmulatorConfig
from tests.emulators.cleeng_support import MOLLIE, CleengServer, running_cleeng, subscription_error

TOKEN = "test-publisher-token"


@pytest.fixture(scope="module")
def cleeng() -> Iterator[CleengServer]:
    with running_cleeng(CleengEmulatorConfig(publisher_token=TOKEN, id_seed=11)) as server:
        yield server


def purchase(ops: httpx.Client, **body: Any) -> dict[str, Any]:
    response = ops.post("/_emulator/seed/purchase", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def add_details(api: httpx.Client, customer_id: int, token: str = "cst_1:mdt_1") -> int:
    response = api.post(
        "/3.1/payment_details",
        json={
            "customerId": customer_id,
            "token": token,
            "paymentMethodId": MOLLIE,
            "paymentMethodSpecificParams": {"variant": "visa", "lastCardFourDigits": "4242"},
        },
    )
    assert response.status_code == 200, response.text
    details_id: int = response.json()["data"]["id"]
    return details_id


def inline_details(customer_id: int, token: str = "cst_9:mdt_9") -> dict[str, Any]:
    return {"customerId": customer_id, "token": token, "paymentMethodId": MOLLIE}


def pay(api: httpx.Client, seeded: dict[str, Any], status: str, **extra: Any) -> httpx.Response:
    """Record a payment for a seeded order as create-a-payment documents it: string ids, an
    operation, and payment details (inline unless ``paymentDetailsId`` is given)."""
    body: dict[str, Any] = {
        "orderId": str(seeded["orderId"]),
        "status": status,
        "paymentOperation": "initial-payment",
        **extra,
    }
    if "paymentDetailsId" not in body and "paymentDetails" not in body:
        body["paymentDetails"] = inline_details(seeded["customerId"])
    return api.post("/3.1/payments", json=body)


def paid(api: httpx.Client, seeded: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
    response = pay(api, seeded, status, **extra)
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()["payment"]
    return payment


def refund_body(payment: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A complete update-a-payment body for a refund of `payment`."""
    return {
        "status": "refunded",
        "orderId": payment["orderId"],
        "paymentOperation": payment["paymentOperation"],
        "refundedReason": "customer asked",
        **extra,
    }


def renewal_order_body(customer_id: int, subscription_id: int, **extra: Any) -> dict[str, Any]:
    """A create-an-order body for a renewal of the subscription, as a connector sends it."""
    return {
        "customerId": customer_id,
        "offerId": DEFAULT_OFFER_ID,
        "currency": "EUR",
        "country": "NL",
        "paymentOperation": "recurring-payment",
        "subscriptionId": str(subscription_id),
        **extra,
    }


def subscription_of(api: httpx.Client, payment: dict[str, Any]) -> dict[str, Any]:
    response = api.get(f"/3.1/subscriptions/{payment['subscriptionId']}")
    assert response.status_code == 200, response.text
    subscription: dict[str, Any] = response.json()["subscription"]
    return subscription


def stored_details(ops: httpx.Client, details_id: int) -> dict[str, Any]:
    response = ops.get(f"/_emulator/payment-details/{details_id}")
    assert response.status_code == 200, response.text
    details: dict[str, Any] = response.json()
    return details


def ledger(ops: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = ops.get("/_emulator/ledger").json()
    return body


def emulator_now(ops: httpx.Client) -> int:
    return int(datetime.fromisoformat(ops.get("/_emulator/clock").json()["now"]).timestamp())


# ------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"X-Publisher-Token": "wrong"}])
def test_core_api_requires_the_publisher_token(
    cleeng: CleengServer, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=cleeng.url, headers=headers) as client:
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


def test_post_order_with_the_documented_fields(ops: httpx.Client, api: httpx.Client) -> None:
    customer = ops.post("/_emulator/customers", json={"email": "ann@example.com"}).json()
    response = api.post(
        "/3.1/orders",
        json={
            "customerId": customer["id"],
            "offerId": DEFAULT_OFFER_ID,
            "currency": "EUR",
            "country": "DE",
            "paymentMethodId": MOLLIE,
            "couponCode": "WELCOME",
            "taxRate": "0.19",
            "billingAddress": {"city": "Berlin"},
            "customerIP": "203.0.113.7",
            "buyAsAGift": False,
            "deliveryDetails": {"recipientEmail": "friend@example.com"},
        },
    )
    assert response.status_code == 200, response.text
    order = response.json()["order"]
    assert order["customerId"] == customer["id"]
    assert order["country"] == "DE"
    assert order["totalPrice"] == 9.99
    assert order["paymentOperation"] == "initial-payment"
    assert isinstance(order["id"], int)
    assert api.get(f"/3.1/orders/{order['id']}").json()["order"] == order


def test_customer_ip_stands_in_for_currency_and_country(
    ops: httpx.Client, api: httpx.Client
) -> None:
    customer = ops.post("/_emulator/customers", json={"email": "b@example.com", "country": "BE"})
    response = api.post(
        "/3.1/orders",
        json={
            "customerId": customer.json()["id"],
            "offerId": DEFAULT_OFFER_ID,
            "customerIP": "2001:db8::1",
        },
    )
    assert response.status_code == 200, response.text
    order = response.json()["order"]
    assert (order["currency"], order["country"]) == ("EUR", "BE")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"customerId": 1}, 404, "Customer 1 not found"),
        ({"offerId": "S999999999_NL"}, 404, "Offer S999999999_NL not found"),
        ({"currency": "USD"}, 422, "Field 'currency' must be EUR for offer S000000001_NL"),
    ],
)
def test_post_order_refusals(
    ops: httpx.Client, api: httpx.Client, body: dict[str, Any], status: int, message: str
) -> None:
    customer = ops.get("/_emulator/customers").json()["items"][0]
    response = api.post(
        "/3.1/orders",
        json={
            "customerId": customer["id"],
            "offerId": DEFAULT_OFFER_ID,
            "currency": "EUR",
            "country": "NL",
            **body,
        },
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
        api, seeded, "captured", paymentDetailsId=str(details_id), externalPaymentId="tr_abc"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Payment created"
    payment = body["payment"]
    assert payment["status"] == "captured"
    assert payment["orderId"] == seeded["orderId"]
    assert payment["totalAmount"] == 9.99
    assert payment["currency"] == "EUR"
    assert payment["externalPaymentId"] == "tr_abc"
    assert payment["paymentGateway"] == "mollie"
    assert payment["paymentDetailsId"] == details_id
    assert payment["paymentOperation"] == "initial-payment"

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

    details = stored_details(ops, details_id)
    assert details["bound"] is True
    assert details["subscriptionIds"] == [subscription["subscriptionId"]]


def test_one_off_offer_creates_no_subscription(ops: httpx.Client, api: httpx.Client) -> None:
    offer = ops.post(
        "/_emulator/offers", json={"title": "Match pass", "price": 4.5, "period": None}
    ).json()
    payment = paid(api, purchase(ops, offerId=offer["offerId"]), "captured")
    assert payment["subscriptionId"] is None
    assert ops.get("/_emulator/subscriptions").json()["items"] == []


def test_a_second_record_for_a_paid_order_is_accepted_and_counted_once(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    first = paid(api, seeded, "captured", externalPaymentId="tr_1")
    date_to = subscription_of(api, first)["dateTo"]
    assert ledger(ops)["duplicateRecords"] == 0

    # Cleeng documents no refusal: the record is kept, but buys no second period.
    second = paid(api, seeded, "captured", externalPaymentId="tr_2")
    assert second["id"] != first["id"]
    assert second["subscriptionId"] == first["subscriptionId"]
    assert subscription_of(api, first)["dateTo"] == date_to
    book = ledger(ops)
    assert book["duplicateRecords"] == 1
    (duplicate,) = book["duplicates"]
    assert duplicate["paymentId"] == second["id"]
    assert duplicate["orderId"] == seeded["orderId"]
    assert duplicate["duplicateOf"] == first["id"]
    assert duplicate["reason"] == "orderAlreadyPaid"
    assert duplicate["externalPaymentId"] == "tr_2"
    assert book["totals"]["EUR"]["capturedMinor"] == 2 * 999  # what Cleeng now holds
    listed = ops.get("/_emulator/payments", params={"orderId": seeded["orderId"]}).json()
    assert [(p["id"], p["duplicateOf"]) for p in listed["items"]] == [
        (first["id"], None),
        (second["id"], first["id"]),
    ]

    # An authorised duplicate captured later does not extend the subscription either.
    third = paid(api, seeded, "authorized", externalPaymentId="tr_3")
    captured = api.patch(f"/3.1/payments/{third['id']}", json={"status": "captured"})
    assert captured.status_code == 200
    assert subscription_of(api, first)["dateTo"] == date_to
    assert ledger(ops)["duplicateRecords"] == 2


def test_an_authorised_duplicate_captured_first_extends_once(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    first = paid(api, seeded, "authorized", externalPaymentId="tr_1")
    second = paid(api, seeded, "authorized", externalPaymentId="tr_2")
    assert ledger(ops)["duplicates"][0]["paymentId"] == second["id"]
    for payment in (second, first):
        api.patch(f"/3.1/payments/{payment['id']}", json={"status": "captured"})
    subscriptions = ops.get("/_emulator/subscriptions").json()["items"]
    assert len(subscriptions) == 1
    start = datetime.fromtimestamp(subscriptions[0]["dateFrom"], UTC)
    end = datetime.fromtimestamp(subscriptions[0]["dateTo"], UTC)
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == 1


def test_the_same_outcome_recorded_twice_is_a_duplicate(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    reason = {"rejectedReason": "insufficient funds"}
    first = paid(api, seeded, "rejected", externalPaymentId="tr_1", **reason)
    again = paid(api, seeded, "rejected", externalPaymentId="tr_1", **reason)
    other_attempt = paid(api, seeded, "rejected", externalPaymentId="tr_2", **reason)
    book = ledger(ops)
    assert [(d["paymentId"], d["duplicateOf"], d["reason"]) for d in book["duplicates"]] == [
        (again["id"], first["id"], "sameOutcomeRecorded")
    ]
    assert other_attempt["rejectedReason"] == "insufficient funds"


def test_rejected_attempts_do_not_block_a_later_capture(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    rejected = paid(
        api, seeded, "rejected", externalPaymentId="tr_1", rejectedReason="insufficient funds"
    )
    assert rejected["rejectedReason"] == "insufficient funds"
    assert pay(api, seeded, "captured", externalPaymentId="tr_2").status_code == 200
    listed = ops.get("/_emulator/payments", params={"customerId": seeded["customerId"]}).json()
    assert [p["status"] for p in listed["items"]] == ["rejected", "captured"]
    assert ledger(ops)["duplicateRecords"] == 0


def test_a_cancelled_record_leaves_the_order_payable(ops: httpx.Client, api: httpx.Client) -> None:
    seeded = purchase(ops)
    cancelled = paid(api, seeded, "cancelled", externalPaymentId="tr_1")
    assert cancelled["status"] == "cancelled"
    assert cancelled["subscriptionId"] is None
    captured = paid(api, seeded, "captured", externalPaymentId="tr_2")
    assert captured["subscriptionId"] is not None
    assert ledger(ops)["duplicateRecords"] == 0


def test_an_order_expires_after_24_hours_unless_paid(ops: httpx.Client, api: httpx.Client) -> None:
    unpaid = purchase(ops)
    settled = purchase(ops, email="paid@example.com")
    first = paid(api, settled, "captured", externalPaymentId="tr_1")
    ops.post("/_emulator/clock/advance", json={"seconds": 24 * 3600 + 5})

    order = api.get(f"/3.1/orders/{unpaid['orderId']}").json()["order"]
    assert order["expirationDate"] < emulator_now(ops)
    expired = pay(api, unpaid, "captured")
    assert expired.status_code == 422
    assert expired.json() == {"message": f"Order {unpaid['orderId']} has expired"}
    assert ops.get("/_emulator/payments", params={"orderId": unpaid["orderId"]}).json() == {
        "items": []
    }
    # A paid order does not expire: a late retry is recorded, as a duplicate.
    late_retry = paid(api, settled, "captured", externalPaymentId="tr_1")
    assert ledger(ops)["duplicates"][0]["paymentId"] == late_retry["id"]
    assert ledger(ops)["duplicates"][0]["duplicateOf"] == first["id"]


@pytest.mark.parametrize(
    ("extra", "status", "message"),
    [
        ({"paymentDetailsId": "123456789"}, 404, "Payment details 123456789 not found"),
        ({"orderId": "42"}, 404, "Order 42 not found"),
        (
            {"paymentDetails": inline_details(1)},
            422,
            "Field 'paymentDetails.customerId' must be the payment's customer",
        ),
        (
            {"paymentOperation": "recurring-payment", "subscriptionId": "123"},
            404,
            "Subscription 123 not found",
        ),
    ],
)
def test_post_payment_refusals(
    ops: httpx.Client, api: httpx.Client, extra: dict[str, Any], status: int, message: str
) -> None:
    response = pay(api, purchase(ops), "captured", **extra)
    assert response.status_code == status
    assert response.json()["message"].startswith(message)
    assert ops.get("/_emulator/payments").json()["items"] == []


def test_payment_details_of_another_customer_are_refused(
    ops: httpx.Client, api: httpx.Client
) -> None:
    other = purchase(ops, email="other@example.com")
    details_id = add_details(api, other["customerId"])
    seeded = purchase(ops)
    response = pay(api, seeded, "captured", paymentDetailsId=str(details_id))
    assert response.status_code == 422
    assert response.json() == {
        "message": f"Payment details {details_id} do not belong to customer {seeded['customerId']}"
    }


def test_inline_payment_details_are_stored_with_the_payment(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    payment = paid(api, seeded, "captured")
    details = stored_details(ops, payment["paymentDetailsId"])
    assert details["customerId"] == seeded["customerId"]
    assert details["token"] == "cst_9:mdt_9"


def test_authorise_then_capture_by_patch(ops: httpx.Client, api: httpx.Client) -> None:
    seeded = purchase(ops)
    details_id = add_details(api, seeded["customerId"])
    payment = paid(
        api, seeded, "authorized", paymentDetailsId=str(details_id), externalPaymentId="tr_a"
    )
    assert payment["subscriptionId"] is None  # nothing is bought until captured
    listed = api.get(f"/3.1/payment_details/{details_id}/authorised_payments")
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


def _patch_body(payment: dict[str, Any], target: str) -> dict[str, Any]:
    if target == "refunded":
        return refund_body(payment)
    if target == "rejected":
        return {"status": "rejected", "rejectedReason": "declined"}
    return {"status": target}


@pytest.mark.parametrize(
    ("start", "target", "ok"),
    [
        ("authorized", "rejected", True),
        ("authorized", "refunded", False),
        ("captured", "rejected", False),
        ("rejected", "captured", False),
        ("rejected", "refunded", False),
        ("cancelled", "captured", False),
        ("captured", "captured", True),
        ("rejected", "rejected", True),
    ],
)
def test_payment_status_transitions(
    ops: httpx.Client, api: httpx.Client, start: str, target: str, ok: bool
) -> None:
    payment = paid(api, purchase(ops), start, rejectedReason="declined")
    response = api.patch(f"/3.1/payments/{payment['id']}", json=_patch_body(payment, target))
    if ok:
        assert response.status_code == 200, response.text
        assert response.json()["payment"]["status"] == target
    else:
        assert response.status_code == 422
        assert response.json() == {
            "message": f"Cannot change payment {payment['id']} from {start} to {target}"
        }
        current = ops.get("/_emulator/payments", params={"orderId": payment["orderId"]})
        assert current.json()["items"][0]["status"] == start


def test_patch_refusals(ops: httpx.Client, api: httpx.Client) -> None:
    payment = paid(api, purchase(ops), "captured")
    url = f"/3.1/payments/{payment['id']}"
    unknown = api.patch("/3.1/payments/12345", json={"status": "captured"})
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "Payment 12345 not found"}
    other_order = api.patch(url, json=refund_body(payment, orderId=1))
    assert other_order.status_code == 422
    assert other_order.json() == {
        "message": f"Payment {payment['id']} belongs to order {payment['orderId']}, not 1"
    }
    other_operation = api.patch(
        url, json=refund_body(payment, paymentOperation="recurring-payment")
    )
    assert other_operation.status_code == 422
    assert other_operation.json() == {
        "message": f"Payment {payment['id']} is a initial-payment, not a recurring-payment"
    }
    assert ops.get("/_emulator/payments").json()["items"][0]["status"] == "captured"


def test_patch_can_attach_new_payment_details(ops: httpx.Client, api: httpx.Client) -> None:
    seeded = purchase(ops)
    payment = paid(api, seeded, "authorized")
    patched = api.patch(
        f"/3.1/payments/{payment['id']}",
        json={"status": "captured", "paymentDetails": inline_details(seeded["customerId"], "t2")},
    )
    assert patched.status_code == 200, patched.text
    new_id = patched.json()["payment"]["paymentDetailsId"]
    assert new_id != payment["paymentDetailsId"]
    assert stored_details(ops, new_id)["token"] == "t2"


def test_partial_refunds_accumulate_up_to_the_amount(ops: httpx.Client, api: httpx.Client) -> None:
    payment = paid(api, purchase(ops), "captured")
    url = f"/3.1/payments/{payment['id']}"
    first = api.patch(url, json=refund_body(payment, refundedAmount=4, refundedReason="goodwill"))
    assert first.status_code == 200, first.text
    refunded = first.json()["payment"]
    assert refunded["status"] == "refunded"
    assert refunded["refundedAmount"] == 4.0
    assert refunded["refundType"] == "refund"
    assert refunded["refundedReason"] == "goodwill"

    too_much = api.patch(url, json=refund_body(payment, refundedAmount=6.0))
    assert too_much.status_code == 422
    assert "would exceed the amount 9.99 EUR" in too_much.json()["message"]
    too_precise = api.patch(url, json=refund_body(payment, refundedAmount=0.001))
    assert too_precise.status_code == 422
    assert too_precise.json()["message"].startswith("Field 'refundedAmount' is invalid")

    second = api.patch(url, json=refund_body(payment, refundedAmount=1.5, refundType="chargeback"))
    assert second.json()["payment"]["refundedAmount"] == 5.5
    assert second.json()["payment"]["refundType"] == "chargeback"
    # Without an amount, a refund refunds what remains ...
    rest = api.patch(url, json=refund_body(payment)).json()["payment"]
    assert rest["refundedAmount"] == 9.99
    # ... so once everything is refunded, repeating it changes nothing.
    assert api.patch(url, json=refund_body(payment)).json()["payment"]["refundedAmount"] == 9.99
    nothing_left = api.patch(url, json=refund_body(payment, refundedAmount=0.01))
    assert nothing_left.status_code == 422
    book = ledger(ops)["items"][0]
    assert (book["refundedMinor"], book["netMinor"]) == (999, 0)
    assert [(r["amountMinor"], r["refundType"]) for r in book["refunds"]] == [
        (400, "refund"),
        (150, "chargeback"),
        (449, "refund"),
    ]


def test_full_refund_without_amount(ops: httpx.Client, api: httpx.Client) -> None:
    payment = paid(api, purchase(ops), "captured")
    refunded = api.patch(f"/3.1/payments/{payment['id']}", json=refund_body(payment)).json()
    assert refunded["payment"]["refundedAmount"] == 9.99
    assert refunded["payment"]["refundedReason"] == "customer asked"


def test_cancel_voids_an_authorisation_only(ops: httpx.Client, api: httpx.Client) -> None:
    seeded = purchase(ops)
    authorized = paid(api, seeded, "authorized", externalPaymentId="tr_1")
    for _ in range(2):  # idempotent
        cancelled = api.patch(f"/3.1/payments/{authorized['id']}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["payment"]["status"] == "cancelled"
    captured = paid(api, purchase(ops, email="b@example.com"), "captured")
    refused = api.patch(f"/3.1/payments/{captured['id']}/cancel")
    assert refused.status_code == 422
    assert refused.json() == {
        "message": f"Cannot cancel payment {captured['id']} with status captured"
    }
    # A cancelled authorisation leaves the order payable, and the new record is no duplicate.
    assert pay(api, seeded, "captured", externalPaymentId="tr_2").status_code == 200
    assert ledger(ops)["duplicateRecords"] == 0


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
    assert data["paymentMethod"] == "card"
    assert data["active"] is True
    assert data["bound"] is False
    assert data["paymentMethodSpecificParams"]["holderName"] == "Ann"
    assert stored_details(ops, data["id"]) == data

    inactive = api.post(
        "/3.1/payment_details",
        json={"customerId": customer_id, "token": "t", "paymentMethodId": 7, "active": False},
    ).json()["data"]
    assert (inactive["active"], inactive["paymentGateway"]) == (False, "other")
    assert stored_details(ops, data["id"])["active"] is True  # inactive details replace none

    assert api.delete(f"/3.1/payment_details/{data['id']}").json() == {"success": True}
    assert ops.get(f"/_emulator/payment-details/{data['id']}").status_code == 404
    gone = api.delete(f"/3.1/payment_details/{data['id']}")
    assert gone.status_code == 404
    assert gone.json() == {"message": f"Payment details {data['id']} not found"}
    assert api.get(f"/3.1/payment_details/{data['id']}/authorised_payments").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"token": ""}, 422, "Field 'token' must not be empty"),
        ({"token": "   "}, 422, "Field 'token' must not be empty"),
        ({"customerId": 1}, 404, "Customer 1 not found"),
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
    payment = paid(api, seeded, "captured", paymentDetailsId=str(old))
    new = add_details(api, seeded["customerId"], "new-token")
    assert stored_details(ops, old)["active"] is False
    assert subscription_of(api, payment)["paymentDetailsId"] == new


# ------------------------------------------------------------------------ subscriptions


def test_subscription_errors_use_the_subscription_shape(api: httpx.Client) -> None:
    response = api.get("/3.1/subscriptions/999")
    assert response.status_code == 404
    assert response.json() == subscription_error("Subscription 999 not found")


def test_subscription_patch_one_parameter_at_a_time(ops: httpx.Client, api: httpx.Client) -> None:
    seeded = purchase(ops)
    payment = paid(api, seeded, "captured")
    url = f"/3.1/subscriptions/{payment['subscriptionId']}"

    two = api.patch(url, json={"status": "stopped", "couponCode": "X"})
    assert two.status_code == 422
    assert two.json()["success"] is False
    assert two.json()["message"].startswith("Only one parameter can be changed at a time")
    empty = api.patch(url, json={})
    assert empty.status_code == 422
    assert empty.json()["message"] == (
        "One of 'expiresAt', 'couponCode', 'paymentDetailsId', 'status' is required"
    )
    bad = api.patch(url, json={"status": "paused"})
    assert bad.json()["message"] == "Field 'status' must be one of active, stopped, terminated"
    null = api.patch(url, json={"couponCode": None})
    assert null.json()["message"] == "Field 'couponCode' must not be null"
    wrong_type = api.patch(url, json={"couponCode": 5})
    assert wrong_type.json()["message"].startswith("Field 'couponCode' is invalid")
    bad_date = api.patch(url, json={"expiresAt": True})
    assert bad_date.json()["message"].startswith("Field 'expiresAt' must be unix seconds")

    moved = api.patch(url, json={"expiresAt": "2031-01-02T03:04:05Z"}).json()
    assert moved["subscription"]["dateTo"] == int(
        datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    )
    as_unix = api.patch(url, json={"expiresAt": 1924992000}).json()
    assert as_unix["subscription"]["dateTo"] == 1924992000
    coupon = api.patch(url, json={"couponCode": "SPRING"}).json()
    assert coupon["subscription"]["couponCode"] == "SPRING"

    details_id = add_details(api, seeded["customerId"], "another")
    ops.post("/_emulator/customers", json={"email": "z@example.com"})
    switched = api.patch(url, json={"paymentDetailsId": details_id})
    assert switched.json()["subscription"]["paymentDetailsId"] == details_id
    as_text = api.patch(url, json={"paymentDetailsId": str(details_id)})
    assert as_text.status_code == 422
    assert as_text.json()["message"].startswith("Field 'paymentDetailsId' is invalid")
    unknown = api.patch(url, json={"paymentDetailsId": 1})
    assert unknown.status_code == 404

    # Deprecated in the reference, still served.
    terminated = api.patch(url, json={"status": "terminated"}).json()
    assert terminated == {"success": True, "subscription": terminated["subscription"]}
    assert terminated["subscription"]["status"] == "terminated"
    assert api.patch(url, json={"status": "terminated"}).status_code == 200
    revived = api.patch(url, json={"status": "active"})
    assert revived.status_code == 422
    assert revived.json()["message"] == f"Subscription {payment['subscriptionId']} is terminated"
    (seen,) = ops.get("/_emulator/subscriptions").json()["items"]
    assert (seen["terminatedVia"], seen["terminationReason"]) == ("patch", None)


def test_terminate_subscription_with_a_reason(ops: httpx.Client, api: httpx.Client) -> None:
    payment = paid(api, purchase(ops), "captured")
    url = f"/3.1/subscriptions/{payment['subscriptionId']}/terminate"

    terminated = api.post(url, json={"terminationType": "userCancel"})
    assert terminated.status_code == 200, terminated.text
    body = terminated.json()
    assert body == {"success": True, "subscription": body["subscription"]}
    assert body["subscription"]["status"] == "terminated"
    assert body["subscription"]["nextPaymentAction"] is None
    (seen,) = ops.get("/_emulator/subscriptions").json()["items"]
    assert (seen["terminationReason"], seen["terminatedVia"]) == ("userCancel", "terminate")

    # Idempotent: a second terminate answers the terminated subscription, first reason kept.
    again = api.post(url, json={"terminationType": "paymentCancel"})
    assert again.status_code == 200
    assert again.json()["subscription"] == body["subscription"]
    (seen,) = ops.get("/_emulator/subscriptions").json()["items"]
    assert seen["terminationReason"] == "userCancel"
    revived = api.patch(
        f"/3.1/subscriptions/{payment['subscriptionId']}", json={"status": "active"}
    )
    assert revived.status_code == 422


@pytest.mark.parametrize(
    "reason", ["paymentCancel", "userCancel", "publisherCancel", "policyViolation"]
)
def test_terminate_accepts_every_documented_reason(
    ops: httpx.Client, api: httpx.Client, reason: str
) -> None:
    payment = paid(api, purchase(ops), "captured")
    response = api.post(
        f"/3.1/subscriptions/{payment['subscriptionId']}/terminate",
        json={"terminationType": reason},
    )
    assert response.status_code == 200
    assert ops.get("/_emulator/subscriptions").json()["items"][0]["terminationReason"] == reason


def test_terminate_refusals(ops: httpx.Client, api: httpx.Client) -> None:
    payment = paid(api, purchase(ops), "captured")
    url = f"/3.1/subscriptions/{payment['subscriptionId']}/terminate"
    cases: list[tuple[dict[str, Any] | None, str]] = [
        (
            {"terminationType": "bored"},
            "Field 'terminationType' must be one of paymentCancel, userCancel, "
            "publisherCancel, policyViolation",
        ),
        ({}, "Field 'terminationType' is required"),
        # The page does not show the key; the emulator reads it as terminationType only.
        ({"reason": "paymentCancel"}, "Field 'terminationType' is required"),
        (
            {"terminationType": 1},
            "Field 'terminationType' is invalid: Input should be a valid string",
        ),
        ({"status": "terminated"}, "Field 'terminationType' is required"),
        (None, "Request body is required"),
    ]
    for body, message in cases:
        response = api.post(url, json=body) if body is not None else api.post(url)
        assert response.status_code == 422, body
        assert response.json() == subscription_error(message)
    unknown = api.post("/3.1/subscriptions/999/terminate", json={"terminationType": "userCancel"})
    assert unknown.status_code == 404
    assert unknown.json() == subscription_error("Subscription 999 not found")
    assert ops.get("/_emulator/subscriptions").json()["items"][0]["status"] == "active"


def test_list_subscriptions(ops: httpx.Client, api: httpx.Client) -> None:
    ann = purchase(ops, email="ann@example.com")
    bob = purchase(ops, email="bob@example.com")
    ann_sub = paid(api, ann, "captured")["subscriptionId"]
    bob_sub = paid(api, bob, "captured")["subscriptionId"]
    api.post(f"/3.1/subscriptions/{bob_sub}/terminate", json={"terminationType": "userCancel"})

    def ids(**params: Any) -> list[int]:
        response = api.get("/3.1/subscriptions", params=params)
        assert response.status_code == 200, response.text
        return [s["subscriptionId"] for s in response.json()["items"]]

    assert api.get("/3.1/subscriptions").json() == {"items": [], "totalCount": 0}
    assert ids(customerId=ann["customerId"]) == [ann_sub]
    assert ids(offerId=DEFAULT_OFFER_ID) == [ann_sub, bob_sub]
    assert ids(paymentMethodId=MOLLIE) == [ann_sub, bob_sub]
    assert ids(offerId=DEFAULT_OFFER_ID, **{"status[]": "terminated"}) == [bob_sub]
    assert ids(offerId=DEFAULT_OFFER_ID, **{"status[]": ["active", "terminated"]}) == [
        ann_sub,
        bob_sub,
    ]
    page = api.get(
        "/3.1/subscriptions", params={"offerId": DEFAULT_OFFER_ID, "limit": 1, "offset": 1}
    )
    assert page.json()["totalCount"] == 2
    assert [s["subscriptionId"] for s in page.json()["items"]] == [bob_sub]
    full = api.get("/3.1/subscriptions", params={"customerId": ann["customerId"]}).json()
    assert full["items"][0] == subscription_of(api, {"subscriptionId": ann_sub})


def test_renewal_is_priced_from_the_subscription_and_extends_it(
    ops: httpx.Client, api: httpx.Client
) -> None:
    seeded = purchase(ops)
    details_id = add_details(api, seeded["customerId"])
    initial = paid(api, seeded, "captured", paymentDetailsId=str(details_id))
    subscription_id = initial["subscriptionId"]
    before = subscription_of(api, initial)
    # Repricing the offer does not change what an existing subscriber pays.
    ops.post("/_emulator/offers", json={"offerId": DEFAULT_OFFER_ID, "price": 12.99})

    created = api.post(
        "/3.1/orders",
        json=renewal_order_body(seeded["customerId"], subscription_id, paymentMethodId=MOLLIE),
    )
    assert created.status_code == 200, created.text
    order = created.json()["order"]
    assert order["totalPrice"] == 9.99
    assert order["subscriptionId"] == subscription_id
    assert order["paymentOperation"] == "recurring-payment"

    renewal_order = {"orderId": order["id"], "customerId": seeded["customerId"]}
    renewal_payment = {
        "paymentOperation": "recurring-payment",
        "subscriptionId": str(subscription_id),
        "paymentDetailsId": str(details_id),
        "externalPaymentId": "tr_renew",
    }
    renewal = paid(api, renewal_order, "captured", **renewal_payment)
    assert renewal["paymentDetailsId"] == details_id
    after = subscription_of(api, renewal)
    old_to = datetime.fromtimestamp(before["dateTo"], UTC)
    new_to = datetime.fromtimestamp(after["dateTo"], UTC)
    assert (new_to.year * 12 + new_to.month) - (old_to.year * 12 + old_to.month) == 1
    assert after["dateFrom"] == before["dateFrom"]

    # The same renewal recorded again is a duplicate and extends nothing.
    paid(api, renewal_order, "captured", **renewal_payment)
    assert subscription_of(api, renewal)["dateTo"] == after["dateTo"]
    assert ledger(ops)["duplicateRecords"] == 1


def test_renewal_order_refusals(ops: httpx.Client, api: httpx.Client) -> None:
    seeded = purchase(ops)
    subscription_id = paid(api, seeded, "captured")["subscriptionId"]
    ops.post("/_emulator/offers", json={"offerId": "S000000002_NL", "price": 1})
    base = renewal_order_body(seeded["customerId"], subscription_id)
    other_offer = api.post("/3.1/orders", json={**base, "offerId": "S000000002_NL"})
    assert other_offer.status_code == 422
    assert other_offer.json()["message"] == (
        f"Subscription {subscription_id} is for offer {DEFAULT_OFFER_ID}, not S000000002_NL"
    )
    stranger = ops.post("/_emulator/customers", json={"email": "s@example.com"}).json()["id"]
    not_theirs = api.post("/3.1/orders", json={**base, "customerId": stranger})
    assert not_theirs.status_code == 422
    unknown = api.post("/3.1/orders", json={**base, "subscriptionId": "1"})
    assert unknown.status_code == 404


def test_a_renewal_payment_must_name_the_orders_subscription(
    ops: httpx.Client, api: httpx.Client
) -> None:
    ann = purchase(ops, email="ann@example.com")
    ann_sub = paid(api, ann, "captured")["subscriptionId"]
    created = api.post("/3.1/orders", json=renewal_order_body(ann["customerId"], ann_sub))
    order = created.json()["order"]
    bob = purchase(ops, email="bob@example.com")
    bob_sub = paid(api, bob, "captured")["subscriptionId"]
    response = pay(
        api,
        {"orderId": order["id"], "customerId": ann["customerId"]},
        "captured",
        paymentOperation="recurring-payment",
        subscriptionId=str(bob_sub),
    )
    assert response.status_code == 422
    assert response.json() == {"message": f"Order {order['id']} belongs to subscription {ann_sub}"}


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
