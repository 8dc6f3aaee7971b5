"""Mollie's classic webhooks: `id=tr_...`, form-encoded, unsigned.

Anyone can call this URL, so the body is treated as a rumour: the shim asks Mollie for the
payment (Mollie's own advice) and routes by the metadata the connector gave it when it created
it (`workflowId`). Nothing the caller sends picks a workflow (a query parameter such as the
`?workflow=` of webhook URLs from before the first release is ignored like any other).

Answers:
- 200 `accepted`: signalled into the payment's own workflow, or (that workflow has finished) a
  follow-up started for chargebacks and the payment's running refunds nudged;
- 200 `coalesced`: the same payment state was signalled into the same workflow moments ago;
- 200 `ignored`: not a payment id (`re_`, `chb_`), unknown at Mollie, or not the connector's.
  Costs no workflow; the negative answer is remembered briefly, so repeating a forged id
  costs at most one Mollie look-up per `MOLLIE_WEBHOOK_NEGATIVE_CACHE_SECONDS`;
- 422 malformed `id`; 429 over the per-source rate limit (`Retry-After`);
- 503 (`Retry-After`) when Mollie cannot answer the look-up or Temporal is unreachable or
  busy: Mollie retries its webhooks, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.metrics import ShimMetrics
from api.services import PaymentRoute, ShimServices, services, webhook_rate_limit
from api.temporal_access import service_unavailable, temporal_unavailable_as_503
from clients.errors import ServiceError
from clients.mollie import WORKFLOW_METADATA_KEY, GatewayPayment
from domain.operations import PaymentNotice
from domain.refunds import follow_up_workflow_id
from workflows.refund import PaymentFollowUpWorkflow

logger = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

MOLLIE_ID_PATTERN = r"^(tr|re|chb)_[A-Za-z0-9]{1,64}$"
PAYMENT_CHANGED_SIGNAL = "payment_changed"
# The workflows that create Mollie payments, exactly as they name themselves in the payment's
# metadata (`purchase:{orderId}`, `billing:{subscriptionId}:{expirationDate}`,
# `payment-details:{customerId}`). Anything else is not the connector's payment.
_OWNER_WORKFLOW = re.compile(
    r"(?:purchase|payment-details):[0-9]{1,19}"
    r"|billing:[0-9]{1,19}:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"
)
# Mollie's answers that mean "this id names no payment of yours", for good.
_NO_SUCH_PAYMENT = frozenset({400, 404, 410, 422})


class MollieUnavailable(Exception):
    """Mollie could not tell us about the payment now; the webhook must be retried."""


@router.post(
    "/webhooks/mollie",
    summary="Mollie payment webhook (id=tr_...)",
    dependencies=[Depends(webhook_rate_limit("mollie"))],
    responses={
        429: {"description": "Too many webhook requests from this source; see Retry-After"},
        503: {"description": "Mollie or Temporal cannot answer now; see Retry-After"},
    },
)
async def mollie_webhook(
    request: Request,
    shim: Annotated[ShimServices, Depends(services)],
    payment_id: Annotated[str, Form(alias="id", pattern=MOLLIE_ID_PATTERN)],
) -> dict[str, str]:
    metrics: ShimMetrics = request.app.state.metrics
    if not payment_id.startswith("tr_"):
        # Refund and chargeback changes arrive under the payment's id; other ids route nowhere.
        metrics.webhooks.labels("mollie", "ignored").inc()
        return {"status": "ignored"}
    try:
        route = await _route_of(shim, metrics, payment_id)
    except MollieUnavailable as error:
        metrics.webhooks.labels("mollie", "unavailable").inc()
        raise service_unavailable(str(error)) from error
    if route is None:
        metrics.webhooks.labels("mollie", "ignored").inc()
        return {"status": "ignored"}
    with temporal_unavailable_as_503(metrics.webhooks.labels("mollie", "unavailable").inc):
        client = await shim.temporal.client()
        outcome = await _signal_owner(client, shim, metrics, route, payment_id)
    metrics.webhooks.labels("mollie", outcome).inc()
    return {"status": "coalesced" if outcome == "coalesced" else "accepted"}


async def _route_of(
    shim: ShimServices, metrics: ShimMetrics, payment_id: str
) -> PaymentRoute | None:
    """The payment's workflow according to Mollie, or None when the payment is not ours."""
    routing = shim.mollie_routing
    if routing.negative.get(payment_id) is not None:
        metrics.mollie_lookups.labels("cached").inc()
        return None
    pending = routing.in_flight.get(payment_id)
    if pending is not None:
        # Concurrent webhooks for one id share a look-up, but only its negative answer: a
        # positive one may predate this webhook's change, whose state must be read afresh.
        shared = await asyncio.shield(pending)
        if shared is None:
            metrics.mollie_lookups.labels("shared").inc()
            return None
    lookup = asyncio.create_task(_look_up(shim, metrics, payment_id))
    lookup.add_done_callback(_retrieve_outcome)
    if payment_id not in routing.in_flight:
        routing.in_flight[payment_id] = lookup
        lookup.add_done_callback(lambda _: routing.in_flight.pop(payment_id, None))
    # Shielded: a caller that goes away must not cancel a look-up others are waiting for.
    return await asyncio.shield(lookup)


def _retrieve_outcome(task: asyncio.Future[PaymentRoute | None]) -> None:
    # Every waiter may have gone away; retrieving the outcome keeps asyncio from logging it.
    if not task.cancelled():
        task.exception()


