"""The hosted checkout page of a test payment, and a landing page for people.

Plain HTML forms, no JavaScript: the buttons POST `status=<choice>` to the same URL, and the
answer is a 303 to the payment's redirectUrl (cancelUrl for a cancellation, when given),
just as Mollie's test-mode page sends the customer back to the shop.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .clock import iso
from .errors import MollieError
from .models import AUTHORIZED, CANCELED, EXPIRED, FAILED, OPEN, PAID, Payment
from .routes_api import Emu

router = APIRouter()

_STYLE = (
    "<style>body{font-family:sans-serif;max-width:46em;margin:2em auto;padding:0 1em}"
    "button{margin:.3em;padding:.5em 1.2em;font-size:1em}td,th{padding:.2em .6em;"
    "text-align:left}</style>"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"{_STYLE}</head><body>{body}</body></html>",
        status_code=status,
    )


def _amount(payment: Payment) -> str:
    return f"{payment.amount.currency} {payment.amount.to_json()['value']}"


def choices_for(payment: Payment) -> list[str]:
    """What the test checkout offers: authorized instead of paid for manual capture."""
    first = AUTHORIZED if payment.capture_mode == "manual" else PAID
    return [first, FAILED, CANCELED, EXPIRED]


@router.get("/checkout/{payment_id}", response_class=HTMLResponse)
async def checkout_page(payment_id: str, emu: Emu) -> HTMLResponse:
    payment = emu.store.payments.get(payment_id)
    if payment is None:
        return _page("Not found", f"<h1>No payment {html.escape(payment_id)}</h1>", 404)
    if payment.status != OPEN:
        return _closed(payment)
    magic = payment.magic_failure()
    note = (
        f"<p><strong>Magic amount:</strong> paying ends as failed ({magic}).</p>" if magic else ""
    )
    buttons = "".join(
        f'<button type="submit" name="status" value="{c}">{c.capitalize()}</button>'
        for c in choices_for(payment)
    )
    body = (
        "<h1>Mollie emulator &mdash; test checkout</h1>"
        f"<p id='amount'>{html.escape(_amount(payment))}</p>"
        f"<p id='description'>{html.escape(payment.description)}</p>"
        f"<p>Payment {html.escape(payment.id)} &middot; {html.escape(payment.sequence_type)}"
        f" &middot; method {html.escape(payment.method or 'any')}</p>{note}"
        f'<form method="post" action="/checkout/{html.escape(payment.id)}">{buttons}</form>'
    )
    return _page(f"Pay {_amount(payment)}", body)


@router.post("/checkout/{payment_id}")
async def checkout_choose(payment_id: str, request: Request, emu: Emu) -> Response:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    choice = (fields.get("status") or [""])[0]
    payment = emu.store.payments.get(payment_id)
    if payment is None:
        return _page("Not found", f"<h1>No payment {html.escape(payment_id)}</h1>", 404)
    if payment.status != OPEN:
        return _closed(payment)
    if choice not in choices_for(payment):
        return _page("Invalid choice", f"<h1>Cannot choose '{html.escape(choice)}'</h1>", 400)
    try:
        emu.store.choose_at_checkout(payment_id, choice)
    except MollieError as err:
        return _page("Cannot apply", f"<h1>{html.escape(err.detail)}</h1>", err.status)
    target = payment.cancel_url if choice == CANCELED and payment.cancel_url else None
    target = target or payment.redirect_url
    if target is None:
        return _page("Done", f"<h1>Payment {html.escape(payment.id)} is {payment.status}</h1>")
    return RedirectResponse(target, status_code=303)


def _closed(payment: Payment) -> HTMLResponse:
    return _page(
        "Payment closed",
        f"<h1>Payment {html.escape(payment.id)} is no longer open</h1>"
        f"<p>Its status is <strong id='status'>{html.escape(payment.status)}</strong>.</p>",
        409,
    )


@router.get("/", response_class=HTMLResponse)
async def landing(emu: Emu) -> HTMLResponse:
    rows = []
    for payment in list(reversed(emu.store.payments.values()))[:100]:
        pid = html.escape(payment.id)
        action = (
            f'<a href="/checkout/{pid}">checkout</a>'
            if payment.status == OPEN and payment.sequence_type != "recurring"
            else f'<a href="/_emulator/payments/{pid}/status">change state</a>'
        )
        rows.append(
            f"<tr id='{pid}'><td>{pid}</td><td>{iso(payment.created_at)}</td>"
            f"<td>{html.escape(_amount(payment))}</td>"
            f"<td>{html.escape(payment.description)}</td><td>{payment.sequence_type}</td>"
            f"<td>{payment.status}</td><td>{action}</td></tr>"
        )
    table = (
        "<table><tr><th>id</th><th>created</th><th>amount</th><th>description</th>"
        "<th>sequence</th><th>status</th><th></th></tr>" + "".join(rows) + "</table>"
        if rows
        else "<p>No payments yet.</p>"
    )
    body = (
        "<h1>Mollie emulator</h1>"
        f"<p>Emulator time: {iso(emu.clock.now())} &middot; "
        '<a href="/_emulator/ledger">ledger</a> &middot; '
        '<a href="/_emulator/webhooks">webhook log</a> &middot; '
        '<a href="/_emulator/faults">faults</a></p>'
        f"<h2>Recent payments</h2>{table}"
    )
    return _page("Mollie emulator", body)
