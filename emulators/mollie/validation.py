"""Field checks for request bodies, each failing with Mollie's 422 naming the field."""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import MollieError, unprocessable

_LOCALE = re.compile(r"^[a-z]{2}_[A-Z]{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_IBAN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
METADATA_LIMIT_BYTES = 1024


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request; the official client sends an empty body on DELETE."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise MollieError(400, f"The request body is not valid JSON: {err}.") from err
    if not isinstance(body, dict):
        raise MollieError(400, "The request body must be a JSON object.")
    return body


def optional_str(body: dict[str, Any], name: str, *, max_length: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise unprocessable(f"The '{name}' field must be a string.", name)
    if len(value) > max_length:
        raise unprocessable(f"The '{name}' field is longer than {max_length} characters.", name)
    return value


def required_str(body: dict[str, Any], name: str, *, max_length: int = 255) -> str:
    value = optional_str(body, name, max_length=max_length)
    if value is None or not value.strip():
        raise unprocessable(f"The '{name}' field is required.", name)
    return value


def optional_url(body: dict[str, Any], name: str) -> str | None:
    value = optional_str(body, name, max_length=2048)
    if value is None or value == "":
        return None
    if not value.startswith(("http://", "https://")):
        raise unprocessable(f"The '{name}' is not a valid URL.", name)
    return value


def optional_locale(body: dict[str, Any]) -> str | None:
    value = optional_str(body, "locale")
    if value is not None and not _LOCALE.match(value):
        raise unprocessable(f"The locale '{value}' is invalid.", "locale")
    return value


def optional_email(body: dict[str, Any], name: str = "email") -> str | None:
    value = optional_str(body, name, max_length=320)
    if value is not None and not _EMAIL.match(value):
        raise unprocessable(f"The email address '{value}' is invalid.", name)
    return value


def optional_date(body: dict[str, Any], name: str) -> str | None:
    value = optional_str(body, name)
    if value is not None and not _DATE.match(value):
        raise unprocessable(f"The '{name}' must be a date formatted as YYYY-MM-DD.", name)
    return value


def iban(body: dict[str, Any], name: str = "consumerAccount") -> str:
    value = required_str(body, name).replace(" ", "").upper()
    if not _IBAN.match(value):
        raise unprocessable(f"The '{name}' is not a valid IBAN.", name)
    return value


def metadata(body: dict[str, Any]) -> Any:
    """Metadata is stored and echoed as given, within Mollie's 1 kB limit."""
    value = body.get("metadata")
    if value is not None and len(json.dumps(value)) > METADATA_LIMIT_BYTES:
        raise unprocessable("The metadata is too large, it may be at most 1024 bytes.", "metadata")
    return value


def choice(body: dict[str, Any], name: str, allowed: frozenset[str], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(sorted(allowed))
        raise unprocessable(f"The '{name}' must be one of: {options}.", name)
    return value
