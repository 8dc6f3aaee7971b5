"""The pages a person opens, in a real browser: Debian's Chromium, headless, driven by Playwright.

- The docs pages of the API and of both emulators list their operations with no network:
  every request a page sends goes to 127.0.0.1. Anything else is refused and recorded, so a
  page that needs a CDN fails here even on a machine that happens to be online.
- A shopper pays a real purchase on the Mollie emulator's hosted checkout page, is sent back
  to the redirect URL, and the connector reports the purchase captured.

Where /usr/bin/chromium is missing these tests are skipped, saying how to install it;
`.ci/run` installs it, so CI runs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
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
from temporalio.testing import WorkflowEnvironment

from domain.purchase import PurchaseView, purchase_workflow_id
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.shop import frontend_headers, seed_order

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
