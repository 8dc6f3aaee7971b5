"""Errors in the shapes Cleeng answers with, and the FastAPI handlers that render them.

Most endpoints answer ``{"message": "..."}``; subscription endpoints wrap the message as
``{"success": false, "subscription": null, "message": "..."}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .reference import API_PREFIX, SUBSCRIPTION_WRAPPER_KEY

SUBSCRIPTIONS_PATH = f"{API_PREFIX}/subscriptions"


class CleengError(Exception):
    """A refusal with an HTTP status and Cleeng's human-readable message."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class NotFound(CleengError):
    """404: the named resource does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(404, message)


class Unprocessable(CleengError):
    """422: the request is well-formed but breaks a rule."""

    def __init__(self, message: str) -> None:
        super().__init__(422, message)


def error_body(path: str, message: str) -> dict[str, Any]:
    if path.startswith(SUBSCRIPTIONS_PATH):
        return {"success": False, SUBSCRIPTION_WRAPPER_KEY: None, "message": message}
    return {"message": message}


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in loc[1:]]
    name = ""
    for part in parts:
        name += f"[{part}]" if part.isdigit() else (f".{part}" if name else part)
    return name


def validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """Turn pydantic's first complaint into one Cleeng-style sentence naming the field."""
    errors = list(exc.errors())
    if not errors:
        return 422, "Invalid request"
    first = errors[0]
    loc = tuple(first.get("loc", ()))
    kind = str(first.get("type", ""))
    if kind == "json_invalid":
        return 400, "Request body is not valid JSON"
    where = loc[0] if loc else "body"
    field = _field_name(loc)
    if not field:
        return 422, "Request body is required" if kind == "missing" else "Invalid request body"
    label = "Query parameter" if where == "query" else "Field"
    if kind == "missing":
        return 422, f"{label} '{field}' is required"
    return 422, f"{label} '{field}' is invalid: {first.get('msg', 'invalid value')}"


def install_error_handlers(app: FastAPI) -> None:
    async def on_cleeng_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CleengError)
        return JSONResponse(error_body(request.url.path, exc.message), status_code=exc.status_code)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        status, message = validation_message(exc)
        return JSONResponse(error_body(request.url.path, message), status_code=status)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        status = exc.status_code
        headers = getattr(exc, "headers", None)
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        # A method the reference does not document on a Core API path is as unknown as an
        # unknown path: 404 with Cleeng's error body, not the framework's 405.
        if status == 405 and (path == API_PREFIX or path.startswith(f"{API_PREFIX}/")):
            status, headers = 404, None
            message = "Not Found"
        if status == 404 and message == "Not Found":
            message = f"Route {request.method} {path} not found"
        return JSONResponse(error_body(path, message), status_code=status, headers=headers)

    app.add_exception_handler(CleengError, on_cleeng_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
