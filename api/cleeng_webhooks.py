"""Cleeng's webhooks: verify the signature, route by topic, signal-with-start, acknowledge.

Answers: 200 once Temporal accepted the signal (also for duplicates and for topics we ignore,
since Cleeng would redeliver those forever), 401 for a bad or missing signature, 400/422 for a
malformed body (naming the field; every id must be of its documented type), 429 over the
per-source rate limit, 503 (with `Retry-After`) when Temporal is unreachable or busy so Cleeng
redelivers. Every refusal logs one line, never a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ValidationError
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.cleeng_payloads import (
    CleengEnvelope,
    DeactivationData,
    DunningData,
    RefundData,
    describe_validation_error,
    iso_utc,
)
from api.cleeng_signature import signature_is_valid
from api.services import ShimServices, services, webhook_rate_limit
from api.temporal_access import temporal_unavailable_as_503
from clients import cleeng_contract as contract
from domain import search_attributes
from domain.billing import (
    EVENT_AUTHORISE,
    EVENT_CAPTURE,
    EVENT_TERMINATE,
    BillingCycleInput,
    BillingEvent,
    billing_workflow_id,
)
from domain.money import Money, MoneyFormatError
from domain.payment_details import DeactivationInput, deactivation_workflow_id
from domain.refunds import RefundRequest, refund_request_key, refund_workflow_id
from settings import Settings
from workflows.payment_details import DetailsDeactivationWorkflow
from workflows.recurring_billing import RecurringBillingWorkflow
from workflows.refund import RefundWorkflow

logger = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

BILLING_TOPICS = {
    contract.TOPIC_AUTHORISATION: EVENT_AUTHORISE,
    contract.TOPIC_CAPTURE: EVENT_CAPTURE,
    contract.TOPIC_TERMINATION: EVENT_TERMINATE,
}
# Known, and acknowledged without action. capturePayment: Cleeng's payments-pre-configuration
# page lists it as required, and no page we found says when it is sent, what its data holds or
# what a connector must do; captures come with subscriptionReadyForPaymentCapture. Nothing
# moves money on a guess: each delivery is logged (its keys and ids) for an operator.
ACKNOWLEDGED_TOPICS = frozenset({contract.TOPIC_CAPTURE_PAYMENT})
# Data keys whose values are safe to log from a topic acknowledged without action.
_LOGGED_IDS = ("paymentId", "orderId", "subscriptionId", "externalPaymentId", "paymentMethodId")
# Topics the connector subscribes to in Cleeng (see webhook_registration): every topic the
# payments-pre-configuration page lists as required.
HANDLED_TOPICS = (
    *BILLING_TOPICS,
    contract.TOPIC_REFUND,
    contract.TOPIC_CAPTURE_PAYMENT,
    contract.TOPIC_DETAILS_DEACTIVATED,
)


def _verify(settings: Settings, request: Request, body: bytes) -> None:
    if not settings.cleeng_webhook_verification:
        return
    signature = request.headers.get(settings.cleeng_signature_header)
    if not signature_is_valid(settings.effective_webhook_secret, body, signature):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"missing or invalid {settings.cleeng_signature_header} signature",
        )


def _parse_envelope(body: bytes) -> CleengEnvelope:
    try:
        raw: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"body is not JSON: {error}"
        ) from error
    try:
        return CleengEnvelope.model_validate(raw)
    except ValidationError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=describe_validation_error(error)
        ) from error


@router.post(
    "/webhooks/cleeng",
    summary="Cleeng webhook (HMAC-SHA256 signed)",
    dependencies=[Depends(webhook_rate_limit("cleeng"))],
    responses={
        400: {"description": "The body is not JSON"},
        401: {"description": "Missing or invalid signature"},
        422: {"description": "A field is missing or malformed; the detail names it"},
        429: {"description": "Too many webhook requests from this source; see Retry-After"},
        503: {"description": "Temporal is unreachable or busy; see Retry-After"},
    },
)
async def cleeng_webhook(
    request: Request, shim: Annotated[ShimServices, Depends(services)]
) -> dict[str, str]:
    try:
        return await _handle(request, shim)
    except HTTPException as error:
        # Logged once by the app's refusal handler (one line, no traceback); counted here.
        if error.status_code in (400, 422):
            request.app.state.metrics.webhooks.labels("cleeng", "rejected").inc()
        raise


async def _handle(request: Request, shim: ShimServices) -> dict[str, str]:
    metrics = request.app.state.metrics
    body = await request.body()
    try:
        _verify(shim.settings, request, body)
    except HTTPException:
        metrics.webhooks.labels("cleeng", "bad_signature").inc()
        raise
    envelope = _parse_envelope(body)
    route = _ROUTES.get(envelope.topic)
    if route is None and envelope.topic in ACKNOWLEDGED_TOPICS:
        _log_acknowledged(envelope.topic, envelope.data)
        metrics.webhooks.labels("cleeng", "acknowledged").inc()
        return {"status": "acknowledged", "topic": envelope.topic}
    if route is None:
        logger.info("cleeng webhook topic %r ignored", envelope.topic)
        metrics.webhooks.labels("cleeng", "ignored").inc()
        return {"status": "ignored", "topic": envelope.topic}
    model, start = route
    try:
        data = model.model_validate(envelope.data)
        if isinstance(data, RefundData):
            data.request_key = refund_request_key(envelope.data)
    except ValidationError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=describe_validation_error(error, prefix="data"),
        ) from error
    method = getattr(data, "payment_method_id", None)
    if method not in (None, str(shim.settings.cleeng_payment_method_id)):
        # Another connector's payment method: not ours to touch.
        logger.info("cleeng webhook for paymentMethodId %s ignored", method)
        metrics.webhooks.labels("cleeng", "ignored").inc()
        return {"status": "ignored", "topic": envelope.topic}

    with temporal_unavailable_as_503(metrics.webhooks.labels("cleeng", "unavailable").inc):
        try:
            client = await shim.temporal.client()
            outcome = await start(
                client, shim.settings, shim.temporal.task_queue, envelope.topic, data
            )
        except WorkflowAlreadyStartedError:
            # The workflow for this business event already finished: a late duplicate.
            logger.info("cleeng %s: duplicate of a finished workflow", envelope.topic)
            outcome = "duplicate"
    metrics.webhooks.labels("cleeng", outcome).inc()
    return {"status": outcome, "topic": envelope.topic}


def _log_acknowledged(topic: str, data: Any) -> None:
    """A warning an operator sees for a topic the connector receives and does not act on: the
    data's keys and its ids, never tokens or other values."""
    fields = data if isinstance(data, dict) else {}
    ids = {key: fields[key] for key in _LOGGED_IDS if isinstance(fields.get(key), str | int)}
    logger.warning(
        "cleeng %s acknowledged, nothing done (no published meaning); data keys %s, ids %s",
        topic,
        sorted(str(key) for key in fields),
        ids,
    )


