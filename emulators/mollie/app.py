"""The Mollie emulator's ASGI application: `create_app(config)`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from offline_docs import serve_docs_offline

from ..state_file import DEFAULT_SAVE_INTERVAL_SECONDS, CountRequests
from . import checkout, routes_api, routes_control
from .config import MollieEmulatorConfig
from .emulator import MollieEmulator
from .errors import MollieError
from .idempotency import IdempotencyMiddleware
from .middleware import (
    API_PREFIX,
    AuthMiddleware,
    FaultMiddleware,
    KickAfterWriteMiddleware,
    LatencyMiddleware,
    RequestLogMiddleware,
)
from .persistence import keeper_for

_DESCRIPTION = """
Speaks the Mollie API v2 wire format a payment connector touches (`/v2/...`, header
`Authorization: Bearer <api key>` required): customers, mandates, payments with their captures,
refunds and chargebacks, methods. Test-mode outcomes are chosen on the hosted checkout page
(`/checkout/{id}`) or through the controls under `/_emulator`: move the clock, set a payment's
status or a customer's next recurring outcomes, open a chargeback, inject faults, and inspect
webhook deliveries, requests and the ledger.

This emulator keeps its own clock, apart from the Cleeng emulator's: a demo that moves one
leaves the other behind (`GET /_emulator/clock` on each shows both).
"""

_HTTP_DETAILS = {
    404: "The requested resource does not exist.",
    405: "The requested method is not allowed for this resource.",
}


def create_app(
    config: MollieEmulatorConfig | None = None,
    *,
    state_file: Path | None = None,
    state_save_seconds: float = DEFAULT_SAVE_INTERVAL_SECONDS,
) -> FastAPI:
    """Build an emulator; its state is `app.state.emulator` (a `MollieEmulator`).

    With `state_file` it starts from the state saved there (when the file exists) and saves
    its state there while it runs and when it stops (see `persistence`).
    """
    config = config or MollieEmulatorConfig()
    emulator = MollieEmulator(config)
    keeper = keeper_for(emulator, state_file, state_save_seconds) if state_file else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ticker = asyncio.create_task(emulator.tick_forever())
        if keeper is not None:
            keeper.start()
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            if keeper is not None:
                # Before aclose(), which forgets the webhook deliveries.
                await keeper.stop()
            await emulator.aclose()

    app = FastAPI(
        title="Mollie API v2 emulator",
        version="v2",
        description=_DESCRIPTION,
        lifespan=lifespan,
        # Served by offline_docs instead: FastAPI's own pages load from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/_emulator/openapi.json",
        # Mollie does not redirect `/v2/payments/` to `/v2/payments`; an unknown path is a 404.
        redirect_slashes=False,
    )
    serve_docs_offline(
        app, docs_url="/_emulator/docs", redoc_url=None, assets_url="/_emulator/docs-assets"
    )
    app.state.emulator = emulator
    app.state.config = config

    async def mollie_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, MollieError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        if status == 405 and request.url.path.startswith(API_PREFIX):
            # A method the reference does not document on a path it does is an endpoint it
            # does not document either: answer like any other unknown endpoint.
            status = 404
        detail = _HTTP_DETAILS.get(status, str(exc.detail))
        return MollieError(status, detail).response()

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"msg": "Invalid request", "loc": ()}
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        message = f"{'.'.join(loc)}: {first.get('msg')}" if loc else str(first.get("msg"))
        return MollieError(422, message, field=loc[-1] if loc else None).response()

    async def unexpected_error(_: Request, exc: Exception) -> Response:
        return MollieError(500, f"Emulator error: {type(exc).__name__}.").response()

    app.add_exception_handler(MollieError, mollie_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)

    app.include_router(routes_api.router)
    app.include_router(routes_control.router)
    app.include_router(checkout.router)

    # Added innermost first: the request passes log -> auth -> faults -> idempotency ->
    # latency -> routes, and writes trigger a run of whatever became due.
    app.add_middleware(KickAfterWriteMiddleware, kick=emulator.kick)
    app.add_middleware(LatencyMiddleware, faults=emulator.faults)
    app.add_middleware(IdempotencyMiddleware, store=emulator.idempotency)
    app.add_middleware(FaultMiddleware, faults=emulator.faults)
    app.add_middleware(AuthMiddleware, api_key=config.api_key)
    app.add_middleware(RequestLogMiddleware, journal=emulator.requests)
    if keeper is not None:
        # Outermost: a request counts once everything it changed (idempotency key included)
        # is in place.
        app.add_middleware(CountRequests, keeper=keeper)
    return app
