"""`GET /purchases/{orderId}/methods`: the Mollie methods that can start this order's subscription.

The shop asks before it shows its payment choices, so it offers only methods that will renew:
Mollie's "List payment methods" with `sequenceType=first` says which methods the account can
take a first payment with, for the amount and billing country; domain/methods.py says which of
those leave a mandate the connector charges renewals with. Both must agree for a method to be
listed.

Amount, currency and country are the Cleeng order's, never the caller's. Each method comes with
the first payment the purchase will charge with it: the order's amount, or for a free trial
(amount 0) 0.00 where the method takes it, else the smallest amount, which the connector
refunds once it is paid. Mollie is asked about exactly that amount, so a method whose minimum
is above it is not offered.

Like the other front-end calls it acts for one customer (api/frontend_auth.py): someone else's
order is answered exactly like a missing one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from api.frontend_auth import Caller, frontend_caller
from api.schemas import CLEENG_ID_SCHEMA, INT32_ID_PATTERN, field_error, front_end_responses
from api.schemas import int32_id as cleeng_id_text
from api.services import ShimServices, services
from api.temporal_access import service_unavailable
from clients.cleeng import CleengOrder
from clients.errors import FailureKind, ServiceError
from clients.mollie import GatewayMethod, MollieGateway
from domain.methods import FIRST_PAYMENT_METHODS, capability, first_payment_amount
from domain.money import Money

logger = logging.getLogger(__name__)
router = APIRouter(tags=["purchases"])

NO_SUCH_ORDER = "no such order for this customer"
_ALPHA_2 = re.compile(r"[A-Z]{2}")
# Wallets the connector can start a subscription with (Apple Pay leaves a card mandate);
# Mollie lists a wallet only when asked for it.
WALLETS = ("applepay",)


class Amount(BaseModel):
    currency: str
    value: str = Field(description="Decimal string with the currency's decimals, e.g. 9.99")
    minor: int = Field(description="The same amount in minor units, e.g. 999")

    @classmethod
    def of(cls, money: Money) -> Amount:
        return cls(currency=money.currency, value=money.to_decimal_string(), minor=money.minor)


class PurchaseMethod(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(description="Mollie method id, to send as `method` to POST /purchases")
    description: str = Field(description="Mollie's name for the method")
    mandate_method: str = Field(
        alias="mandateMethod",
        description="The mandate renewals are charged with: creditcard, directdebit or paypal",
    )
    first_payment_amount: Amount = Field(
        alias="firstPaymentAmount",
        description="What the first payment with this method charges: the order's amount; "
        "for a free trial 0.00, or the smallest amount where the method takes no 0.00 "
        "(refunded once paid)",
    )


_EXAMPLE_AMOUNT: JsonDict = {"currency": "EUR", "value": "9.99", "minor": 999}


class PurchaseMethodsResponse(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "orderId": "812345678",
                    "amount": _EXAMPLE_AMOUNT,
                    "billingCountry": "NL",
                    "methods": [
                        {
                            "id": "creditcard",
                            "description": "Card",
                            "mandateMethod": "creditcard",
                            "firstPaymentAmount": _EXAMPLE_AMOUNT,
                        },
                        {
                            "id": "ideal",
                            "description": "iDEAL",
                            "mandateMethod": "directdebit",
                            "firstPaymentAmount": _EXAMPLE_AMOUNT,
                        },
                    ],
                }
            ]
        },
    )

    order_id: str = Field(alias="orderId")
    amount: Amount = Field(description="The Cleeng order's amount")
    billing_country: str | None = Field(
        alias="billingCountry", description="The Cleeng order's country, as Mollie was asked"
    )
    methods: list[PurchaseMethod]


async def subscription_methods(
    mollie: MollieGateway, order_amount: Money, billing_country: str | None
) -> list[PurchaseMethod]:
    """Methods Mollie offers as a `first` payment for the amount each would charge, that leave
    a mandate; in Mollie's order. A free trial asks about both amounts it may charge."""
    starters = [m for m, row in FIRST_PAYMENT_METHODS.items() if row.mandate_method]
    amounts = sorted(
        {first_payment_amount(order_amount, m) for m in starters}, key=lambda a: a.minor
    )
    answers = await asyncio.gather(
        *(
            mollie.list_methods(
                sequence_type="first",
                amount=amount,
                billing_country=billing_country,
                include_wallets=WALLETS,
            )
            for amount in amounts
        )
    )
    offered: dict[Money, list[GatewayMethod]] = dict(zip(amounts, answers, strict=True))
    found: list[PurchaseMethod] = []
    seen: set[str] = set()
    for listed in answers:
        for method in listed:
            row = capability(method.id)
            if method.id in seen or row is None or row.mandate_method is None:
                continue
            charged = first_payment_amount(order_amount, method.id)
            if all(other.id != method.id for other in offered[charged]):
                # Mollie offers it, but not for the amount this purchase would charge with it.
                continue
            seen.add(method.id)
            found.append(
                PurchaseMethod(
                    id=method.id,
                    description=method.description,
                    mandate_method=row.mandate_method,
                    first_payment_amount=Amount.of(charged),
                )
            )
    return found


