"""The pages a person opens, in a real browser: Debian's Chromium, headless, driven by Playwright.

- The docs pages of the API and of both emulators list their operations with no network:
  every request a page sends goes to 127.0.0.1. Anything else is refused and recorded, so a
  page that needs a CDN fails here even on a machine that happens to be online.
- A shopper pays a real purchase on the Mollie emulator's hosted checkout page, is sent back
  to the redirect URL, and the connector reports the purchase captured.
- On a stack with encrypted history (its own dev server with the Web UI, wired to the codec
  server as `scripts/run` wires it), a failed workflow's type and message are readable in the
  Web UI (and in `temporal workflow describe`), while its input stays ciphertext in Temporal.

Where /usr/bin/chromium is missing these tests are skipped, saying how to install it;
`.ci/run` installs it, so CI runs them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import (
    Browser,
    Locator,
    Page,
    Request,
    Route,
    async_playwright,
    expect,
)
from pydantic import SecretStr
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from codec.__main__ import server_config
from codec.keys import new_key_entry
from codec.server import create_app as create_codec_app
from domain.purchase import PurchaseView, purchase_workflow_id
from domain.search_attributes import dev_server_flags
from launcher import find_temporal
from settings import Settings
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.servers import free_port, serve_in_thread
from tests.support.shop import (
    advance_clock,
    choose_on_checkout,
    frontend_headers,
    seed_order,
    start_purchase,
)
from tests.test_encrypted_history import ENCRYPTED, payloads_in, raw_history

CHROMIUM = Path("/usr/bin/chromium")
# Flags that keep Chromium working and quiet on these machines: no sandbox (tests run as
# root), no GPU, none of its own background traffic (updates, sync).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = "127.0.0.1"
# How Playwright names a request the page's Content-Security-Policy stopped in the browser.
BLOCKED_BY_THE_PAGE = "csp"
# Swagger UI's bundle is 1.5 MB of JavaScript: on a busy 2-core machine the first render can
# take seconds.
RENDER_TIMEOUT_MS = 30_000
# A paid checkout reaches the connector by Mollie's webhook, then Cleeng records it.
CAPTURE_TIMEOUT_SECONDS = 120

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=(
            f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(Debian) to run the browser tests"
        ),
    ),
]


@dataclass
class OfflinePage:
    """A browser tab that may reach only 127.0.0.1, and what it tried."""

    tab: Page
    # Requests that reached the network for another host (refused by the test, as they would
    # be offline).
    left_the_machine: list[str] = field(default_factory=list)
    # Requests that failed, other than those the page's own Content-Security-Policy stopped
    # in the browser (those never reach the network).
    failed: list[str] = field(default_factory=list)

    async def settled(self) -> None:
        """Wait until the page has loaded what it loads at the start (no request for 500 ms
        after the load event)."""
        await self.tab.wait_for_load_state("networkidle")


def _on_the_machine(url: str) -> bool:
    return urlsplit(url).hostname == LOOPBACK


@pytest.fixture(scope="module")
async def sandbox(temporal_env: WorkflowEnvironment) -> AsyncIterator[Connector]:
    """The connector on emulators of its own with the sandbox's default redirect origins, so
    the shopper can be sent back to the connector's own pages, as `scripts/run`'s demo does
    (the shared test connector allows only an external shop's origin)."""
    async with connector_on_own_emulators(temporal_env, frontend_redirect_origins=()) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # Playwright gives every launch a fresh temporary profile (user-data dir) and removes
        # it on close; it downloads nothing when told which browser to run.
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[OfflinePage]:
    context = await browser.new_context()
    offline = OfflinePage(tab=await context.new_page())

    def record_failure(request: Request) -> None:
        if request.failure != BLOCKED_BY_THE_PAGE:
            offline.failed.append(f"{request.url}: {request.failure}")

    async def only_loopback(route: Route) -> None:
        if _on_the_machine(route.request.url):
            await route.continue_()
        else:
            offline.left_the_machine.append(route.request.url)
            await route.abort("internetdisconnected")

    context.on("requestfailed", record_failure)
    await context.route("**/*", only_loopback)
    try:
        yield offline
    finally:
        await context.close()


def _base_url(sandbox: Connector, server: str) -> str:
    return {
        "api": sandbox.api_url,
        "cleeng": sandbox.emulators.cleeng_url,
        "mollie": sandbox.emulators.mollie_url,
    }[server]


def _operation(tab: Page, method: str, path: str) -> Locator:
    """Swagger UI's block for one operation: the row that shows its method and path."""
    return tab.locator(f'.opblock-{method} .opblock-summary-path[data-path="{path}"]')


@pytest.mark.parametrize(
    ("server", "docs_path", "method", "operation_path"),
    [
        ("api", "/docs", "post", "/webhooks/cleeng"),
        ("cleeng", "/docs", "post", "/3.1/payments"),
        ("mollie", "/_emulator/docs", "post", "/v2/payments"),
    ],
)
async def test_swagger_ui_lists_the_operations_offline(
    sandbox: Connector,
    page: OfflinePage,
    server: str,
    docs_path: str,
    method: str,
    operation_path: str,
) -> None:
    await page.tab.goto(f"{_base_url(sandbox, server)}{docs_path}")

    await expect(_operation(page.tab, method, operation_path)).to_be_visible(
        timeout=RENDER_TIMEOUT_MS
    )
    await page.settled()
    assert page.left_the_machine == []
    assert page.failed == []


@pytest.mark.parametrize(
    ("server", "operation_summary"),
    [
        ("api", "Cleeng webhook (HMAC-SHA256 signed)"),
        ("cleeng", "create-a-payment"),
    ],
)
async def test_redoc_lists_the_operations_offline(
    sandbox: Connector, page: OfflinePage, server: str, operation_summary: str
) -> None:
    # Once rendered, ReDoc always asks for its vendor's logo from the vendor's CDN: the page's
    # own policy must stop that request in the browser, before it reaches the network.
    async with page.tab.expect_event(
        "requestfailed",
        lambda request: not _on_the_machine(request.url),
        timeout=RENDER_TIMEOUT_MS,
    ) as outside:
        await page.tab.goto(f"{_base_url(sandbox, server)}/redoc")
        heading = page.tab.get_by_role("heading", name=operation_summary)
        await expect(heading).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    logo = await outside.value
    assert logo.failure == BLOCKED_BY_THE_PAGE, logo.url

    await page.settled()
    assert page.left_the_machine == []
    assert page.failed == []


async def test_a_shopper_pays_on_the_checkout_page_and_the_purchase_is_captured(
    sandbox: Connector, page: OfflinePage
) -> None:
    seeded = await seed_order(sandbox.emulators.cleeng_url, price=12.34, currency="EUR")
    order_id = str(seeded["orderId"])
    acting_for_the_shopper = frontend_headers(sandbox.settings, seeded["customerId"])
    # Where the shop sends shoppers back to: here the connector's own docs page, a page that
    # works offline, on the origin the sandbox allows by default.
    back_to_the_shop = f"{sandbox.api_url}/docs"
    async with httpx.AsyncClient(timeout=60) as http:
        started = await http.post(
            f"{sandbox.api_url}/purchases",
            json={"orderId": order_id, "redirectUrl": back_to_the_shop},
            headers=acting_for_the_shopper,
        )
    assert started.status_code == 201, started.text
    checkout_url = started.json()["checkoutUrl"]
    assert checkout_url.startswith(f"{sandbox.emulators.mollie_url}/checkout/")

    await page.tab.goto(checkout_url)
    await expect(page.tab.locator("#amount")).to_have_text("EUR 12.34")
    await page.tab.get_by_role("button", name="Paid", exact=True).click()

    await page.tab.wait_for_url(back_to_the_shop)
    await expect(_operation(page.tab, "post", "/purchases")).to_be_visible(
        timeout=RENDER_TIMEOUT_MS
    )
    outcome = await asyncio.wait_for(
        sandbox.client.get_workflow_handle(
            purchase_workflow_id(order_id), result_type=PurchaseView
        ).result(),
        CAPTURE_TIMEOUT_SECONDS,
    )
    assert outcome.status == "captured"
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.get(
            f"{sandbox.api_url}/purchases/{order_id}", headers=acting_for_the_shopper
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "captured"
    assert answer.json()["molliePaymentId"] == started.json()["molliePaymentId"]
    await page.settled()
    assert page.left_the_machine == []
    assert page.failed == []


@dataclass(frozen=True)
class EncryptedStack:
    """A connector with PAYLOAD_ENCRYPTION_KEYS on a dev server of its own that serves the
    Web UI, the UI wired to a codec server as `scripts/run` wires it."""

    connector: Connector
    temporal: WorkflowEnvironment
    ui_url: str
    codec_url: str


@pytest.fixture
async def encrypted_stack() -> AsyncIterator[EncryptedStack]:
    # The session's dev server runs without its UI; this one's UI has a codec endpoint.
    ui_port = free_port()
    ui_url = f"http://{LOOPBACK}:{ui_port}"
    encryption: dict[str, Any] = {
        "payload_encryption_keys": SecretStr(new_key_entry("now")),
        "codec_server_cors_origins": (ui_url,),
    }
    codec_settings = Settings(_env_file=None, **encryption)
    with serve_in_thread(create_codec_app(server_config(codec_settings, LOOPBACK))) as codec:
        temporal = await WorkflowEnvironment.start_local(
            dev_server_existing_path=find_temporal(),
            ui=True,
            ui_port=ui_port,
            dev_server_extra_args=[
                *dev_server_flags(),
                "--ui-disable-news-fetch",
                "--ui-codec-endpoint",
                codec,
            ],
        )
        try:
            await _ui_answers(ui_url)
            # Not kept for the replay tests: they cannot read this throwaway key's payloads.
            async with connector_on_own_emulators(
                temporal, keep_histories=False, **encryption
            ) as connector:
                yield EncryptedStack(
                    connector=connector, temporal=temporal, ui_url=ui_url, codec_url=codec
                )
        finally:
            await temporal.shutdown()


async def _ui_answers(ui_url: str) -> None:
    """The UI server starts a moment after the frontend the SDK waited for."""
    async with httpx.AsyncClient(timeout=5) as http:
        async with asyncio.timeout(RENDER_TIMEOUT_MS / 1000):
            while True:
                try:
                    if (await http.get(ui_url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)


async def test_a_failed_workflows_type_and_message_are_readable_in_the_web_ui_of_an_encrypted_stack(
    encrypted_stack: EncryptedStack, page: OfflinePage, tmp_path: Path
) -> None:
    """Cleeng refuses the payment of an order that expired unpaid: the money goes back and
    the purchase fails with `CleengRefusedPayment`. The operator's Web UI shows that type and
    why; Temporal holds the type and the (redacted) message in clear, the input encrypted."""
    connector = encrypted_stack.connector
    email = f"ada-{uuid.uuid4().hex[:10]}@example.com"
    seeded = await seed_order(connector.emulators.cleeng_url, email=email)
    order_id = str(seeded["orderId"])
    checkout_url = await start_purchase(connector, seeded)
    await advance_clock(connector.emulators.cleeng_url, 25 * 3600)  # orders expire after 24 h
    await choose_on_checkout(checkout_url, "paid")
    workflow_id = purchase_workflow_id(order_id)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(
            connector.client.get_workflow_handle(workflow_id).result(),
            CAPTURE_TIMEOUT_SECONDS,
        )

    # In Temporal: the failure's type and message in clear, no customer data, input sealed.
    events = await raw_history(encrypted_stack.temporal, workflow_id)
    [failed] = [
        event["workflowExecutionFailedEventAttributes"]["failure"]
        for event in events
        if "workflowExecutionFailedEventAttributes" in event
    ]
    assert failed["applicationFailureInfo"]["type"] == "CleengRefusedPayment"
    headline = f"CleengRefusedPayment: order {order_id}: payment tr_"
    assert failed["message"].startswith(headline), failed["message"]
    assert "was refunded because Cleeng refused it" in failed["message"]
    assert failed.get("stackTrace", "") == ""
    assert failed["encodedAttributes"]["metadata"]["encoding"] == ENCRYPTED
    [started] = [
        event["workflowExecutionStartedEventAttributes"]
        for event in events
        if "workflowExecutionStartedEventAttributes" in event
    ]
    inputs = payloads_in(started["input"])
    assert inputs
    assert all(p["metadata"]["encoding"] == ENCRYPTED for p in inputs)
    assert order_id.encode() not in b"".join(base64.b64decode(p["data"]) for p in inputs)
    stored = json.dumps(events).encode() + b"".join(
        base64.b64decode(p.get("data", "")) for p in payloads_in(events)
    )
    assert email.encode() not in stored

    # In the CLI, as the runbook has operators type it.
    described = subprocess.run(
        [
            find_temporal(),
            "workflow",
            "describe",
            "-w",
            workflow_id,
            "--address",
            encrypted_stack.temporal.client.service_client.config.target_host,
            "--codec-endpoint",
            encrypted_stack.codec_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert headline in described.stdout, described.stdout
    assert "Encoded failure" not in described.stdout

    # In the Web UI, as an operator opens the run's event history.
    run_id = started["originalExecutionRunId"]
    decoded: list[str] = []
    page.tab.on(
        "requestfinished",
        lambda request: (
            decoded.append(request.url)
            if request.url.startswith(f"{encrypted_stack.codec_url}/decode")
            else None
        ),
    )
    await page.tab.set_viewport_size({"width": 1400, "height": 1000})
    await page.tab.goto(
        f"{encrypted_stack.ui_url}/namespaces/default/workflows/{workflow_id}/{run_id}/history"
    )
    history = page.tab.locator("main")
    workflow_failed = history.locator("tr", has_text="Workflow Execution Failed")
    await expect(workflow_failed).to_contain_text(headline, timeout=RENDER_TIMEOUT_MS)
    await expect(workflow_failed).to_contain_text("was refunded because Cleeng refused it")
    activity_failed = history.locator("tr", has_text="Activity Task Failed")
    await expect(activity_failed).to_contain_text(
        f"CleengOrderExpired: Cleeng order {order_id} expired before payment tr_"
    )
    # The input, decrypted by the codec server for this page.
    await expect(history).to_contain_text(f'"order_id": "{order_id}"')
    await page.settled()
    screenshot = tmp_path / "failed-workflow-in-web-ui.png"
    await page.tab.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 0
    assert "Encoded failure" not in await history.inner_text()
    assert decoded, "the page decodes the history through the codec server"
    assert page.left_the_machine == []
