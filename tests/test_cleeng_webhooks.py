"""The Cleeng webhook endpoint: signatures, lenient parsing, topic routing, outages.

Bad input is refused with a status that names the problem and starts nothing; a webhook that
cannot be processed now (Temporal down) gets 503 so Cleeng delivers it again."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.service import RPCError

from api.app import create_app
from api.cleeng_signature import signature_is_valid
from domain.billing import billing_workflow_id
from settings import Settings
from tests.conftest import Connector, Emulators, connector_settings
from tests.support.servers import free_port

SUBSCRIPTION = "770000001"


def dunning_envelope(**data_overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "subscriptionId": SUBSCRIPTION,
        "offerId": "S000000001_NL",
        "customerId": 123321123,
        "paymentDetailsId": 665665665,
        "dunningAttemptDate": "2030-01-04T19:55:41+01:00",
        "dunningStatus": "authorize",
        "expirationDate": "2030-01-07T18:55:41Z",
        "currency": "EUR",
        "paymentMethodId": 555000001,
        "token": "tok_en",
    }
    data.update(data_overrides)
    return {"broadcasterId": 100000001, "topic": "subscriptionReadyForTermination", "data": data}


def signed(
    settings: Settings, envelope: Any, *, encoding: str = "hex"
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(envelope).encode()
    digest = hmac.new(settings.effective_webhook_secret.encode(), body, hashlib.sha256).digest()
    signature = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return body, {"content-type": "application/json", settings.cleeng_signature_header: signature}


@pytest.fixture
async def shim(connector: Connector) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(connector.settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shim") as http:
        yield http


async def assert_not_started(connector: Connector, workflow_id: str) -> None:
    with pytest.raises(RPCError, match="not found"):
        await connector.client.get_workflow_handle(workflow_id).describe()


def test_signature_check_accepts_hex_base64_and_prefix_and_fails_closed() -> None:
    body = b'{"topic": "x"}'
    digest = hmac.new(b"0123456789abcdef", body, hashlib.sha256).digest()
    assert signature_is_valid("0123456789abcdef", body, digest.hex())
    assert signature_is_valid("0123456789abcdef", body, "sha256=" + digest.hex().upper())
    assert signature_is_valid("0123456789abcdef", body, base64.b64encode(digest).decode())
    assert not signature_is_valid("0123456789abcdef", body + b" ", digest.hex())
    assert not signature_is_valid("0123456789abcdef", body, "garbage")
    assert not signature_is_valid("", body, hmac.new(b"", body, hashlib.sha256).hexdigest())
    assert not signature_is_valid("0123456789abcdef", body, None)


@pytest.mark.parametrize("encoding", ["hex", "base64"])
async def test_signed_termination_starts_the_cycle_workflow(
    shim: httpx.AsyncClient, connector: Connector, encoding: str
) -> None:
    subscription = f"77000001{len(encoding)}"
    body, headers = signed(
        connector.settings, dunning_envelope(subscriptionId=int(subscription)), encoding=encoding
    )
    response = await shim.post("/webhooks/cleeng", content=body, headers=headers)
    assert response.status_code == 200, response.text
    # The offset timestamp is normalised: every spelling of an instant finds one workflow.
    workflow_id = billing_workflow_id(subscription, "2030-01-07T18:55:41Z")
    description = await connector.client.get_workflow_handle(workflow_id).describe()
    assert description.workflow_type == "RecurringBilling"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Cleeng-Signature": "0" * 64}, {"X-Cleeng-Signature": "not base64 !"}],
)
async def test_bad_or_missing_signature_is_401_and_starts_nothing(
    shim: httpx.AsyncClient, connector: Connector, headers: dict[str, str]
) -> None:
    envelope = dunning_envelope(subscriptionId="770000099")
    response = await shim.post("/webhooks/cleeng", json=envelope, headers=headers)
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]
    await assert_not_started(connector, billing_workflow_id("770000099", "2030-01-07T18:55:41Z"))


async def test_empty_secret_refuses_every_webhook(emulators: Emulators) -> None:
    settings = connector_settings(emulators, "127.0.0.1:1", "http://127.0.0.1:1", "unused")
    settings = settings.model_copy(update={"cleeng_webhook_secret": SecretStr("")})
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s"
    ) as http:
        body = json.dumps(dunning_envelope()).encode()
        unsigned_digest = hmac.new(b"", body, hashlib.sha256).hexdigest()
        response = await http.post(
            "/webhooks/cleeng",
            content=body,
            headers={"content-type": "application/json", "X-Cleeng-Signature": unsigned_digest},
        )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("envelope", "status", "named"),
    [
        ({"topic": "subscriptionReadyForPaymentCapture"}, 422, "data"),
        (dunning_envelope(expirationDate="next tuesday"), 422, "data.expirationDate"),
        (dunning_envelope(subscriptionId=None), 422, "data.subscriptionId"),
        (dunning_envelope(customerId=True), 422, "data.customerId"),
        ({"data": {}}, 422, "topic"),
    ],
)
async def test_malformed_payloads_are_refused_naming_the_field(
    shim: httpx.AsyncClient,
    connector: Connector,
    envelope: dict[str, Any],
    status: int,
    named: str,
) -> None:
    if "data" in envelope and "topic" in envelope and envelope["data"].get("dunningStatus"):
        envelope = {**envelope, "topic": "subscriptionReadyForPaymentCapture"}
    body, headers = signed(connector.settings, envelope)
    response = await shim.post("/webhooks/cleeng", content=body, headers=headers)
    assert response.status_code == status
    assert named in response.json()["detail"]


async def test_non_json_body_is_400(shim: httpx.AsyncClient, connector: Connector) -> None:
    body = b"topic=subscriptionReadyForPaymentCapture"
    digest = hmac.new(connector.settings.effective_webhook_secret.encode(), body, hashlib.sha256)
    response = await shim.post(
        "/webhooks/cleeng",
        content=body,
        headers={connector.settings.cleeng_signature_header: digest.hexdigest()},
    )
    assert response.status_code == 400


async def test_unknown_topics_are_acknowledged_and_ignored(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    envelope = {"broadcasterId": 1, "topic": "someFutureTopic", "data": {"anything": 1}}
    body, headers = signed(connector.settings, envelope)
    response = await shim.post("/webhooks/cleeng", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"


async def test_capture_payment_is_acknowledged_and_shown_to_an_operator_without_action(
    shim: httpx.AsyncClient, connector: Connector, caplog: pytest.LogCaptureFixture
) -> None:
    """capturePayment: listed as required on payments-pre-configuration, with no published
    trigger or payload. 200 (Cleeng would redeliver anything else), nothing started, and a
    warning naming its keys and ids (never the token)."""
    data = {"paymentId": 123456789, "orderId": 987654321, "token": "mollie:cst_x:mdt_secret"}
    envelope = {"broadcasterId": 1, "topic": "capturePayment", "data": data}
    body, headers = signed(connector.settings, envelope)
    with caplog.at_level("WARNING", logger="api.cleeng_webhooks"):
        response = await shim.post("/webhooks/cleeng", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "acknowledged", "topic": "capturePayment"}
    [warning] = [r for r in caplog.records if "capturePayment" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert "123456789" in warning.getMessage()
    assert "mdt_secret" not in warning.getMessage()


async def test_other_payment_methods_are_left_alone(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    envelope = dunning_envelope(subscriptionId="770000055", paymentMethodId=999)
    body, headers = signed(connector.settings, envelope)
    response = await shim.post("/webhooks/cleeng", content=body, headers=headers)
    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    await assert_not_started(connector, billing_workflow_id("770000055", "2030-01-07T18:55:41Z"))


async def test_temporal_down_is_503_so_cleeng_redelivers(emulators: Emulators) -> None:
    settings = connector_settings(
        emulators, f"127.0.0.1:{free_port()}", "http://127.0.0.1:1", "unused"
    )
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s"
    ) as http:
        body, headers = signed(settings, dunning_envelope())
        response = await http.post("/webhooks/cleeng", content=body, headers=headers)
    assert response.status_code == 503


async def test_verification_can_be_switched_off_for_a_sandbox(
    emulators: Emulators, connector: Connector
) -> None:
    settings = connector.settings.model_copy(update={"cleeng_webhook_verification": False})
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s"
    ) as http:
        response = await http.post(
            "/webhooks/cleeng", json=dunning_envelope(subscriptionId="770000077")
        )
    assert response.status_code == 200
