"""Telemetry of a real purchase: the worker's SDK metrics, one trace from the shim's request to
the HTTP calls of the activities, JSON log lines with the workflow's ids, and no secret or
clear-text customer data in any of them.

The connector here runs in this process (shim as a real HTTP server, worker on the session's
dev server) so the spans can be read from an in-memory exporter; the launcher test at the end
checks the same wiring across real processes.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Interceptor as WorkerInterceptor
from temporalio.worker import Replayer

from api.app import create_app
from domain.purchase import PurchaseView, purchase_workflow_id
from settings import EMULATOR_FRONTEND_API_KEY, Settings
from telemetry.logs import configure_logging, log_handler, record_ids, settings_secrets
from telemetry.redaction import Redactor
from telemetry.sdk_metrics import worker_runtime
from telemetry.tracing import (
    RedactingSpanExporter,
    chosen_exporter,
    install_tracing,
    uninstall_tracing,
)
from temporal_connection import connect_temporal, tracing_interceptors
from tests.conftest import Emulators, connector_settings
from tests.support.histories import SAVED, replay_failures
from tests.support.servers import free_ports, serve_in_thread, start_launcher, stop_if_running
from tests.support.shop import choose_on_checkout, frontend_headers, seed_order
from tests.test_cleeng_webhooks import dunning_envelope, signed
from worker import WORKFLOWS, build_worker

ROOT = Path(__file__).resolve().parent.parent

# What the flow is fed and nothing may repeat: a customer's email, a mandate token, and the
# secrets the connector holds (the front-end key is sent on every call of the test).
SHOPPER_EMAIL = f"jane.telemetry-{uuid.uuid4().hex[:8]}@example.com"
SHOPPER_NAME = "Jane Telemetrydottir"
MANDATE_TOKEN = "mollie:cst_Tele8mEtRy01:mdt_Tele8mEtRy02"
FRONTEND_KEY = "telemetry-frontend-key-" + uuid.uuid4().hex


@dataclass(frozen=True)
class TracedConnector:
    settings: Settings
    client: Client
    api_url: str
    emulators: Emulators
    spans: InMemorySpanExporter
    provider: TracerProvider
    logs: io.StringIO


def forbidden(settings: Settings) -> list[str]:
    """Everything that must never show up in a log line, a span or a metric."""
    return [
        SHOPPER_EMAIL,
        SHOPPER_EMAIL.replace("@", "%40"),
        SHOPPER_NAME,
        MANDATE_TOKEN,
        "mdt_Tele8mEtRy02",
        *settings_secrets(settings),
    ]


@pytest.fixture(scope="module")
def captured_logs() -> Iterator[io.StringIO]:
    """JSON lines of every logger in this process, through the redacting handler the
    connector's processes use (added beside pytest's own handlers, not instead of them)."""
    stream = io.StringIO()
    handler = log_handler("json", "tests", [FRONTEND_KEY], stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(scope="module")
async def traced(
    emulators: Emulators, temporal_env: WorkflowEnvironment, captured_logs: io.StringIO
) -> AsyncIterator[TracedConnector]:
    api_port, metrics_port = free_ports(2)
    api_url = f"http://127.0.0.1:{api_port}"
    address = temporal_env.client.service_client.config.target_host
    settings = connector_settings(
        emulators, address, api_url, f"tests-telemetry-{uuid.uuid4().hex[:8]}"
    ).model_copy(
        update={
            "tracing_exporter": "console",  # on; the spans go to `exporter` below instead
            "worker_metrics_address": f"127.0.0.1:{metrics_port}",
            "frontend_api_keys": (SecretStr(FRONTEND_KEY),),
        }
    )
    exporter = InMemorySpanExporter()
    provider = install_tracing(settings, "connector-tests", [FRONTEND_KEY], exporter=exporter)
    assert provider is not None
    try:
        client = await connect_temporal(settings, runtime=worker_runtime(settings))
        with serve_in_thread(create_app(settings), api_port):
            async with build_worker(client, settings) as worker, worker:
                yield TracedConnector(
                    settings=settings,
                    client=client,
                    api_url=api_url,
                    emulators=emulators,
                    spans=exporter,
                    provider=provider,
                    logs=captured_logs,
                )
    finally:
        uninstall_tracing(provider)


@pytest.fixture(scope="module")
async def purchase(traced: TracedConnector) -> PurchaseView:
    """A checkout paid by a shopper with a known email, to its capture in Cleeng."""
    seeded = await seed_order(traced.emulators.cleeng_url, email=SHOPPER_EMAIL, price=9.99)
    headers = frontend_headers(traced.settings, seeded["customerId"])
    assert headers["Authorization"] == f"Bearer {FRONTEND_KEY}"
    async with httpx.AsyncClient() as http:
        started = await http.post(
            f"{traced.api_url}/purchases",
            json={"orderId": str(seeded["orderId"]), "redirectUrl": "https://shop.example/ok"},
            headers=headers,
            timeout=60,
        )
    assert started.status_code == 201, started.text
    await choose_on_checkout(started.json()["checkoutUrl"], "paid")
    handle = traced.client.get_workflow_handle(
        purchase_workflow_id(str(seeded["orderId"])), result_type=PurchaseView
    )
    final: PurchaseView = await handle.result()
    assert final.status == "captured"
    # What a careless line or attribute would leak: the handlers and the span exporter must
    # remove it all the same.
    logging.getLogger("careless").warning(
        "customer %s (%s) paid with %s using Authorization: Bearer %s",
        SHOPPER_EMAIL,
        SHOPPER_NAME.join(("firstName=", "")),
        MANDATE_TOKEN,
        FRONTEND_KEY,
    )
    try:
        raise ValueError(f"refused for {SHOPPER_EMAIL} token={MANDATE_TOKEN}")
    except ValueError:
        logging.getLogger("careless").exception("while charging %s", final.order_id)
    tracer = trace.get_tracer("careless")
    with tracer.start_as_current_span(
        f"charge {SHOPPER_EMAIL}",
        attributes={"customer.email": SHOPPER_EMAIL, "url.full": f"https://x/?key={FRONTEND_KEY}"},
    ):
        pass
    traced.provider.force_flush()
    return final


async def wait_for_series(url: str, *names: str, timeout: float = 30) -> str:
    """The metrics page once every series in `names` is on it (the SDK publishes a workflow's
    completion as the worker reports it, a moment after the client sees the result)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            page = (await http.get(url)).text
            if all(name in page for name in names) or time.monotonic() > deadline:
                return page
            # The SDK offers no completion hook for its metrics: scrape again shortly.
            await asyncio.sleep(0.1)


