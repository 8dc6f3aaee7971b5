"""The front end's purchase API: start a checkout, read its state."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.errors import ORDER_NOT_FOUND
from api.schemas import Problem, PurchaseRequest, PurchaseResponse
from api.services import ShimServices, services
from api.temporal_access import temporal_unavailable_as_503
from clients.errors import ServiceError
from domain import search_attributes
from domain.purchase import PurchaseInput, PurchaseView, purchase_workflow_id
from workflows.initial_purchase import InitialPurchaseWorkflow

logger = logging.getLogger(__name__)
router = APIRouter(tags=["purchases"])

# The checkout update waits for three short calls (Cleeng order, Mollie customer, payment).
UPDATE_RPC_TIMEOUT = timedelta(seconds=30)

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No purchase for this order"},
    422: {"model": Problem, "description": "Malformed body or unknown order"},
    503: {"model": Problem, "description": "Temporal or Cleeng unreachable; try again"},
}


def _unavailable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)


async def _check_order_exists(shim: ShimServices, order_id: str) -> None:
    """Refuse unknown orders before starting anything (the workflow re-reads the order)."""
    try:
        await shim.cleeng.get_order(order_id)
    except ServiceError as error:
        if error.status == 404:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=f"orderId {order_id}: Cleeng has no such order",
            ) from error
        if error.status is not None and 400 <= error.status < 500:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=f"orderId {order_id}: Cleeng refused the order: {error.message}",
            ) from error
        raise _unavailable(f"Cleeng is unavailable: {error}") from error


@router.post(
    "/purchases",
    status_code=status.HTTP_201_CREATED,
    response_model=PurchaseResponse,
    response_model_by_alias=True,
    responses=ERROR_RESPONSES,
    summary="Start (or resume) the checkout of a Cleeng order",
)
async def start_purchase(
    body: PurchaseRequest,
    response: Response,
    shim: Annotated[ShimServices, Depends(services)],
    request: Request,
) -> PurchaseResponse:
    """Charges exactly the Cleeng order's amount. Repeating the call for the same order returns
    the same checkout; a finished purchase answers 200 with its outcome."""
    metrics = request.app.state.metrics
    await _check_order_exists(shim, body.order_id)
    workflow_id = purchase_workflow_id(body.order_id)
    with temporal_unavailable_as_503(metrics.purchases.labels("unavailable").inc):
        try:
            client = await shim.temporal.client()
            start = WithStartWorkflowOperation(
                InitialPurchaseWorkflow.run,
                PurchaseInput(
                    order_id=body.order_id, redirect_url=body.redirect_url, method=body.method
                ),
                id=workflow_id,
                task_queue=shim.temporal.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                # A finished purchase must not be started again by a late duplicate.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(search_attributes.CLEENG_ORDER_ID, body.order_id)]
                ),
            )
            view = await client.execute_update_with_start_workflow(
                InitialPurchaseWorkflow.checkout,
                start_workflow_operation=start,
                rpc_timeout=UPDATE_RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            # Closed already: report its outcome instead of starting a second purchase.
            response.status_code = status.HTTP_200_OK
            metrics.purchases.labels("finished").inc()
            return PurchaseResponse.from_view(await _query_view(shim, workflow_id))
        except WorkflowUpdateFailedError as error:
            metrics.purchases.labels("failed").inc()
            raise _update_failure(body.order_id, error) from error
    metrics.purchases.labels("started").inc()
    logger.info("purchase %s: %s %s", body.order_id, view.status, view.mollie_payment_id)
    return PurchaseResponse.from_view(view)


def _update_failure(order_id: str, error: WorkflowUpdateFailedError) -> HTTPException:
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == ORDER_NOT_FOUND:
        return HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"orderId {order_id}: Cleeng has no such order",
        )
    message = cause.message if isinstance(cause, ApplicationError) else str(cause)
    return HTTPException(
        status.HTTP_502_BAD_GATEWAY, detail=f"order {order_id}: checkout failed: {message}"
    )


async def _query_view(shim: ShimServices, workflow_id: str) -> PurchaseView:
    with temporal_unavailable_as_503():
        try:
            client = await shim.temporal.client()
            handle = client.get_workflow_handle_for(InitialPurchaseWorkflow.run, workflow_id)
            return await handle.query(
                InitialPurchaseWorkflow.view, rpc_timeout=timedelta(seconds=10)
            )
        except WorkflowQueryFailedError as error:
            # No worker answered (e.g. all restarting): the state exists, ask again soon.
            raise _unavailable(f"purchase state unavailable: {error}") from error
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail="no purchase started for this order"
            ) from error


@router.get(
    "/purchases/{order_id}",
    response_model=PurchaseResponse,
    response_model_by_alias=True,
    responses=ERROR_RESPONSES,
    summary="Current state of a purchase",
)
async def get_purchase(
    order_id: Annotated[str, Path(pattern=r"^[0-9]{1,18}$", description="Cleeng order id")],
    shim: Annotated[ShimServices, Depends(services)],
) -> PurchaseResponse:
    """`awaiting_payment`, `recording`, `captured`, `rejected`, `failed`, or
    `refunded_cleeng_refused`, with the Cleeng payment id once recorded."""
    return PurchaseResponse.from_view(await _query_view(shim, purchase_workflow_id(order_id)))