async def _look_up(
    shim: ShimServices, metrics: ShimMetrics, payment_id: str
) -> PaymentRoute | None:
    try:
        payment = await shim.mollie.get_payment(payment_id)
    except ServiceError as error:
        if error.status in _NO_SUCH_PAYMENT:
            shim.mollie_routing.negative.put(payment_id, "not_found")
            metrics.mollie_lookups.labels("not_found").inc()
            # Debug only: forged ids are the expected case and must not flood the log.
            logger.debug("mollie webhook for %s: Mollie has no such payment", payment_id)
            return None
        metrics.mollie_lookups.labels("unavailable").inc()
        if error.status in (401, 403):
            # Not the caller's fault and not passing by itself: an operator must act.
            logger.error("Mollie refuses the connector's API key: %s", error)
        # The 503 itself is logged once by the app's refusal handler, with this detail.
        cause = f"HTTP {error.status}" if error.status else "no answer"
        raise MollieUnavailable(
            f"Mollie could not be asked about {payment_id} now ({cause}); retry later"
        ) from error
    except (KeyError, TypeError, ValueError) as error:
        # A reply we cannot read (an API change?): let Mollie retry rather than drop it.
        metrics.mollie_lookups.labels("unavailable").inc()
        raise MollieUnavailable(
            f"Mollie's answer about {payment_id} was unreadable ({type(error).__name__})"
        ) from error
    owner = payment.metadata.get(WORKFLOW_METADATA_KEY)
    if not isinstance(owner, str) or not _OWNER_WORKFLOW.fullmatch(owner):
        shim.mollie_routing.negative.put(payment_id, "not_ours")
        metrics.mollie_lookups.labels("not_ours").inc()
        logger.info("mollie webhook for %s ignored: not a payment the connector made", payment_id)
        return None
    metrics.mollie_lookups.labels("found").inc()
    return PaymentRoute(workflow_id=owner, state=_state_of(payment))


def _state_of(payment: GatewayPayment) -> str:
    # What distinguishes one webhook-worthy change from a repeat: the status and, for
    # refunds and chargebacks (which leave a paid payment `paid`), what remains of it.
    remaining = payment.amount_remaining
    return f"{payment.status}|{remaining.minor if remaining else '-'}"


async def _signal_owner(
    client: Client, shim: ShimServices, metrics: ShimMetrics, route: PaymentRoute, payment_id: str
) -> str:
    signalled = shim.mollie_routing.signalled
    key = (route.workflow_id, payment_id)
    if signalled.get(key) == route.state:
        # The workflow was told about this very state moments ago and re-checks the payment
        # itself, so another signal adds nothing but history (and, en masse, would hit
        # Temporal's per-workflow limits). A finished workflow still needs the follow-up.
        if await _is_running(client, route.workflow_id):
            return "coalesced"
        return await _follow_up(client, shim, metrics, route, payment_id)
    # Recorded before the signal, so concurrent repeats coalesce with this one.
    signalled.put(key, route.state)
    try:
        await client.get_workflow_handle(route.workflow_id).signal(
            PAYMENT_CHANGED_SIGNAL, PaymentNotice(payment_id=payment_id)
        )
    except RPCError as error:
        signalled.pop(key)
        # A closed workflow answers NOT_FOUND to signals.
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return await _follow_up(client, shim, metrics, route, payment_id)
    except BaseException:
        signalled.pop(key)
        raise
    return "signalled"


async def _is_running(client: Client, workflow_id: str) -> bool:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return description.status == WorkflowExecutionStatus.RUNNING


async def _follow_up(
    client: Client, shim: ShimServices, metrics: ShimMetrics, route: PaymentRoute, payment_id: str
) -> str:
    """The payment's own workflow has finished: what can still change is a refund or a
    chargeback; look at the payment after the fact."""
    signalled = shim.mollie_routing.signalled
    # Refunds change under the payment's webhook too: nudge the running Refund workflows of
    # this payment (found by search attribute) instead of waiting for their next poll.
    query = (
        f'WorkflowType="Refund" AND ExecutionStatus="Running" AND MolliePaymentId="{payment_id}"'
    )
    refunds = [refund.id async for refund in client.list_workflows(query, limit=20)]
    # A refund settling leaves the payment itself as it was: repeats are told apart from
    # changes by the refunds' own states (None: unknown now, so every nudge goes out).
    state = await _refunds_state(shim, route, payment_id) if refunds else None
    for refund_id in refunds:
        key = (refund_id, payment_id)
        if state is not None:
            if signalled.get(key) == state:
                continue
            signalled.put(key, state)
        try:
            await client.get_workflow_handle(refund_id).signal(
                PAYMENT_CHANGED_SIGNAL, PaymentNotice(payment_id=payment_id)
            )
        except RPCError as error:
            signalled.pop(key)
            if error.status != RPCStatusCode.NOT_FOUND:  # finished since it was listed
                raise
    # Never coalesced: a chargeback leaves the payment's state as it was, and nothing but this
    # webhook reports it. A follow-up still running absorbs the repeat (USE_EXISTING).
    await client.start_workflow(
        PaymentFollowUpWorkflow.run,
        payment_id,
        id=follow_up_workflow_id(payment_id),
        task_queue=shim.temporal.task_queue,
        # Every later webhook may bring a new chargeback: allow a new run once one ended.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    # One log line per payment state, not one per (possibly forged, repeated) webhook.
    log_key = (follow_up_workflow_id(payment_id), payment_id)
    if signalled.get(log_key) != route.state:
        signalled.put(log_key, route.state)
        logger.info(
            "mollie webhook %s after %s finished: follow-up started", payment_id, route.workflow_id
        )
    return "follow_up"


async def _refunds_state(shim: ShimServices, route: PaymentRoute, payment_id: str) -> str | None:
    try:
        refunds = await shim.mollie.list_refunds(payment_id)
    except (ServiceError, KeyError, TypeError, ValueError):
        return None
    return ";".join([route.state, *sorted(f"{r.id}={r.status}" for r in refunds)])
