"""The Temporal worker: wires the clients into the activities and runs every workflow.

Run it with `python -m worker` (the launcher does this for you).
"""

from __future__ import annotations

import asyncio
import compileall
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import workflows
from activities.cleeng_activities import CleengActivities
from activities.directory import WorkflowDirectory
from activities.heartbeat import heartbeat_before_request
from activities.mollie_activities import MollieActivities
from clients.cleeng import CleengClient
from clients.mollie import MollieGateway
from settings import Settings
from telemetry.logs import configure_process_logging, settings_secrets
from telemetry.sdk_metrics import worker_runtime
from telemetry.tracing import install_tracing
from temporal_connection import (
    check_payload_encryption,
    connect_temporal,
    counterparts,
    load_settings,
)
from workflows.initial_purchase import InitialPurchaseWorkflow
from workflows.payment_details import DetailsDeactivationWorkflow, NewPaymentDetailsWorkflow
from workflows.reconciliation import (
    ReconciliationWorkflow,
    RecordOutsideRefundWorkflow,
    ReleaseOrphanHoldWorkflow,
)
from workflows.recurring_billing import RecurringBillingWorkflow
from workflows.refund import ChargebackWorkflow, PaymentFollowUpWorkflow, RefundWorkflow

logger = logging.getLogger("worker")

WORKFLOWS = [
    InitialPurchaseWorkflow,
    RecurringBillingWorkflow,
    NewPaymentDetailsWorkflow,
    DetailsDeactivationWorkflow,
    RefundWorkflow,
    PaymentFollowUpWorkflow,
    ChargebackWorkflow,
    ReconciliationWorkflow,
    ReleaseOrphanHoldWorkflow,
    RecordOutsideRefundWorkflow,
]


def activity_list(
    cleeng: CleengActivities, mollie: MollieActivities, directory: WorkflowDirectory
) -> list[Callable[..., Any]]:
    """Every activity the workflows call, by name (tests/test_worker.py checks that each
    public method of the activity classes is here, so none is left unregistered)."""
    return [
        cleeng.load_order,
        cleeng.create_renewal_order,
        cleeng.cycle_already_paid,
        cleeng.prepare_renewal,
        cleeng.record_payment_details,
        cleeng.record_payment,
        cleeng.update_payment,
        cleeng.cancel_payment,
        cleeng.authorised_payments,
        cleeng.delete_payment_details,
        cleeng.record_refund,
        cleeng.terminate_subscription,
        mollie.ensure_mollie_customer,
        mollie.create_checkout_payment,
        mollie.create_recurring_payment,
        mollie.fetch_payment,
        mollie.describe_mandate,
        mollie.point_payment_at_order,
        mollie.capture_payment,
        mollie.release_authorization,
        mollie.refund_payment,
        mollie.fetch_refund,
        mollie.refund_context,
        mollie.revoke_mandate,
        mollie.list_chargebacks,
        mollie.chargeback_share,
        mollie.payment_metadata,
        mollie.connector_payments_since,
        mollie.refunds_seen,
        mollie.payments_refunded_since,
        mollie.payments_charged_back_since,
        mollie.connector_payments,
        directory.cleeng_payment_recorded_by,
        directory.workflow_states,
    ]


# Modules the workflows import that hold no state and do no I/O: plain dataclasses, constants,
# pure functions and the workflow helpers. The sandbox imports every module a workflow uses
# afresh for each workflow run unless it is passed through; these were half of the worker's
# CPU per renewal. tests/test_worker.py still loads every workflow with none of them passed
# through, so the sandbox's checks keep covering their code.
PURE_MODULES = (
    "domain",
    "clients.cleeng_contract",
    "workflows.failures",
    "workflows.payment_watch",
    "workflows.policies",
    "workflows.steps",
)


