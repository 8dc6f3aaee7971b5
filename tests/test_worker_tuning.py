"""How much one worker takes on at once, and how it talks to Mollie while doing it.

The Mollie client runs on a pool of threads of its own, each keeping one connection alive: a
plain HTTP/1.1 keep-alive server counts the connections it accepts. The worker takes its slot
counts from the settings, and a local activity does not heartbeat (the server knows nothing
of it) while an ordinary activity does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    Interceptor,
    UnsandboxedWorkflowRunner,
    Worker,
)

from activities.heartbeat import heartbeat_before_request
from clients.errors import FailureKind, ServiceError
from clients.mollie import MollieGateway
from settings import EMULATOR_MOLLIE_API_KEY, Settings
from worker import build_worker, cleeng_limits

# How long a test waits for a condition that should hold at once; reaching it is a failure.
PATIENCE_SECONDS = 30.0

# ----------------------------------------------------------------- a counting Mollie stand-in


@dataclass
class Counts:
    accepted_connections: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class CountingServer(ThreadingHTTPServer):
    """Counts every connection it accepts; each request waits at `wave` (a barrier) until as
    many requests as the barrier's parties are being served at the same time."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, hang_up: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.counts = Counts()
        self.wave: threading.Barrier | None = None
        self.hang_up = hang_up

    def get_request(self) -> tuple[Any, Any]:
        accepted = super().get_request()
        with self.counts.lock:
            self.counts.accepted_connections += 1
        return accepted


