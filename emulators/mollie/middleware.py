"""ASGI layers around the routes, outermost first: request log, API-key check, injected
faults, idempotency (see `idempotency`), latency, and "run what became due" after writes.

They are plain ASGI callables rather than BaseHTTPMiddleware so the fault layer can withhold
or delay a reply after the work has been done, and the idempotency layer can see whole bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import AUTH_DOC, MollieError
from .faults import FaultDecision, FaultInjector

logger = logging.getLogger("emulators.mollie")

API_PREFIX = "/v2/"


def _is_api(scope: Scope) -> bool:
    return scope["type"] == "http" and str(scope["path"]).startswith(API_PREFIX)


@dataclass(frozen=True)
class RecordedRequest:
    """One /v2 request as the emulator answered it (no headers, so no API key)."""

    method: str
    path: str
    query: str
    status: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
        }


class RequestJournal:
    """The most recent /v2 requests, oldest first, for tests that check what a client called
    (`GET /_emulator/requests`)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._entries: deque[RecordedRequest] = deque(maxlen=limit)

    def record(self, entry: RecordedRequest) -> None:
        self._entries.append(entry)

    def entries(self) -> list[RecordedRequest]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()


class RequestLogMiddleware:
    """One log line per request: method, path, status, duration. Headers are never logged,
    so the API key cannot leak into logs. /v2 requests also go into the journal.

    The line is written just before the last chunk of the response body is handed to the
    server, so a client that has read the whole response can rely on the line (and the
    journal entry) being there already. A request that ends without a complete response
    (client gone, error) is logged when it ends.
    """

    def __init__(self, app: ASGIApp, journal: RequestJournal | None = None) -> None:
        self.app = app
        self.journal = journal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        logged = False

        def log() -> None:
            nonlocal logged
            logged = True
            query = scope.get("query_string", b"").decode("latin-1")
            logger.info(
                "%s %s%s -> %s (%.1f ms)",
                scope["method"],
                scope["path"],
                f"?{query}" if query else "",
                status or "no response",
                (time.perf_counter() - started) * 1000,
            )
            if self.journal is not None and _is_api(scope):
                self.journal.record(
                    RecordedRequest(scope["method"], str(scope["path"]), query, status)
                )

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                log()
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            if not logged:
                log()


class AuthMiddleware:
    """`Authorization: Bearer <api key>` on every /v2 request, else Mollie's 401."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _is_api(scope):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                error = MollieError(
                    401, "Missing authentication, or failed to authenticate", documentation=AUTH_DOC
                )
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


class FaultMiddleware:
    """Answers /v2 requests with injected errors, before or after the work is done."""

    def __init__(self, app: ASGIApp, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        decision = self.faults.decide(scope["method"], scope["path"]) if _is_api(scope) else None
        if decision is None:
            await self.app(scope, receive, send)
            return
        if decision.after_commit:

            async def swallow(message: Message) -> None:
                # The work is committed; its reply is lost on the way back.
                return None

            await self.app(scope, receive, swallow)
        if decision.status == "timeout":
            await _hang_until_disconnect(receive, decision.hang_seconds)
            await _error(504, "Injected timeout.", scope, receive, send)
            return
        await _error(decision.status, _detail(decision), scope, receive, send)


def _detail(decision: FaultDecision) -> str:
    if decision.status == 429:
        return "Too many requests (injected fault); retry after a second."
    return f"Injected fault: the service answered {decision.status}."


async def _error(status: int, detail: str, scope: Scope, receive: Receive, send: Send) -> None:
    headers = {"Retry-After": "1"} if status == 429 else None
    await MollieError(status, detail).response(headers)(scope, receive, send)


async def _hang_until_disconnect(receive: Receive, limit_seconds: float) -> None:
    """Keep the connection open without answering until the client gives up."""

    async def wait() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wait(), timeout=limit_seconds)


class LatencyMiddleware:
    """Slows /v2 requests down while they are being processed (inside idempotency)."""

    def __init__(self, app: ASGIApp, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _is_api(scope) and self.faults.latency_seconds > 0:
            await asyncio.sleep(self.faults.latency_seconds)
        await self.app(scope, receive, send)


class KickAfterWriteMiddleware:
    """After any write, run what became due now (capture settlement, first webhooks)
    instead of waiting for the next tick."""

    def __init__(self, app: ASGIApp, kick: Callable[[], None]) -> None:
        self.app = app
        self.kick = kick

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http" and scope["method"] not in {"GET", "HEAD", "OPTIONS"}:
            self.kick()
