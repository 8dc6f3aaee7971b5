"""Helpers shared by the Mollie emulator tests: a running emulator, a webhook receiver.

Plain context managers and classes rather than fixtures, so each test module serves the
emulator with its own configuration and scope (and `tests/test_mollie_gateway.py`, outside
this folder, can too); the per-test fixtures built on them (`emulator`, `receiver`) are in
this folder's conftest. This module holds no tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs

import httpx
from fastapi import FastAPI, Request
from mollie.api.client import Client
from starlette.responses import Response

from emulators.mollie import MollieEmulatorConfig, create_app
from emulators.mollie.emulator import MollieEmulator
from tests.support.servers import free_port, serve_in_thread

API_KEY = "test_contractkey000000000000000000"
EUR = "EUR"


def eur(value: str) -> dict[str, str]:
    return {"currency": EUR, "value": value}


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll `condition` until it holds or the deadline passes (then fail loudly)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.005)


@dataclass
class RunningEmulator:
    """A Mollie emulator served on loopback, with shortcuts to its controls."""

    base_url: str
    app: FastAPI
    http: httpx.Client

    @property
    def state(self) -> MollieEmulator:
        return cast(MollieEmulator, self.app.state.emulator)

    def client(self, timeout: tuple[float, float] = (2, 10), api_key: str = API_KEY) -> Client:
        client = Client(api_endpoint=self.base_url, timeout=timeout, retry=0)  # type: ignore[arg-type]
        client.set_api_key(api_key)
        return client

    def control(self, method: str, path: str, json: Any = None) -> Any:
        response = self.http.request(method, f"/_emulator{path}", json=json)
        assert response.is_success, response.text
        return response.json()

    def advance(self, seconds: float) -> Any:
        return self.control("POST", "/clock/advance", {"seconds": seconds})

    def ledger(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.control("GET", "/ledger")["payments"])

    def deliveries(self, payment_id: str) -> list[dict[str, Any]]:
        log = self.control("GET", f"/webhooks?paymentId={payment_id}")
        return cast(list[dict[str, Any]], log["deliveries"])

    def set_faults(self, **settings: Any) -> Any:
        return self.control("POST", "/faults", settings)

    def checkout(self, checkout_url: str, status: str) -> httpx.Response:
        """What a person does on the hosted page: press one of the form's buttons."""
        return self.http.post(checkout_url, data={"status": status}, follow_redirects=False)


@contextmanager
def running_emulator(**overrides: Any) -> Iterator[RunningEmulator]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    config = MollieEmulatorConfig(api_key=API_KEY, public_url=base_url, **overrides)
    app = create_app(config)
    with (
        serve_in_thread(app, port=port) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield RunningEmulator(base_url=url, app=app, http=http)


class WebhookReceiver:
    """A shop's webhook endpoint: records each `id=` it gets, fails the first N on request."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.url = ""
        self._received: list[str] = []
        self._failures_left = 0
        self._changed = threading.Condition()
        self.app.post("/hook")(self._hook)

    async def _hook(self, request: Request) -> Response:
        fields = parse_qs((await request.body()).decode())
        with self._changed:
            self._received.append(fields.get("id", [""])[0])
            failing = self._failures_left > 0
            if failing:
                self._failures_left -= 1
            self._changed.notify_all()
        return Response(status_code=500 if failing else 200)

    def fail_next(self, count: int) -> None:
        with self._changed:
            self._failures_left = count

    def received(self) -> list[str]:
        with self._changed:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[str]:
        """Block until at least `count` webhooks arrived; no fixed sleeps."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self._received) >= count, timeout)
            assert arrived, f"expected {count} webhooks, got {self._received}"
            return list(self._received)

    def reset(self) -> None:
        with self._changed:
            self._received.clear()
            self._failures_left = 0


@contextmanager
def running_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    with serve_in_thread(receiver.app) as url:
        receiver.url = f"{url}/hook"
        yield receiver
