"""The Cleeng emulator is as strict as Cleeng's Core API 3.1 reference: undocumented endpoints
answer 404, wrong JSON types and out-of-range ids answer 422 naming the field, and each
conditional requirement of the reference is enforced. A connector guessing wrong fails here
(or in its own tests against the emulator) instead of in production."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulators.cleeng.config import DEFAULT_OFFER_ID, CleengEmulatorConfig
from tests.emulators.cleeng_support import (
    MOLLIE,
    CleengServer,
    initial_payment_body,
    running_cleeng,
    subscription_error,
)

TOKEN = "strict-test-token"
INT32_MAX = 2**31 - 1
DROP = object()  # marks a key to remove from the valid body


@pytest.fixture(scope="module")
def cleeng() -> Iterator[CleengServer]:
    with running_cleeng(CleengEmulatorConfig(publisher_token=TOKEN, id_seed=17)) as server:
        yield server


@pytest.fixture
def seeded(ops: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = ops.post("/_emulator/seed/purchase", json={}).json()
    return body


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied; a value of DROP removes the key."""
    body = {**base, **changes}
    return {key: value for key, value in body.items() if value is not DROP}


def assert_refused(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()) >= {"message"}
    assert response.json()["message"].startswith(message), response.json()["message"]


def details_body(customer_id: int) -> dict[str, Any]:
    return {"customerId": customer_id, "token": "cst_1:mdt_1", "paymentMethodId": MOLLIE}


def payment_body(seeded: dict[str, Any], status: str = "captured") -> dict[str, Any]:
    return initial_payment_body(seeded, status, externalPaymentId="tr_1")


def recorded(ops: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ops.get("/_emulator/payments").json()["items"]
    return items


# ------------------------------------------------------------------ undocumented endpoints


def test_endpoints_core_api_does_not_document_answer_404(
    ops: httpx.Client, api: httpx.Client, seeded: dict[str, Any]
) -> None:
    """Each answers 404 even for resources that exist: the route itself is not served."""
    details = api.post("/3.1/payment_details", json=details_body(seeded["customerId"]))
    details_id = details.json()["data"]["id"]
    api.post("/3.1/payments", json=payment_body(seeded))
    removed = [
        ("GET", "/3.1/payments", {"orderId": str(seeded["orderId"])}),
        ("GET", "/3.1/payments", {"customerId": str(seeded["customerId"])}),
        ("GET", "/3.1/payments", None),
        ("GET", f"/3.1/customers/{seeded['customerId']}/payment_details", None),
        ("GET", f"/3.1/payment_details/{details_id}", None),
        ("POST", f"/3.1/payment_details/{details_id}/authorised_payments", None),
        ("GET", f"/3.1/orders/{seeded['orderId']}/payments", None),
        ("DELETE", f"/3.1/orders/{seeded['orderId']}", None),
    ]
    for method, path, params in removed:
        response = api.request(method, path, params=params)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"message": f"Route {method} {path} not found"}
        assert "allow" not in response.headers


def test_undocumented_subscription_routes_use_the_subscription_error_shape(
    api: httpx.Client,
) -> None:
    response = api.delete("/3.1/subscriptions/123")
    assert response.status_code == 404
    assert response.json() == subscription_error("Route DELETE /3.1/subscriptions/123 not found")


def test_the_openapi_document_lists_only_documented_core_routes(ops: httpx.Client) -> None:
    paths = ops.get("/openapi.json").json()["paths"]
    core = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/3.1")
        for method in operations
    }
    assert core == {
        ("POST", "/3.1/orders"),
        ("GET", "/3.1/orders/{order_id}"),
        ("POST", "/3.1/payments"),
        ("PATCH", "/3.1/payments/{payment_id}"),
        ("PATCH", "/3.1/payments/{payment_id}/cancel"),
        ("POST", "/3.1/payment_details"),
        ("DELETE", "/3.1/payment_details/{details_id}"),
        ("GET", "/3.1/payment_details/{details_id}/authorised_payments"),
        ("GET", "/3.1/subscriptions"),
        ("GET", "/3.1/subscriptions/{subscription_id}"),
        ("PATCH", "/3.1/subscriptions/{subscription_id}"),
        ("POST", "/3.1/subscriptions/{subscription_id}/terminate"),
        ("GET", "/3.1/webhook_subscriptions"),
        ("PUT", "/3.1/webhook_subscriptions/{topic}"),
    }


# ------------------------------------------------------------------------ POST /3.1/orders


