"""Records to Mollie's HAL+JSON wire format, with links built on the emulator's own base URL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from .clock import iso
from .errors import HAL_JSON, MollieError
from .methods import MethodQuery, PaymentMethod
from .models import FINAL_STATUSES, OPEN, Capture, Chargeback, Customer, Mandate, Payment, Refund
from .store import MollieStore

DOCS = "https://docs.mollie.com/reference"
DEFAULT_LIMIT = 50
MAX_LIMIT = 250


def link(href: str, kind: str = HAL_JSON) -> dict[str, str]:
    return {"href": href, "type": kind}


def doc_link(page: str) -> dict[str, str]:
    return link(f"{DOCS}/{page}", "text/html")


def customer_json(customer: Customer, store: MollieStore, base: str) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": link(f"{base}/v2/customers/{customer.id}"),
        "dashboard": link(f"{base}/#{customer.id}", "text/html"),
    }
    if store.mandates_by_customer.get(customer.id):
        links["mandates"] = link(f"{base}/v2/customers/{customer.id}/mandates")
    if store.payments_by_customer.get(customer.id):
        links["payments"] = link(f"{base}/v2/customers/{customer.id}/payments")
    links["documentation"] = doc_link("get-customer")
    return {
        "resource": "customer",
        "id": customer.id,
        "mode": customer.mode,
        "name": customer.name,
        "email": customer.email,
        "locale": customer.locale,
        "metadata": customer.metadata,
        "createdAt": iso(customer.created_at),
        "_links": links,
    }


def mandate_json(mandate: Mandate, base: str) -> dict[str, Any]:
    return {
        "resource": "mandate",
        "id": mandate.id,
        "mode": mandate.mode,
        "status": mandate.status,
        "method": mandate.method,
        "details": mandate.details,
        "mandateReference": mandate.mandate_reference,
        "signatureDate": mandate.signature_date,
        "createdAt": iso(mandate.created_at),
        "_links": {
            "self": link(f"{base}/v2/customers/{mandate.customer_id}/mandates/{mandate.id}"),
            "customer": link(f"{base}/v2/customers/{mandate.customer_id}"),
            "documentation": doc_link("get-mandate"),
        },
    }


def payment_json(payment: Payment, store: MollieStore, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resource": "payment",
        "id": payment.id,
        "mode": payment.mode,
        "createdAt": iso(payment.created_at),
        "amount": payment.amount.to_json(),
        "description": payment.description,
        "method": payment.method,
        "metadata": payment.metadata,
        "status": payment.status,
        "isCancelable": store.is_cancelable(payment),
    }
    for name, moment in (
        ("authorizedAt", payment.authorized_at),
        ("paidAt", payment.paid_at),
        ("canceledAt", payment.canceled_at),
        ("expiresAt", payment.expires_at),
        ("expiredAt", payment.expired_at),
        ("failedAt", payment.failed_at),
    ):
        if moment is not None:
            body[name] = iso(moment)
    if payment.status == "paid":
        body["amountRefunded"] = store.amount_refunded(payment).to_json()
        body["amountRemaining"] = store.amount_remaining(payment).to_json()
    if payment.capture_ids:
        body["amountCaptured"] = store.amount_captured(payment).to_json()
    if payment.chargeback_ids:
        body["amountChargedBack"] = store.amount_charged_back(payment).to_json()
    body.update(
        {
            "locale": payment.locale,
            "profileId": payment.profile_id,
            "sequenceType": payment.sequence_type,
            "redirectUrl": payment.redirect_url,
            "cancelUrl": payment.cancel_url,
            "webhookUrl": payment.webhook_url,
            "captureMode": payment.capture_mode,
        }
    )
    if payment.capture_before is not None:
        body["captureBefore"] = iso(payment.capture_before)
    if payment.customer_id:
        body["customerId"] = payment.customer_id
    if payment.mandate_id:
        body["mandateId"] = payment.mandate_id
    body["details"] = payment.details or None
    body["_links"] = _payment_links(payment, base)
    return body


def _payment_links(payment: Payment, base: str) -> dict[str, Any]:
    links: dict[str, Any] = {"self": link(f"{base}/v2/payments/{payment.id}")}
    if payment.status == OPEN and payment.sequence_type != "recurring":
        links["checkout"] = link(f"{base}/checkout/{payment.id}", "text/html")
    links["dashboard"] = link(f"{base}/#{payment.id}", "text/html")
    if payment.customer_id:
        links["customer"] = link(f"{base}/v2/customers/{payment.customer_id}")
    if payment.customer_id and payment.mandate_id:
        links["mandate"] = link(
            f"{base}/v2/customers/{payment.customer_id}/mandates/{payment.mandate_id}"
        )
    if payment.refund_ids:
        links["refunds"] = link(f"{base}/v2/payments/{payment.id}/refunds")
    if payment.capture_ids:
        links["captures"] = link(f"{base}/v2/payments/{payment.id}/captures")
    if payment.chargeback_ids:
        links["chargebacks"] = link(f"{base}/v2/payments/{payment.id}/chargebacks")
    if payment.mode == "test" and payment.status not in FINAL_STATUSES:
        links["changePaymentState"] = link(
            f"{base}/_emulator/payments/{payment.id}/status", "text/html"
        )
    links["documentation"] = doc_link("get-payment")
    return links


def capture_json(capture: Capture, base: str) -> dict[str, Any]:
    return {
        "resource": "capture",
        "id": capture.id,
        "mode": capture.mode,
        "description": capture.description,
        "amount": capture.amount.to_json(),
        "settlementAmount": capture.amount.to_json(),
        "status": capture.status,
        "metadata": capture.metadata,
        "paymentId": capture.payment_id,
        "createdAt": iso(capture.created_at),
        "_links": {
            "self": link(f"{base}/v2/payments/{capture.payment_id}/captures/{capture.id}"),
            "payment": link(f"{base}/v2/payments/{capture.payment_id}"),
            "documentation": doc_link("get-capture"),
        },
    }


def refund_json(refund: Refund, base: str) -> dict[str, Any]:
    return {
        "resource": "refund",
        "id": refund.id,
        "mode": refund.mode,
        "description": refund.description,
        "amount": refund.amount.to_json(),
        "settlementAmount": refund.amount.negated().to_json(),
        "metadata": refund.metadata,
        "status": refund.status,
        "paymentId": refund.payment_id,
        "createdAt": iso(refund.created_at),
        "_links": {
            "self": link(f"{base}/v2/payments/{refund.payment_id}/refunds/{refund.id}"),
            "payment": link(f"{base}/v2/payments/{refund.payment_id}"),
            "documentation": doc_link("get-refund"),
        },
    }


def chargeback_json(chargeback: Chargeback, base: str) -> dict[str, Any]:
    return {
        "resource": "chargeback",
        "id": chargeback.id,
        "amount": chargeback.amount.to_json(),
        "settlementAmount": chargeback.amount.negated().to_json(),
        "reason": chargeback.reason,
        "paymentId": chargeback.payment_id,
        "createdAt": iso(chargeback.created_at),
        "reversedAt": iso(chargeback.reversed_at),
        "_links": {
            "self": link(f"{base}/v2/payments/{chargeback.payment_id}/chargebacks/{chargeback.id}"),
            "payment": link(f"{base}/v2/payments/{chargeback.payment_id}"),
            "documentation": doc_link("get-chargeback"),
        },
    }


# Where Mollie serves its method logos; the answer names them, the emulator serves none.
METHOD_ICONS = "https://www.mollie.com/external/icons/payment-methods"


def methods_json(
    methods: Sequence[PaymentMethod], query: MethodQuery, base: str, params: dict[str, str]
) -> dict[str, Any]:
    """Mollie's "List payment methods": one page holding every method (it is not paginated)."""
    self_href = f"{base}/v2/methods" + (f"?{urlencode(params)}" if params else "")
    return {
        "count": len(methods),
        "_embedded": {"methods": [method_json(method, query, base) for method in methods]},
        "_links": {"self": link(self_href), "documentation": doc_link("list-methods")},
    }


