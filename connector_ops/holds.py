"""`holds list`: open card holds at Mollie (payments `authorized`) that the connector made,
each with the billing cycle that owns it and whether that cycle is still running."""

from __future__ import annotations

from typing import Any

import typer

from activities.directory import WorkflowDirectory
from clients.errors import ServiceError
from clients.mollie import WORKFLOW_METADATA_KEY, MollieGateway
from connector_ops.common import Context, JsonFlag, OpsError, emit, run
from domain.operations import WorkflowIds
from domain.reconciliation import is_running

app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Open card holds at Mollie.")


@app.command("list")
def list_holds(as_json: JsonFlag = False) -> None:
    """Mollie payments still `authorized` (funds held on the card) that the connector made,
    with the workflow that owns each hold and its status. A hold is an ORPHAN when no running
    workflow owns it: nothing will capture or release it, so release it at Mollie (or let it
    expire) once you have checked Cleeng shows the renewal unpaid."""
    run(lambda ctx: _list_holds(ctx, as_json))


async def _list_holds(ctx: Context, as_json: bool) -> None:
    settings = ctx.settings
    gateway = MollieGateway(
        settings.mollie_base_url,
        settings.effective_mollie_api_key,
        timeout_seconds=settings.mollie_timeout_seconds,
    )
    try:
        payments = await gateway.authorized_payments()
    except ServiceError as error:
        raise OpsError(
            f"could not list Mollie's payments at {settings.mollie_base_url} "
            f"({ctx.stack.origin('MOLLIE_BASE_URL')}): {error}"
        ) from error
    finally:
        await gateway.aclose()
    mine = [p for p in payments if p.metadata.get(WORKFLOW_METADATA_KEY)]
    owners = {str(p.metadata[WORKFLOW_METADATA_KEY]) for p in mine}
    states = {
        state.workflow_id: state
        for state in await WorkflowDirectory(ctx.client).workflow_states(
            WorkflowIds(workflow_ids=sorted(owners))
        )
    }
    holds: list[dict[str, Any]] = []
    for payment in mine:
        owner = states[str(payment.metadata[WORKFLOW_METADATA_KEY])]
        holds.append(
            {
                "payment_id": payment.id,
                "amount": str(payment.amount),
                "subscription_id": payment.metadata.get("subscriptionId"),
                "workflow_id": owner.workflow_id,
                "workflow_status": owner.status,
                "orphan": not is_running(owner),
            }
        )
    orphans = sum(1 for hold in holds if hold["orphan"])
    lines = [f"{len(holds)} open card hold(s) made by the connector, {orphans} orphan(s)"]
    for hold in holds:
        marker = "ORPHAN" if hold["orphan"] else "held by a running cycle"
        lines.append(
            f"  {hold['payment_id']}  {hold['amount']:>12}  {hold['workflow_id']}  "
            f"{hold['workflow_status']}  {marker}"
        )
    emit({"holds": holds, "orphans": orphans}, "\n".join(lines), as_json)