@pytest.fixture
def order_body(seeded: dict[str, Any]) -> dict[str, Any]:
    """A valid create-an-order body for the seeded customer; each test changes one thing."""
    return {
        "customerId": seeded["customerId"],
        "offerId": DEFAULT_OFFER_ID,
        "currency": "EUR",
        "country": "NL",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"customerId": DROP}, "Field 'customerId' is required"),
        ({"offerId": DROP}, "Field 'offerId' is required"),
        ({"customerId": "CUSTOMER"}, "Field 'customerId' is invalid"),
        ({"customerId": INT32_MAX + 1}, "Field 'customerId' is invalid"),
        ({"customerId": -(2**31) - 1}, "Field 'customerId' is invalid"),
        ({"customerId": 1.5}, "Field 'customerId' is invalid"),
        ({"customerId": True}, "Field 'customerId' is invalid"),
        ({"offerId": 619117184}, "Field 'offerId' is invalid"),
        ({"currency": 978}, "Field 'currency' is invalid"),
        ({"country": 528}, "Field 'country' is invalid"),
        ({"country": "NLD"}, "Field 'country' is invalid"),
        ({"paymentMethodId": str(MOLLIE)}, "Field 'paymentMethodId' is invalid"),
        ({"paymentMethodId": INT32_MAX + 1}, "Field 'paymentMethodId' is invalid"),
        ({"couponCode": 10}, "Field 'couponCode' is invalid"),
        ({"taxRate": 0.21}, "Field 'taxRate' is invalid"),
        ({"billingAddress": "Main St 1"}, "Field 'billingAddress' is invalid"),
        ({"customerIP": 2130706433}, "Field 'customerIP' is invalid"),
        ({"buyAsAGift": "true"}, "Field 'buyAsAGift' is invalid"),
        ({"deliveryDetails": []}, "Field 'deliveryDetails' is invalid"),
        ({"paymentOperation": 1}, "Field 'paymentOperation' is invalid"),
        (
            {"paymentOperation": "recurring-payment", "subscriptionId": 123123123},
            "Field 'subscriptionId' is invalid",
        ),
        (
            {"paymentOperation": "recurring-payment", "subscriptionId": "S123"},
            "Field 'subscriptionId' is invalid",
        ),
    ],
)
def test_create_order_types(
    api: httpx.Client, order_body: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    assert api.post("/3.1/orders", json=order_body).status_code == 200
    assert_refused(api.post("/3.1/orders", json=merged(order_body, changes)), 422, message)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"currency": DROP}, "Field 'currency' is required unless 'customerIP' is given"),
        ({"country": DROP}, "Field 'country' is required unless 'customerIP' is given"),
        (
            {"currency": DROP, "country": DROP, "customerIP": "not-an-ip"},
            "Field 'customerIP' must be an IP address",
        ),
        (
            {"paymentOperation": "recurring-payment"},
            "Field 'subscriptionId' is required with 'paymentOperation'",
        ),
        ({"subscriptionId": "123"}, "Field 'paymentOperation' is required with 'subscriptionId'"),
        (
            {"paymentOperation": "initial-payment", "subscriptionId": "123"},
            "Field 'paymentOperation' must be recurring-payment when 'subscriptionId' is given",
        ),
        (
            {"paymentOperation": "gift", "subscriptionId": "123"},
            "Field 'paymentOperation' must be one of initial-payment, recurring-payment, "
            "initial-free-transaction",
        ),
    ],
)
def test_create_order_conditional_requirements(
    api: httpx.Client, order_body: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    assert_refused(api.post("/3.1/orders", json=merged(order_body, changes)), 422, message)


def test_order_path_id_is_an_int32(api: httpx.Client) -> None:
    assert_refused(
        api.get(f"/3.1/orders/{INT32_MAX + 1}"), 422, "Path parameter 'orderId' must be an int32"
    )
    assert_refused(api.get(f"/3.1/orders/{INT32_MAX}"), 404, f"Order {INT32_MAX} not found")


# ---------------------------------------------------------------------- POST /3.1/payments


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"orderId": DROP}, "Field 'orderId' is required"),
        ({"status": DROP}, "Field 'status' is required"),
        ({"paymentOperation": DROP}, "Field 'paymentOperation' is required"),
        # create-a-payment types the ids as strings: a JSON number is refused.
        ({"orderId": 123}, "Field 'orderId' is invalid"),
        ({"orderId": None}, "Field 'orderId' is invalid"),
        ({"orderId": "order-1"}, "Field 'orderId' is invalid"),
        ({"orderId": ""}, "Field 'orderId' is invalid"),
        (
            {"paymentDetails": DROP, "paymentDetailsId": 123456789},
            "Field 'paymentDetailsId' is invalid",
        ),
        ({"status": 1}, "Field 'status' is invalid"),
        ({"externalPaymentId": 42}, "Field 'externalPaymentId' is invalid"),
        ({"rejectedReason": False}, "Field 'rejectedReason' is invalid"),
        ({"paymentDetails": "pd_1"}, "Field 'paymentDetails' is invalid"),
        (
            {"paymentDetails": {"token": "t", "paymentMethodId": MOLLIE}},
            "Field 'paymentDetails.customerId' is required",
        ),
        (
            {"paymentDetails": {"customerId": "1", "token": "t", "paymentMethodId": MOLLIE}},
            "Field 'paymentDetails.customerId' is invalid",
        ),
        (
            {"paymentDetails": {"customerId": 1, "token": "t", "paymentMethodId": "1"}},
            "Field 'paymentDetails.paymentMethodId' is invalid",
        ),
        (
            {"paymentDetails": {"customerId": 1, "token": "", "paymentMethodId": 1}},
            "Field 'paymentDetails.token' must not be empty",
        ),
        (
            {"paymentOperation": "recurring-payment", "subscriptionId": 123},
            "Field 'subscriptionId' is invalid",
        ),
        (
            {"status": "paid"},
            "Field 'status' must be one of rejected, authorized, cancelled, captured",
        ),
        ({"status": "authorised"}, "Field 'status' must be one of"),
        ({"status": "refunded"}, "Field 'status' must be one of"),
        ({"paymentOperation": "gift"}, "Field 'paymentOperation' must be one of"),
        # The reference's conditional requirements.
        (
            {"paymentDetails": DROP},
            "Field 'paymentDetailsId' is required unless 'paymentDetails' are given",
        ),
        (
            {"paymentDetailsId": "123456789"},
            "Give either 'paymentDetailsId' or 'paymentDetails', not both",
        ),
        (
            {"paymentOperation": "recurring-payment"},
            "Field 'subscriptionId' is required for recurring-payment",
        ),
    ],
)
def test_create_payment_types_and_conditional_requirements(
    ops: httpx.Client,
    api: httpx.Client,
    seeded: dict[str, Any],
    changes: dict[str, Any],
    message: str,
) -> None:
    body = merged(payment_body(seeded), changes)
    assert_refused(api.post("/3.1/payments", json=body), 422, message)
    assert recorded(ops) == []


