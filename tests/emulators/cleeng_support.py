"""Helpers shared by the Cleeng emulator tests: a running emulator and its clients.

Plain context managers and functions rather than fixtures, so each test module serves the
emulator with its own configuration and scope; the per-test fixtures built on them (`ops`,
`api`) are in this folder's conftest. This module holds no tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from emulators.cleeng.app import create_app
from emulators.cleeng.config import CleengEmulatorConfig
from tests.support.servers import serve_in_thread

# The payment method id the emulator gives Mollie unless configured otherwise.
MOLLIE = 555000001


@dataclass(frozen=True)
class CleengServer:
    """A Cleeng emulator served on loopback, and the publisher token its Core API takes."""

    url: str
    token: str


@contextmanager
def running_cleeng(config: CleengEmulatorConfig) -> Iterator[CleengServer]:
    # No uvicorn Date header: the emulator stamps its own from its (movable) clock.
    with serve_in_thread(create_app(config), date_header=False) as url:
        yield CleengServer(url=url, token=config.publisher_token)


def publisher_client(server: CleengServer, timeout: float = 10) -> httpx.Client:
    """A Core API client that sends the publisher token, as the connector does."""
    return httpx.Client(
        base_url=server.url, headers={"X-Publisher-Token": server.token}, timeout=timeout
    )


def reset(ops: httpx.Client) -> None:
    """Forget every record, webhook subscriptions included, so no test sees another's."""
    ops.post("/_emulator/reset", json={"keepWebhookSubscriptions": False})


def initial_payment_body(
    seeded: dict[str, Any], status: str = "captured", **extra: Any
) -> dict[str, Any]:
    """A create-a-payment body for an order from `/_emulator/seed/purchase`, as a connector
    records an initial payment: string order id and inline payment details."""
    return {
        "orderId": str(seeded["orderId"]),
        "status": status,
        "paymentOperation": "initial-payment",
        "paymentDetails": {
            "customerId": seeded["customerId"],
            "token": "cst_1:mdt_1",
            "paymentMethodId": MOLLIE,
        },
        **extra,
    }


def subscription_error(message: str) -> dict[str, Any]:
    """The body a subscription endpoint answers an error with: the message in the envelope
    its successful answers use, not the bare `{"message": ...}` of the other endpoints."""
    return {"success": False, "subscription": None, "message": message}