async def test_the_worker_serves_the_sdks_workflow_and_activity_metrics(
    traced: TracedConnector, purchase: PurchaseView
) -> None:
    page = await wait_for_series(
        f"http://{traced.settings.worker_metrics_address}/metrics",
        "temporal_workflow_completed_total",
        "temporal_activity_execution_latency",
    )
    assert COMPLETED_PURCHASE.search(page)
    assert "temporal_activity_execution_latency" in page
    assert 'activity_type="load_order"' in page
    assert "temporal_worker_task_slots_available" in page


def spans_by_trace(spans: tuple[ReadableSpan, ...]) -> dict[int, list[ReadableSpan]]:
    traces: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        assert span.context is not None
        traces.setdefault(span.context.trace_id, []).append(span)
    return traces


async def test_one_trace_runs_from_the_request_through_the_workflow_to_http_calls(
    traced: TracedConnector, purchase: PurchaseView
) -> None:
    spans = traced.spans.get_finished_spans()
    [request] = [s for s in spans if s.kind == SpanKind.SERVER and s.name == "POST /purchases"]
    assert request.context is not None
    names = {(s.name, s.kind) for s in spans_by_trace(spans)[request.context.trace_id]}
    workflow_id = purchase_workflow_id(purchase.order_id)
    assert ("StartUpdateWithStartWorkflow:InitialPurchase", SpanKind.CLIENT) in names
    assert ("RunWorkflow:InitialPurchase", SpanKind.SERVER) in names
    assert ("RunActivity:load_order", SpanKind.SERVER) in names
    assert ("RunActivity:create_checkout_payment", SpanKind.SERVER) in names
    http_calls = [
        s
        for s in spans_by_trace(spans)[request.context.trace_id]
        if s.kind == SpanKind.CLIENT and s.instrumentation_scope is not None
    ]
    scopes = {s.instrumentation_scope.name for s in http_calls if s.instrumentation_scope}
    # Cleeng's client is httpx, Mollie's is requests: both calls are in the shopper's trace.
    assert "opentelemetry.instrumentation.httpx" in scopes
    assert "opentelemetry.instrumentation.requests" in scopes
    activity_ids = {
        s.attributes.get("temporalWorkflowID")
        for s in spans
        if s.name.startswith("RunActivity:") and s.attributes
    }
    assert workflow_id in activity_ids