class PaymentHandler(BaseHTTPRequestHandler):
    """`GET /v2/payments/{id}` as Mollie answers it, over a kept-alive HTTP/1.1 connection."""

    protocol_version = "HTTP/1.1"
    server: CountingServer

    def do_GET(self) -> None:
        with self.server.counts.lock:
            self.server.counts.requests += 1
        if self.server.hang_up:
            self.close_connection = True
            return
        if self.server.wave is not None:
            self.server.wave.wait(timeout=PATIENCE_SECONDS)
        payment_id = self.path.rsplit("/", 1)[-1]
        body = json.dumps(
            {
                "resource": "payment",
                "id": payment_id,
                "status": "paid",
                "amount": {"currency": "EUR", "value": "9.99"},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/hal+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the counts, not the log."""


@contextmanager
def counting_server(*, hang_up: bool = False) -> Iterator[CountingServer]:
    server = CountingServer(PaymentHandler, hang_up=hang_up)
    thread = threading.Thread(target=server.serve_forever, name="counting-mollie", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=PATIENCE_SECONDS)


def base_url(server: CountingServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


def mollie_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("mollie")}


async def one_wave(gateway: MollieGateway, server: CountingServer, size: int, wave: int) -> None:
    """`size` payment reads at once; the server answers none until all are in flight, so
    they only complete if `size` requests really run side by side."""
    server.wave = threading.Barrier(size)
    payments = await asyncio.gather(
        *(gateway.get_payment(f"tr_wave{wave}n{n}") for n in range(size))
    )
    assert {p.status for p in payments} == {"paid"}
    assert not server.wave.broken


async def test_concurrent_requests_share_one_kept_alive_connection_per_thread() -> None:
    threads = 8
    already_running = mollie_threads()
    with counting_server() as server:
        gateway = MollieGateway(base_url(server), EMULATOR_MOLLIE_API_KEY, threads=threads)
        try:
            await one_wave(gateway, server, threads, wave=1)
            assert server.counts.accepted_connections == threads
            own_threads = mollie_threads() - already_running
            assert len(own_threads) == threads

            # The second wave finds every connection of the first waiting in the pool.
            await one_wave(gateway, server, threads, wave=2)
            await one_wave(gateway, server, threads // 2, wave=3)
            assert server.counts.requests == threads * 2 + threads // 2
            assert server.counts.accepted_connections == threads
        finally:
            await gateway.aclose()
        # Closing waits for the gateway's threads and ends them.
        assert not any(thread.is_alive() for thread in own_threads)


async def test_the_gateway_makes_one_attempt_per_request() -> None:
    # Temporal owns retries: a connection Mollie drops is one failed attempt, not three.
    with counting_server(hang_up=True) as server:
        gateway = MollieGateway(base_url(server), EMULATOR_MOLLIE_API_KEY, threads=4)
        try:
            with pytest.raises(ServiceError) as failure:
                await gateway.get_payment("tr_dropped")
        finally:
            await gateway.aclose()
    assert failure.value.kind is FailureKind.RETRYABLE
    assert (server.counts.requests, server.counts.accepted_connections) == (1, 1)


def pool_size(adapter: HTTPAdapter) -> int:
    """The most connections the adapter keeps for one host."""
    size: int = adapter.poolmanager.connection_pool_kw["maxsize"]
    return size


def http_adapter(gateway: MollieGateway) -> HTTPAdapter:
    session: requests.Session = gateway._client._client
    adapter = session.get_adapter("http://")
    assert isinstance(adapter, HTTPAdapter)
    return adapter


async def test_the_connection_pool_holds_a_connection_per_thread_and_never_retries() -> None:
    with counting_server() as server:
        gateway = MollieGateway(base_url(server), EMULATOR_MOLLIE_API_KEY, threads=24)
        try:
            adapter = http_adapter(gateway)
            # More connections than requests.Session's default pool of 10.
            assert pool_size(adapter) == 24 > requests.adapters.DEFAULT_POOLSIZE
            assert adapter.max_retries.total == 0
            await one_wave(gateway, server, 24, wave=1)
            await one_wave(gateway, server, 24, wave=2)
            # With the default pool, 14 connections of the first wave would have been closed
            # and opened again.
            assert server.counts.accepted_connections == 24
        finally:
            await gateway.aclose()


async def test_without_threads_the_client_keeps_its_own_session() -> None:
    # MOLLIE_THREADS=0: the loop's default executor and the session the official client
    # builds on its first request, kept so a benchmark can compare the two arrangements.
    before = mollie_threads()
    with counting_server() as server:
        gateway = MollieGateway(base_url(server), EMULATOR_MOLLIE_API_KEY, threads=0)
        try:
            assert not hasattr(gateway._client, "_client")  # built lazily, as the client does
            await one_wave(gateway, server, 2, wave=1)
            adapter = http_adapter(gateway)
            assert pool_size(adapter) == requests.adapters.DEFAULT_POOLSIZE
            assert adapter.max_retries.total == 0
            assert mollie_threads() == before
        finally:
            await gateway.aclose()


# ------------------------------------------------------------------------------ the worker


async def test_the_worker_takes_its_slots_from_the_settings(
    temporal_env: WorkflowEnvironment,
) -> None:
    settings = Settings(
        _env_file=None,
        worker_max_concurrent_activities=7,
        worker_max_concurrent_local_activities=5,
        worker_max_concurrent_workflow_tasks=3,
        worker_max_cached_workflows=11,
        mollie_threads=2,
    )
    async with build_worker(temporal_env.client, settings, task_queue="tuning-slots") as worker:
        config = worker.config()
    assert config["max_concurrent_activities"] == 7
    assert config["max_concurrent_local_activities"] == 5
    assert config["max_concurrent_workflow_tasks"] == 3
    assert config["max_cached_workflows"] == 11
    # No executor: every activity is async.
    assert config.get("activity_executor") is None


def test_the_cleeng_pool_keeps_a_connection_for_every_activity_slot() -> None:
    settings = Settings(_env_file=None)
    limits = cleeng_limits(settings)
    slots = (
        settings.worker_max_concurrent_activities + settings.worker_max_concurrent_local_activities
    )
    assert limits.max_connections == limits.max_keepalive_connections == slots


# ------------------------------------------------------------------------------ heartbeats


@dataclass
class Heartbeats:
    """Each heartbeat an activity sent, as (activity type, ran as a local activity)."""

    sent: list[tuple[str, bool]] = field(default_factory=list)


class RecordHeartbeats(Interceptor):
    def __init__(self, heartbeats: Heartbeats) -> None:
        self.heartbeats = heartbeats

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _RecordingInbound(next, self.heartbeats)


class _RecordingInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, heartbeats: Heartbeats) -> None:
        super().__init__(next)
        self.heartbeats = heartbeats

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        super().init(_RecordingOutbound(outbound, self.heartbeats))


class _RecordingOutbound(ActivityOutboundInterceptor):
    def __init__(self, next: ActivityOutboundInterceptor, heartbeats: Heartbeats) -> None:
        super().__init__(next)
        self.heartbeats = heartbeats

    def heartbeat(self, *details: Any) -> None:
        info = activity.info()
        self.heartbeats.sent.append((info.activity_type, info.is_local))
        super().heartbeat(*details)


@activity.defn
async def two_requests() -> bool:
    """What a client does before each of two requests."""
    heartbeat_before_request()
    heartbeat_before_request()
    return activity.info().is_local


@workflow.defn(sandboxed=False)
class LocalThenRegular:
    @workflow.run
    async def run(self) -> list[bool]:
        timeout = timedelta(seconds=30)
        local = await workflow.execute_local_activity(two_requests, start_to_close_timeout=timeout)
        regular = await workflow.execute_activity(two_requests, start_to_close_timeout=timeout)
        return [local, regular]


async def test_a_local_activity_does_not_heartbeat_and_an_activity_does(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    heartbeats = Heartbeats()
    task_queue = f"heartbeats-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[LocalThenRegular],
        activities=[two_requests],
        interceptors=[RecordHeartbeats(heartbeats)],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        ran_as = await time_skipping_env.client.execute_workflow(
            LocalThenRegular.run, id=f"heartbeats-{uuid.uuid4()}", task_queue=task_queue
        )
    assert ran_as == [True, False]
    assert heartbeats.sent == [("two_requests", False), ("two_requests", False)]
