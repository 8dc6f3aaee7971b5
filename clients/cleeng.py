"""Cleeng Core API 3.1 client on httpx.

It does not retry (Temporal owns retries); every failure leaves as a classified
`ServiceError`. Inbound JSON is parsed leniently: ids may be strings or numbers and are
normalised to strings, wrappers may be present or not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    _ids = field_validator("id", "customer_id", "payment_method_id", mode="before")(_id_to_str)

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
    refunded_amount: str | None = Field(default=None, alias=contract.REFUNDED_AMOUNT_KEY)
    currency: str | None = None

    _ids = field_validator(
        "id", "order_id", "payment_details_id", "subscription_id", mode="before"
    )(_id_to_str)
    _amounts = field_validator("total_amount", "refunded_amount", mode="before")(
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


def _items(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, Mapping):
        for key in (contract.LIST_ITEMS_KEY, "payments", "paymentDetails", "data"):
            value = body.get(key)
            if isinstance(value, list):
                return value
    return []


class CleengClient:
    """The calls the connector makes to Cleeng, each a single HTTP request."""

    def __init__(
        self,
        base_url: str,
        publisher_token: str,
        *,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"X-Publisher-Token": publisher_token, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        is_write = method != "GET"
        try:
            response = await self._http.request(method, path, json=json, params=params)
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
            return None
        try:
            return response.json()
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

    # Orders

    async def get_order(self, order_id: str) -> CleengOrder:
        body = await self._request("GET", f"/orders/{order_id}")
        try:
            return CleengOrder.model_validate(_unwrap(body, contract.ORDER_WRAPPER_KEY))
        except (ValueError, MoneyFormatError) as exc:
            raise ServiceError(
                SERVICE, FailureKind.PERMANENT, f"order {order_id} is malformed: {exc}"
            ) from exc

    async def create_order(self, fields: Mapping[str, Any]) -> CleengOrder:
        body = await self._request("POST", "/orders", json=dict(fields))
        return CleengOrder.model_validate(_unwrap(body, contract.ORDER_WRAPPER_KEY))

    # Payments

    async def create_payment(self, fields: Mapping[str, Any]) -> CleengPayment:
        body = await self._request("POST", "/payments", json=dict(fields))
        return CleengPayment.model_validate(_unwrap(body, contract.PAYMENT_WRAPPER_KEY))

    async def update_payment(self, payment_id: str, fields: Mapping[str, Any]) -> CleengPayment:
        body = await self._request("PATCH", f"/payments/{payment_id}", json=dict(fields))
        return CleengPayment.model_validate(_unwrap(body, contract.PAYMENT_WRAPPER_KEY))

    async def find_payments_for_order(self, order_id: str) -> list[CleengPayment] | None:
        """Payments already recorded for an order, or None where Cleeng has no such lookup."""
        try:
            body = await self._request(
                "GET", "/payments", params={contract.PAYMENTS_BY_ORDER_QUERY_PARAM: order_id}
            )
        except ServiceError as exc:
            if exc.status in (404, 405):
                logger.warning("Cleeng payment lookup by order is unavailable: %s", exc)
                return None
            raise
        return [CleengPayment.model_validate(item) for item in _items(body)]

    async def cancel_payment(self, payment_id: str) -> CleengPayment:
        body = await self._request("PATCH", f"/payments/{payment_id}/cancel")
        return CleengPayment.model_validate(_unwrap(body, contract.PAYMENT_WRAPPER_KEY))

    # Subscriptions

    async def get_subscription(self, subscription_id: str) -> CleengSubscription:
        body = await self._request("GET", f"/subscriptions/{subscription_id}")
        return CleengSubscription.model_validate(_unwrap(body, contract.SUBSCRIPTION_WRAPPER_KEY))

    async def update_subscription(
        self, subscription_id: str, fields: Mapping[str, Any]
    ) -> CleengSubscription:
        body = await self._request("PATCH", f"/subscriptions/{subscription_id}", json=dict(fields))
        return CleengSubscription.model_validate(_unwrap(body, contract.SUBSCRIPTION_WRAPPER_KEY))

    # Webhook subscriptions (PUT replaces the whole list of a topic)

    async def webhook_subscriptions(self) -> dict[str, list[dict[str, Any]]]:
        body = await self._request("GET", "/webhook_subscriptions")
        if isinstance(body, Mapping):
            return {str(topic): list(endpoints or []) for topic, endpoints in body.items()}
        # A list of {"topic": ..., "endpoints": [...]} is accepted too.
        result: dict[str, list[dict[str, Any]]] = {}
        for item in _items(body):
            if isinstance(item, Mapping) and "topic" in item:
                result[str(item["topic"])] = list(item.get("endpoints") or [])
        return result

    async def replace_webhook_subscriptions(
        self, topic: str, endpoints: list[dict[str, Any]]
    ) -> None:
        await self._request("PUT", f"/webhook_subscriptions/{topic}", json=endpoints)

    # Payment details

    async def create_payment_details(self, fields: Mapping[str, Any]) -> CleengPaymentDetails:
        body = await self._request("POST", "/payment_details", json=dict(fields))
        return CleengPaymentDetails.model_validate(
            _unwrap(body, contract.PAYMENT_DETAILS_WRAPPER_KEY)
        )

    async def authorised_payments(self, payment_details_id: str) -> list[CleengPayment]:
        body = await self._request(
            "GET", f"/payment_details/{payment_details_id}/authorised_payments"
        )
        return [CleengPayment.model_validate(item) for item in _items(body)]

    async def delete_payment_details(self, payment_details_id: str) -> None:
        """Irreversible; details already gone count as deleted."""
        try:
            await self._request("DELETE", f"/payment_details/{payment_details_id}")
        except ServiceError as error:
            if error.status != 404:
                raise

    async def list_customer_payment_details(self, customer_id: str) -> list[CleengPaymentDetails]:
        body = await self._request("GET", f"/customers/{customer_id}/payment_details")
        return [CleengPaymentDetails.model_validate(item) for item in _items(body)]