async def test_json_log_lines_parse_and_carry_the_workflows_ids(
    traced: TracedConnector, purchase: PurchaseView
) -> None:
    lines = [json.loads(line) for line in traced.logs.getvalue().splitlines()]
    assert lines, "nothing was logged"
    workflow_id = purchase_workflow_id(purchase.order_id)
    ours = [line for line in lines if line.get("workflow_id") == workflow_id]
    assert {"temporalio.workflow", "api.purchases"} <= {line["logger"] for line in ours}
    assert all(line["order_id"] == purchase.order_id for line in ours)
    careless = [line for line in lines if line["logger"] == "careless"]
    assert careless[0]["level"] == "WARNING"
    assert "ValueError" in careless[1]["exception"]
    assert all(
        {"time", "level", "logger", "message", "process", "pid"} <= line.keys() for line in lines
    )


async def test_no_secret_or_customer_data_in_logs_spans_or_metrics(
    traced: TracedConnector, purchase: PurchaseView
) -> None:
    logs = traced.logs.getvalue()
    spans = "\n".join(span.to_json() for span in traced.spans.get_finished_spans())
    async with httpx.AsyncClient() as http:
        worker_metrics = (
            await http.get(f"http://{traced.settings.worker_metrics_address}/metrics")
        ).text
        shim_metrics = (await http.get(f"{traced.api_url}/metrics")).text
    assert "<redacted>" in logs, "the careless lines were not captured"
    assert "<email>" in logs, "the careless lines were not captured"
    assert "<email>" in spans, "the careless span was not captured"
    for name, text in {
        "logs": logs,
        "spans": spans,
        "worker metrics": worker_metrics,
        "shim metrics": shim_metrics,
    }.items():
        for value in forbidden(traced.settings):
            assert value not in text, f"{value[:6]}... leaked into the {name}"
        # The flow's own Mollie customer and mandate (its recurring token) too: the emulator
        # logs and traces the Mollie URLs that name them.
        assert not re.search(r"\b(?:cst|mdt)_(?!<redacted>)", text), f"a token in the {name}"


def test_redaction_removes_secrets_and_customer_data_and_keeps_payment_ids() -> None:
    redact = Redactor(["publisher-token-0123456789"])
    text = (
        "jane@example.com jane%40example.com Bearer abc.def-123 "
        "test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM "
        "mollie:cst_8wmqcHMN4U:mdt_h3gAaD5zP cst_8wmqcHMN4U mdt_h3gAaD5zP "
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln X-Publisher-Token: publisher-token-0123456789 "
        '{"firstName": "Jane", "lastName": "Doe"} secret=s3cr3t '
        "order 8800001 payment tr_WDqYK6vllg refund re_4qqhO89gsT subscription 770000001"
    )
    redacted = redact(text)
    for leaked in (
        "jane",
        "Jane",
        "Doe",
        "abc.def-123",
        "dHar4XY7",
        "8wmqcHMN4U",
        "h3gAaD5zP",
        "eyJhbGci",
        "publisher-token-0123456789",
        "s3cr3t",
    ):
        assert leaked not in redacted
    for kept in ("8800001", "tr_WDqYK6vllg", "re_4qqhO89gsT", "770000001"):
        assert kept in redacted


