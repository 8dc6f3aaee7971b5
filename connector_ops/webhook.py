"""`webhook redeliver`: send the connector the Cleeng webhook behind a workflow once more.

The webhook is rebuilt from the workflow's history (the shim's start input and signals),
signed with the connector's Cleeng webhook secret as Cleeng signs it (HMAC-SHA256 of the raw
body) and POSTed to the connector's own endpoint, so it goes through every check a webhook
from Cleeng goes through. A body is sent only when parsing it the way the shim does gives back
exactly what the history holds; otherwise the command says what is missing and stops.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError

from api.cleeng_payloads import DunningData, iso_utc
from api.cleeng_signature import sign_hex
from clients import cleeng_contract as contract
from connector_ops.common import Context, JsonFlag, OpsError, emit, run, workflow_id_argument
from connector_ops.history import HistoryReading
from connector_ops.runs import latest_run, read_run
from domain.billing import (
    EVENT_AUTHORISE,
    EVENT_CAPTURE,
    EVENT_TERMINATE,
    BillingEvent,
    billing_workflow_id,
)
from domain.money import Money
from domain.payment_details import deactivation_workflow_id
from domain.refunds import refund_request_key, refund_workflow_id

app = typer.Typer(
    rich_markup_mode=None, no_args_is_help=True, help="Cleeng webhooks the connector received."
)

_TOPIC_OF_KIND = {
    EVENT_AUTHORISE: contract.TOPIC_AUTHORISATION,
    EVENT_CAPTURE: contract.TOPIC_CAPTURE,
    EVENT_TERMINATE: contract.TOPIC_TERMINATION,
}
_SEND_TIMEOUT_SECONDS = 30.0


class Unfaithful(OpsError):
    def __init__(self, workflow_id: str, why: str) -> None:
        super().__init__(
            f"cannot rebuild the Cleeng webhook of {workflow_id} faithfully: {why}; "
            "nothing was sent (the `temporal workflow signal` recipe in docs/operating.md is "
            "the fallback)"
        )


@app.command("redeliver")
def redeliver(
    workflow_id: Annotated[str, typer.Argument(callback=workflow_id_argument)],
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="Which of a billing cycle's webhooks: authorise, capture or terminate "
            "(default: the last one the cycle received).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-deliver the Cleeng webhook that started or signalled a workflow (a renewal cycle,
    a refund, a payment details deactivation), signed as Cleeng signs it, to the connector's
    own webhook URL (CONNECTOR_PUBLIC_URL), and print the connector's answer. Harmless to
    repeat: the connector handles a webhook it already handled as a duplicate."""
    if kind is not None and kind not in _TOPIC_OF_KIND:
        raise typer.BadParameter(f"--kind must be one of {', '.join(_TOPIC_OF_KIND)}")
    run(lambda ctx: _redeliver(ctx, workflow_id, kind, as_json))


async def _redeliver(ctx: Context, workflow_id: str, kind: str | None, as_json: bool) -> None:
    run_id, _ = await latest_run(ctx.client, workflow_id)
    reading = await read_run(ctx.client, workflow_id, run_id)
    if reading.workflow_type == "RecurringBilling":
        envelope, what = billing_webhook(workflow_id, reading, kind)
    elif reading.workflow_type == "Refund":
        envelope, what = refund_webhook(workflow_id, reading)
    elif reading.workflow_type == "DetailsDeactivation":
        envelope, what = deactivation_webhook(workflow_id, reading)
    else:
        raise OpsError(
            f"{workflow_id} is a {reading.workflow_type or 'workflow'} that no Cleeng webhook "
            "starts: nothing to redeliver"
        )
    status, answer = await _post(ctx, envelope)
    url = _webhook_url(ctx)
    emit(
        {
            "workflow_id": workflow_id,
            "webhook": what,
            "url": url,
            "status": status,
            "answer": answer,
        },
        f"{what} for {workflow_id}\nPOST {url} → {status} {json.dumps(answer)}",
        as_json,
    )
    if status != 200:
        raise OpsError(f"the connector did not accept the webhook (HTTP {status})")


