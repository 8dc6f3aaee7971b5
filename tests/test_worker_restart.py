"""The old-details saga finishes when its worker process is killed in the middle of a step and
a new worker takes over: nothing released or cancelled twice, nothing left dangling."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from domain.payment_details import DeactivationView, deactivation_workflow_id
from settings import Settings
from tests.conftest import Connector, connector_settings, own_emulators
from tests.support.billing import (
    authorised_renewal,
    change_card,
    cleeng_subscription_payments,
    mollie_customer_payments,
    result_when_started,
)
from tests.support.servers import free_port, serve_in_thread
from tests.support.shop import set_faults
from webhook_registration import run as register_webhooks
from workflows.payment_details import DetailsDeactivationWorkflow


@contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m worker` as its own process, configured like the launcher does it."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "CLEENG_BASE_URL": settings.cleeng_base_url,
        "MOLLIE_BASE_URL": settings.mollie_base_url,
        "CONNECTOR_PUBLIC_URL": settings.connector_public_url,
        "CLEENG_TIMEOUT_SECONDS": "3",
        "MOLLIE_TIMEOUT_SECONDS": "3",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


async def release_in_flight(mollie_url: str) -> None:
    """The hanging-release fault has been consumed: the worker is inside that step."""
    async with asyncio.timeout(60), httpx.AsyncClient() as http:
        while (await http.get(f"{mollie_url}/_emulator/faults")).json().get("failNext"):
            await asyncio.sleep(0.05)


@pytest.mark.long_running(seconds=50)
async def test_saga_survives_its_worker_being_killed_mid_step(
    temporal_env: WorkflowEnvironment,
) -> None:
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    address = temporal_env.client.service_client.config.target_host
    with own_emulators() as emulators:
        settings = connector_settings(emulators, address, api_url, f"kill-{uuid.uuid4().hex[:8]}")
        connector = Connector(
            settings=settings, client=temporal_env.client, api_url=api_url, emulators=emulators
        )
        with serve_in_thread(create_app(settings), api_port):
            await register_webhooks(settings, f"{api_url}/webhooks/cleeng")
            with worker_process(settings) as first:
                sub, held = await authorised_renewal(connector)
                await set_faults(
                    emulators.mollie_url,
                    {
                        "failNext": [
                            {
                                "method": "POST",
                                "pathPrefix": f"/v2/payments/{held}/release",
                                "status": "timeout",
                                "hangSeconds": 20,
                            }
                        ]
                    },
                )
                await change_card(connector, sub)
                await release_in_flight(emulators.mollie_url)
                first.kill()
                first.wait()
            with worker_process(settings):
                saga: DeactivationView = await result_when_started(
                    connector.client.get_workflow_handle_for(
                        DetailsDeactivationWorkflow.run,
                        deactivation_workflow_id(sub.payment_details_id),
                    ),
                    timeout=120,
                )
                assert saga.status == "done", saga.failures
                assert [c.mollie_payment_id for c in saga.cancelled] == [held]
                [old] = await cleeng_subscription_payments(connector, sub.subscription_id)
                assert old["status"] == "cancelled"
                [released] = await mollie_customer_payments(connector, sub.mollie_customer_id)
                assert released["status"] == "canceled"
