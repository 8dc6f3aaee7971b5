"""Mollie's classic webhooks: `id=tr_...`, form-encoded, unsigned.

The body only says "something changed": the workflow fetches the payment itself, so a forged
call can at most cause a re-check. Valid calls always get 200 (Mollie retries anything else);
only an unreachable Temporal answers 503, so Mollie tries again later and nothing is lost.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from temporalio.service import RPCError, RPCStatusCode

from api.services import ShimServices, services
from api.temporal_access import TemporalUnavailable, is_unavailable
from domain.operations import PaymentNotice

logger = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

MOLLIE_ID_PATTERN = r"^(tr|re|chb)_[A-Za-z0-9]{1,64}$"
WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9:_\-.+]{1,200}$"
# Workflows that own Mollie payments; all of them take the `payment_changed` signal.
_PAYMENT_WORKFLOWS = re.compile(r"^(purchase|billing):")
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
    try:
        client = await shim.temporal.client()
        handle = client.get_workflow_handle(workflow_id)
        await handle.signal(PAYMENT_CHANGED_SIGNAL, PaymentNotice(payment_id=payment_id))
    except TemporalUnavailable as error:
        metrics.webhooks.labels("mollie", "unavailable").inc()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            # Unknown or finished workflow: nothing to re-check; Mollie must stop retrying.
            metrics.webhooks.labels("mollie", "no_workflow").inc()
            logger.info("mollie webhook %s for %s: no running workflow", payment_id, workflow_id)
            return {"status": "ignored"}
        if is_unavailable(error):
            metrics.webhooks.labels("mollie", "unavailable").inc()
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail="Temporal is unavailable"
            ) from error
        raise
    metrics.webhooks.labels("mollie", "signalled").inc()
    return {"status": "accepted"}
