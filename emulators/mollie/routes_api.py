"""The Mollie API v2 endpoints the connector uses, over `MollieStore`."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from . import methods, render
from .emulator import MollieEmulator
from .errors import HAL_JSON, MollieError
from .models import Chargeback, Refund
from .validation import parse_body

router = APIRouter(prefix="/v2")


def get_emulator(request: Request) -> MollieEmulator:
    return cast(MollieEmulator, request.app.state.emulator)


Emu = Annotated[MollieEmulator, Depends(get_emulator)]


def base_url(request: Request) -> str:
    emulator = get_emulator(request)
    return emulator.config.public_url.rstrip("/") or str(request.base_url).rstrip("/")


def hal(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=HAL_JSON)


async def body_of(request: Request) -> dict[str, Any]:
    return parse_body(await request.body())


def params_of(request: Request) -> dict[str, str]:
    return dict(request.query_params)


# -------------------------------------------------------------------------- methods


@router.get("/methods")
async def list_methods(request: Request) -> Response:
    params = params_of(request)
    query = methods.parse_query(params)
    return hal(render.methods_json(methods.available(query), query, base_url(request), params))


@router.get("/methods/{method_id}")
async def get_method(method_id: str, request: Request) -> Response:
    query = methods.parse_single_query(params_of(request))
    return hal(render.method_json(methods.method_by_id(method_id, query), query, base_url(request)))


# ------------------------------------------------------------------------ customers


@router.post("/customers")
async def create_customer(request: Request, emu: Emu) -> Response:
    customer = emu.store.create_customer(await body_of(request))
    return hal(render.customer_json(customer, emu.store, base_url(request)), 201)


@router.get("/customers")
async def list_customers(request: Request, emu: Emu) -> Response:
    base = base_url(request)
    return hal(
        render.page(
            emu.store.list_customers(),
            name="customers",
            render=lambda c: render.customer_json(c, emu.store, base),
            base=base,
            path="/v2/customers",
            params=params_of(request),
            doc="list-customers",
        )
    )


@router.get("/customers/{customer_id}")
async def get_customer(customer_id: str, request: Request, emu: Emu) -> Response:
    customer = emu.store.customer(customer_id)
    return hal(render.customer_json(customer, emu.store, base_url(request)))


@router.patch("/customers/{customer_id}")
async def update_customer(customer_id: str, request: Request, emu: Emu) -> Response:
    customer = emu.store.update_customer(customer_id, await body_of(request))
    return hal(render.customer_json(customer, emu.store, base_url(request)))


@router.delete("/customers/{customer_id}")
async def delete_customer(customer_id: str, emu: Emu) -> Response:
    emu.store.delete_customer(customer_id)
    return Response(status_code=204)


# ------------------------------------------------------------------------- mandates


@router.get("/customers/{customer_id}/mandates")
async def list_mandates(customer_id: str, request: Request, emu: Emu) -> Response:
    base = base_url(request)
    return hal(
        render.page(
            emu.store.list_mandates(customer_id),
            name="mandates",
            render=lambda m: render.mandate_json(m, base),
            base=base,
            path=f"/v2/customers/{customer_id}/mandates",
            params=params_of(request),
            doc="list-mandates",
        )
    )


@router.post("/customers/{customer_id}/mandates")
async def create_mandate(customer_id: str, request: Request, emu: Emu) -> Response:
    mandate = emu.store.create_mandate(customer_id, await body_of(request))
    return hal(render.mandate_json(mandate, base_url(request)), 201)


@router.get("/customers/{customer_id}/mandates/{mandate_id}")
async def get_mandate(customer_id: str, mandate_id: str, request: Request, emu: Emu) -> Response:
    return hal(render.mandate_json(emu.store.mandate(customer_id, mandate_id), base_url(request)))


@router.delete("/customers/{customer_id}/mandates/{mandate_id}")
async def revoke_mandate(customer_id: str, mandate_id: str, emu: Emu) -> Response:
    emu.store.revoke_mandate(customer_id, mandate_id)
    return Response(status_code=204)


# ------------------------------------------------------------------------- payments


def _payments_page(
    request: Request, emu: MollieEmulator, customer_id: str | None, path: str
) -> Response:
    base = base_url(request)
    return hal(
        render.page(
            emu.store.list_payments(customer_id),
            name="payments",
            render=lambda p: render.payment_json(p, emu.store, base),
            base=base,
            path=path,
            params=params_of(request),
            doc="list-payments",
        )
    )


@router.post("/payments")
async def create_payment(request: Request, emu: Emu) -> Response:
    payment = emu.store.create_payment(await body_of(request))
    return hal(render.payment_json(payment, emu.store, base_url(request)), 201)


@router.get("/payments")
async def list_payments(request: Request, emu: Emu) -> Response:
    return _payments_page(request, emu, None, "/v2/payments")


@router.post("/customers/{customer_id}/payments")
async def create_customer_payment(customer_id: str, request: Request, emu: Emu) -> Response:
    emu.store.customer(customer_id)
    payment = emu.store.create_payment(await body_of(request), customer_id=customer_id)
    return hal(render.payment_json(payment, emu.store, base_url(request)), 201)


@router.get("/customers/{customer_id}/payments")
async def list_customer_payments(customer_id: str, request: Request, emu: Emu) -> Response:
    return _payments_page(request, emu, customer_id, f"/v2/customers/{customer_id}/payments")


@router.get("/payments/{payment_id}")
async def get_payment(payment_id: str, request: Request, emu: Emu) -> Response:
    payment = emu.store.payment(payment_id)
    return hal(render.payment_json(payment, emu.store, base_url(request)))


@router.patch("/payments/{payment_id}")
async def update_payment(payment_id: str, request: Request, emu: Emu) -> Response:
    payment = emu.store.update_payment(payment_id, await body_of(request))
    return hal(render.payment_json(payment, emu.store, base_url(request)))


@router.delete("/payments/{payment_id}")
async def cancel_payment(payment_id: str, request: Request, emu: Emu) -> Response:
    payment = emu.store.cancel_payment(payment_id)
    return hal(render.payment_json(payment, emu.store, base_url(request)))


@router.post("/payments/{payment_id}/release-authorization")
async def release_authorization(payment_id: str, emu: Emu) -> Response:
    emu.store.release_authorization(payment_id)
    # Mollie answers 202 with no body at all; clients have to GET the payment afterwards.
    return Response(status_code=202)


# ------------------------------------------------------------------------- captures


@router.post("/payments/{payment_id}/captures")
async def create_capture(payment_id: str, request: Request, emu: Emu) -> Response:
    capture = emu.store.create_capture(payment_id, await body_of(request))
    return hal(render.capture_json(capture, base_url(request)), 201)


@router.get("/payments/{payment_id}/captures")
async def list_captures(payment_id: str, request: Request, emu: Emu) -> Response:
    base = base_url(request)
    return hal(
        render.page(
            emu.store.list_captures(payment_id),
            name="captures",
            render=lambda c: render.capture_json(c, base),
            base=base,
            path=f"/v2/payments/{payment_id}/captures",
            params=params_of(request),
            doc="list-captures",
        )
    )


@router.get("/payments/{payment_id}/captures/{capture_id}")
async def get_capture(payment_id: str, capture_id: str, request: Request, emu: Emu) -> Response:
    return hal(render.capture_json(emu.store.capture(payment_id, capture_id), base_url(request)))


# -------------------------------------------------------------------------- refunds


@router.post("/payments/{payment_id}/refunds")
async def create_refund(payment_id: str, request: Request, emu: Emu) -> Response:
    refund = emu.store.create_refund(payment_id, await body_of(request))
    return hal(render.refund_json(refund, base_url(request)), 201)


def _refunds_page(
    request: Request, emu: MollieEmulator, payment_id: str | None, path: str
) -> Response:
    base = base_url(request)
    return hal(
        render.page(
            emu.store.list_refunds(payment_id),
            name="refunds",
            render=lambda r: render.refund_json(r, base),
            base=base,
            path=path,
            params=params_of(request),
            doc="list-refunds",
        )
    )


@router.get("/payments/{payment_id}/refunds")
async def list_payment_refunds(payment_id: str, request: Request, emu: Emu) -> Response:
    return _refunds_page(request, emu, payment_id, f"/v2/payments/{payment_id}/refunds")


@router.get("/refunds")
async def list_refunds(request: Request, emu: Emu) -> Response:
    """Mollie's "List all refunds": every refund of the account by creation date, newest
    first unless `sort=asc` (the page's `sort`: "Defaults to descending order, meaning the
    results are ordered from newest to oldest")."""
    base = base_url(request)
    params = params_of(request)
    return hal(
        render.page(
            _by_creation(emu.store.list_refunds(None), params),
            name="refunds",
            render=lambda r: render.refund_json(r, base),
            base=base,
            path="/v2/refunds",
            params=params,
            doc="list-all-refunds",
        )
    )


_Created = TypeVar("_Created", Refund, Chargeback)


def _by_creation(items: list[_Created], params: dict[str, str]) -> list[_Created]:
    """Oldest first (`render.page` shows it newest first), or the other way for `sort=asc`.
    Creation time, not the order the emulator made them in: a bank's reversal is dated at
    the moment it was due, which may come before a chargeback made since."""
    order = params.get("sort", "desc")
    if order not in ("asc", "desc"):
        raise MollieError(400, f"The sort order '{order}' is not supported.", field="sort")
    ordered = sorted(items, key=lambda item: item.created_at)  # stable: ties keep their order
    return list(reversed(ordered)) if order == "asc" else ordered


@router.get("/payments/{payment_id}/refunds/{refund_id}")
async def get_refund(payment_id: str, refund_id: str, request: Request, emu: Emu) -> Response:
    return hal(render.refund_json(emu.store.refund(payment_id, refund_id), base_url(request)))


@router.delete("/payments/{payment_id}/refunds/{refund_id}")
async def cancel_refund(payment_id: str, refund_id: str, emu: Emu) -> Response:
    emu.store.cancel_refund(payment_id, refund_id)
    return Response(status_code=204)


# ---------------------------------------------------------------------- chargebacks


def _chargebacks_page(
    request: Request, emu: MollieEmulator, payment_id: str | None, path: str
) -> Response:
    base = base_url(request)
    return hal(
        render.page(
            emu.store.list_chargebacks(payment_id),
            name="chargebacks",
            render=lambda c: render.chargeback_json(c, base),
            base=base,
            path=path,
            params=params_of(request),
            doc="list-chargebacks",
        )
    )


@router.get("/payments/{payment_id}/chargebacks")
async def list_payment_chargebacks(payment_id: str, request: Request, emu: Emu) -> Response:
    return _chargebacks_page(request, emu, payment_id, f"/v2/payments/{payment_id}/chargebacks")


@router.get("/chargebacks")
async def list_chargebacks(request: Request, emu: Emu) -> Response:
    """Mollie's "List all chargebacks": every chargeback of the account by creation date,
    newest first unless `sort=asc`."""
    base = base_url(request)
    params = params_of(request)
    return hal(
        render.page(
            _by_creation(emu.store.list_chargebacks(None), params),
            name="chargebacks",
            render=lambda c: render.chargeback_json(c, base),
            base=base,
            path="/v2/chargebacks",
            params=params,
            doc="list-all-chargebacks",
        )
    )


@router.get("/payments/{payment_id}/chargebacks/{chargeback_id}")
async def get_chargeback(
    payment_id: str, chargeback_id: str, request: Request, emu: Emu
) -> Response:
    chargeback = emu.store.chargeback(payment_id, chargeback_id)
    return hal(render.chargeback_json(chargeback, base_url(request)))