def workflow_runner(settings: Settings) -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default
    if settings.workflow_sandbox_passthrough:
        restrictions = restrictions.with_passthrough_modules(*PURE_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def compile_workflow_sources() -> bool:
    """Write the workflows' bytecode if it is missing: the sandbox executes each workflow's
    module again for every workflow run, and without bytecode (PYTHONDONTWRITEBYTECODE, a
    read-only image) it compiles the source every time. False when it cannot be written."""
    return bool(compileall.compile_dir(workflows.__path__[0], quiet=2))


def cleeng_limits(settings: Settings) -> httpx.Limits:
    """Room in the Cleeng client's pool for every activity slot to be in a request at once,
    each on a connection kept alive for the next (httpx's default keeps only 20)."""
    slots = (
        settings.worker_max_concurrent_activities + settings.worker_max_concurrent_local_activities
    )
    return httpx.Limits(max_connections=slots, max_keepalive_connections=slots)


@asynccontextmanager
async def build_worker(
    client: Client, settings: Settings, *, task_queue: str | None = None
) -> AsyncIterator[Worker]:
    """A worker with every workflow and activity, its clients closed on exit."""
    cleeng = CleengClient(
        settings.cleeng_base_url,
        settings.effective_publisher_token,
        timeout_seconds=settings.cleeng_timeout_seconds,
        limits=cleeng_limits(settings),
        before_request=heartbeat_before_request,
    )
    mollie = MollieGateway(
        settings.mollie_base_url,
        settings.effective_mollie_api_key,
        timeout_seconds=settings.mollie_timeout_seconds,
        threads=settings.mollie_threads,
        before_request=heartbeat_before_request,
    )
    cleeng_activities = CleengActivities(
        cleeng,
        str(settings.cleeng_payment_method_id),
        termination_call=settings.cleeng_termination_call,
    )
    mollie_activities = MollieActivities(mollie, settings.mollie_webhook_url)
    directory = WorkflowDirectory(client)
    try:
        # Every activity is async, so no activity_executor: they share the event loop, and
        # the Mollie client's blocking requests go to its own threads.
        yield Worker(
            client,
            task_queue=task_queue or settings.temporal_task_queue,
            workflows=WORKFLOWS,
            activities=activity_list(cleeng_activities, mollie_activities, directory),
            max_concurrent_activities=settings.worker_max_concurrent_activities,
            max_concurrent_local_activities=settings.worker_max_concurrent_local_activities,
            max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
            max_cached_workflows=settings.worker_max_cached_workflows,
            workflow_runner=workflow_runner(settings),
        )
    finally:
        try:
            await cleeng.aclose()
        finally:
            await mollie.aclose()


async def run_worker(settings: Settings) -> None:
    if not compile_workflow_sources():
        logger.warning("could not write the workflows' bytecode: each workflow run compiles them")
    # The SDK's metrics come from the runtime of the client the worker polls with.
    client = await connect_temporal(settings, runtime=worker_runtime(settings))
    if settings.worker_metrics_address:
        logger.info("Temporal SDK metrics at http://%s/metrics", settings.worker_metrics_address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with build_worker(client, settings) as worker, worker:
        logger.info(
            "worker polling task queue %s on %s (%s mode); at once: %d activities, "
            "%d local activities, %d workflow tasks; %s",
            settings.temporal_task_queue,
            settings.temporal_address,
            "sandbox" if settings.sandbox_mode else "live credentials",
            settings.worker_max_concurrent_activities,
            settings.worker_max_concurrent_local_activities,
            settings.worker_max_concurrent_workflow_tasks,
            f"{settings.mollie_threads} Mollie threads"
            if settings.mollie_threads
            else "Mollie on the default executor",
        )
        logger.info("counterparts: %s", counterparts(settings))
        await stop.wait()
        logger.info("worker shutting down")


def main() -> None:
    settings = load_settings()
    configure_process_logging(settings, "worker")
    install_tracing(settings, "connector-worker", settings_secrets(settings))
    check_payload_encryption(settings, logger)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