async def _signal_billing(
    client: Client, settings: Settings, task_queue: str, topic: str, data: Any
) -> str:
    assert isinstance(data, DunningData)
    kind = BILLING_TOPICS[topic]
    expiration = iso_utc(data.expiration_date)
    attempt = iso_utc(data.dunning_attempt_date) if data.dunning_attempt_date else expiration
    workflow_id = billing_workflow_id(data.subscription_id, expiration)
    event = BillingEvent(
        kind=kind,
        attempt_date=attempt,
        customer_id=data.customer_id,
        offer_id=data.offer_id,
        payment_details_id=data.payment_details_id,
        token=data.token,
        currency=data.currency,
        country=data.payment_country,
        payment_method_id=data.payment_method_id,
    )
    await client.start_workflow(
        RecurringBillingWorkflow.run,
        BillingCycleInput(
            subscription_id=data.subscription_id,
            expiration_date=expiration,
            manual_capture=settings.mollie_recurring_manual_capture,
            compact_history=settings.renewal_compact_history,
            poll_schedule_seconds=settings.payment_poll_schedule_seconds,
        ),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # A cycle that completed must not start again from a late duplicate; one that failed
        # (an operator is on it) may be restarted by Cleeng's next webhook, e.g. the
        # termination. The guards (Cleeng: cycle paid? Mollie: payment for this operation?)
        # keep a restart from charging twice.
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        start_signal="event",
        start_signal_args=[event],
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(search_attributes.CLEENG_SUBSCRIPTION_ID, data.subscription_id)]
        ),
    )
    logger.info("%s %s signalled into %s", kind, attempt, workflow_id)
    return "accepted"


async def _start_refund(
    client: Client, settings: Settings, task_queue: str, topic: str, data: Any
) -> str:
    assert isinstance(data, RefundData)
    try:
        amount = Money.from_decimal(data.amount, data.currency)
    except MoneyFormatError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"data.amount: {error}"
        ) from error
    workflow_id = refund_workflow_id(data.payment_id, data.request_key)
    await client.start_workflow(
        RefundWorkflow.run,
        RefundRequest(
            cleeng_payment_id=data.payment_id,
            order_id=data.order_id,
            external_payment_id=data.external_payment_id,
            amount=amount,
            reason=data.reason,
            payment_operation=data.payment_operation,
            poll_schedule_seconds=settings.payment_poll_schedule_seconds,
        ),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search_attributes.CLEENG_PAYMENT_ID, data.payment_id),
                SearchAttributePair(search_attributes.MOLLIE_PAYMENT_ID, data.external_payment_id),
            ]
        ),
    )
    logger.info("refund of %s for payment %s: %s", amount, data.payment_id, workflow_id)
    return "accepted"


async def _start_deactivation(
    client: Client, settings: Settings, task_queue: str, topic: str, data: Any
) -> str:
    assert isinstance(data, DeactivationData)
    workflow_id = deactivation_workflow_id(data.payment_details_id)
    await client.start_workflow(
        DetailsDeactivationWorkflow.run,
        DeactivationInput(
            payment_details_id=data.payment_details_id,
            customer_id=data.customer_id,
            token=data.token,
            delete_details=settings.cleeng_delete_deactivated_details,
        ),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    logger.info("payment details %s deactivated: %s", data.payment_details_id, workflow_id)
    return "accepted"


_Starter = Callable[[Client, Settings, str, str, Any], Awaitable[str]]
_ROUTES: dict[str, tuple[type[BaseModel], _Starter]] = {
    **{topic: (DunningData, _signal_billing) for topic in BILLING_TOPICS},
    contract.TOPIC_REFUND: (RefundData, _start_refund),
    contract.TOPIC_DETAILS_DEACTIVATED: (DeactivationData, _start_deactivation),
}
