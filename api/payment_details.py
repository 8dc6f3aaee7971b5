"""The front end's payment-details API: collect a new card or account for a customer.

Both routes act for the caller's customer only (api/frontend_auth.py): a card change, or its
progress, for any other customer id is 403. That decision depends on the ids in the request
alone, so it reveals nothing about which customers exist. Cleeng itself confirms the customer
when the new details are stored (and the customer's JWT, where configured, before that).

`POST /payment-details` answers like `POST /purchases` (api/checkout_start.py): within
PURCHASE_ANSWER_SECONDS, with 202 while the checkout is still being set up. Each card change
is its own run of the customer's workflow id, so one that ended (however) is followed by a new
one; a running one is joined.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.checkout_start import CheckoutClosed, CheckoutReady, start_checkout
from api.frontend_auth import Caller, frontend_caller, require_allowed_redirect
from api.schemas import (
    CLEENG_ID_SCHEMA,
    INT32_ID_PATTERN,
    POLL_AFTER_SECONDS,
    CheckoutMethod,
    CleengId,
    RedirectUrl,
    field_error,
    front_end_responses,
    int32_id,
    still_starting_response,
)
from api.services import ShimServices, services
from api.temporal_access import temporal_unavailable_as_503
from domain.payment_details import (
    STATUS_STARTING,
    NewDetailsInput,
    NewDetailsView,
    new_details_workflow_id,
)
from workflows.payment_details import NewPaymentDetailsWorkflow

logger = logging.getLogger(__name__)
router = APIRouter(tags=["payment details"])


class NewDetailsRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customerId": "123456789",
                    "redirectUrl": "https://shop.example.com/account",
                    "method": "creditcard",
                }
            ]
        },
    )

    customer_id: CleengId = Field(alias="customerId")
    redirect_url: RedirectUrl = Field(alias="redirectUrl")
    method: CheckoutMethod = None


class NewDetailsResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    customer_id: str = Field(alias="customerId")
    status: str
    checkout_url: str | None = Field(default=None, alias="checkoutUrl")
    mollie_payment_id: str | None = Field(default=None, alias="molliePaymentId")
    payment_details_id: str | None = Field(default=None, alias="paymentDetailsId")
    failure_reason: str | None = Field(default=None, alias="failureReason")

    @classmethod
    def from_view(cls, view: NewDetailsView) -> NewDetailsResponse:
        return cls(
            customer_id=view.customer_id,
            status=view.status,
            checkout_url=view.checkout_url,
            mollie_payment_id=view.mollie_payment_id,
            payment_details_id=view.payment_details_id,
            failure_reason=view.failure_reason,
        )


def _check_own_customer(caller: Caller, customer_id: str) -> None:
    if customer_id != caller.customer_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="customerId is not the customer this call acts for",
        )


@router.post(
    "/payment-details",
    status_code=status.HTTP_201_CREATED,
    response_model=NewDetailsResponse,
    response_model_by_alias=True,
    responses={
        **still_starting_response(NewDetailsResponse, "/payment-details/{customerId}"),
        **front_end_responses(401, 403, 422, 502, 503),
    },
    summary="Collect new payment details for a customer (Mollie checkout)",
)
async def start_new_details(
    body: NewDetailsRequest,
    response: Response,
    caller: Annotated[Caller, Depends(frontend_caller)],
    shim: Annotated[ShimServices, Depends(services)],
) -> NewDetailsResponse:
    """0.00 for cards and PayPal; other methods pay the smallest amount, refunded afterwards.
    Once paid, the mandate is stored in Cleeng as the customer's active payment details.
    Only for the caller's own customer; redirectUrl under a configured publisher origin.
    Answers within a few seconds: 201 with the checkout, or 202 while it is still being set
    up (poll `GET /payment-details/{customerId}`)."""
    _check_own_customer(caller, body.customer_id)
    require_allowed_redirect(body.redirect_url, shim.settings)
    workflow_id = new_details_workflow_id(body.customer_id)

    details_input = NewDetailsInput(
        customer_id=body.customer_id,
        redirect_url=body.redirect_url,
        method=body.method,
        poll_schedule_seconds=shim.settings.payment_poll_schedule_seconds,
    )

    with temporal_unavailable_as_503():
        try:
            answer = await start_checkout(
                await shim.temporal.client(),
                NewPaymentDetailsWorkflow.run,
                NewPaymentDetailsWorkflow.checkout,
                # Every run keys its Mollie calls with its own run id, so a new run never
                # adopts anything an earlier one left behind: the run it restarts is not input.
                lambda _restarts_run: details_input,
                workflow_id=workflow_id,
                task_queue=shim.temporal.task_queue,
                # The customer's next card change (after this one ended) is a new run.
                reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                answer_within=timedelta(seconds=shim.settings.purchase_answer_seconds),
            )
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise HTTPException(
                status.HTTP_502_BAD_GATEWAY, detail=f"checkout failed: {message}"
            ) from error
    if isinstance(answer, CheckoutReady):
        view = answer.view
        logger.info("new payment details for %s: %s", body.customer_id, view.mollie_payment_id)
        return NewDetailsResponse.from_view(view)
    if isinstance(answer, CheckoutClosed):
        # Not expected (ALLOW_DUPLICATE lets a new run follow any closed one): show its state.
        response.status_code = status.HTTP_200_OK
        return NewDetailsResponse.from_view(await _query_view(shim, body.customer_id))
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = f"/payment-details/{body.customer_id}"
    response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    logger.info("new payment details for %s: checkout still starting", body.customer_id)
    return NewDetailsResponse(customer_id=body.customer_id, status=STATUS_STARTING)


@router.get(
    "/payment-details/{customer_id}",
    response_model=NewDetailsResponse,
    response_model_by_alias=True,
    responses=front_end_responses(401, 403, 404, 422, 503),
    summary="Progress of the customer's latest payment-details change",
)
async def get_new_details(
    customer_id: Annotated[
        str, Path(pattern=INT32_ID_PATTERN, description=CLEENG_ID_SCHEMA["description"])
    ],
    caller: Annotated[Caller, Depends(frontend_caller)],
    shim: Annotated[ShimServices, Depends(services)],
) -> NewDetailsResponse:
    """Only the customer's own change is shown."""
    if int32_id(customer_id) is None:
        raise field_error(
            ("path", "customer_id"), "must be a positive int32 Cleeng id", customer_id
        )
    _check_own_customer(caller, customer_id)
    return NewDetailsResponse.from_view(await _query_view(shim, customer_id))


async def _query_view(shim: ShimServices, customer_id: str) -> NewDetailsView:
    with temporal_unavailable_as_503():
        try:
            client = await shim.temporal.client()
            handle: WorkflowHandle[NewPaymentDetailsWorkflow, NewDetailsView] = (
                client.get_workflow_handle_for(
                    NewPaymentDetailsWorkflow.run, new_details_workflow_id(customer_id)
                )
            )
            return await handle.query(NewPaymentDetailsWorkflow.view)
        except WorkflowQueryFailedError as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"state unavailable: {error}"
            ) from error
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail="no payment-details change for this customer"
            ) from error