@pytest.mark.parametrize("operation", ["initial-payment", "initial-free-transaction"])
def test_create_payment_accepts_the_documented_operations(
    api: httpx.Client, seeded: dict[str, Any], operation: str
) -> None:
    body = {**payment_body(seeded), "paymentOperation": operation}
    response = api.post("/3.1/payments", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["payment"]["paymentOperation"] == operation


def test_create_payment_ignores_unknown_keys(api: httpx.Client, seeded: dict[str, Any]) -> None:
    body = {**payment_body(seeded), "amount": "9.99", "paymentMethod": "card"}
    assert api.post("/3.1/payments", json=body).status_code == 200


def test_missing_body_and_bad_json_are_named(api: httpx.Client) -> None:
    missing = api.post("/3.1/payments", json={"status": "captured"})
    assert missing.status_code == 422
    assert missing.json() == {"message": "Field 'orderId' is required"}
    no_body = api.post("/3.1/payments")
    assert no_body.json() == {"message": "Request body is required"}
    broken = api.post(
        "/3.1/payments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json() == {"message": "Request body is not valid JSON"}


# --------------------------------------------------------------- PATCH /3.1/payments/{id}


@pytest.fixture
def captured(api: httpx.Client, seeded: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/3.1/payments", json=payment_body(seeded))
    payment: dict[str, Any] = response.json()["payment"]
    return payment


def refund(payment: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "refunded",
        "orderId": payment["orderId"],
        "paymentOperation": "initial-payment",
        "refundedReason": "customer asked",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": DROP}, "Field 'status' is required"),
        ({"status": 3}, "Field 'status' is invalid"),
        # update-a-payment types orderId int32 (create-a-payment: string).
        ("order-as-text", "Field 'orderId' is invalid"),
        ({"orderId": INT32_MAX + 1}, "Field 'orderId' is invalid"),
        ({"paymentOperation": 1}, "Field 'paymentOperation' is invalid"),
        ({"refundedReason": 1}, "Field 'refundedReason' is invalid"),
        ({"refundedAmount": "5.99"}, "Field 'refundedAmount' is invalid"),
        ({"refundedAmount": 0}, "Field 'refundedAmount' is invalid"),
        ({"refundedAmount": -1.5}, "Field 'refundedAmount' is invalid"),
        ({"refundedAmount": True}, "Field 'refundedAmount' is invalid"),
        ({"refundType": 1}, "Field 'refundType' is invalid"),
        ({"refundType": "gift"}, "Field 'refundType' must be one of refund, chargeback"),
        ({"externalPaymentId": 7}, "Field 'externalPaymentId' is invalid"),
        ({"paymentDetails": []}, "Field 'paymentDetails' is invalid"),
        (
            {"status": "cancelled"},
            "Field 'status' must be one of rejected, captured, refunded",
        ),
        ({"status": "authorized"}, "Field 'status' must be one of"),
    ],
)
def test_update_payment_types(
    ops: httpx.Client,
    api: httpx.Client,
    captured: dict[str, Any],
    changes: dict[str, Any] | str,
    message: str,
) -> None:
    if changes == "order-as-text":
        changes = {"orderId": str(captured["orderId"])}
    assert isinstance(changes, dict)
    body = merged(refund(captured), changes)
    assert_refused(api.patch(f"/3.1/payments/{captured['id']}", json=body), 422, message)
    assert recorded(ops)[0]["status"] == "captured"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"orderId": DROP}, "Field 'orderId' is required when status is refunded"),
        (
            {"paymentOperation": DROP},
            "Field 'paymentOperation' is required when status is refunded",
        ),
        ({"refundedReason": DROP}, "Field 'refundedReason' is required when status is refunded"),
        ({"refundedReason": " "}, "Field 'refundedReason' is required when status is refunded"),
        (
            {"status": "rejected", "refundedReason": DROP},
            "Field 'rejectedReason' is required when status is rejected",
        ),
        (
            {"status": "captured", "refundedAmount": 1.0},
            "Field 'refundedAmount' is only allowed when status is refunded",
        ),
        (
            {"status": "captured", "refundType": "refund"},
            "Field 'refundType' is only allowed when status is refunded",
        ),
    ],
)
def test_update_payment_conditional_requirements(
    ops: httpx.Client,
    api: httpx.Client,
    captured: dict[str, Any],
    body: dict[str, Any],
    message: str,
) -> None:
    patch = merged(refund(captured), body)
    assert_refused(api.patch(f"/3.1/payments/{captured['id']}", json=patch), 422, message)
    assert recorded(ops)[0]["refundedAmount"] == 0.0


