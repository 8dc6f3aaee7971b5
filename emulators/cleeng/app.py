"""Builds the Cleeng emulator's FastAPI application."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import CleengEmulatorConfig
from .emulator import CleengEmulator
from .errors import install_error_handlers
from .faults import FaultMiddleware
from .landing import router as landing_router
from .routes_api import router as api_router
from .routes_operator import router as operator_router

__all__ = ["CleengEmulatorConfig", "create_app"]

logger = logging.getLogger("emulators.cleeng")

_DESCRIPTION = """
Speaks the Cleeng Core API 3.1 wire format a payment connector touches (`/3.1/...`, header
`X-Publisher-Token` required) and offers operator endpoints under `/_emulator` to seed
customers, offers, orders and subscriptions, move the clock, inject faults, tune dunning
settings and inspect payments, webhooks and the ledger.
"""


class RequestLogMiddleware:
    """One log line per request: method, path, status, duration. Headers (the publisher
    token) are never logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | str = "no reply"

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            logger.info(
                "%s %s%s -> %s (%.1f ms)",
                scope["method"],
                scope["path"],
                f"?{query}" if query else "",
                status,
                (time.perf_counter() - started) * 1000,
            )


def create_app(config: CleengEmulatorConfig | None = None) -> FastAPI:
    """A fresh emulator; its state is reachable as ``app.state.emulator``."""
    config = config or CleengEmulatorConfig()
    emulator = CleengEmulator(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await emulator.start()
        try:
            yield
        finally:
            await emulator.stop()

    app = FastAPI(
        title="Cleeng emulator",
        version="3.1",
        description=_DESCRIPTION,
        lifespan=lifespan,
        servers=[{"url": config.public_url}],
    )
    app.state.emulator = emulator
    install_error_handlers(app)
    app.include_router(landing_router)
    app.include_router(api_router)
    app.include_router(operator_router)
    # Added last = outermost: the log line shows the status a fault produced.
    app.add_middleware(
        FaultMiddleware, injector=emulator.faults, hang_seconds=config.timeout_fault_hang_seconds
    )
    app.add_middleware(RequestLogMiddleware)
    return app
