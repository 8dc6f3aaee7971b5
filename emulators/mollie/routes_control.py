"""Operator and test controls under /_emulator: clock, outcomes, faults, inspection, reset.

These are not part of Mollie's API and need no API key; errors still use Mollie's format.
"""

from __future__ import annotations

import html
import json
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from . import render
from .clock import iso
from .emulator import MollieEmulator
from .errors import MollieError
from .faults import FaultSettingsIn
from .models import AUTHORIZED, PAID, PENDING, Outcome, Payment, Reversal
from .routes_api import Emu, base_url
from .store import FORCEABLE

router = APIRouter(prefix="/_emulator")


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class AdvanceIn(_CamelModel):
    """Body of `POST /_emulator/clock/advance`."""

    seconds: float = Field(ge=0)


# A reversal is the bank taking back a charge that was paid (or will be, once pending or
# authorized); eight weeks is as long as a SEPA customer may dispute a debit.
REVERSIBLE = frozenset({PAID, PENDING, AUTHORIZED})
MAX_REVERSAL_DAYS = 56


class ReversalIn(_CamelModel):
    """`{"reason": "AM04", "afterDays": 2}`: charged back this long after it was paid."""

    reason: str = Field(default="AM04", pattern=r"^[A-Z0-9]{4}$")
    after_days: float = Field(gt=0, le=MAX_REVERSAL_DAYS)

    def reversal(self) -> Reversal:
        return Reversal(self.reason, self.after_days * 24 * 3600)


class OutcomeIn(_CamelModel):
    """A payment outcome: status plus an optional Mollie failure reason, and for a charge
    that ends paid an optional reversal (a chargeback the bank makes later)."""

    status: str
    failure_reason: str | None = None
    reversal: ReversalIn | None = None

    def outcome(self) -> Outcome:
        if self.status not in FORCEABLE:
            options = ", ".join(sorted(FORCEABLE))
            raise MollieError(400, f"The status must be one of: {options}.", field="status")
        if self.reversal is not None and self.status not in REVERSIBLE:
            options = ", ".join(sorted(REVERSIBLE))
            raise MollieError(
                400, f"Only a charge that ends {options} can be reversed.", field="reversal"
            )
        return Outcome(
            self.status,
            self.failure_reason,
            self.reversal.reversal() if self.reversal is not None else None,
        )


class NextOutcomesIn(_CamelModel):
    """Outcomes for a customer's next recurring charges, used once each, in order."""

    outcomes: list[OutcomeIn]


class RefundStatusIn(_CamelModel):
    """Body of `POST /_emulator/refunds/{id}/status`."""

    status: str


class ChargebackIn(_CamelModel):
    """Body of `POST /_emulator/payments/{id}/chargeback`; amount defaults to all of it."""

    amount: dict[str, Any] | None = None
    reason: str | None = None
    reason_code: str = Field(default="AC06", pattern=r"^[A-Z0-9]{4}$")


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/clock")
async def get_clock(emu: Emu) -> dict[str, Any]:
    return {"now": iso(emu.clock.now()), "offsetSeconds": emu.clock.offset.total_seconds()}


@router.post("/clock/advance")
async def advance_clock(body: AdvanceIn, emu: Emu) -> dict[str, Any]:
    now = await emu.advance(body.seconds)
    return {"now": iso(now), "offsetSeconds": emu.clock.offset.total_seconds()}


@router.get("/payments/{payment_id}/status", response_class=HTMLResponse)
async def payment_state_page(payment_id: str, emu: Emu) -> HTMLResponse:
    """The page behind `_links.changePaymentState`: pick the outcome of any open charge."""
    payment = emu.store.payment(payment_id)
    buttons = "".join(
        f'<button type="submit" name="status" value="{s}">{s}</button> ' for s in sorted(FORCEABLE)
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Change payment state</title>"
        "</head><body>"
        f"<h1>{html.escape(payment.id)}: {html.escape(payment.status)}</h1>"
        f"<p>{html.escape(payment.description)} &mdash; "
        f"{payment.amount.to_json()['value']} {payment.amount.currency}</p>"
        f'<form method="post">{buttons}'
        '<p><label>failureReason <input name="failureReason"></label></p></form>'
        "</body></html>"
    )
    return HTMLResponse(page)


@router.post("/payments/{payment_id}/status")
async def force_payment_status(payment_id: str, request: Request, emu: Emu) -> Response:
    """Force an outcome. Accepts JSON (tests) or the form of the page above (people)."""
    raw = await request.body()
    is_form = request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    )
    if is_form:
        fields = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        data: Any = {
            "status": fields.get("status", ""),
            "failureReason": fields.get("failureReason"),
        }
    else:
        try:
            data = json.loads(raw or b"{}")
        except ValueError as err:
            raise MollieError(400, "The request body is not valid JSON.") from err
    spec = OutcomeIn.model_validate(data)
    payment = emu.store.force_status(payment_id, spec.outcome())
    if is_form:
        return RedirectResponse(f"/_emulator/payments/{payment_id}/status", status_code=303)
    return JSONResponse(render.payment_json(payment, emu.store, base_url(request)))


