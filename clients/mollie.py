"""Mollie gateway adapter over the official `mollie-api-python` client.

The official client is synchronous (requests), so every call runs in a thread: the gateway's
own pool of `threads` threads when given one (the worker sizes it with `MOLLIE_THREADS`), else
the event loop's default executor. The adapter never lets the client retry or invent
idempotency keys: keys come from business identity, retries from Temporal. Failures leave as
classified `ServiceError`s; amounts enter and leave as `Money`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from mollie.api.client import Client
from mollie.api.error import (
    RequestError,
    RequestSetupError,
    ResponseError,
    ResponseHandlingError,
)
from mollie.api.objects.customer import Customer
from mollie.api.objects.payment import Payment
from requests.adapters import HTTPAdapter

from clients.errors import FailureKind, ServiceError, kind_for_status
from domain.money import Money

logger = logging.getLogger(__name__)

SERVICE = "mollie"
OPERATION_METADATA_KEY = "operation"
# The workflow that made a payment, in its metadata: a payment without it is not the
# connector's.
WORKFLOW_METADATA_KEY = "workflowId"
_T = TypeVar("_T")
_STATUS_IN_MESSAGE = re.compile(r"status code: (\d{3})")
# The most items Mollie returns per page of a list (https://docs.mollie.com/reference/pagination).
_PAGE_SIZE = 250


@dataclass(frozen=True, kw_only=True)
class GatewayPayment:
    id: str
    status: str
    amount: Money
    checkout_url: str | None
    customer_id: str | None
    mandate_id: str | None
    failure_reason: str | None
    method: str | None
    metadata: Mapping[str, Any]
    sequence_type: str | None
    amount_remaining: Money | None = None
    created_at: str | None = None
    amount_refunded: Money | None = None
    amount_charged_back: Money | None = None


@dataclass(frozen=True, kw_only=True)
class GatewayMandate:
    id: str
    status: str
    method: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class GatewayRefund:
    id: str
    status: str
    amount: Money
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class GatewayChargeback:
    id: str
    amount: Money
    reason: str | None
    reversed_at: str | None = None
    """`reversedAt` ("get-payment-chargeback"): set once the chargeback was reversed."""
    created_at: str | None = None
    """`createdAt` ("get-payment-chargeback"): orders a payment's chargebacks."""


@dataclass(frozen=True, kw_only=True)
class GatewayMethod:
    """A payment method Mollie offers for the amount asked about ("list-methods")."""

    id: str
    description: str
    minimum_amount: Money | None
    maximum_amount: Money | None


@dataclass(frozen=True, kw_only=True)
class GatewayPaymentEvent:
    """A refund or chargeback as the account-wide lists show it ("list-all-refunds",
    "list-all-chargebacks"): which payment it belongs to, and when Mollie created it."""

    id: str
    payment_id: str
    created_at: str


def _refund_from_json(data: Mapping[str, Any]) -> GatewayRefund:
    metadata = data.get("metadata")
    return GatewayRefund(
        id=str(data["id"]),
        status=str(data["status"]),
        amount=money_from_mollie(data["amount"]),
        metadata=metadata if isinstance(metadata, Mapping) else {},
    )


def money_to_mollie(amount: Money) -> dict[str, str]:
    return {"currency": amount.currency, "value": amount.to_decimal_string()}


def money_from_mollie(amount: Mapping[str, Any]) -> Money:
    return Money.from_decimal(str(amount["value"]), str(amount["currency"]))


