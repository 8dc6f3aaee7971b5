"""`subscription` and `purchase`: where a customer's renewals and purchases stand, and how
they got there."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from temporalio.client import WorkflowExecutionStatus

from connector_ops.common import Context, JsonFlag, OpsError, cleeng_id, emit, run
from connector_ops.runs import describe_run, latest_run, render_run
from domain import search_attributes
from domain.money import Money
from domain.purchase import purchase_workflow_id

app = typer.Typer(rich_markup_mode=None)


@app.command("subscription")
def subscription(
    subscription_id: Annotated[str, typer.Argument(help="Cleeng subscription id")],
    as_json: JsonFlag = False,
) -> None:
    """Every billing cycle of a subscription (RecurringBilling workflows, found by their
    CleengSubscriptionId search attribute): status, amounts, Mollie and Cleeng payment ids,
    each attempt's outcome and the story of the steps that happened."""
    wanted = cleeng_id(subscription_id, "SUBSCRIPTION_ID")
    run(lambda ctx: _show_subscription(ctx, wanted, as_json))


async def _show_subscription(ctx: Context, subscription_id: str, as_json: bool) -> None:
    query = (
        f"WorkflowType = 'RecurringBilling' AND "
        f"{search_attributes.CLEENG_SUBSCRIPTION_ID.name} = '{subscription_id}'"
    )
    executions = [execution async for execution in ctx.client.list_workflows(query)]
    if not executions:
        raise OpsError(
            f"no billing cycle found for subscription {subscription_id} (none started yet, "
            "or all closed longer ago than the namespace's retention)"
        )
    executions.sort(key=lambda execution: execution.start_time)
    cycles = [
        await describe_run(ctx.client, execution.id, execution.run_id, _status(execution.status))
        for execution in executions
    ]
    lines = [f"Subscription {subscription_id}: {len(cycles)} billing cycle run(s)"]
    for cycle in cycles:
        view = cycle["view"] or {}
        extra = []
        if view.get("expiration_date"):
            extra.append(("due", str(view["expiration_date"])))
        for attempt in view.get("attempts") or []:
            extra.append(("attempt", _attempt_line(attempt)))
        lines += ["", *render_run(cycle, extra)]
    emit({"subscription_id": subscription_id, "cycles": cycles}, "\n".join(lines), as_json)


def _attempt_line(attempt: dict[str, Any]) -> str:
    text = f"{attempt.get('kind')} {attempt.get('attempt_date')} → {attempt.get('outcome')}"
    ids = [
        value
        for value in (
            attempt.get("mollie_payment_id"),
            attempt.get("cleeng_payment_id") and f"Cleeng {attempt['cleeng_payment_id']}",
        )
        if value
    ]
    if ids:
        text += f" ({', '.join(ids)})"
    if attempt.get("reason"):
        text += f": {attempt['reason']}"
    return text


@app.command("purchase")
def purchase(
    order_id: Annotated[str, typer.Argument(help="Cleeng order id")],
    as_json: JsonFlag = False,
) -> None:
    """Where an initial purchase (workflow purchase:ORDER_ID) stands: its state, amount,
    Mollie and Cleeng payment ids, any failure, and the story of its steps."""
    wanted = cleeng_id(order_id, "ORDER_ID")
    run(lambda ctx: _show_purchase(ctx, wanted, as_json))


async def _show_purchase(ctx: Context, order_id: str, as_json: bool) -> None:
    workflow_id = purchase_workflow_id(order_id)
    run_id, status = await latest_run(ctx.client, workflow_id)
    shown = await describe_run(ctx.client, workflow_id, run_id, status)
    view = shown["view"] or {}
    extra = []
    if view.get("amount_minor") is not None and view.get("currency"):
        amount = Money(minor=int(view["amount_minor"]), currency=str(view["currency"]))
        extra.append(("amount", str(amount)))
    if view.get("failure_reason"):
        extra.append(("reason", str(view["failure_reason"])))
    if view.get("checkout_url") and shown["state"] == "awaiting_payment":
        extra.append(("checkout", str(view["checkout_url"])))
    emit(
        {"order_id": order_id, "purchase": shown},
        "\n".join(render_run(shown, extra)),
        as_json,
    )


def _status(status: WorkflowExecutionStatus | None) -> WorkflowExecutionStatus:
    return status or WorkflowExecutionStatus.RUNNING
