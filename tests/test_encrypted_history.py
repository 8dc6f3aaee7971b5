"""With PAYLOAD_ENCRYPTION_KEYS set, a purchase leaves no customer data in clear in Temporal.

A real purchase runs through the real shim and a real worker on the dev server, both with the
codec. The history is then read raw from the server, as anyone with access to Temporal (or
its database) would see it, and again through the codec server over HTTP and through the
`temporal` CLI with `--codec-endpoint`, as an operator would.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from codec.__main__ import server_config
from codec.keys import new_key_entry
from codec.server import create_app as create_codec_app
from domain.purchase import PurchaseView, purchase_workflow_id
from domain.tokens import MollieToken
from launcher import find_temporal
from tests.conftest import Connector, connector_on_own_emulators
from tests.support.servers import serve_in_thread
from tests.support.shop import (
    advance_clock,
    choose_on_checkout,
    cleeng_payments,
    seed_order,
    start_purchase,
)
from workflows.initial_purchase import InitialPurchaseWorkflow

pytestmark = pytest.mark.asyncio

UI_ORIGIN = "http://127.0.0.1:8233"
ENCRYPTED = base64.b64encode(b"binary/encrypted").decode()


@pytest.fixture
async def encrypted_connector(temporal_env: WorkflowEnvironment) -> AsyncIterator[Connector]:
    """The connector with a key ring, as a deployment with PAYLOAD_ENCRYPTION_KEYS runs it, on
    emulators of its own (a test moves Cleeng's clock)."""
    async with connector_on_own_emulators(
        temporal_env,
        keep_histories=False,
        payload_encryption_keys=SecretStr(f"{new_key_entry('now')},{new_key_entry('old')}"),
        codec_server_cors_origins=(UI_ORIGIN,),
    ) as connector:
        yield connector


async def paid_purchase(connector: Connector) -> tuple[str, list[str]]:
    """A purchase paid at Mollie's checkout; its workflow id and the customer data it used."""
    email = f"ada-{uuid.uuid4().hex[:10]}@example.com"
    seeded = await seed_order(connector.emulators.cleeng_url, email=email)
    order_id = str(seeded["orderId"])
    checkout_url = await start_purchase(connector, seeded)
    await choose_on_checkout(checkout_url, "paid")
    workflow_id = purchase_workflow_id(order_id)
    # Read back through the codec: the client that started it can read its result.
    final = await connector.client.get_workflow_handle(workflow_id).result()
    assert final["status"] == "captured"
    [recorded] = await cleeng_payments(connector.emulators.cleeng_url, order_id)
    async with httpx.AsyncClient(timeout=60) as http:
        details = await http.get(
            f"{connector.emulators.cleeng_url}/_emulator/payment-details/"
            f"{recorded['paymentDetailsId']}"
        )
    token = MollieToken.parse(details.json()["token"])
    assert token is not None
    return workflow_id, [email, token.customer_id, token.mandate_id]


async def raw_history(env: WorkflowEnvironment, workflow_id: str) -> list[dict[str, Any]]:
    """Every event as the server stores it, read with no data converter at all."""
    events: list[dict[str, Any]] = []
    page = b""
    while True:
        response = await env.client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace="default",
                execution=WorkflowExecution(workflow_id=workflow_id),
                next_page_token=page,
            )
        )
        events += [json_format.MessageToDict(event) for event in response.history.events]
        page = response.next_page_token
        if not page:
            return events


def payloads_in(node: Any, *, search_attributes: bool = False) -> list[dict[str, Any]]:
    """Every Payload (protobuf JSON: `metadata` + `data`) anywhere in a history; search
    attributes only when asked: the server indexes those, so no codec touches them (they hold
    order, payment and subscription ids, never customer data)."""
    if isinstance(node, list):
        return [
            found
            for item in node
            for found in payloads_in(item, search_attributes=search_attributes)
        ]
    if not isinstance(node, dict):
        return []
    if isinstance(node.get("metadata"), dict) and "encoding" in node["metadata"]:
        return [node]
    return [
        found
        for key, value in node.items()
        if search_attributes or key != "searchAttributes"
        for found in payloads_in(value, search_attributes=search_attributes)
    ]


def readable(payloads: list[dict[str, Any]]) -> str:
    return "\n".join(base64.b64decode(p.get("data", "")).decode(errors="replace") for p in payloads)