def test_rejecting_an_authorisation_needs_a_reason(
    ops: httpx.Client, api: httpx.Client, seeded: dict[str, Any]
) -> None:
    authorized = api.post("/3.1/payments", json=payment_body(seeded, "authorized")).json()
    url = f"/3.1/payments/{authorized['payment']['id']}"
    assert_refused(
        api.patch(url, json={"status": "rejected"}),
        422,
        "Field 'rejectedReason' is required when status is rejected",
    )
    done = api.patch(url, json={"status": "rejected", "rejectedReason": "expired card"})
    assert done.json()["payment"]["rejectedReason"] == "expired card"


def test_payment_path_id_is_an_int32(api: httpx.Client) -> None:
    big = INT32_MAX + 1
    for response in (
        api.patch(f"/3.1/payments/{big}", json={"status": "captured"}),
        api.patch(f"/3.1/payments/{big}/cancel"),
    ):
        assert_refused(response, 422, "Path parameter 'paymentId' must be an int32")
    assert_refused(api.patch("/3.1/payments/abc/cancel"), 404, "Payment abc not found")


# ------------------------------------------------------------------ POST /3.1/payment_details


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"customerId": DROP}, "Field 'customerId' is required"),
        ({"token": DROP}, "Field 'token' is required"),
        ({"paymentMethodId": DROP}, "Field 'paymentMethodId' is required"),
        ({"customerId": "123"}, "Field 'customerId' is invalid"),
        ({"customerId": INT32_MAX + 1}, "Field 'customerId' is invalid"),
        ({"token": 12345}, "Field 'token' is invalid"),
        ({"paymentMethodId": str(MOLLIE)}, "Field 'paymentMethodId' is invalid"),
        ({"paymentMethodId": 0}, "Field 'paymentMethodId' is invalid"),
        ({"paymentMethodId": -5}, "Field 'paymentMethodId' is invalid"),
        ({"paymentMethodId": None}, "Field 'paymentMethodId' is invalid"),
        ({"paymentMethodId": INT32_MAX + 1}, "Field 'paymentMethodId' is invalid"),
        ({"paymentMethodSpecificParams": "visa"}, "Field 'paymentMethodSpecificParams' is invalid"),
        ({"active": "true"}, "Field 'active' is invalid"),
        ({"active": 1}, "Field 'active' is invalid"),
    ],
)
def test_create_payment_details_types(
    ops: httpx.Client,
    api: httpx.Client,
    seeded: dict[str, Any],
    changes: dict[str, Any],
    message: str,
) -> None:
    body = merged(details_body(seeded["customerId"]), changes)
    assert_refused(api.post("/3.1/payment_details", json=body), 422, message)
    assert ops.get("/_emulator/payment-details").json()["items"] == []


