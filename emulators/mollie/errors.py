"""Mollie's error body and the exception that carries it out of the business logic.

The official client builds its exception from `status`, `detail` and `field`; a body without
`detail` makes it crash with KeyError, so every error the emulator emits goes through here.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

HAL_JSON = "application/hal+json"
ERRORS_DOC = "https://docs.mollie.com/overview/handling-errors"
AUTH_DOC = "https://docs.mollie.com/overview/authentication"

TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class MollieError(Exception):
    """A failure that the API reports to the caller in Mollie's error format."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        documentation: str = ERRORS_DOC,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.documentation = documentation

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.detail, field=self.field, doc=self.documentation)

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(
            self.body(), status_code=self.status, media_type=HAL_JSON, headers=headers
        )


def error_body(
    status: int, detail: str, *, field: str | None = None, doc: str = ERRORS_DOC
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": status,
        "title": TITLES.get(status, "Error"),
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    body["_links"] = {"documentation": {"href": doc, "type": "text/html"}}
    return body


def unprocessable(detail: str, field: str | None = None) -> MollieError:
    return MollieError(422, detail, field=field)


def not_found(kind: str, token: str) -> MollieError:
    return MollieError(404, f"No {kind} exists with token {token}.")
