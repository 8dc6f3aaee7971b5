"""Cleeng Core API 3.1 client on httpx.

It does not retry (Temporal owns retries); every failure leaves as a classified
`ServiceError`. Inbound JSON is parsed leniently: ids may be strings or numbers and are
normalised to strings, wrappers may be present or not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clients import cleeng_contract as contract
from clients.errors import FailureKind, ServiceError, kind_for_status, parse_retry_after
from domain.money import Money, MoneyFormatError

logger = logging.getLogger(__name__)

SERVICE = "cleeng"


def _id_to_str(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


class _CleengModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class CleengOrder(_CleengModel):
    id: str
    customer_id: str = Field(alias="customerId")
    customer_email: str | None = Field(default=None, alias="customerEmail")
    offer_id: str = Field(alias="offerId")
    total_price: str = Field(alias="totalPrice")
    currency: str
    country: str | None = None
    payment_method_id: str | None = Field(default=None, alias="paymentMethodId")
    expiration_date: datetime | None = Field(default=None, alias="expirationDate")

    _ids = field_validator("id", "customer_id", "payment_method_id", mode="before")(_id_to_str)

    @field_validator("expiration_date", mode="before")
    @classmethod
    def _lenient_date(cls, value: Any) -> Any:
        return parse_cleeng_time(value) if value not in (None, "") else None

    @field_validator("total_price", mode="before")
    @classmethod
    def _price_as_text(cls, value: Any) -> Any:
        # Keep the decimal as written; Money.from_decimal parses it exactly.
        return str(value) if isinstance(value, int | float) else value

    def amount(self) -> Money:
        return Money.from_decimal(self.total_price, self.currency)


class CleengSubscription(_CleengModel):
    id: str = Field(alias="subscriptionId")
    status: str | None = None
    date_to: datetime | None = Field(default=None, alias="dateTo")
    payment_details_id: str | None = Field(default=None, alias="paymentDetailsId")

    _ids = field_validator("id", "payment_details_id", mode="before")(_id_to_str)

    @field_validator("date_to", mode="before")
    @classmethod
    def _lenient_date(cls, value: Any) -> Any:
        return parse_cleeng_time(value) if value is not None else None


class CleengPayment(_CleengModel):
    id: str
    order_id: str | None = Field(default=None, alias="orderId")
    status: str
    external_payment_id: str | None = Field(default=None, alias="externalPaymentId")
    payment_details_id: str | None = Field(default=None, alias="paymentDetailsId")
    payment_operation: str | None = Field(default=None, alias="paymentOperation")
    subscription_id: str | None = Field(default=None, alias="subscriptionId")
    total_amount: str | None = Field(default=None, alias="totalAmount")
    currency: str | None = None

    _ids = field_validator(
        "id", "order_id", "payment_details_id", "subscription_id", mode="before"
    )(_id_to_str)
    _amounts = field_validator("total_amount", mode="before")(
        lambda value: str(value) if isinstance(value, int | float) else value
    )


class CleengPaymentDetails(_CleengModel):
    id: str
    customer_id: str | None = Field(default=None, alias="customerId")
    token: str | None = None
    active: bool | None = None
    payment_method_id: str | None = Field(default=None, alias="paymentMethodId")

    _ids = field_validator("id", "customer_id", "payment_method_id", mode="before")(_id_to_str)


def parse_cleeng_time(value: Any) -> datetime:
    """Cleeng dates come as unix seconds or ISO 8601 with `Z` or an offset; answer UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, tz=UTC)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        moment = datetime.fromtimestamp(int(value), tz=UTC)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError(f"not a date: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _unwrap(body: Any, key: str) -> Any:
    """Cleeng sometimes wraps a resource ({"order": {...}}); accept both forms."""
    if isinstance(body, Mapping) and isinstance(body.get(key), Mapping):
        return body[key]
    return body


def _unreadable(what: str, body: Any) -> ServiceError:
    """A 2xx answer in a shape the connector cannot read. Retryable, not permanent: it is no
    refusal by Cleeng, and a caller must never take it for "nothing there" (the deactivation
    saga would release no authorisation; registration would drop other connectors' endpoints).
    Temporal keeps retrying, visibly, until Cleeng answers a readable list or a worker that reads
    the new shape is deployed; the step then completes by itself."""
    shape = (
        f"an object with keys {sorted(str(key) for key in body)[:8]}"
        if isinstance(body, Mapping)
        else "an empty body"
        if body is None
        else f"a JSON {type(body).__name__}"
    )
    return ServiceError(
        SERVICE, FailureKind.RETRYABLE, f"{what}: answered {shape}, not a list the connector reads"
    )


def _items(body: Any, what: str) -> list[Any]:
    """The items of a list answer: a bare array, or one under a key the client knows. Any other
    shape is an error naming the call `what`, never an empty list."""
    if isinstance(body, list):
        return body
    if isinstance(body, Mapping):
        for key in (contract.LIST_ITEMS_KEY, "payments", "paymentDetails", "data"):
            value = body.get(key)
            if isinstance(value, list):
                return value
    raise _unreadable(what, body)


def _lists_topics(value: Any) -> bool:
    """A list of `{"topic": ..., "endpoints": [...]}` items."""
    return isinstance(value, list) and any(
        isinstance(item, Mapping) and "topic" in item for item in value
    )


def _server_time(response: httpx.Response) -> datetime:
    """The moment the answer was made, by the server's clock (`Date`), else by ours."""
    stamp = response.headers.get("Date")
    if stamp:
        try:
            return parsedate_to_datetime(stamp).astimezone(UTC)
        except (TypeError, ValueError):
            logger.warning("Cleeng sent an unreadable Date header: %r", stamp)
    return datetime.now(UTC)


def _invalid(message: str) -> ServiceError:
    """A request the connector must not send: permanent, nothing reached Cleeng."""
    return ServiceError(SERVICE, FailureKind.PERMANENT, message)


def int32(value: str | int, field: str) -> int:
    """An id the reference types int32, checked before it goes on the wire."""
    parsed = contract.parse_int32_id(value.strip() if isinstance(value, str) else value)
    if parsed is None:
        raise _invalid(f"{field} must be a positive int32 id, got {value!r}")
    return parsed


def id_text(value: str | int, field: str) -> str:
    """An id the reference types string (e.g. orderId in "create-a-payment")."""
    return str(int32(value, field))


def _segment(value: str | int, field: str) -> str:
    """A path segment: an id checked to its documented type, and escaped in any case."""
    return quote(str(int32(value, field)), safe="")


def _encode(body: Mapping[str, Any], numbers: Mapping[str, Decimal] | None = None) -> bytes:
    """JSON for a request; `numbers` are written from exact decimal text, so money never
    passes through a float on its way to Cleeng."""
    text = json.dumps(dict(body), separators=(",", ":"))
    for key, value in (numbers or {}).items():
        if not value.is_finite():
            raise _invalid(f"{key} must be a finite number, got {value}")
        member = f"{json.dumps(key)}:{format(value, 'f')}"
        text = f"{text[:-1]},{member}}}" if text != "{}" else f"{{{member}}}"
    return text.encode()


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(model: type[_Model], body: Any, what: str) -> _Model:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        # Cleeng answered 2xx with a body we cannot read: a contract mismatch an operator
        # must see; retrying the same request cannot fix it.
        raise ServiceError(
            SERVICE, FailureKind.PERMANENT, f"{what}: unexpected answer from Cleeng: {exc}"
        ) from exc


class CleengClient:
    """The calls the connector makes to Cleeng, each a single HTTP request.

    Every call is listed, with its reference page, in docs/cleeng-contract.md; ids are checked
    to the type the reference gives them and escaped before they reach a URL.
    """

    def __init__(
        self,
        base_url: str,
        publisher_token: str,
        *,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
        before_request: Callable[[], None] = lambda: None,
    ) -> None:
        """`before_request` runs before every request (the worker heartbeats there, so an
        activity of several requests shows it is alive between them). `limits` sizes the
        connection pool (httpx's default: 100 connections, 20 kept alive)."""
        self._before_request = before_request
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"X-Publisher-Token": publisher_token, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        return (await self._exchange(method, path, body=body, params=params))[0]

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[Any, httpx.Response]:
        """One request: the decoded body and the response it came in."""
        is_write = method != "GET"
        headers = {"Content-Type": "application/json"} if body is not None else None
        self._before_request()
        try:
            response = await self._http.request(
                method, path, content=body, params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            # A write that timed out may have been applied: the caller must look it up.
            kind = FailureKind.UNKNOWN_OUTCOME if is_write else FailureKind.RETRYABLE
            raise ServiceError(SERVICE, kind, f"{method} {path} timed out") from exc
        except httpx.TransportError as exc:
            kind = FailureKind.UNKNOWN_OUTCOME if is_write else FailureKind.RETRYABLE
            raise ServiceError(SERVICE, kind, f"{method} {path} failed: {exc!r}") from exc
        if response.status_code >= 400:
            raise self._error(method, path, response)
        if not response.content:
            return None, response
        try:
            return response.json(), response
        except ValueError as exc:
            raise ServiceError(
                SERVICE,
                FailureKind.RETRYABLE,
                f"{method} {path} answered non-JSON with HTTP {response.status_code}",
                status=response.status_code,
            ) from exc

    @staticmethod
    def _error(method: str, path: str, response: httpx.Response) -> ServiceError:
        message = ""
        try:
            body = response.json()
            if isinstance(body, Mapping):
                message = str(body.get("message") or body.get("error") or "")
        except ValueError:
            message = response.text[:200]
        return ServiceError(
            SERVICE,
            kind_for_status(response.status_code),
            f"{method} {path}: {message or response.reason_phrase}",
            status=response.status_code,
            retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
        )

    async def _resource(
        self,
        model: type[_Model],
        wrapper: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
    ) -> _Model:
        """One request whose answer is one resource, wrapped (`{wrapper: {...}}`) or bare."""
        answer = await self._request(method, path, body=body)
        return _parse(model, _unwrap(answer, wrapper), f"{method} {path}")

    # Orders

    async def get_order(self, order_id: str) -> CleengOrder:
        """GET /3.1/orders/{orderId} ("get-an-order")."""
        body = await self._request("GET", f"/orders/{_segment(order_id, 'orderId')}")
        try:
            return CleengOrder.model_validate(_unwrap(body, contract.ORDER_WRAPPER_KEY))
        except (ValueError, MoneyFormatError) as exc:
            raise ServiceError(
                SERVICE, FailureKind.PERMANENT, f"order {order_id} is malformed: {exc}"
            ) from exc

    async def order_expired(self, order_id: str) -> bool:
        """Has the order expired unpaid, by Cleeng's own clock? ("create-an-order": orders
        expire after 24 hours unless the payment is captured.) The order's expirationDate is
        compared with the answer's `Date` header, else with this machine's clock."""
        body, response = await self._exchange("GET", f"/orders/{_segment(order_id, 'orderId')}")
        order = _parse(CleengOrder, _unwrap(body, contract.ORDER_WRAPPER_KEY), "GET /orders")
        if order.expiration_date is None:
            return False
        return order.expiration_date <= _server_time(response)

    async def create_renewal_order(
        self,
        *,
        customer_id: str,
        offer_id: str,
        subscription_id: str,
        currency: str,
        country: str,
        payment_method_id: str | int,
    ) -> CleengOrder:
        """POST /3.1/orders ("create-an-order") for a recurring payment."""
        fields = {
            "customerId": int32(customer_id, "customerId"),
            "offerId": offer_id,
            "currency": currency,
            "country": country,
            "paymentMethodId": int32(payment_method_id, "paymentMethodId"),
            "paymentOperation": contract.PAYMENT_OPERATION_RECURRING,
            # "the identifier of Cleeng subscription, e.g. 123123123": typed string there.
            "subscriptionId": id_text(subscription_id, "subscriptionId"),
        }
        return await self._resource(
            CleengOrder, contract.ORDER_WRAPPER_KEY, "POST", "/orders", body=_encode(fields)
        )

    # Payments

    async def create_payment(
        self,
        *,
        order_id: str,
        status: str,
        payment_operation: str,
        external_payment_id: str,
        payment_details_id: str | None = None,
        inline_details: Mapping[str, Any] | None = None,
        rejected_reason: str | None = None,
        subscription_id: str | None = None,
    ) -> CleengPayment:
        """POST /3.1/payments ("create-a-payment"): orderId, paymentDetailsId and
        subscriptionId are strings there; one of paymentDetailsId / paymentDetails is
        required."""
        fields: dict[str, Any] = {
            "orderId": id_text(order_id, "orderId"),
            "status": status,
            "paymentOperation": payment_operation,
            "externalPaymentId": external_payment_id,
        }
        if payment_details_id is not None:
            fields["paymentDetailsId"] = id_text(payment_details_id, "paymentDetailsId")
        elif inline_details is not None:
            fields["paymentDetails"] = dict(inline_details)
        else:
            raise _invalid("a payment needs paymentDetailsId or paymentDetails")
        if rejected_reason is not None:
            fields["rejectedReason"] = rejected_reason
        if subscription_id is not None:
            fields["subscriptionId"] = id_text(subscription_id, "subscriptionId")
        return await self._resource(
            CleengPayment, contract.PAYMENT_WRAPPER_KEY, "POST", "/payments", body=_encode(fields)
        )

    async def update_payment(
        self,
        payment_id: str,
        *,
        status: str,
        external_payment_id: str | None = None,
        rejected_reason: str | None = None,
    ) -> CleengPayment:
        """PATCH /3.1/payments/{paymentId} ("update-a-payment") to captured or rejected."""
        fields: dict[str, Any] = {"status": status}
        if external_payment_id is not None:
            fields["externalPaymentId"] = external_payment_id
        if rejected_reason is not None:
            fields["rejectedReason"] = rejected_reason
        path = f"/payments/{_segment(payment_id, 'paymentId')}"
        return await self._resource(
            CleengPayment, contract.PAYMENT_WRAPPER_KEY, "PATCH", path, body=_encode(fields)
        )

    async def record_refund(
        self,
        payment_id: str,
        *,
        order_id: str,
        payment_operation: str,
        refunded_reason: str,
        amount: Money,
        refund_type: str,
    ) -> CleengPayment:
        """PATCH /3.1/payments/{paymentId} with status refunded: orderId (int32),
        paymentOperation and refundedReason are required there; the amount is this refund's."""
        fields: dict[str, Any] = {
            "status": contract.PAYMENT_STATUS_REFUNDED,
            "orderId": int32(order_id, "orderId"),
            "paymentOperation": payment_operation,
            "refundedReason": refunded_reason,
            contract.REFUND_TYPE_KEY: refund_type,
        }
        if amount.minor <= 0:
            raise _invalid(f"a refunded amount must be positive, got {amount}")
        path = f"/payments/{_segment(payment_id, 'paymentId')}"
        return await self._resource(
            CleengPayment,
            contract.PAYMENT_WRAPPER_KEY,
            "PATCH",
            path,
            body=_encode(fields, {contract.REFUNDED_AMOUNT_KEY: amount.to_decimal()}),
        )

    async def cancel_payment(self, payment_id: str) -> CleengPayment:
        """PATCH /3.1/payments/{paymentId}/cancel ("cancel-a-payment"), no body."""
        path = f"/payments/{_segment(payment_id, 'paymentId')}/cancel"
        return await self._resource(CleengPayment, contract.PAYMENT_WRAPPER_KEY, "PATCH", path)

    # Subscriptions

    async def get_subscription(self, subscription_id: str) -> CleengSubscription:
        """GET /3.1/subscriptions/{subscriptionId} ("get-a-subscription")."""
        path = f"/subscriptions/{_segment(subscription_id, 'subscriptionId')}"
        return await self._resource(
            CleengSubscription, contract.SUBSCRIPTION_WRAPPER_KEY, "GET", path
        )

    async def terminate_subscription(self, subscription_id: str, reason: str) -> None:
        """POST /3.1/subscriptions/{subscriptionId}/terminate ("terminate-subscription"); the
        reason goes under an inferred key (contract.TERMINATION_REASON_KEY). Used only when
        configured (CLEENG_TERMINATION_CALL=terminate)."""
        if reason not in contract.TERMINATION_REASONS:
            raise _invalid(f"unknown termination reason {reason!r}")
        path = f"/subscriptions/{_segment(subscription_id, 'subscriptionId')}/terminate"
        await self._request("POST", path, body=_encode({contract.TERMINATION_REASON_KEY: reason}))

    async def terminate_subscription_by_patch(self, subscription_id: str) -> None:
        """PATCH /3.1/subscriptions/{id} {"status": "terminated"}: the call the Connector
        Checklist and the Termination guide (developers.cleeng.com/docs/termination) name for
        subscriptionReadyForTermination; the connector's default."""
        path = f"/subscriptions/{_segment(subscription_id, 'subscriptionId')}"
        await self._request("PATCH", path, body=_encode({"status": "terminated"}))

    # Webhook subscriptions (PUT replaces the whole list of a topic)

    async def webhook_subscriptions(self) -> dict[str, list[dict[str, Any]]]:
        """GET /3.1/webhook_subscriptions ("list-webhook-subscriptions"): each topic's
        endpoints. Read as `{topic: [endpoint, ...]}` or as a list of `{"topic", "endpoints"}`
        (bare or under a known key); every endpoint must be an object with a `url`. Anything
        else is an error, never "no endpoints": registration PUTs each topic's whole list, so a
        list it did not read would drop other connectors' endpoints."""
        what = "GET /webhook_subscriptions"
        body = await self._request("GET", "/webhook_subscriptions")
        if isinstance(body, Mapping) and not any(_lists_topics(v) for v in body.values()):
            pairs = list(body.items())
        else:
            pairs = []
            for item in _items(body, what):
                if not (isinstance(item, Mapping) and isinstance(item.get("topic"), str)):
                    raise _unreadable(what, item)
                pairs.append((item["topic"], item.get("endpoints")))
        result: dict[str, list[dict[str, Any]]] = {}
        for topic, endpoints in pairs:
            if not isinstance(endpoints, list) or not all(
                isinstance(e, Mapping) and isinstance(e.get("url"), str) for e in endpoints
            ):
                raise _unreadable(f"{what} (topic {topic})", endpoints)
            result[str(topic)] = [dict(e) for e in endpoints]
        return result

    async def replace_webhook_subscriptions(
        self, topic: str, endpoints: list[dict[str, Any]]
    ) -> None:
        path = f"/webhook_subscriptions/{quote(topic, safe='')}"
        await self._request("PUT", path, body=json.dumps(endpoints).encode())

    # Payment details

    async def create_payment_details(
        self,
        *,
        customer_id: str,
        token: str,
        payment_method_id: str | int,
        card_params: Mapping[str, str],
        active: bool = True,
    ) -> CleengPaymentDetails:
        """POST /3.1/payment_details ("create-payment-details"): customerId and
        paymentMethodId are int32 there."""
        fields = payment_details_fields(
            customer_id=customer_id,
            token=token,
            payment_method_id=payment_method_id,
            card_params=card_params,
            active=active,
        )
        return await self._resource(
            CleengPaymentDetails,
            contract.PAYMENT_DETAILS_WRAPPER_KEY,
            "POST",
            "/payment_details",
            body=_encode(fields),
        )

    async def authorised_payments(self, payment_details_id: str) -> list[CleengPayment]:
        """GET /3.1/payment_details/{id}/authorised_payments
        ("list-a-customer-authorised-payments")."""
        path = f"/payment_details/{_segment(payment_details_id, 'paymentDetailsId')}"
        what = f"GET {path}/authorised_payments"
        body = await self._request("GET", f"{path}/authorised_payments")
        return [_parse(CleengPayment, item, what) for item in _items(body, what)]

    async def delete_payment_details(self, payment_details_id: str) -> None:
        """DELETE /3.1/payment_details/{id} ("delete-payment-details"); irreversible.
        Details already gone count as deleted."""
        path = f"/payment_details/{_segment(payment_details_id, 'paymentDetailsId')}"
        try:
            await self._request("DELETE", path)
        except ServiceError as error:
            if error.status != 404:
                raise


def payment_details_fields(
    *,
    customer_id: str,
    token: str,
    payment_method_id: str | int,
    card_params: Mapping[str, str],
    active: bool,
) -> dict[str, Any]:
    """The body of "create-payment-details", also sent inline as a payment's paymentDetails."""
    fields: dict[str, Any] = {
        "customerId": int32(customer_id, "customerId"),
        "token": token,
        "paymentMethodId": int32(payment_method_id, "paymentMethodId"),
        "active": active,
    }
    if card_params:
        fields["paymentMethodSpecificParams"] = dict(card_params)
    return fields
