"""Builds the Cleeng emulator's FastAPI application."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import format_datetime
from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from offline_docs import serve_docs_offline

from ..state_file import DEFAULT_SAVE_INTERVAL_SECONDS, CountRequests
from .clock import EmulatorClock
from .config import CleengEmulatorConfig
from .emulator import CleengEmulator
from .errors import error_body, install_error_handlers
from .faults import FaultMiddleware
from .landing import router as landing_router
from .persistence import keeper_for
from .reference import API_PREFIX
from .routes_api import router as api_router
from .routes_operator import router as operator_router

__all__ = ["CleengEmulatorConfig", "create_app"]

logger = logging.getLogger("emulators.cleeng")

_DESCRIPTION = """
Speaks the Cleeng Core API 3.1 wire format a payment connector touches (`/3.1/...`, header
`X-Publisher-Token` required) and offers operator endpoints under `/_emulator` to seed
customers, offers, orders and subscriptions, move the clock, inject faults, tune dunning
settings and inspect payments, webhooks and the ledger.

This emulator keeps its own clock, apart from the Mollie emulator's: a demo that moves one
leaves the other behind (`GET /_emulator/clock` on each shows both).
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


class ClockDateHeader:
    """Every answer's `Date` is the emulator's clock, as a real server's is its own: a client
    that judges expiry by Cleeng's time sees the moved clock. Serve with uvicorn's own Date
    header off (`date_header=False`), or the answer carries two."""

    def __init__(self, app: ASGIApp, clock: EmulatorClock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                stamp = format_datetime(self.clock.now(), usegmt=True).encode()
                message = {**message, "headers": [*headers, (b"date", stamp)]}
            await send(message)

        await self.app(scope, receive, dated_send)


class NoCoreSlashRedirect:
    """A Core API path with a trailing slash is not a documented path: 404, where the
    framework would redirect to the path without the slash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path.startswith(f"{API_PREFIX}/") and path.endswith("/")):
            await self.app(scope, receive, send)
            return
        body = json.dumps(error_body(path, f"Route {scope['method']} {path} not found"))
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})


def create_app(
    config: CleengEmulatorConfig | None = None,
    *,
    state_file: Path | None = None,
    state_save_seconds: float = DEFAULT_SAVE_INTERVAL_SECONDS,
) -> FastAPI:
    """A fresh emulator; its state is reachable as ``app.state.emulator``.

    With `state_file` it starts from the state saved there (when the file exists) and saves
    its state there while it runs and when it stops (see `persistence`).
    """
    config = config or CleengEmulatorConfig()
    emulator = CleengEmulator(config)
    keeper = keeper_for(emulator, state_file, state_save_seconds) if state_file else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await emulator.start()
        if keeper is not None:
            keeper.start()
        try:
            yield
        finally:
            await emulator.stop()
            if keeper is not None:
                await keeper.stop()

    app = FastAPI(
        title="Cleeng emulator",
        version="3.1",
        description=_DESCRIPTION,
        lifespan=lifespan,
        servers=[{"url": config.public_url}],
        # Served by offline_docs instead: FastAPI's own pages load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    serve_docs_offline(app, docs_url="/docs", redoc_url="/redoc", assets_url="/docs-assets")
    app.state.emulator = emulator
    install_error_handlers(app)
    app.include_router(landing_router)
    app.include_router(api_router)
    app.include_router(operator_router)
    app.add_middleware(NoCoreSlashRedirect)
    # Added last = outermost: the log line shows the status a fault produced.
    app.add_middleware(
        FaultMiddleware, injector=emulator.faults, hang_seconds=config.timeout_fault_hang_seconds
    )
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(ClockDateHeader, clock=emulator.clock)
    if keeper is not None:
        # Outermost: a request counts once everything it changed is in place.
        app.add_middleware(CountRequests, keeper=keeper)
    return app
