"""A Temporal client interceptor that names the workflow in the caller's log lines.

Apart from `telemetry.logs` so that processes without a Temporal client (the emulators) do
not load one to configure their logs.
"""

from __future__ import annotations

from typing import Any

import temporalio.client

from telemetry.logs import bind_log_ids


class WorkflowIdsInLogs(temporalio.client.Interceptor):
    """Binds the id of each workflow a client starts, signals, updates, queries or describes
    to the calling task's log lines, so the shim's lines about a request carry the workflow
    id (and the business id in it) without each route passing it along."""

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        return _BindWorkflowIds(next)


class _BindWorkflowIds(temporalio.client.OutboundInterceptor):
    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        bind_log_ids(workflow_id=input.id)
        return await super().start_workflow(input)

    async def start_update_with_start_workflow(
        self, input: temporalio.client.StartWorkflowUpdateWithStartInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        bind_log_ids(workflow_id=input.start_workflow_input.id)
        return await super().start_update_with_start_workflow(input)

    async def start_workflow_update(
        self, input: temporalio.client.StartWorkflowUpdateInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        bind_log_ids(workflow_id=input.id)
        return await super().start_workflow_update(input)

    async def signal_workflow(self, input: temporalio.client.SignalWorkflowInput) -> None:
        bind_log_ids(workflow_id=input.id)
        await super().signal_workflow(input)

    async def query_workflow(self, input: temporalio.client.QueryWorkflowInput) -> Any:
        bind_log_ids(workflow_id=input.id)
        return await super().query_workflow(input)

    async def describe_workflow(
        self, input: temporalio.client.DescribeWorkflowInput
    ) -> temporalio.client.WorkflowExecutionDescription:
        bind_log_ids(workflow_id=input.id)
        return await super().describe_workflow(input)