def billing_webhook(
    workflow_id: str, reading: HistoryReading, kind: str | None
) -> tuple[dict[str, Any], str]:
    cycle = reading.start_input if isinstance(reading.start_input, dict) else {}
    events = [
        signal.value
        for signal in reading.signals
        if signal.name == "event" and isinstance(signal.value, dict)
    ]
    if kind is not None:
        events = [event for event in events if event.get("kind") == kind]
    if not events:
        raise OpsError(f"{workflow_id} received no {kind or 'Cleeng'} webhook in its history")
    try:
        event = BillingEvent(**events[-1])
        subscription_id, expiration = str(cycle["subscription_id"]), str(cycle["expiration_date"])
    except (TypeError, KeyError) as error:
        raise Unfaithful(workflow_id, f"the history lacks a field ({error})") from error
    optional = {
        "paymentDetailsId": event.payment_details_id,
        "paymentMethodId": event.payment_method_id,
        "token": event.token,
        "currency": event.currency,
        "paymentCountry": event.country,
    }
    data = {
        "subscriptionId": subscription_id,
        "offerId": event.offer_id,
        "customerId": event.customer_id,
        "expirationDate": expiration,
        "dunningAttemptDate": event.attempt_date,
        **{key: value for key, value in optional.items() if value is not None},
    }
    # Parse it as the shim does: it must lead to this workflow and this very signal.
    try:
        parsed = DunningData.model_validate(data)
    except ValidationError as error:
        raise Unfaithful(workflow_id, f"the rebuilt body does not parse ({error})") from error
    attempt = iso_utc(parsed.dunning_attempt_date) if parsed.dunning_attempt_date else None
    again = BillingEvent(
        kind=event.kind,
        attempt_date=attempt or iso_utc(parsed.expiration_date),
        customer_id=parsed.customer_id,
        offer_id=parsed.offer_id,
        payment_details_id=parsed.payment_details_id,
        token=parsed.token,
        currency=parsed.currency,
        country=parsed.payment_country,
        payment_method_id=parsed.payment_method_id,
    )
    target = billing_workflow_id(parsed.subscription_id, iso_utc(parsed.expiration_date))
    if again != event or target != workflow_id:
        raise Unfaithful(workflow_id, "the rebuilt body would not be the same webhook")
    topic = _TOPIC_OF_KIND.get(event.kind)
    if topic is None:
        raise Unfaithful(workflow_id, f"unknown webhook kind {event.kind!r}")
    return {"topic": topic, "data": data}, f"{topic} (attempt {event.attempt_date})"


def refund_webhook(workflow_id: str, reading: HistoryReading) -> tuple[dict[str, Any], str]:
    request = reading.start_input if isinstance(reading.start_input, dict) else {}
    try:
        amount = Money(
            minor=int(request["amount"]["minor"]), currency=str(request["amount"]["currency"])
        )
        base: dict[str, Any] = {
            "paymentId": str(request["cleeng_payment_id"]),
            "externalPaymentId": str(request["external_payment_id"]),
            "currency": amount.currency,
        }
    except (TypeError, KeyError, ValueError) as error:
        raise Unfaithful(workflow_id, f"the history lacks a field ({error})") from error
    for key, field in (
        ("orderId", "order_id"),
        ("reason", "reason"),
        ("paymentOperation", "payment_operation"),
    ):
        if request.get(field) is not None:
            base[key] = request[field]
    # The workflow id carries a digest of the webhook's whole data: only a body with the same
    # digest is the same refund request. The amount's JSON spelling is not kept, so the
    # spellings Cleeng could have used are tried; anything else differing means fields the
    # history does not hold.
    decimal = amount.to_decimal()
    spellings: list[Any] = [float(decimal), str(decimal)]
    if decimal == decimal.to_integral_value():
        spellings.insert(1, int(decimal))
    for spelling in spellings:
        data = {**base, "amount": spelling}
        if refund_workflow_id(base["paymentId"], refund_request_key(data)) == workflow_id:
            return {"topic": contract.TOPIC_REFUND, "data": data}, (
                f"{contract.TOPIC_REFUND} ({amount} of payment {base['paymentId']})"
            )
    raise Unfaithful(
        workflow_id,
        "the refund webhook carried fields the workflow does not keep (its data digest "
        "does not match)",
    )


def deactivation_webhook(workflow_id: str, reading: HistoryReading) -> tuple[dict[str, Any], str]:
    started = reading.start_input if isinstance(reading.start_input, dict) else {}
    try:
        data: dict[str, Any] = {
            "paymentDetailsId": str(started["payment_details_id"]),
            "customerId": str(started["customer_id"]),
        }
    except KeyError as error:
        raise Unfaithful(workflow_id, f"the history lacks a field ({error})") from error
    if started.get("token") is not None:
        data["token"] = started["token"]
    if deactivation_workflow_id(data["paymentDetailsId"]) != workflow_id:
        raise Unfaithful(workflow_id, "the rebuilt body would start another workflow")
    return {"topic": contract.TOPIC_DETAILS_DEACTIVATED, "data": data}, (
        f"{contract.TOPIC_DETAILS_DEACTIVATED} (details {data['paymentDetailsId']})"
    )


def _webhook_url(ctx: Context) -> str:
    return f"{ctx.settings.connector_public_url.rstrip('/')}/webhooks/cleeng"


async def _post(ctx: Context, envelope: dict[str, Any]) -> tuple[int, Any]:
    settings = ctx.settings
    body = json.dumps(envelope).encode()
    headers = {"content-type": "application/json"}
    secret = settings.effective_webhook_secret
    if secret:
        headers[settings.cleeng_signature_header] = sign_hex(secret, body)
    elif settings.cleeng_webhook_verification:
        raise OpsError("CLEENG_WEBHOOK_SECRET is not set: the connector would refuse the webhook")
    url = _webhook_url(ctx)
    try:
        async with httpx.AsyncClient(timeout=_SEND_TIMEOUT_SECONDS) as http:
            response = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as error:
        raise OpsError(
            f"could not reach the connector at {url} "
            f"({ctx.stack.origin('CONNECTOR_PUBLIC_URL')}): {type(error).__name__}"
        ) from error
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text[:200]
    return response.status_code, answer
