"""The front end's purchase API: start a checkout, read its state.

Both routes act for one Cleeng customer (api/frontend_auth.py): a purchase starts only for an
order Cleeng says is that customer's, and its state is shown only to that customer. Someone
else's order is answered exactly like a missing one, so an order id's existence never leaks.

`POST /purchases` answers within PURCHASE_ANSWER_SECONDS: 201 with the checkout, or 202 while
the checkout is still being set up (the front end polls `GET /purchases/{orderId}`). A purchase
whose run failed before any Mollie payment existed (e.g. `CheckoutUnavailable` after an outage)
is started again by the next POST; one that got as far as a payment only reports its outcome.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.errors import ORDER_NOT_FOUND
from api.checkout_start import CheckoutClosed, CheckoutReady, start_checkout
from api.frontend_auth import Caller, frontend_caller, require_allowed_redirect
from api.schemas import (
    CLEENG_ID_SCHEMA,
    INT32_ID_PATTERN,
    POLL_AFTER_SECONDS,
    PurchaseRequest,
    PurchaseResponse,
    field_error,
    front_end_responses,
    int32_id,
    still_starting_response,
)
from api.services import BoundedTtlCache, ShimServices, services
from api.temporal_access import service_unavailable, temporal_unavailable_as_503
from clients.errors import FailureKind, ServiceError
from domain import search_attributes
from domain.purchase import (
    CHECKOUT_UNAVAILABLE,
    STATUS_STARTING,
    PurchaseInput,
    PurchaseView,
    purchase_workflow_id,
)
from workflows.initial_purchase import InitialPurchaseWorkflow

logger = logging.getLogger(__name__)
router = APIRouter(tags=["purchases"])

# A query answers from the worker's cache in milliseconds; this only bounds a stuck one.
QUERY_RPC_TIMEOUT = timedelta(seconds=10)
# The state shown with a 202 is a courtesy: without it the answer is still "starting".
STARTING_VIEW_RPC_TIMEOUT = timedelta(seconds=2)

NO_SUCH_ORDER = "no such order for this customer"
NO_PURCHASE = "no purchase started for this order"


def _unavailable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)


async def _is_customers_order(
    shim: ShimServices, owners: BoundedTtlCache[str, str], order_id: str, caller: Caller
) -> bool:
    """Is this an order Cleeng has, of the caller's customer? (A missing order and someone
    else's look the same from outside.)"""
    owner = owners.get(order_id)
    if owner is None:
        try:
            order = await shim.cleeng.get_order(order_id)
        except ServiceError as error:
            if error.kind is FailureKind.PERMANENT:
                # 404, another 4xx, or an id the client would not send: no order to use.
                logger.info("order %s refused: %s", order_id, error)
                return False
            raise _unavailable("Cleeng is unavailable; try again") from error
        owner = int32_id(order.customer_id)
        if owner is None:
            logger.warning("order %s: Cleeng names no valid customerId", order_id)
            return False
        owners.put(order_id, owner)
    if owner != caller.customer_id:
        logger.info("order %s is not customer %s's", order_id, caller.customer_id)
        return False
    return True


@router.post(
    "/purchases",
    status_code=status.HTTP_201_CREATED,
    response_model=PurchaseResponse,
    response_model_by_alias=True,
    responses={
        200: {"model": PurchaseResponse, "description": "The purchase had finished: its outcome"},
        **still_starting_response(PurchaseResponse, "/purchases/{orderId}"),
        **front_end_responses(401, 422, 502, 503),
    },
    summary="Start (or resume) the checkout of a Cleeng order",
)
async def start_purchase(
    body: PurchaseRequest,
    response: Response,
    caller: Annotated[Caller, Depends(frontend_caller)],
    shim: Annotated[ShimServices, Depends(services)],
    request: Request,
) -> PurchaseResponse:
    """Charges exactly the Cleeng order's amount. Answers within a few seconds: 201 with the
    checkout, or 202 while it is still being set up (poll `GET /purchases/{orderId}`).
    Repeating the call for the same order returns the same checkout; a finished purchase
    answers 200 with its outcome, except one that failed before any Mollie payment existed
    (e.g. the checkout stayed unavailable during an outage), which starts again. The order
    must be the customer's (X-Cleeng-Customer-Id or the customer's Cleeng JWT); redirectUrl
    must point to one of the publisher's configured origins."""
    metrics = request.app.state.metrics
    require_allowed_redirect(body.redirect_url, shim.settings)
    if not await _is_customers_order(shim, request.app.state.order_owners, body.order_id, caller):
        raise field_error(("body", "orderId"), f"{body.order_id}: {NO_SUCH_ORDER}", body.order_id)
    workflow_id = purchase_workflow_id(body.order_id)

    def purchase_input(restarts_run: str | None) -> PurchaseInput:
        return PurchaseInput(
            order_id=body.order_id,
            redirect_url=body.redirect_url,
            method=body.method,
            restarts_run=restarts_run,
            poll_schedule_seconds=shim.settings.payment_poll_schedule_seconds,
        )

    with temporal_unavailable_as_503(metrics.purchases.labels("unavailable").inc):
        try:
            answer = await start_checkout(
                await shim.temporal.client(),
                InitialPurchaseWorkflow.run,
                InitialPurchaseWorkflow.checkout,
                purchase_input,
                workflow_id=workflow_id,
                task_queue=shim.temporal.task_queue,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(search_attributes.CLEENG_ORDER_ID, body.order_id)]
                ),
                # A finished purchase is not started again by a late duplicate...
                reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # ...unless it ended before any money could move.
                may_restart=_failed_before_payment,
                answer_within=timedelta(seconds=shim.settings.purchase_answer_seconds),
            )
        except WorkflowUpdateFailedError as error:
            metrics.purchases.labels("failed").inc()
            raise _update_failure(body.order_id, error) from error
    if isinstance(answer, CheckoutReady):
        view = answer.view
        metrics.purchases.labels("started").inc()
        logger.info("purchase %s: %s %s", body.order_id, view.status, view.mollie_payment_id)
        return PurchaseResponse.from_view(view)
    if isinstance(answer, CheckoutClosed):
        # Finished: report its outcome instead of starting a second purchase.
        response.status_code = status.HTTP_200_OK
        metrics.purchases.labels("finished").inc()
        return PurchaseResponse.from_view(await _query_view(shim, workflow_id))
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = f"/purchases/{body.order_id}"
    response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    metrics.purchases.labels("starting").inc()
    logger.info("purchase %s: checkout still starting", body.order_id)
    return PurchaseResponse.from_view(await _starting_view(shim, body.order_id))


