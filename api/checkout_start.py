"""Starting a checkout workflow for a front-end request that must answer within seconds.

`POST /purchases` and `POST /payment-details` both start (or join) a checkout workflow and
ask it, through an update, for its checkout URL. The setup behind that URL may retry through a
Mollie or Cleeng outage for many minutes, so the request waits only `answer_within` and
otherwise reports the checkout as still starting (the route answers 202 and the front end
polls).

Why the wait is bounded here and not by `rpc_timeout`: the SDK's update-with-start keeps
re-sending until the update is accepted and then keeps long-polling until it completes, each
call with its own `rpc_timeout`, so one request could block for as long as the setup retried
(451 s were seen during an outage). Here the update is only awaited up to ACCEPTED, and the
whole call runs under one deadline; cancelling the wait stops the polling, never the workflow.

A checkout id that has a closed run is started again only when the caller's `may_restart`
accepts that run, with Temporal's ALLOW_DUPLICATE_FAILED_ONLY reuse policy: whatever happens
between the look and the start, a completed run is never followed by a new one, and two
requests that both restart the same failed run end in one new run (the second joins it). The
one thing the server cannot check is that the run it follows is the run that was looked at:
another run would have to start, take a payment and fail within the milliseconds between the
two calls, and a payment needs a shopper on Mollie's checkout page first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import MethodAsyncSingleParam, UpdateMethodMultiParam

from api.temporal_access import TemporalUnavailable

WorkflowT = TypeVar("WorkflowT")
InputT = TypeVar("InputT")
ViewT = TypeVar("ViewT")

# Closed runs ALLOW_DUPLICATE_FAILED_ONLY lets a new run follow (Temporal's definition).
UNSUCCESSFUL_CLOSES = frozenset(
    {
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.CANCELED,
    }
)

# Bound on rounds of "closed run found, look at it, start again": a round repeats only when
# another request changed the id's latest run in between.
_MAX_ROUNDS = 3

# One RPC while the answer is being decided (a describe); the client also gives up on an
# unreachable Temporal after about three seconds (api/temporal_access.py).
_DESCRIBE_TIMEOUT = timedelta(seconds=5)


@dataclass(frozen=True)
class CheckoutReady(Generic[ViewT]):
    """The update answered: the checkout exists (its view says where to pay)."""

    view: ViewT


@dataclass(frozen=True)
class CheckoutStarting:
    """The workflow runs and has the request, but its checkout was not ready in time."""


@dataclass(frozen=True)
class CheckoutClosed:
    """The id's latest run is closed and may not be followed by a new one: report it."""


CheckoutAnswer = CheckoutReady[ViewT] | CheckoutStarting | CheckoutClosed


async def start_checkout(
    client: Client,
    run: MethodAsyncSingleParam[WorkflowT, InputT, Any],
    update: UpdateMethodMultiParam[[WorkflowT], ViewT],
    workflow_input: Callable[[str | None], InputT],
    *,
    workflow_id: str,
    task_queue: str,
    reuse_policy: WorkflowIDReusePolicy,
    answer_within: timedelta,
    may_restart: Callable[[WorkflowExecutionDescription], bool] | None = None,
    search_attributes: TypedSearchAttributes | None = None,
) -> CheckoutAnswer[ViewT]:
    """Start the checkout workflow (or join the running one) and ask for its checkout.

    The workflow is `run` with `workflow_input(restarts_run)`: `restarts_run` is the id of
    the failed run a new run replaces (None on a first start). A running run is joined
    (USE_EXISTING); `reuse_policy` applies when none is running. If it refuses because of a
    closed run, `may_restart` decides from that run's description whether a new run may
    follow it (then started with ALLOW_DUPLICATE_FAILED_ONLY); without it the closed run is
    reported.

    Raises WorkflowUpdateFailedError when the checkout failed within the wait, and
    TemporalUnavailable when it is unknown whether anything started (the caller answers 503).
    """
    deadline = asyncio.get_running_loop().time() + answer_within.total_seconds()
    policy, restarts_run = reuse_policy, None
    try:
        async with asyncio.timeout_at(deadline):
            for _ in range(_MAX_ROUNDS):
                operation = WithStartWorkflowOperation(
                    run,
                    workflow_input(restarts_run),
                    id=workflow_id,
                    task_queue=task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=policy,
                    search_attributes=search_attributes,
                )
                try:
                    return CheckoutReady(await _update_with_start(client, update, operation))
                except WorkflowAlreadyStartedError:
                    if may_restart is None:
                        return CheckoutClosed()
                latest = await _describe(client, workflow_id)
                if latest is None or latest.status == WorkflowExecutionStatus.RUNNING:
                    # Another request started (or a retention sweep removed) a run since:
                    # ask again the usual way.
                    policy, restarts_run = reuse_policy, None
                elif latest.status in UNSUCCESSFUL_CLOSES and may_restart(latest):
                    policy, restarts_run = (
                        WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                        latest.run_id,
                    )
                else:
                    return CheckoutClosed()
            return CheckoutClosed()
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as error:
        return await _still_starting(client, workflow_id, error)
    except RPCError as error:
        if error.status != RPCStatusCode.RESOURCE_EXHAUSTED:
            raise
        # Too many requests wait on this workflow's checkout already (Temporal bounds the
        # updates in flight per workflow): it is running and starting, which is the answer.
        return await _still_starting(client, workflow_id, error)


async def _update_with_start(
    client: Client,
    update: UpdateMethodMultiParam[[WorkflowT], ViewT],
    operation: WithStartWorkflowOperation[WorkflowT, Any],
) -> ViewT:
    # Waiting only for ACCEPTED returns as soon as a worker took the update; the result is
    # then awaited under the caller's deadline, which cancels the SDK's polling loop.
    handle = await client.start_update_with_start_workflow(
        update,
        start_workflow_operation=operation,
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    return await handle.result()


async def _describe(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(workflow_id).describe(rpc_timeout=_DESCRIBE_TIMEOUT)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return None


async def _still_starting(client: Client, workflow_id: str, cause: Exception) -> CheckoutStarting:
    """The wait ran out: a running workflow will produce the checkout; with none running it
    is unknown whether the request got anywhere, so the caller asks for a retry."""
    latest = await _describe(client, workflow_id)
    if latest is None or latest.status != WorkflowExecutionStatus.RUNNING:
        raise TemporalUnavailable(
            f"{workflow_id}: the checkout could not be started in time; try again"
        ) from cause
    return CheckoutStarting()