def test_a_json_line_carries_the_ids_an_activity_and_its_workflow_id_give() -> None:
    record = logging.LogRecord("a", logging.INFO, __file__, 1, "captured %s", ("tr_abc",), None)
    record.temporal_activity = {
        "activity_id": "7",
        "activity_type": "record_payment",
        "attempt": 2,
        "workflow_id": "billing:770000001:2030-01-07T18:55:41Z",
        "workflow_run_id": "run-1",
        "workflow_type": "RecurringBillingWorkflow",
    }
    assert record_ids(record) == {
        "workflow_id": "billing:770000001:2030-01-07T18:55:41Z",
        "run_id": "run-1",
        "workflow_type": "RecurringBillingWorkflow",
        "activity": "record_payment",
        "activity_id": "7",
        "attempt": 2,
        "subscription_id": "770000001",
        "mollie_payment_ids": ["tr_abc"],
    }


def test_text_lines_are_redacted_too() -> None:
    stream = io.StringIO()
    handler = configure_logging("text", "tests", ["a-configured-secret"], stream=stream)
    try:
        logging.getLogger("t").info("key a-configured-secret for %s", SHOPPER_EMAIL)
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue().endswith("t INFO key <redacted> for <email>\n")


def test_a_line_whose_arguments_do_not_fit_is_written_not_raised() -> None:
    stream = io.StringIO()
    handler = configure_logging("json", "tests", stream=stream)
    try:
        logging.getLogger("t").info("%d for %s", "not a number", SHOPPER_EMAIL)
    finally:
        logging.getLogger().removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "%d for %s [arguments did not fit the message]"


async def test_temporal_unavailable_answers_and_refused_webhooks_are_counted(
    emulators: Emulators,
) -> None:
    settings = connector_settings(emulators, "127.0.0.1:1", "http://127.0.0.1:1", "unused")
    app = create_app(settings)
    body, headers = signed(settings, dunning_envelope())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shim") as shim:
        answer = await shim.post("/webhooks/cleeng", content=body, headers=headers)
        assert answer.status_code == 503
        malformed = await shim.post("/webhooks/mollie", data={"id": "not-a-mollie-id"})
        assert malformed.status_code == 422
        metrics = (await shim.get("/metrics")).text
    assert 'connector_temporal_unavailable_total{route="/webhooks/cleeng"} 1.0' in metrics
    assert 'connector_webhooks_total{outcome="unavailable",source="cleeng"} 1.0' in metrics
    assert 'connector_webhooks_total{outcome="rejected",source="mollie"} 1.0' in metrics


@pytest.mark.long_running(seconds=12)
def test_the_launchers_processes_log_json_and_each_worker_serves_its_metrics(
    tmp_path: Path,
) -> None:
    """Real processes, as `scripts/run` starts them, with LOG_FORMAT=json and two workers."""
    data_dir = tmp_path / ".data"
    launcher, ports = start_launcher(
        data_dir, cwd=tmp_path, extra_env={"LOG_FORMAT": "json", "WORKER_PROCESSES": "2"}
    )
    try:
        assert launcher.stdout is not None
        banner = []
        for line in launcher.stdout:
            banner.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert launcher.poll() is None, "".join(banner)
        first, second = ports["worker-metrics"], ports["worker-metrics"] + 1
        assert f"http://127.0.0.1:{first}/metrics   (worker)" in "".join(banner)
        assert f"http://127.0.0.1:{second}/metrics   (worker-2)" in "".join(banner)
        api = f"http://127.0.0.1:{ports['api']}"
        order_id = pay_through_the_launchers_stack(api, f"http://127.0.0.1:{ports['cleeng']}")
        pages = completed_purchase_metrics(first, second)
    finally:
        stop_if_running(launcher)
    assert all("temporal_worker_task_slots_available" in page for page in pages)
    assert any(COMPLETED_PURCHASE.search(page) for page in pages)
    logs = data_dir / "logs"
    lines = [
        json.loads(line)
        for name in ("worker", "worker-2", "api", "mollie-emulator", "cleeng-emulator")
        for line in (logs / f"{name}.log").read_text().splitlines()
        if not line.startswith("--- launcher:")
    ]
    workflow_id = purchase_workflow_id(order_id)
    assert any(line.get("workflow_id") == workflow_id for line in lines)
    assert {line["process"] for line in lines} >= {"worker", "api", "mollie-emulator"}
    everything = "\n".join(json.dumps(line) for line in lines)
    assert SHOPPER_EMAIL not in everything
    assert "mdt_" not in everything.replace("mdt_<redacted>", "")


