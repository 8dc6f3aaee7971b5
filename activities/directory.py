"""Look-ups in Temporal itself: which Cleeng payment a workflow recorded.

Core API 3.1 has no way to find a payment by its order or its gateway id, so for a chargeback
the connector asks the workflow that recorded the payment (its `CleengPaymentId` search
attribute). That works while the workflow's history is kept (namespace retention).
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain import search_attributes


class WorkflowDirectory:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn
    async def cleeng_payment_recorded_by(self, workflow_id: str) -> str | None:
        """The Cleeng payment id the workflow recorded, or None (unknown workflow or none)."""
        try:
            description = await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return description.typed_search_attributes.get(search_attributes.CLEENG_PAYMENT_ID)