def method_json(method: PaymentMethod, query: MethodQuery, base: str) -> dict[str, Any]:
    maximum = method.maximum(query.currency)
    return {
        "resource": "method",
        "id": method.id,
        "description": method.description,
        "minimumAmount": method.minimum(query.sequence_type, query.currency).to_json(),
        "maximumAmount": maximum.to_json() if maximum else None,
        "image": {
            "size1x": f"{METHOD_ICONS}/{method.id}.png",
            "size2x": f"{METHOD_ICONS}/{method.id}%402x.png",
            "svg": f"{METHOD_ICONS}/{method.id}.svg",
        },
        "status": "activated",
        "_links": {"self": link(f"{base}/v2/methods/{method.id}")},
    }


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_R = TypeVar("_R", bound=_HasId)


def page(
    items: Sequence[_R],
    *,
    name: str,
    render: Callable[[_R], dict[str, Any]],
    base: str,
    path: str,
    params: dict[str, str],
    doc: str,
) -> dict[str, Any]:
    """A cursor-paginated list, newest first, as Mollie's list endpoints return it.

    `from` is the id of the first item of the page; `next`/`previous` links carry the cursor
    of the adjacent page and are absolute on the emulator's base, because the official client
    follows them only when they start with its own endpoint.
    """
    newest_first = list(reversed(items))
    limit = _limit(params.get("limit"))
    start = 0
    if (cursor := params.get("from")) is not None:
        ids = [item.id for item in newest_first]
        if cursor not in ids:
            raise MollieError(400, f"The 'from' cursor {cursor} does not exist.", field="from")
        start = ids.index(cursor)
    chunk = newest_first[start : start + limit]

    def href(cursor_id: str | None) -> str:
        query = {k: v for k, v in params.items() if k not in {"from", "limit"}}
        if cursor_id is not None:
            query["from"] = cursor_id
        query["limit"] = str(limit)
        return f"{base}{path}?{urlencode(query)}"

    following = newest_first[start + limit] if start + limit < len(newest_first) else None
    preceding = newest_first[max(0, start - limit)] if start > 0 else None
    return {
        "count": len(chunk),
        "_embedded": {name: [render(item) for item in chunk]},
        "_links": {
            "self": link(href(params.get("from"))),
            "previous": link(href(preceding.id)) if preceding else None,
            "next": link(href(following.id)) if following else None,
            "documentation": doc_link(doc),
        },
    }


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise MollieError(400, f"The limit must be between 1 and {MAX_LIMIT}.", field="limit")
    return limit
