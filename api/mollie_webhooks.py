"""Mollie's classic webhooks: `id=tr_...`, form-encoded, unsigned.

The body only says "something changed": the workflow fetches the payment itself, so a forged
call can at most cause a re-check. Valid calls always get 200 (Mollie retries anything else);
only an unreachable Temporal answers 503, so Mollie tries again later and nothing is lost.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.metrics import ShimMetrics
from api.services import ShimServices, services
from api.temporal_access import temporal_unavailable_as_503
from domain.operations import PaymentNotice
from workflows.refund import PaymentFollowUpWorkflow

logger = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

MOLLIE_ID_PATTERN = r"^(tr|re|chb)_[A-Za-z0-9]{1,64}$"
WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9:_\-.+]{1,200}$"
# Workflows that own Mollie payments; all of them take the `payment_changed` signal.
_PAYMENT_WORKFLOWS = re.compile(r"^(purchase|billing|payment-details|refund):")
PAYMENT_CHANGED_SIGNAL = "payment_changed"


@router.post("/webhooks/mollie", summary="Mollie payment webhook (id=tr_...)")
async def mollie_webhook(
    request: Request,
    shim: Annotated[ShimServices, Depends(services)],
    payment_id: Annotated[str, Form(alias="id", pattern=MOLLIE_ID_PATTERN)],
    workflow_id: Annotated[
        str, Query(alias="workflow", pattern=WORKFLOW_ID_PATTERN, description="set by us")
    ],
) -> dict[str, str]:
    metrics = request.app.state.metrics
    if not _PAYMENT_WORKFLOWS.match(workflow_id):
        metrics.webhooks.labels("mollie", "ignored").inc()
        logger.info("mollie webhook for unknown workflow kind %s ignored", workflow_id)
        return {"status": "ignored"}
    with temporal_unavailable_as_503(metrics.webhooks.labels("mollie", "unavailable").inc):
        try:
            client = await shim.temporal.client()
            handle = client.get_workflow_handle(workflow_id)
            await handle.signal(PAYMENT_CHANGED_SIGNAL, PaymentNotice(payment_id=payment_id))
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            # The payment's own workflow has finished: what can still change is a chargeback
            # or a refund; look at the payment after the fact.
            return await _follow_up(client, shim, metrics, payment_id, workflow_id)
    metrics.webhooks.labels("mollie", "signalled").inc()
    return {"status": "accepted"}


async def _follow_up(
    client: Client, shim: ShimServices, metrics: ShimMetrics, payment_id: str, workflow_id: str
) -> dict[str, str]:
    if not payment_id.startswith("tr_"):
        metrics.webhooks.labels("mollie", "no_workflow").inc()
        return {"status": "ignored"}
    # Refunds change under the payment's webhook too: nudge the running Refund workflows of
    # this payment (found by search attribute) instead of waiting for their next poll.
    query = (
        f'WorkflowType="Refund" AND ExecutionStatus="Running" AND MolliePaymentId="{payment_id}"'
    )
    async for refund in client.list_workflows(query, limit=20):
        await client.get_workflow_handle(refund.id).signal(
            PAYMENT_CHANGED_SIGNAL, PaymentNotice(payment_id=payment_id)
        )
    await client.start_workflow(
        PaymentFollowUpWorkflow.run,
        payment_id,
        id=f"payment-followup:{payment_id}",
        task_queue=shim.temporal.task_queue,
        # Every later webhook may bring a new chargeback: allow a new run once one ended.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    logger.info("mollie webhook %s after %s finished: follow-up started", payment_id, workflow_id)
    metrics.webhooks.labels("mollie", "follow_up").inc()
    return {"status": "accepted"}