async def test_no_customer_data_in_clear_in_the_history_yet_the_codec_server_reads_it(
    encrypted_connector: Connector, temporal_env: WorkflowEnvironment
) -> None:
    workflow_id, customer_data = await paid_purchase(encrypted_connector)

    events = await raw_history(temporal_env, workflow_id)
    stored = json.dumps(events)
    # Payload data is base64 in that JSON: look at every payload's bytes as well.
    stored_bytes = stored.encode() + b"".join(
        base64.b64decode(p.get("data", "")) for p in payloads_in(events, search_attributes=True)
    )
    for value in customer_data:
        assert value not in stored, f"{value!r} is in clear in the stored history"
        assert value.encode() not in stored_bytes
    payloads = payloads_in(events)
    assert payloads, "the history holds payloads"
    assert all(p["metadata"]["encoding"] == ENCRYPTED for p in payloads), [
        base64.b64decode(p["metadata"]["encoding"]) for p in payloads
    ]
    now = base64.b64encode(b"now").decode()
    assert {p["metadata"]["encryption-key-id"] for p in payloads} == {now}

    config = server_config(encrypted_connector.settings, "127.0.0.1")
    with serve_in_thread(create_codec_app(config)) as codec_url:
        async with httpx.AsyncClient(timeout=30) as http:
            decoded = await http.post(
                f"{codec_url}/decode",
                json={"payloads": payloads},
                headers={"Origin": UI_ORIGIN, "X-Namespace": "default"},
            )
        assert decoded.status_code == 200, decoded.text
        assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN
        clear = readable(decoded.json()["payloads"])
        for value in customer_data:
            assert value in clear, f"{value!r} not in the decoded history"

        # What an operator types: the CLI talks to the same codec server.
        address = temporal_env.client.service_client.config.target_host
        show = [find_temporal(), "workflow", "show", "-w", workflow_id, "--address", address]
        shown = subprocess.run(
            [*show, "--output", "json", "--codec-endpoint", codec_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        without_codec = subprocess.run(
            [*show, "--output", "json"], capture_output=True, text=True, timeout=60, check=True
        )
    assert customer_data[0] in readable(payloads_in(json.loads(shown.stdout)))
    assert customer_data[0] not in without_codec.stdout
    assert customer_data[0] not in readable(payloads_in(json.loads(without_codec.stdout)))


async def test_failures_keep_type_and_redacted_message_in_clear_and_the_rest_encrypted(
    encrypted_connector: Connector, temporal_env: WorkflowEnvironment
) -> None:
    """Cleeng refuses the payment of an expired order for good: the workflow reads the
    activity's error message (to report it), the client reads the workflow's failure. In the
    stored history each failure shows its type and its message (led by the type) in clear, for
    operators; the whole message and the stack trace are ciphertext, and no customer data is in
    clear."""
    connector = encrypted_connector
    email = f"ada-{uuid.uuid4().hex[:10]}@example.com"
    seeded = await seed_order(
        connector.emulators.cleeng_url, price=20.00, currency="EUR", email=email
    )
    order_id = str(seeded["orderId"])
    checkout_url = await start_purchase(connector, seeded)
    await advance_clock(connector.emulators.cleeng_url, 25 * 3600)  # orders expire after 24 h
    await choose_on_checkout(checkout_url, "paid")

    workflow_id = purchase_workflow_id(order_id)
    handle: WorkflowHandle[Any, PurchaseView] = connector.client.get_workflow_handle_for(
        InitialPurchaseWorkflow.run, workflow_id
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    # The connector reads the whole message, as it was raised (not the clear headline).
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "CleengRefusedPayment"
    assert cause.message.startswith(f"order {order_id}: payment tr_")
    assert "refunded" in cause.message
    state: PurchaseView = await handle.query(InitialPurchaseWorkflow.view)
    assert state.status == "refunded_cleeng_refused"
    assert state.error is not None
    assert "expired" in state.error

    events = await raw_history(temporal_env, workflow_id)
    failures = [
        event[attributes]["failure"]
        for event in events
        for attributes in (
            "activityTaskFailedEventAttributes",
            "workflowExecutionFailedEventAttributes",
        )
        if attributes in event
    ]
    assert len(failures) == 2, "the activity's failure and the workflow's"
    for stored in failures:
        kind = stored["applicationFailureInfo"]["type"]
        assert kind in ("CleengOrderExpired", "CleengRefusedPayment")
        assert stored["message"].startswith(f"{kind}: "), stored["message"]
        assert "expired" in stored["message"]
        assert stored.get("stackTrace", "") == ""
        assert stored["encodedAttributes"]["metadata"]["encoding"] == ENCRYPTED
    assert email not in json.dumps(events)