def test_details_path_id_is_an_int32(api: httpx.Client) -> None:
    big = INT32_MAX + 1
    for response in (
        api.delete(f"/3.1/payment_details/{big}"),
        api.get(f"/3.1/payment_details/{big}/authorised_payments"),
    ):
        assert_refused(response, 422, "Path parameter 'paymentDetailsId' must be an int32")


# -------------------------------------------------------------------------- subscriptions


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"customerId": "abc"}, "Query parameter 'customerId' is invalid"),
        ({"customerId": str(INT32_MAX + 1)}, "Query parameter 'customerId' is invalid"),
        ({"paymentMethodId": "1.5"}, "Query parameter 'paymentMethodId' is invalid"),
        ({"offerId": DEFAULT_OFFER_ID, "limit": 0}, "Query parameter 'limit' is invalid"),
        ({"offerId": DEFAULT_OFFER_ID, "limit": 101}, "Query parameter 'limit' is invalid"),
        ({"offerId": DEFAULT_OFFER_ID, "offset": -1}, "Query parameter 'offset' is invalid"),
    ],
)
def test_list_subscriptions_query_types(
    api: httpx.Client, params: dict[str, Any], message: str
) -> None:
    response = api.get("/3.1/subscriptions", params=params)
    assert response.status_code == 422
    assert response.json()["success"] is False
    assert response.json()["message"].startswith(message)


def test_list_subscriptions_limits(ops: httpx.Client, api: httpx.Client) -> None:
    customer = ops.get("/_emulator/customers").json()["items"][0]["id"]
    for _ in range(25):
        ops.post(
            "/_emulator/subscriptions", json={"customerId": customer, "offerId": DEFAULT_OFFER_ID}
        )
    default = api.get("/3.1/subscriptions", params={"customerId": customer}).json()
    assert (len(default["items"]), default["totalCount"]) == (20, 25)
    most = api.get("/3.1/subscriptions", params={"customerId": customer, "limit": 100}).json()
    assert len(most["items"]) == 25
    only_paging = api.get("/3.1/subscriptions", params={"limit": 100}).json()
    assert only_paging == {"items": [], "totalCount": 0}


def test_subscription_path_id_is_an_int32(api: httpx.Client) -> None:
    big = INT32_MAX + 1
    for response in (
        api.get(f"/3.1/subscriptions/{big}"),
        api.patch(f"/3.1/subscriptions/{big}", json={"couponCode": "X"}),
        api.post(f"/3.1/subscriptions/{big}/terminate", json={"terminationType": "userCancel"}),
    ):
        assert response.status_code == 422
        assert response.json() == subscription_error(
            "Path parameter 'subscriptionId' must be an int32"
        )


def test_a_trailing_slash_is_not_redirected(api: httpx.Client, seeded: dict[str, Any]) -> None:
    for method, path in [
        ("POST", "/3.1/payments/"),
        ("GET", f"/3.1/orders/{seeded['orderId']}/"),
        ("GET", "/3.1/webhook_subscriptions/"),
    ]:
        response = api.request(method, path, json={})
        assert response.status_code == 404, path
        assert response.json() == {"message": f"Route {method} {path} not found"}
    subscriptions = api.get("/3.1/subscriptions/")
    assert subscriptions.status_code == 404
    assert subscriptions.json()["subscription"] is None


def test_only_the_documented_key_carries_a_refund_amount(
    api: httpx.Client, captured: dict[str, Any]
) -> None:
    """An unknown key is ignored like a real API does: a misspelt amount refunds the rest."""
    body = {**refund(captured), "refunded_amount": 1.0, "amount": 1.0}
    response = api.patch(f"/3.1/payments/{captured['id']}", json=body)
    assert response.status_code == 200
    assert response.json()["payment"]["refundedAmount"] == 9.99
