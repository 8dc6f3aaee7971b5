"""Look-ups in Temporal itself: which Cleeng payment a workflow recorded.

Core API 3.1 has no way to find a payment by its order or its gateway id, so for a chargeback
the connector asks the workflow that recorded the payment (its `CleengPaymentId` search
attribute). That works while the workflow's history is kept (namespace retention).
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain import search_attributes
from domain.operations import WorkflowIds, WorkflowRef
from domain.reconciliation import NOT_FOUND, WorkflowState

# Describe calls in flight at once: enough to check a page of payments quickly, few enough
# not to crowd the frontend the flows use.
_DESCRIBES_AT_ONCE = 8


class WorkflowDirectory:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn
    async def cleeng_payment_recorded_by(self, request: WorkflowRef | str) -> str | None:
        """The Cleeng payment id the workflow recorded, or None (unknown workflow or none)."""
        workflow_id = request if isinstance(request, str) else request.workflow_id
        try:
            description = await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return description.typed_search_attributes.get(search_attributes.CLEENG_PAYMENT_ID)

    @activity.defn
    async def workflow_states(self, request: WorkflowIds | list[str]) -> list[WorkflowState]:
        """Each workflow's status and recorded Cleeng payment; NOT_FOUND for one Temporal
        does not know (never started, or its history is past the namespace's retention)."""
        workflow_ids = request if isinstance(request, list) else request.workflow_ids
        limit = asyncio.Semaphore(_DESCRIBES_AT_ONCE)

        async def state_of(workflow_id: str) -> WorkflowState:
            async with limit:
                try:
                    description = await self._client.get_workflow_handle(workflow_id).describe()
                except RPCError as error:
                    if error.status == RPCStatusCode.NOT_FOUND:
                        return WorkflowState(workflow_id=workflow_id, status=NOT_FOUND)
                    raise
            status = description.status
            return WorkflowState(
                workflow_id=workflow_id,
                status=status.name if status is not None else NOT_FOUND,
                cleeng_payment_id=description.typed_search_attributes.get(
                    search_attributes.CLEENG_PAYMENT_ID
                ),
            )

        return list(await asyncio.gather(*(state_of(id_) for id_ in workflow_ids)))
