"""`workflow retry` and `workflow reset`: run a failed or stuck workflow again from a point
in its history, with Temporal's ResetWorkflowExecution."""

from __future__ import annotations

import getpass
import uuid
from enum import StrEnum
from typing import Annotated, Any

import typer
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus

from connector_ops.common import (
    Context,
    JsonFlag,
    OpsError,
    emit,
    run,
    workflow_id_argument,
)
from connector_ops.runs import latest_run, pending_steps, read_run

WHAT_PROTECTS_THE_CUSTOMER = """

A reset keeps the history up to the chosen workflow task and runs the rest of the workflow
again in a new run (the old run is terminated; signals received after that point are applied
again). It cannot charge twice: every Mollie charge, capture, release and refund carries an
Idempotency-Key made of the workflow id and the step (never the run or the attempt), and
before creating a payment or refund the activity lists the customer's payments (the
payment's refunds) and adopts the one whose metadata carries the same operation key, even
after Mollie forgot the key; a renewal first asks Cleeng whether the cycle is already paid.
Cleeng's writes have no idempotency keys: a reset to a point before a Cleeng record was
written can record it a second time (never a second charge), so prefer the latest point.
"""

app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Run a failed or stuck workflow again (Temporal reset).",
)


class ResetPoint(StrEnum):
    LAST_TASK = "last-task"
    FIRST_TASK = "first-task"


FAILED_STEP = "failed-step"

WorkflowId = Annotated[str, typer.Argument(callback=workflow_id_argument)]
Reason = Annotated[
    str | None, typer.Option("--reason", help="Recorded with the reset in the history.")
]
Force = Annotated[
    bool,
    typer.Option(
        "--force", help="Reset even a running workflow that looks healthy, or a completed one."
    ),
]


@app.command(
    "retry",
    help="Run a failed workflow again from the workflow task that scheduled "
    "the step that failed (a stuck one from its last workflow task)." + WHAT_PROTECTS_THE_CUSTOMER,
)
def retry(
    workflow_id: WorkflowId,
    reason: Reason = None,
    force: Force = False,
    as_json: JsonFlag = False,
) -> None:
    run(
        lambda ctx: _reset(
            ctx, workflow_id, FAILED_STEP, reason or _reason("retry"), force, as_json
        )
    )


@app.command(
    "reset",
    help="Reset a workflow to its last or first workflow task." + WHAT_PROTECTS_THE_CUSTOMER,
)
def reset(
    workflow_id: WorkflowId,
    to: Annotated[ResetPoint, typer.Option("--to", help="Where to reset to.")] = (
        ResetPoint.LAST_TASK
    ),
    reason: Reason = None,
    force: Force = False,
    as_json: JsonFlag = False,
) -> None:
    why = reason or _reason(f"reset --to {to.value}")
    run(lambda ctx: _reset(ctx, workflow_id, to.value, why, force, as_json))


async def _reset(
    ctx: Context, workflow_id: str, point: str, why: str, force: bool, as_json: bool
) -> None:
    run_id, status = await latest_run(ctx.client, workflow_id)
    if status == WorkflowExecutionStatus.RUNNING:
        trouble = [
            step
            for step in await pending_steps(ctx.client, workflow_id, run_id)
            if step.outcome in ("retrying", "failing")
        ]
        if not trouble and not force:
            raise OpsError(
                f"{workflow_id} is running and healthy (nothing retrying or failing): "
                "not reset; add --force to reset it anyway"
            )
        state = "stuck: " + "; ".join(f"{s.name or s.kind} {s.detail}" for s in trouble)
    elif status == WorkflowExecutionStatus.COMPLETED and not force:
        raise OpsError(f"{workflow_id} completed: nothing to retry; add --force to reset it")
    else:
        state = status.name.lower()
    reading = await read_run(ctx.client, workflow_id, run_id)
    if point == ResetPoint.FIRST_TASK.value:
        event_id = reading.first_task_completed
    elif (
        point == FAILED_STEP
        and status != WorkflowExecutionStatus.RUNNING
        and reading.failed_step_task
    ):
        # A running workflow's earlier failed steps were handled (it went on); only a closed
        # one ended on its last failure.
        event_id = reading.failed_step_task
    else:
        event_id = reading.last_task_completed
    if not event_id:
        raise OpsError(f"{workflow_id} has no completed workflow task to reset to")
    response = await ctx.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=ctx.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            reason=why,
            workflow_task_finish_event_id=event_id,
            # The same run and point give the same request id. Temporal does not deduplicate
            # resets by it (the same request again resets the new run too), so the health
            # check above is what refuses a second retry: the new run is running and healthy.
            request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{workflow_id}/{run_id}/{event_id}")),
            identity=ctx.client.identity,
        )
    )
    done: dict[str, Any] = {
        "workflow_id": workflow_id,
        "reset_run_id": run_id,
        "was": state,
        "to_event_id": event_id,
        "point": point,
        "reason": why,
        "new_run_id": response.run_id,
    }
    emit(
        done,
        f"{workflow_id}: run {run_id[:8]} ({state}) reset to event {event_id} ({point}); "
        f"new run {response.run_id} is running.\nreason: {why}",
        as_json,
    )


def _reason(command: str) -> str:
    try:
        operator = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        operator = "an operator"
    return f"connector_ops workflow {command} by {operator}"
