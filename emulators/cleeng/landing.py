"""A human landing page: what the emulated Cleeng account holds right now."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import TypeVar

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from .clock import utc_iso
from .deps import Emulator
from .money import format_major

router = APIRouter(include_in_schema=False)

_RECENT = 25
T = TypeVar("T")


def latest(items: Iterable[T]) -> list[T]:
    """The most recent entries first."""
    return list(items)[-_RECENT:][::-1]


def _table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]], total: int) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if c is None else str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    shown = f" (latest {_RECENT})" if total > _RECENT else ""
    return f"<h2>{escape(title)}: {total}{shown}</h2><table><tr>{head}</tr>{body}</table>"


@router.get("/", response_class=HTMLResponse)
async def landing(emulator: Emulator) -> str:
    store = emulator.store

    sections = [
        _table(
            "Customers",
            ["id", "email", "country"],
            ([c.id, c.email, c.country] for c in latest(store.customers.values())),
            len(store.customers),
        ),
        _table(
            "Offers",
            ["offerId", "title", "price", "period"],
            (
                [
                    o.offer_id,
                    o.title,
                    f"{format_major(o.price_minor, o.currency)} {o.currency}",
                    o.period,
                ]
                for o in latest(store.offers.values())
            ),
            len(store.offers),
        ),
        _table(
            "Orders",
            ["id", "customerId", "offerId", "total", "operation", "expires"],
            (
                [
                    o.id,
                    o.customer_id,
                    o.offer_id,
                    f"{format_major(o.price_minor, o.currency)} {o.currency}",
                    o.payment_operation,
                    utc_iso(o.expires_at),
                ]
                for o in latest(store.orders.values())
            ),
            len(store.orders),
        ),
        _table(
            "Payments",
            ["id", "orderId", "status", "amount", "refunded", "externalPaymentId", "operation"],
            (
                [
                    p.id,
                    p.order_id,
                    p.status,
                    f"{format_major(p.amount_minor, p.currency)} {p.currency}",
                    format_major(p.refunded_minor, p.currency),
                    p.external_payment_id,
                    p.payment_operation,
                ]
                for p in latest(store.payments.values())
            ),
            len(store.payments),
        ),
        _table(
            "Subscriptions",
            ["id", "customerId", "offerId", "status", "dateTo", "paymentDetailsId"],
            (
                [
                    s.id,
                    s.customer_id,
                    s.offer_id,
                    s.status,
                    utc_iso(s.date_to),
                    s.payment_details_id,
                ]
                for s in latest(store.subscriptions.values())
            ),
            len(store.subscriptions),
        ),
        _table(
            "Webhook deliveries",
            ["id", "topic", "url", "status", "attempts"],
            (
                [d.id, d.topic, d.url, d.status, len(d.attempts)]
                for d in latest(emulator.webhooks.deliveries)
            ),
            len(emulator.webhooks.deliveries),
        ),
    ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Cleeng emulator</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style></head><body>"
        f"<h1>Cleeng emulator</h1><p>Emulator time: {escape(utc_iso(emulator.clock.now()))}. "
        f"Core API 3.1 at <code>{escape(emulator.config.public_url)}/3.1</code>; operator "
        "endpoints and the API reference at <a href='/docs'>/docs</a>.</p>"
        + "".join(sections)
        + "</body></html>"
    )
