"""FastAPI dependencies shared by the route modules."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from .emulator import CleengEmulator
from .errors import CleengError, Unprocessable
from .reference import INT32_MAX, PUBLISHER_TOKEN_HEADER


def get_emulator(request: Request) -> CleengEmulator:
    emulator: CleengEmulator = request.app.state.emulator
    return emulator


Emulator = Annotated[CleengEmulator, Depends(get_emulator)]


async def require_publisher_token(
    emulator: Emulator,
    token: Annotated[str | None, Header(alias=PUBLISHER_TOKEN_HEADER)] = None,
) -> None:
    """Every Core API call carries the publisher token; compared in constant time."""
    expected = emulator.config.publisher_token.encode()
    if token is None or not hmac.compare_digest(token.encode(), expected):
        raise CleengError(401, "Invalid publisher token")


def parse_id(raw: str, kind: str) -> int:
    """Path ids that are not integers name nothing, so they are simply not found."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        raise CleengError(404, f"{kind} {raw} not found")
    return int(text)


def parse_int32_id(raw: str, kind: str, parameter: str) -> int:
    """A Core API path id the reference types int32: not a number -> 404 (it names nothing);
    a number beyond int32 -> 422 naming the path parameter."""
    value = parse_id(raw, kind)
    if value > INT32_MAX:
        raise Unprocessable(f"Path parameter '{parameter}' must be an int32")
    return value
