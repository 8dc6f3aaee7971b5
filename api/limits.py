"""Bounded input, enforced before any route sees a request (a pure ASGI middleware).

Every request the shim answers is small: a front-end call or a webhook of a few hundred bytes.
So, before anything else runs:

- more than `max_header_count` headers, or more than `max_header_bytes` of them: **431**;
- a query string longer than `max_query_bytes`: **414**;
- a body larger than `max_body_bytes`: **413**, decided *while the body streams in* (a
  chunked body has no Content-Length to check), as soon as the limit is passed; the rest is
  never read into memory (the server discards it) and the route never runs;
- a JSON body nested deeper than `max_json_depth`: **400** (Python's JSON parser recurses,
  so a few kilobytes of `[[[[...` would otherwise end in a RecursionError, a 500).

The body is read here once, up to the limit, and handed to the app unchanged. Each rejection
logs one line. The same middleware turns an exception no route handled into one log line and
a 500 `{"detail": ...}`, instead of a multi-kilobyte traceback per request.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from asgi_body import replay_body

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A JSON string (escapes included): its brackets are text, not structure.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")
_LOGGED_PATH_CHARS = 200


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Is any array/object in `body` nested more than `limit` deep? Linear, no parsing."""
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    # FastAPI parses a body as JSON when it says so, and also when it names no content type.
    for name, value in headers:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type.endswith(b"/json") or media_type.endswith(b"+json")
    return True


class BoundedInput:
    """See the module docstring. Wrap the whole app with it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_header_count: int,
        max_header_bytes: int,
        max_query_bytes: int,
        max_json_depth: int,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_count = max_header_count
        self.max_header_bytes = max_header_bytes
        self.max_query_bytes = max_query_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refuse_head(scope)
        if refusal is not None:
            await _reject(scope, send, *refusal)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        if body and _is_json(scope["headers"]) and json_depth_exceeds(body, self.max_json_depth):
            await _reject(scope, send, 400, f"JSON nested deeper than {self.max_json_depth} levels")
            return
        await self._run(scope, replay_body(body, receive), send)

    def _refuse_head(self, scope: Scope) -> tuple[int, str] | None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if len(headers) > self.max_header_count:
            return 431, f"more than {self.max_header_count} request headers"
        if sum(len(name) + len(value) for name, value in headers) > self.max_header_bytes:
            return 431, f"request headers larger than {self.max_header_bytes} bytes"
        if len(scope.get("query_string", b"")) > self.max_query_bytes:
            return 414, f"query string longer than {self.max_query_bytes} bytes"
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return 413, f"body larger than {self.max_body_bytes} bytes"
        return None

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once a 413 has been sent (or the client went away)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                # Answer now; whatever else the client sends is never read into memory.
                await _reject(scope, send, 413, f"body larger than {self.max_body_bytes} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            # One line, with where it happened: enough to find the bug, no 6 KB per request.
            where = traceback.extract_tb(error.__traceback__)[-1:]
            place = f" at {where[0].filename}:{where[0].lineno}" if where else ""
            logger.error(
                "%s %s failed: %s: %s%s",
                scope.get("method"),
                _path(scope),
                type(error).__name__,
                str(error)[:300],
                place,
            )
            if not started:
                await _send_problem(send, 500, "internal error")


def _path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    return path[:_LOGGED_PATH_CHARS]


async def _reject(scope: Scope, send: Send, status: int, detail: str) -> None:
    logger.info("rejected %s %s: %d %s", scope.get("method"), _path(scope), status, detail)
    await _send_problem(send, status, detail)


async def _send_problem(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