def _payment_from_json(data: Mapping[str, Any]) -> GatewayPayment:
    links = data.get("_links") or {}
    checkout = links.get("checkout") or {}
    details = data.get("details") or {}
    metadata = data.get("metadata")
    return GatewayPayment(
        id=str(data["id"]),
        status=str(data["status"]),
        amount=money_from_mollie(data["amount"]),
        checkout_url=checkout.get("href"),
        customer_id=data.get("customerId"),
        mandate_id=data.get("mandateId"),
        failure_reason=details.get("failureReason") if isinstance(details, Mapping) else None,
        method=data.get("method"),
        metadata=metadata if isinstance(metadata, Mapping) else {},
        sequence_type=data.get("sequenceType"),
        amount_remaining=_optional_money(data, "amountRemaining"),
        created_at=data.get("createdAt"),
        amount_refunded=_optional_money(data, "amountRefunded"),
        amount_charged_back=_optional_money(data, "amountChargedBack"),
    )


def _method_from_json(data: Mapping[str, Any]) -> GatewayMethod:
    return GatewayMethod(
        id=str(data["id"]),
        description=str(data.get("description") or data["id"]),
        minimum_amount=_optional_money(data, "minimumAmount"),
        maximum_amount=_optional_money(data, "maximumAmount"),
    )


def _parse_time(value: str) -> datetime:
    # Mollie writes ISO 8601 with an offset ("2026-11-27T08:00:00+00:00"); Python 3.11 reads
    # that, and a trailing Z as well.
    return datetime.fromisoformat(value)


def _optional_money(data: Mapping[str, Any], key: str) -> Money | None:
    return money_from_mollie(data[key]) if data.get(key) else None


def classify_mollie_error(exc: Exception, *, is_write: bool) -> ServiceError:
    """The single place that maps the official client's exceptions to failure kinds."""
    if isinstance(exc, ResponseError):
        status = int(exc.status) if exc.status is not None else 500
        return ServiceError(
            SERVICE, kind_for_status(status), str(exc), status=status, field=exc.field
        )
    if isinstance(exc, RequestSetupError):
        # Bad id prefix or missing key: a programming or configuration error.
        return ServiceError(SERVICE, FailureKind.PERMANENT, str(exc))
    if isinstance(exc, RequestError):
        # Transport failure: a POST may have been applied, so the outcome is unknown.
        kind = FailureKind.UNKNOWN_OUTCOME if is_write else FailureKind.RETRYABLE
        return ServiceError(SERVICE, kind, "could not reach Mollie")
    if isinstance(exc, ResponseHandlingError):
        match = _STATUS_IN_MESSAGE.search(str(exc))
        http_status = int(match.group(1)) if match else None
        if http_status is not None and 400 <= http_status < 500 and http_status not in (409, 429):
            return ServiceError(SERVICE, kind_for_status(http_status), str(exc), status=http_status)
        kind = FailureKind.UNKNOWN_OUTCOME if is_write else FailureKind.RETRYABLE
        return ServiceError(SERVICE, kind, "unreadable reply from Mollie", status=http_status)
    raise exc


def _install_pooled_session(client: Client, threads: int) -> None:
    """Give the client the session it would build for itself on its first request, with a
    connection pool of `threads` kept-alive connections to the API host.

    Built up front because the client builds it lazily (`if not hasattr(self, "_client")` in
    `_perform_http_call_apikey`): threads making their first request at once would each build
    a session and all but one of their connections would be lost.

    Thread safety this relies on (mollie-api-python 4, requests 2, urllib3 2): after
    construction the client's state (key, endpoint, timeout, user agent) is only read, and
    its resources keep no per-call state; a `requests.Session` whose settings nobody changes
    only reads them per request, and its cookie jar locks itself (http.cookiejar's RLock);
    the adapter's urllib3 pool hands each connection to one thread at a time (a locked
    queue), and its pool manager guards its table of pools with a lock.
    """
    session = requests.Session()
    session.verify = True  # as the client sets it
    client._client = session
    # The client's own retry set-up: with retry=0 (Temporal owns retries) it mounts nothing.
    client._setup_retry()
    prefix = f"{urlsplit(client.api_endpoint).scheme}://"
    configured = session.get_adapter(prefix)
    # Keep whatever retry behaviour the client configured (none): the default adapter's
    # Retry(0, read=False) makes exactly one attempt per request.
    max_retries = configured.max_retries if isinstance(configured, HTTPAdapter) else 0
    # One host, so one pool (pool_connections); as many connections in it as threads, so no
    # thread's connection is closed for lack of room when it returns to the pool.
    session.mount(
        prefix, HTTPAdapter(pool_connections=1, pool_maxsize=threads, max_retries=max_retries)
    )