def _failed_before_payment(run: WorkflowExecutionDescription) -> bool:
    """A closed purchase run that never had a Mollie payment (the workflow sets the search
    attribute in the same step that learns of the payment) handed out no checkout and moved
    no money: starting the purchase again cannot charge twice."""
    return run.typed_search_attributes.get(search_attributes.MOLLIE_PAYMENT_ID) is None


def _update_failure(order_id: str, error: WorkflowUpdateFailedError) -> Exception:
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == ORDER_NOT_FOUND:
        return field_error(("body", "orderId"), f"{order_id}: {NO_SUCH_ORDER}", order_id)
    message = cause.message if isinstance(cause, ApplicationError) else str(cause)
    if isinstance(cause, ApplicationError) and cause.type == CHECKOUT_UNAVAILABLE:
        # Nothing was charged and the next POST starts the purchase again.
        return service_unavailable(f"order {order_id}: checkout unavailable: {message}")
    return HTTPException(
        status.HTTP_502_BAD_GATEWAY, detail=f"order {order_id}: checkout failed: {message}"
    )


async def _starting_view(shim: ShimServices, order_id: str) -> PurchaseView:
    """The purchase's state to show with a 202; "starting" if it cannot be read right now."""
    try:
        client = await shim.temporal.client()
        handle: WorkflowHandle[InitialPurchaseWorkflow, PurchaseView] = (
            client.get_workflow_handle_for(
                InitialPurchaseWorkflow.run, purchase_workflow_id(order_id)
            )
        )
        return await handle.query(
            InitialPurchaseWorkflow.view, rpc_timeout=STARTING_VIEW_RPC_TIMEOUT
        )
    except (WorkflowQueryFailedError, RPCError) as error:
        logger.info("purchase %s: state not readable for the 202: %s", order_id, error)
        return PurchaseView(order_id=order_id, status=STATUS_STARTING)


async def _query_view(shim: ShimServices, workflow_id: str) -> PurchaseView:
    with temporal_unavailable_as_503():
        try:
            client = await shim.temporal.client()
            handle: WorkflowHandle[InitialPurchaseWorkflow, PurchaseView] = (
                client.get_workflow_handle_for(InitialPurchaseWorkflow.run, workflow_id)
            )
            return await handle.query(InitialPurchaseWorkflow.view, rpc_timeout=QUERY_RPC_TIMEOUT)
        except WorkflowQueryFailedError as error:
            # No worker answered (e.g. all restarting): the state exists, ask again soon.
            raise _unavailable(f"purchase state unavailable: {error}") from error
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_PURCHASE) from error


@router.get(
    "/purchases/{order_id}",
    response_model=PurchaseResponse,
    response_model_by_alias=True,
    responses=front_end_responses(401, 404, 422, 503),
    summary="Current state of a purchase",
)
async def get_purchase(
    order_id: Annotated[
        str, Path(pattern=INT32_ID_PATTERN, description=CLEENG_ID_SCHEMA["description"])
    ],
    caller: Annotated[Caller, Depends(frontend_caller)],
    shim: Annotated[ShimServices, Depends(services)],
    request: Request,
) -> PurchaseResponse:
    """`starting` (the checkout is being set up: no checkoutUrl yet), `awaiting_payment`,
    `recording`, `captured`, `rejected`, `failed`, or `refunded_cleeng_refused`, with the
    Cleeng payment id once recorded. A `failed` purchase without molliePaymentId may be
    started again with `POST /purchases`. Only the order's own
    customer sees it; anyone else gets the same 404 as for an order never purchased."""
    if int32_id(order_id) is None:
        raise field_error(("path", "order_id"), "must be a positive int32 Cleeng id", order_id)
    if not await _is_customers_order(shim, request.app.state.order_owners, order_id, caller):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_PURCHASE)
    return PurchaseResponse.from_view(await _query_view(shim, purchase_workflow_id(order_id)))
