"""Per-test fixtures shared by the emulator tests.

Each test module serves its own emulator, with the configuration it tests, in a module-scoped
fixture: `cleeng` (a `CleengServer`) or `server` (a Mollie `RunningEmulator`). Starting a
server costs a thread and a port, so it lives for the module; the fixtures here hand each
test that emulator reset, so no test sees another's records, faults or clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.emulators.cleeng_support import CleengServer, publisher_client, reset
from tests.emulators.test_mollie_support import RunningEmulator, WebhookReceiver, running_receiver

# ------------------------------------------------------------------------------ Cleeng


@pytest.fixture
def ops(cleeng: CleengServer) -> Iterator[httpx.Client]:
    """Operator client (no publisher token); every test starts from a fresh emulator."""
    with httpx.Client(base_url=cleeng.url, timeout=10) as client:
        reset(client)
        yield client


@pytest.fixture
def api(cleeng: CleengServer, ops: httpx.Client) -> Iterator[httpx.Client]:
    """Core API client with the publisher token; asks for `ops` so the reset comes first."""
    with publisher_client(cleeng) as client:
        yield client


# ------------------------------------------------------------------------------ Mollie


@pytest.fixture
def emulator(server: RunningEmulator) -> RunningEmulator:
    server.control("POST", "/reset")
    return server


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[WebhookReceiver]:
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(receiver_server: WebhookReceiver) -> WebhookReceiver:
    receiver_server.reset()
    return receiver_server
