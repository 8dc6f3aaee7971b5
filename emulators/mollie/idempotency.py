"""Mollie's Idempotency-Key semantics for POST, PATCH and DELETE under /v2.

A key is scoped to the API key that sent it. Within the retention period (1 hour on the
emulator clock) a repeat of the same method, path and body gets the stored status and body
back with `Idempotent-Replayed: true`; the same key on a different request is a 400; a repeat
while the first is still running is a 409. Server errors, conflicts and rate limits are not
stored, so retrying them does real work again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgi_body import replay_body

from .clock import EmulatorClock
from .errors import MollieError

WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})
_NOT_STORED = frozenset({409, 429})


@dataclass
class StoredResponse:
    """What the first request with a key got, or None while it is still running."""

    fingerprint: str
    created_at: datetime
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    @property
    def in_flight(self) -> bool:
        return self.status is None


class IdempotencyStore:
    """Remembered responses by (API key, Idempotency-Key), forgotten after the TTL."""

    def __init__(self, clock: EmulatorClock, ttl_seconds: float) -> None:
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)
        self._entries: dict[tuple[str, str], StoredResponse] = {}

    def lookup(self, key: tuple[str, str]) -> StoredResponse | None:
        self._purge()
        return self._entries.get(key)

    def begin(self, key: tuple[str, str], fingerprint: str) -> None:
        # Re-inserted at the end, so the entries stay in the order they were made.
        self._entries.pop(key, None)
        self._entries[key] = StoredResponse(fingerprint, self._clock.now())

    def complete(
        self, key: tuple[str, str], status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.status, entry.headers, entry.body = status, headers, body

    def forget(self, key: tuple[str, str]) -> None:
        self._entries.pop(key, None)

    def in_flight_count(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.in_flight)

    def __len__(self) -> int:
        self._purge()
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def _purge(self) -> None:
        """Forget the entries older than the TTL. They are kept oldest first (the clock only
        moves forward), so this stops at the first one still fresh: every request used to look
        at every key ever remembered, which grew with the run."""
        cutoff = self._clock.now() - self._ttl
        expired: list[tuple[str, str]] = []
        for key, entry in self._entries.items():
            if entry.created_at > cutoff:
                break
            # A request still running past the TTL keeps its slot until it finishes.
            if not entry.in_flight:
                expired.append(key)
        for key in expired:
            del self._entries[key]


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """Identity of a request; JSON bodies are compared by content, not by byte layout."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, canonical):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class IdempotencyMiddleware:
    """Applies the store to /v2 writes that carry an Idempotency-Key header."""

    def __init__(self, app: ASGIApp, store: IdempotencyStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or not scope["path"].startswith("/v2/")
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        idem_key = headers.get(b"idempotency-key", b"").decode("latin-1").strip()
        if not idem_key:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        key = (headers.get(b"authorization", b"").decode("latin-1"), idem_key)
        fp = fingerprint(scope["method"], scope["path"], scope.get("query_string", b""), body)
        entry = self.store.lookup(key)
        if entry is not None:
            await self._answer_repeat(entry, fp, idem_key, scope, receive, send)
            return

        self.store.begin(key, fp)
        status = 500
        response_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body(body, receive), capture)
        except BaseException:
            self.store.forget(key)
            raise
        if status >= 500 or status in _NOT_STORED:
            self.store.forget(key)
        else:
            self.store.complete(key, status, response_headers, b"".join(chunks))

    async def _answer_repeat(
        self,
        entry: StoredResponse,
        fp: str,
        idem_key: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if entry.fingerprint != fp:
            error = MollieError(
                400,
                f"The Idempotency-Key '{idem_key}' was already used with a different request "
                "(method, path or body differ).",
            )
            await error.response()(scope, receive, send)
        elif entry.in_flight or entry.status is None:
            error = MollieError(
                409,
                f"A request with Idempotency-Key '{idem_key}' is still being processed; "
                "retry once it has completed.",
            )
            await error.response()(scope, receive, send)
        else:
            headers = [(k, v) for k, v in entry.headers if k.lower() != b"idempotent-replayed"]
            headers.append((b"idempotent-replayed", b"true"))
            await send({"type": "http.response.start", "status": entry.status, "headers": headers})
            await send({"type": "http.response.body", "body": entry.body})