COMPLETED_PURCHASE = re.compile(
    r'^temporal_workflow_completed_total\{[^}]*workflow_type="InitialPurchase"[^}]*\} [1-9]', re.M
)


def completed_purchase_metrics(*ports: int, timeout: float = 30) -> list[str]:
    """Each worker's metrics page, once one of them counts a completed purchase: a purchase
    reports `captured` a moment before its workflow completes."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as http:
        while True:
            pages = [http.get(f"http://127.0.0.1:{port}/metrics").text for port in ports]
            completed = any(COMPLETED_PURCHASE.search(page) for page in pages)
            if completed or time.monotonic() > deadline:
                return pages
            time.sleep(0.1)  # across processes there is nothing to wait on but the page


def pay_through_the_launchers_stack(api: str, cleeng: str) -> str:
    """A purchase with a known email through the launcher's processes; its order id."""
    with httpx.Client(timeout=30) as http:
        seeded = http.post(
            f"{cleeng}/_emulator/seed/purchase", json={"email": SHOPPER_EMAIL}
        ).json()
        order_id = str(seeded["orderId"])
        acting = {
            "Authorization": f"Bearer {EMULATOR_FRONTEND_API_KEY}",
            "X-Cleeng-Customer-Id": str(seeded["customerId"]),
        }
        started = http.post(
            f"{api}/purchases",
            json={"orderId": order_id, "redirectUrl": f"{api}/purchases/{order_id}"},
            headers=acting,
        )
        assert started.status_code == 201, started.text
        checkout = started.json()["checkoutUrl"]
        http.post(checkout, data={"status": "paid"}, follow_redirects=False)
        deadline = time.monotonic() + 60
        state = started.json()
        while state["status"] != "captured" and time.monotonic() < deadline:
            # Across processes there is nothing to wait on but the answer itself.
            time.sleep(0.2)
            state = http.get(f"{api}/purchases/{order_id}", headers=acting).json()
        assert state["status"] == "captured", state
        return order_id


async def test_saved_histories_replay_with_the_tracing_interceptor() -> None:
    """A worker with tracing on replays the histories of workflows started without it (and
    the interceptor's workflow side runs inside the sandbox)."""
    on = Settings(_env_file=None, tracing_exporter="console")
    interceptors = [i for i in tracing_interceptors(on) if isinstance(i, WorkerInterceptor)]
    assert interceptors, "tracing on must add the interceptor"
    replayer = Replayer(workflows=WORKFLOWS, interceptors=interceptors)
    # One history per workflow type: tests/test_replay.py replays them all without tracing.
    first_of_type = {path.stem.rsplit("-", 1)[0]: path for path in reversed(SAVED)}
    failures = await replay_failures(replayer, list(first_of_type.values()))
    assert {stem: failure for stem, failure in failures.items() if failure} == {}


class CollectorHandler(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace collector's one endpoint: keeps what it receives."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # quiet: the test reads what was received


def test_otlp_sends_redacted_spans_to_the_collector_the_standard_variable_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collector = ThreadingHTTPServer(("127.0.0.1", 0), CollectorHandler)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = collector.server_address[:2]
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{host!s}:{port}")
        settings = Settings(_env_file=None, tracing_exporter="otlp")
        # A provider of the test's own: the process-wide one belongs to the fixtures above.
        provider = TracerProvider()
        exporter = RedactingSpanExporter(chosen_exporter(settings), Redactor([FRONTEND_KEY]))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("tests").start_as_current_span(
            "RunActivity:load_order",
            attributes={"temporalWorkflowID": "purchase:123", "note": SHOPPER_EMAIL},
        ):
            pass
        provider.shutdown()
    finally:
        collector.shutdown()
        thread.join(timeout=10)
    [(path, body)] = CollectorHandler.received
    assert path == "/v1/traces"
    assert b"RunActivity:load_order" in body
    assert b"purchase:123" in body
    assert SHOPPER_EMAIL.encode() not in body
