"""One workflow run as an operator sees it: its state (from the workflow's `view` query or
its result) and its story (from its history, plus what is pending right now)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode

from connector_ops.common import OpsError
from connector_ops.history import (
    HistoryReader,
    HistoryReading,
    Step,
    UnreadableHistory,
    decode_failure,
    failure_text,
)

# A query needs a worker; at 3 a.m. there may be none, and the history still tells the story.
QUERY_TIMEOUT = timedelta(seconds=5)


async def latest_run(client: Client, workflow_id: str) -> tuple[str, WorkflowExecutionStatus]:
    """The run id and status of the workflow's latest run; not found is an OpsError."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise OpsError(
                f"no workflow {workflow_id} (or it closed longer ago than the namespace's "
                "retention)"
            ) from error
        raise
    status = description.status or WorkflowExecutionStatus.RUNNING
    return description.run_id, status


async def read_run(client: Client, workflow_id: str, run_id: str) -> HistoryReading:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    try:
        return await HistoryReader(client.data_converter).read_decoded(history)
    except UnreadableHistory as error:
        raise unreadable(workflow_id, error) from None


def unreadable(workflow_id: str, error: UnreadableHistory) -> OpsError:
    return OpsError(
        f"cannot read the history of {workflow_id}: {error} (set PAYLOAD_ENCRYPTION_KEYS to "
        "the stack's key ring; beside scripts/run, --data-dir names the stack whose "
        "payload-encryption.keys to use)"
    )


async def pending_steps(client: Client, workflow_id: str, run_id: str) -> list[Step]:
    """What a running workflow is in the middle of: activities retrying, a failing task."""
    description = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    raw = description.raw_description
    steps: list[Step] = []
    for pending in raw.pending_activities:
        detail = f"attempt {pending.attempt}"
        if pending.HasField("last_failure"):
            try:
                await decode_failure(client.data_converter, pending.last_failure)
            except UnreadableHistory as error:
                raise unreadable(workflow_id, error) from None
            error_type, message = failure_text(pending.last_failure)
            detail += f", last failure {error_type or 'error'}: {message}"
        at = (
            pending.last_started_time.ToDatetime(tzinfo=UTC)
            if pending.HasField("last_started_time")
            else datetime.now(UTC)
        )
        steps.append(
            Step(
                at=at,
                kind="pending activity",
                name=pending.activity_type.name,
                outcome="retrying" if pending.attempt > 1 else "running",
                detail=detail,
            )
        )
    task = raw.pending_workflow_task
    if raw.HasField("pending_workflow_task") and task.attempt > 1:
        steps.append(
            Step(
                at=datetime.now(UTC),
                kind="pending workflow task",
                name="",
                outcome="failing",
                detail=f"attempt {task.attempt}: see the worker's log or the Web UI",
            )
        )
    return steps


async def view_of(
    client: Client, workflow_id: str, run_id: str, reading: HistoryReading
) -> tuple[dict[str, Any] | None, str | None]:
    """The workflow's own account of itself: its result when it completed, else its `view`
    query; with a note when neither could be had."""
    if isinstance(reading.result, dict):
        return reading.result, None
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        view = await handle.query("view", rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
        return None, f"view query unavailable ({error}); state read from the history only"
    return (view if isinstance(view, dict) else None), None


async def describe_run(
    client: Client, workflow_id: str, run_id: str, status: WorkflowExecutionStatus
) -> dict[str, Any]:
    """Everything shown about one run, as JSON-ready values."""
    reading = await read_run(client, workflow_id, run_id)
    view, note = await view_of(client, workflow_id, run_id, reading)
    steps = list(reading.steps)
    if status == WorkflowExecutionStatus.RUNNING:
        steps += await pending_steps(client, workflow_id, run_id)
    view = view or {}
    mollie_ids = dict.fromkeys(reading.payments)
    cleeng_ids = dict.fromkeys(reading.cleeng_payment_ids)
    for attempt in view.get("attempts") or []:
        if attempt.get("mollie_payment_id"):
            mollie_ids[attempt["mollie_payment_id"]] = None
        if attempt.get("cleeng_payment_id"):
            cleeng_ids[attempt["cleeng_payment_id"]] = None
    if view.get("mollie_payment_id"):
        mollie_ids[view["mollie_payment_id"]] = None
    if view.get("cleeng_payment_id"):
        cleeng_ids[view["cleeng_payment_id"]] = None
    return {
        "workflow_id": workflow_id,
        "run_id": run_id,
        "workflow_status": status.name,
        "state": view.get("status"),
        "view": view or None,
        "view_note": note,
        "payments": [
            asdict(reading.payments[pid]) for pid in mollie_ids if pid in reading.payments
        ],
        "mollie_payment_ids": list(mollie_ids),
        "cleeng_payment_ids": list(cleeng_ids),
        "failure_type": reading.failure_type,
        "failure": reading.failure or view.get("error"),
        "story": [step.as_json() for step in sorted(steps, key=lambda step: step.at)],
    }


def render_run(run: dict[str, Any], extra: list[tuple[str, str]]) -> list[str]:
    """Text lines of one run: a header, labelled facts, then the story."""
    lines = [f"{run['workflow_id']}  (run {run['run_id'][:8]})  workflow {run['workflow_status']}"]
    facts: list[tuple[str, str]] = [("state", run["state"] or "unknown"), *extra]
    for payment in run["payments"]:
        facts.append(("Mollie", f"{payment['payment_id']} {payment['status']} {payment['amount']}"))
    shown = {payment["payment_id"] for payment in run["payments"]}
    for payment_id in run["mollie_payment_ids"]:
        if payment_id not in shown:
            facts.append(("Mollie", payment_id))
    for payment_id in run["cleeng_payment_ids"]:
        facts.append(("Cleeng", f"payment {payment_id}"))
    if run["failure"]:
        failure = run["failure"]
        if run["failure_type"]:
            failure = f"{run['failure_type']}: {failure}"
        facts.append(("failure", failure))
    if run["view_note"]:
        facts.append(("note", run["view_note"]))
    lines += [f"  {label:<9} {value}" for label, value in facts]
    lines.append("  story")
    for step in run["story"]:
        text = f"{step['at'][:19].replace('T', ' ')}  {step['kind']}"
        text += f" {step['name']}" if step["name"] else ""
        text += f": {step['outcome']}"
        text += f" ({step['detail']})" if step["detail"] else ""
        lines.append(f"    {text}")
    return lines