@router.post("/customers/{customer_id}/next-outcomes")
async def set_next_outcomes(customer_id: str, body: NextOutcomesIn, emu: Emu) -> dict[str, Any]:
    outcomes = [o.outcome() for o in body.outcomes]
    customer = emu.store.set_next_outcomes(customer_id, outcomes)
    return {
        "customerId": customer.id,
        "nextOutcomes": [_outcome_json(o) for o in customer.next_outcomes],
    }


@router.post("/refunds/{refund_id}/status")
async def force_refund_status(
    refund_id: str, body: RefundStatusIn, request: Request, emu: Emu
) -> dict[str, Any]:
    refund = emu.store.force_refund_status(refund_id, body.status)
    return render.refund_json(refund, base_url(request))


@router.post("/payments/{payment_id}/chargeback", status_code=201)
async def create_chargeback(
    payment_id: str, body: ChargebackIn, request: Request, emu: Emu
) -> dict[str, Any]:
    chargeback = emu.store.create_chargeback(payment_id, body.amount, body.reason, body.reason_code)
    return render.chargeback_json(chargeback, base_url(request))


@router.post("/payments/{payment_id}/chargebacks/{chargeback_id}/reverse")
async def reverse_chargeback(
    payment_id: str, chargeback_id: str, request: Request, emu: Emu
) -> dict[str, Any]:
    """The merchant won the dispute: Mollie sets the chargeback's `reversedAt`."""
    chargeback = emu.store.reverse_chargeback(payment_id, chargeback_id)
    return render.chargeback_json(chargeback, base_url(request))


@router.get("/faults")
async def get_faults(emu: Emu) -> dict[str, Any]:
    return emu.faults.snapshot()


@router.post("/faults")
async def set_faults(body: FaultSettingsIn, emu: Emu) -> dict[str, Any]:
    emu.faults.configure(body)
    return emu.faults.snapshot()


@router.delete("/faults")
async def clear_faults(emu: Emu) -> dict[str, Any]:
    emu.faults.reset()
    return emu.faults.snapshot()


@router.get("/webhooks")
async def webhook_log(
    emu: Emu, payment_id: Annotated[str | None, Query(alias="paymentId")] = None
) -> dict[str, Any]:
    deliveries = [
        d.to_json()
        for d in emu.webhooks.deliveries
        if payment_id is None or d.payment_id == payment_id
    ]
    return {"count": len(deliveries), "deliveries": deliveries}


@router.get("/requests")
async def request_journal(emu: Emu) -> dict[str, Any]:
    """Every /v2 request answered since the last reset, oldest first (method, path, query,
    status; never headers). Each is recorded before its response body is sent."""
    requests = [entry.to_json() for entry in emu.requests.entries()]
    return {"count": len(requests), "requests": requests}


@router.delete("/requests")
async def clear_request_journal(emu: Emu) -> dict[str, Any]:
    emu.requests.clear()
    return {"count": 0, "requests": []}


@router.get("/ledger")
async def ledger(emu: Emu) -> dict[str, Any]:
    """Every payment with its captures, refunds and chargebacks, oldest first."""
    payments = [_ledger_entry(p, emu) for p in emu.store.payments.values()]
    return {"count": len(payments), "payments": payments}


@router.post("/reset")
async def reset(emu: Emu) -> dict[str, str]:
    await emu.reset()
    return {"status": "reset"}


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    data: dict[str, Any] = {"status": outcome.status, "failureReason": outcome.failure_reason}
    if outcome.reversal is not None:
        data["reversal"] = {
            "reason": outcome.reversal.reason_code,
            "afterDays": outcome.reversal.after_seconds / (24 * 3600),
        }
    return data


def _ledger_entry(payment: Payment, emu: MollieEmulator) -> dict[str, Any]:
    store = emu.store
    return {
        "id": payment.id,
        "customerId": payment.customer_id,
        "mandateId": payment.mandate_id,
        "amount": payment.amount.to_json(),
        "amountRefunded": store.amount_refunded(payment).to_json(),
        "amountCaptured": store.amount_captured(payment).to_json(),
        "amountChargedBack": store.amount_charged_back(payment).to_json(),
        "status": payment.status,
        "sequenceType": payment.sequence_type,
        "method": payment.method,
        "captureMode": payment.capture_mode,
        "description": payment.description,
        "metadata": payment.metadata,
        "failureReason": payment.details.get("failureReason"),
        "createdAt": iso(payment.created_at),
        "pendingAt": iso(payment.pending_at),
        "authorizedAt": iso(payment.authorized_at),
        "paidAt": iso(payment.paid_at),
        "reversalDueAt": iso(payment.reverse_at),
        "captures": [
            {"id": c.id, "amount": c.amount.to_json(), "status": c.status}
            for c in (store.captures[i] for i in payment.capture_ids)
        ],
        "refunds": [
            {
                "id": r.id,
                "amount": r.amount.to_json(),
                "status": r.status,
                "description": r.description,
                "metadata": r.metadata,
            }
            for r in (store.refunds[i] for i in payment.refund_ids)
        ],
        "chargebacks": [
            {
                "id": c.id,
                "amount": c.amount.to_json(),
                "reason": c.reason,
                "createdAt": iso(c.created_at),
            }
            for c in (store.chargebacks[i] for i in payment.chargeback_ids)
        ],
    }