def billing_country(order: CleengOrder) -> str | None:
    """The order's country as Mollie's `billingCountry` (ISO 3166-1 alpha-2). Anything else is
    left out rather than sent: Mollie would refuse the whole list for it, while without a
    country the list is only less precise."""
    country = (order.country or "").strip().upper()
    if _ALPHA_2.fullmatch(country):
        return country
    if country:
        logger.warning("order %s: country %r is not an ISO 3166-1 alpha-2 code", order.id, country)
    return None


async def _customers_order(shim: ShimServices, order_id: str, caller: Caller) -> CleengOrder:
    """The order, read from Cleeng, if it is the caller's customer's; else the same 404 as for
    an order that does not exist."""
    try:
        order = await shim.cleeng.get_order(order_id)
    except ServiceError as error:
        if error.kind is FailureKind.PERMANENT:
            logger.info("order %s refused: %s", order_id, error)
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_SUCH_ORDER) from error
        raise service_unavailable("Cleeng is unavailable; try again") from error
    if cleeng_id_text(order.customer_id) != caller.customer_id:
        logger.info("order %s is not customer %s's", order_id, caller.customer_id)
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_SUCH_ORDER)
    return order


@router.get(
    "/purchases/{order_id}/methods",
    response_model=PurchaseMethodsResponse,
    response_model_by_alias=True,
    responses=front_end_responses(401, 404, 422, 502, 503),
    summary="Mollie methods that can start this order's subscription",
)
async def list_purchase_methods(
    order_id: Annotated[
        str, Path(pattern=INT32_ID_PATTERN, description=CLEENG_ID_SCHEMA["description"])
    ],
    caller: Annotated[Caller, Depends(frontend_caller)],
    shim: Annotated[ShimServices, Depends(services)],
    request: Request,
) -> PurchaseMethodsResponse:
    """The methods to offer for this order: Mollie takes a first payment with them for the
    order's amount and billing country, and they leave a mandate renewals are charged with.
    Each names the first payment the purchase will charge (`firstPaymentAmount`). Send the
    chosen `id` as `method` to POST /purchases. Only the order's own customer sees it."""
    if cleeng_id_text(order_id) is None:
        raise field_error(("path", "order_id"), "must be a positive int32 Cleeng id", order_id)
    order = await _customers_order(shim, order_id, caller)
    request.app.state.order_owners.put(order_id, caller.customer_id)
    amount = order.amount()
    country = billing_country(order)
    try:
        methods = await subscription_methods(shim.mollie, amount, country)
    except ServiceError as error:
        if error.kind is FailureKind.PERMANENT:
            raise HTTPException(
                status.HTTP_502_BAD_GATEWAY,
                detail=f"order {order_id}: Mollie refused to list methods: {error}",
            ) from error
        raise service_unavailable("Mollie is unavailable; try again") from error
    logger.info("order %s: %d subscription methods", order_id, len(methods))
    return PurchaseMethodsResponse(
        order_id=order_id,
        amount=Amount.of(amount),
        billing_country=country,
        methods=methods,
    )