class MollieGateway:
    """Gateway operations the workflows need, as async methods."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float = 10.0,
        threads: int = 0,
        before_request: Callable[[], None] = lambda: None,
    ) -> None:
        """`before_request` runs before every request, each page of a list included (the
        worker heartbeats there, so a long walk shows it is alive).

        `threads` > 0 gives the gateway a pool of that many threads of its own and keeps one
        HTTP connection alive per thread; 0 runs requests on the event loop's default
        executor (min(32, cpus + 4) threads, shared with everything else in the process) over
        the session the official client builds for itself."""
        if threads < 0:
            raise ValueError(f"threads must be 0 or more, got {threads}")
        self._client = Client(
            api_endpoint=base_url, timeout=(3, int(max(1, timeout_seconds))), retry=0
        )
        self._client.set_api_key(api_key)
        self._before_request = before_request
        self._executor: ThreadPoolExecutor | None = None
        if threads:
            _install_pooled_session(self._client, threads)
            self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mollie")

    async def aclose(self) -> None:
        """Wait for requests still running in the gateway's threads, then close its
        connections. The gateway cannot be used afterwards."""
        if self._executor is not None:
            # shutdown(wait=True) blocks until the threads finish their request: not on the
            # event loop's thread.
            await asyncio.get_running_loop().run_in_executor(
                None, partial(self._executor.shutdown, wait=True, cancel_futures=True)
            )
        session: requests.Session | None = getattr(self._client, "_client", None)
        if session is not None:
            session.close()

    def _customer_stub(self, customer_id: str) -> Customer:
        # Sub-resources (mandates, payments) need only a parent carrying its id.
        return Customer({"id": customer_id}, self._client)  # type: ignore[no-untyped-call]

    def _payment_stub(self, payment_id: str) -> Payment:
        return Payment({"id": payment_id}, self._client)  # type: ignore[no-untyped-call]

    async def _call(self, is_write: bool, func: Callable[[], _T]) -> _T:
        """One request, in a thread (the official client blocks)."""
        self._before_request()
        # As asyncio.to_thread does: the thread sees the caller's context variables.
        in_context = partial(contextvars.copy_context().run, func)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, in_context)
        except (ResponseError, RequestError, ResponseHandlingError) as exc:
            raise classify_mollie_error(exc, is_write=is_write) from exc

    async def _every_item(
        self, first_page: Callable[[], Any], *, max_pages: int | None = None
    ) -> AsyncIterator[Any]:
        """Every item of a paginated Mollie list, following `_links.next` page after page.

        `first_page` asks for the list (the official client's `list()`, a `PaginationList`
        whose `get_next()` fetches the next page); each page is one `_call`. `max_pages` caps
        the pages read; None reads them all."""
        page = await self._call(False, first_page)
        pages_read = 1
        while True:
            for item in page:
                yield item
            if (max_pages is not None and pages_read >= max_pages) or not page.has_next():
                return
            page = await self._call(False, page.get_next)
            pages_read += 1

    # Methods

    async def list_methods(
        self,
        *,
        sequence_type: str,
        amount: Money | None = None,
        billing_country: str | None = None,
        include_wallets: Sequence[str] = (),
    ) -> list[GatewayMethod]:
        """The enabled methods Mollie offers for a payment of this sequence type, amount and
        billing country ("list-methods"); `sequence_type="first"` lists only the methods that
        can start a recurring sequence. One request: the list is not paginated."""
        params: dict[str, Any] = {"sequenceType": sequence_type}
        if amount is not None:
            # The client writes a dict as amount[value]=...&amount[currency]=...
            params["amount"] = money_to_mollie(amount)
        if billing_country:
            params["billingCountry"] = billing_country
        if include_wallets:
            params["includeWallets"] = ",".join(include_wallets)

        def fetch() -> list[GatewayMethod]:
            return [_method_from_json(method) for method in self._client.methods.list(**params)]

        return await self._call(False, fetch)

    # Customers

    async def find_customer(self, cleeng_customer_id: str) -> str | None:
        """The newest Mollie customer created for this Cleeng customer, if any.

        Mollie cannot search customers by metadata, so this walks every page of the list
        (newest first) until it finds one: a returning customer created long ago must be
        found, or they would get a second Mollie customer and lose their mandates.
        """
        customers = self._every_item(lambda: self._client.customers.list(limit=_PAGE_SIZE))
        async for customer in customers:
            metadata = customer.get("metadata") or {}
            if str(metadata.get("cleengCustomerId")) == cleeng_customer_id:
                return str(customer["id"])
        return None

    async def create_customer(
        self, *, cleeng_customer_id: str, email: str | None, idempotency_key: str
    ) -> str:
        body: dict[str, Any] = {
            "name": f"Cleeng customer {cleeng_customer_id}",
            "metadata": {"cleengCustomerId": cleeng_customer_id},
        }
        if email:
            body["email"] = email

        def create() -> str:
            customer = self._client.customers.create(body, idempotency_key=idempotency_key)
            return str(customer["id"])

        return await self._call(True, create)

    # Payments

    async def create_payment(self, body: Mapping[str, Any], idempotency_key: str) -> GatewayPayment:
        """Create a payment; the same key and body always yield the same payment."""

        def create() -> GatewayPayment:
            payment = self._client.payments.create(dict(body), idempotency_key=idempotency_key)
            return _payment_from_json(payment)

        return await self._call(True, create)

    async def update_payment_metadata(
        self, payment_id: str, metadata: Mapping[str, Any], idempotency_key: str
    ) -> GatewayPayment:
        """Replace the payment's metadata ("update-payment" allows it at any status)."""

        def update() -> GatewayPayment:
            payment = self._client.payments.update(
                payment_id, {"metadata": dict(metadata)}, idempotency_key=idempotency_key
            )
            return _payment_from_json(payment)

        return await self._call(True, update)

    async def get_payment(self, payment_id: str) -> GatewayPayment:
        return await self._call(
            False, lambda: _payment_from_json(self._client.payments.get(payment_id))
        )

    async def find_customer_payment(
        self, customer_id: str, operation_key: str, *, max_pages: int | None = None
    ) -> GatewayPayment | None:
        """The customer's payment created for `operation_key` (metadata match), if any.

        Mollie forgets idempotency keys after an hour; this is how a late retry adopts the
        payment it already created instead of charging again. Every page of the customer's
        payments is read (newest first), so an older payment is never missed; `max_pages`
        caps that only when a caller asks for it.
        """
        payments = self._every_item(
            lambda: self._customer_stub(customer_id).payments.list(limit=_PAGE_SIZE),
            max_pages=max_pages,
        )
        async for payment in payments:
            metadata = payment.get("metadata") or {}
            if (
                isinstance(metadata, Mapping)
                and metadata.get(OPERATION_METADATA_KEY) == operation_key
            ):
                return _payment_from_json(payment)
        return None

    async def workflow_payments(self, customer_id: str, workflow_id: str) -> list[GatewayPayment]:
        """Every payment of the customer whose metadata names `workflow_id`, newest first:
        what one billing cycle asked Mollie for, across its attempts and runs. Reads every
        page of the customer's payments ("list-customer-payments")."""
        payments = self._every_item(
            lambda: self._customer_stub(customer_id).payments.list(limit=_PAGE_SIZE)
        )
        found: list[GatewayPayment] = []
        async for payment in payments:
            metadata = payment.get("metadata") or {}
            if isinstance(metadata, Mapping) and metadata.get(WORKFLOW_METADATA_KEY) == workflow_id:
                found.append(_payment_from_json(payment))
        return found

    async def payments_created_since(
        self, since: datetime, *, max_pages: int
    ) -> tuple[list[GatewayPayment], bool]:
        """Every payment created at or after `since`, newest first, and whether the walk
        reached `since` (False when `max_pages` pages ran out first).

        "list-payments" answers newest first, so the walk stops at the first older payment."""
        found: list[GatewayPayment] = []
        pages = self._every_item(
            lambda: self._client.payments.list(limit=_PAGE_SIZE), max_pages=max_pages
        )
        async for item in pages:
            payment = _payment_from_json(item)
            if payment.created_at is None or _parse_time(payment.created_at) < since:
                return found, True
            found.append(payment)
        return found, len(found) < max_pages * _PAGE_SIZE

    async def authorized_payments(self) -> list[GatewayPayment]:
        """Every payment of the account that holds funds (status `authorized`), newest first.

        For operators looking for open card holds. Mollie's payments list has no status filter
        (only `from`, `limit` and `sort`), so every page is read: one GET per 250 payments.
        """
        payments = self._every_item(lambda: self._client.payments.list(limit=_PAGE_SIZE))
        return [
            _payment_from_json(payment)
            async for payment in payments
            if payment.get("status") == "authorized"
        ]

    async def get_mandate(self, customer_id: str, mandate_id: str) -> GatewayMandate:
        def fetch() -> GatewayMandate:
            mandate = self._customer_stub(customer_id).mandates.get(mandate_id)
            return GatewayMandate(
                id=str(mandate["id"]),
                status=str(mandate["status"]),
                method=mandate.get("method"),
                details=mandate.get("details") or {},
            )

        try:
            return await self._call(False, fetch)
        except ServiceError as error:
            if error.status != 410:
                raise
            # Mollie's reference: "Trying to retrieve a revoked mandate will result in a 410".
            # Gone means it can no longer be charged, which callers know as status `invalid`.
            return GatewayMandate(id=mandate_id, status="invalid", method=None, details={})

    # Manual capture

    async def create_capture(
        self, payment_id: str, *, description: str, idempotency_key: str
    ) -> str:
        """Capture the whole authorised amount; answers the capture id."""

        def create() -> str:
            capture = self._payment_stub(payment_id).captures.create(
                {"description": description}, idempotency_key=idempotency_key
            )
            return str(capture["id"])

        return await self._call(True, create)

    async def capture_statuses(self, payment_id: str) -> list[str]:
        """The status of every capture of the payment (`pending`, `succeeded`, `failed`)."""
        captures = self._every_item(
            lambda: self._payment_stub(payment_id).captures.list(limit=_PAGE_SIZE)
        )
        return [str(capture.get("status")) async for capture in captures]

    async def release_authorization(self, payment_id: str, idempotency_key: str) -> None:
        """Ask Mollie to release an authorisation (asynchronous; confirm with a GET)."""

        def release() -> None:
            try:
                self._client.payments.release_authorization(
                    payment_id, idempotency_key=idempotency_key
                )
            except ResponseHandlingError as exc:
                # Mollie answers 202 with an empty body, which the client cannot decode
                # although the call succeeded.
                if "status code: 202" not in str(exc):
                    raise

        await self._call(True, release)

    # Refunds

    async def create_refund(
        self,
        payment_id: str,
        *,
        amount: Money,
        description: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> GatewayRefund:
        body = {
            "amount": money_to_mollie(amount),
            "description": description,
            "metadata": dict(metadata),
        }

        def create() -> GatewayRefund:
            refund = self._payment_stub(payment_id).refunds.create(
                body, idempotency_key=idempotency_key
            )
            return _refund_from_json(refund)

        return await self._call(True, create)

    async def list_refunds(self, payment_id: str) -> list[GatewayRefund]:
        # Every page: refund_payment adopts an earlier refund by its metadata.
        refunds = self._every_item(
            lambda: self._payment_stub(payment_id).refunds.list(limit=_PAGE_SIZE)
        )
        return [_refund_from_json(refund) async for refund in refunds]

    async def get_refund(self, payment_id: str, refund_id: str) -> GatewayRefund:
        return await self._call(
            False,
            lambda: _refund_from_json(self._payment_stub(payment_id).refunds.get(refund_id)),
        )

    async def list_chargebacks(self, payment_id: str) -> list[GatewayChargeback]:
        chargebacks = self._every_item(
            lambda: self._payment_stub(payment_id).chargebacks.list(limit=_PAGE_SIZE)
        )
        result = []
        async for chargeback in chargebacks:
            reason = chargeback.get("reason") or {}
            result.append(
                GatewayChargeback(
                    id=str(chargeback["id"]),
                    amount=money_from_mollie(chargeback["amount"]),
                    reason=(
                        reason.get("description") or reason.get("code")
                        if isinstance(reason, Mapping)
                        else str(reason)
                    ),
                    reversed_at=(
                        str(chargeback["reversedAt"]) if chargeback.get("reversedAt") else None
                    ),
                    created_at=(
                        str(chargeback["createdAt"]) if chargeback.get("createdAt") else None
                    ),
                )
            )
        return result

    # Mandates

    async def revoke_mandate(self, customer_id: str, mandate_id: str) -> None:
        """Revoke a mandate; one already revoked or gone counts as revoked."""

        def revoke() -> None:
            self._customer_stub(customer_id).mandates.delete(
                mandate_id, idempotency_key=f"revoke:{mandate_id}"
            )

        try:
            await self._call(True, revoke)
        except ServiceError as error:
            if error.status in (404, 410):
                return
            if error.status != 422:
                raise
            # What Mollie answers for a second revoke is not documented (the emulator says
            # 422): read the mandate back and accept the refusal only if it is revoked.
            try:
                mandate = await self.get_mandate(customer_id, mandate_id)
            except ServiceError as lookup:
                if lookup.status == 404:
                    return
                raise error from lookup
            if mandate.status != "invalid":
                raise

    # The account-wide lists of refunds and chargebacks (reconciliation)

    async def _events_created_since(
        self, first_page: Callable[[], Any], since: datetime, *, max_pages: int
    ) -> tuple[list[GatewayPaymentEvent], bool]:
        """The items of an account-wide list created at or after `since`, newest first, and
        whether the walk reached `since` (False when `max_pages` pages ran out first). The
        lists answer newest first (the default `sort=desc`), so the walk stops at the first
        older item."""
        found: list[GatewayPaymentEvent] = []
        async for item in self._every_item(first_page, max_pages=max_pages):
            created = item.get("createdAt")
            if not created or _parse_time(str(created)) < since:
                return found, True
            found.append(
                GatewayPaymentEvent(
                    id=str(item["id"]), payment_id=str(item["paymentId"]), created_at=str(created)
                )
            )
        return found, len(found) < max_pages * _PAGE_SIZE

    async def refunds_created_since(
        self, since: datetime, *, max_pages: int
    ) -> tuple[list[GatewayPaymentEvent], bool]:
        """Every refund of the account created at or after `since` ("list-all-refunds",
        `GET /v2/refunds`), newest first, whichever payment it belongs to."""
        return await self._events_created_since(
            lambda: self._client.refunds.list(limit=_PAGE_SIZE), since, max_pages=max_pages
        )

    async def chargebacks_created_since(
        self, since: datetime, *, max_pages: int
    ) -> tuple[list[GatewayPaymentEvent], bool]:
        """Every chargeback of the account created at or after `since`
        ("list-all-chargebacks", `GET /v2/chargebacks`), newest first."""
        return await self._events_created_since(
            lambda: self._client.chargebacks.list(limit=_PAGE_SIZE), since, max_pages=max_pages
        )
