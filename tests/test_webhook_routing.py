"""The webhook front door: Mollie webhooks are routed by what Mollie says about the
payment, never by the caller; forged ids cost no workflow and at most one Mollie look-up;
repeats are coalesced; every source is rate limited; Temporal being busy is a 503, never a
500; Cleeng ids are checked against their documented type before anything starts.

Everything runs against real servers: the Temporal dev server (a second one, throttled, for
the resource-exhausted case), both emulators and the shim.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from fastapi import HTTPException
from temporalio.client import WorkflowHandle
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.cleeng_payloads import DunningData, iso_utc
from api.cleeng_signature import sign_hex
from api.services import BoundedTtlCache, RateLimiter
from api.temporal_access import temporal_unavailable_as_503
from clients import cleeng_contract as contract
from domain.billing import BillingView, billing_workflow_id
from domain.payment_details import deactivation_workflow_id
from domain.purchase import PurchaseInput, purchase_workflow_id
from domain.refunds import refund_request_key, refund_workflow_id
from domain.search_attributes import dev_server_flags
from launcher import find_temporal
from settings import EMULATOR_MOLLIE_API_KEY, Settings
from tests.conftest import Connector, Emulators, connector_on_own_emulators, connector_settings
from tests.support.billing import authorised_renewal, send_cleeng_webhook
from tests.support.servers import free_port
from tests.support.shop import paid_purchase, seed_order, set_faults
from tests.test_refunds import (
    refund_data,
    refund_handle,
    request_refund,
    settle_refund,
    wait_for_mollie_refunds,
)
from workflows.initial_purchase import InitialPurchaseWorkflow

PAYMENT_CHANGED = "payment_changed"


# --- helpers -------------------------------------------------------------------------------


def forged_id() -> str:
    return f"tr_forged{uuid.uuid4().hex[:12]}"


def unused_numeric_id() -> str:
    """A Cleeng-shaped id (int32) no test has used: nothing exists under it."""
    return str(1_900_000_000 + uuid.uuid4().int % 200_000_000)


async def post_mollie_webhooks(
    api_url: str,
    ids: Iterable[str],
    *,
    workflow: str | None = None,
    concurrency: int = 50,
) -> list[httpx.Response]:
    """POST `id=...` to the shim the way Mollie (or anyone) can, `concurrency` at a time."""
    params = {"workflow": workflow} if workflow else {}
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one(payment_id: str) -> httpx.Response:
            async with gate:
                return await http.post(
                    f"{api_url}/webhooks/mollie", params=params, data={"id": payment_id}
                )

        return await asyncio.gather(*(one(payment_id) for payment_id in ids))


async def raw_flood(url: str, bodies: list[bytes], concurrency: int) -> list[tuple[int, str]]:
    """POST each form body to `url` over `concurrency` keep-alive connections; (status, status
    field of the JSON answer) per request. A bare HTTP/1.1 client: httpx's pool spends more
    CPU than the shim at 50 connections, and both share this process, so with httpx the test
    would measure the client."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    head = (
        f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n"
    )
    pending = list(reversed(bodies))
    answers: list[tuple[int, str]] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while pending:
                body = pending.pop()
                writer.write(head.format(len(body)).encode() + body)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                payload = await reader.readexactly(length)
                try:
                    outcome = str(json.loads(payload).get("status"))
                except ValueError:
                    outcome = payload.decode(errors="replace")  # e.g. a bare 500
                answers.append((int(status_line.split()[1]), outcome))
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return answers


async def mollie_gets(mollie_url: str, payment_id: str) -> int:
    """How often the connector asked Mollie for this payment (the emulator's request log)."""
    async with httpx.AsyncClient() as http:
        journal = (await http.get(f"{mollie_url}/_emulator/requests")).json()
    return sum(
        1
        for entry in journal["requests"]
        if entry["method"] == "GET" and entry["path"] == f"/v2/payments/{payment_id}"
    )


async def mollie_payment(mollie_url: str, metadata: dict[str, str] | None) -> str:
    """A real payment at Mollie that the connector did not create (its metadata is given)."""
    body: dict[str, Any] = {
        "amount": {"currency": "EUR", "value": "1.00"},
        "description": "made elsewhere",
        "redirectUrl": "https://shop.example/elsewhere",
    }
    if metadata is not None:
        body["metadata"] = metadata
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{mollie_url}/v2/payments",
            json=body,
            headers={"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"},
        )
    response.raise_for_status()
    payment_id: str = response.json()["id"]
    return payment_id


async def payment_signals(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The payment ids of every `payment_changed` signal in the workflow's history."""
    converter = DataConverter.default.payload_converter
    ids: list[str] = []
    async for event in handle.fetch_history_events():
        if not event.HasField("workflow_execution_signaled_event_attributes"):
            continue
        attributes = event.workflow_execution_signaled_event_attributes
        if attributes.signal_name == PAYMENT_CHANGED:
            [notice] = converter.from_payloads(list(attributes.input.payloads))
            ids.append(notice["payment_id"])
    return ids


async def awaiting_purchase(connector: Connector) -> tuple[WorkflowHandle[Any, Any], str]:
    """A purchase waiting for its shopper, started directly (the front-end API is not what
    these tests are about): its handle and its Mollie payment id."""
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id = str(seeded["orderId"])
    handle = await connector.client.start_workflow(
        InitialPurchaseWorkflow.run,
        PurchaseInput(order_id=order_id, redirect_url="https://shop.example/thanks"),
        id=purchase_workflow_id(order_id),
        task_queue=connector.settings.temporal_task_queue,
    )
    view = await handle.execute_update(InitialPurchaseWorkflow.checkout)
    assert view.mollie_payment_id is not None
    return handle, view.mollie_payment_id


async def assert_not_started(connector: Connector, workflow_id: str) -> None:
    with pytest.raises(RPCError) as raised:
        await connector.client.get_workflow_handle(workflow_id).describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND


@asynccontextmanager
async def asgi_shim(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://shim"
    ) as http:
        yield http


def signed_cleeng(settings: Settings, topic: str, data: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"broadcasterId": 100000001, "topic": topic, "data": data}).encode()
    return {
        "content": body,
        "headers": {
            "content-type": "application/json",
            settings.cleeng_signature_header: sign_hex(settings.effective_webhook_secret, body),
        },
    }


# --- Mollie webhooks are routed by Mollie's metadata ---------------------------------------


async def test_forged_payment_id_costs_one_lookup_and_starts_nothing(
    connector: Connector,
) -> None:
    forged = forged_id()
    # The URL names a purchase that does not exist: before, that started a follow-up workflow
    # (and a Mollie call) for every forged id.
    url = f"{connector.api_url}/webhooks/mollie?workflow=purchase:{unused_numeric_id()}"
    answers = await raw_flood(url, [f"id={forged}".encode()] * 500, concurrency=50)

    assert set(answers) == {(200, "ignored")}
    assert await mollie_gets(connector.emulators.mollie_url, forged) == 1
    await assert_not_started(connector, f"payment-followup:{forged}")


async def test_payment_the_connector_did_not_make_is_ignored_and_remembered(
    connector: Connector,
) -> None:
    # Real payments at Mollie, but not the connector's: no workflow in the metadata, or one
    # the connector never names its payments after.
    for metadata in (None, {"workflowId": "refund:1:abc"}, {"workflowId": "purchase:1/../x"}):
        payment_id = await mollie_payment(connector.emulators.mollie_url, metadata)
        answers = await post_mollie_webhooks(connector.api_url, [payment_id] * 20)
        assert {(a.status_code, a.json()["status"]) for a in answers} == {(200, "ignored")}
        assert await mollie_gets(connector.emulators.mollie_url, payment_id) == 1
        await assert_not_started(connector, f"payment-followup:{payment_id}")


async def test_workflow_parameter_cannot_steer_a_webhook(connector: Connector) -> None:
    sub, _ = await authorised_renewal(connector)
    cycle = connector.client.get_workflow_handle(
        billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date))
    )
    purchase, payment_id = await awaiting_purchase(connector)
    before = await payment_signals(cycle)

    [answer] = await post_mollie_webhooks(connector.api_url, [payment_id], workflow=cycle.id)

    assert (answer.status_code, answer.json()["status"]) == (200, "accepted")
    assert await payment_signals(purchase) == [payment_id]
    assert await payment_signals(cycle) == before


async def test_repeats_of_one_state_signal_once_and_a_change_still_goes_through(
    connector: Connector,
) -> None:
    purchase, payment_id = await awaiting_purchase(connector)

    answers = await post_mollie_webhooks(connector.api_url, [payment_id] * 30)

    assert all(a.status_code == 200 for a in answers)
    statuses = Counter(a.json()["status"] for a in answers)
    assert statuses == {"accepted": 1, "coalesced": 29}
    assert await payment_signals(purchase) == [payment_id]
    # The shopper pays: Mollie's own webhook reports a new state, which is signalled at once.
    async with httpx.AsyncClient() as http:
        paid = await http.post(
            f"{connector.emulators.mollie_url}/_emulator/payments/{payment_id}/status",
            json={"status": "paid"},
        )
        paid.raise_for_status()
    final = await asyncio.wait_for(purchase.result(), timeout=30)
    assert final.status == "captured"
    assert await payment_signals(purchase) == [payment_id, payment_id]


async def test_each_refund_settling_is_passed_on_even_moments_apart(connector: Connector) -> None:
    """Refunds settle under the payment's webhook while the payment itself stays `paid`: the
    refunds' own states, not the payment's, tell a repeat from news. Each settlement reaches
    its Refund workflow at once (the refunds' first poll would come only after 60 s)."""
    payment = await paid_purchase(connector, price=20.00)
    first, second = refund_data(payment, 3.00), refund_data(payment, 4.00)
    for data in (first, second):
        assert (await request_refund(connector, data)).status_code == 200
    await wait_for_mollie_refunds(connector, payment["externalPaymentId"], 2)

    await settle_refund(connector, first, "refunded")
    assert (await asyncio.wait_for(refund_handle(connector, first).result(), 20)).status == (
        "refunded"
    )
    # Well inside the coalescing window of the first settlement's webhook.
    await settle_refund(connector, second, "refunded")
    assert (await asyncio.wait_for(refund_handle(connector, second).result(), 20)).status == (
        "refunded"
    )


async def test_mollie_outage_during_the_lookup_is_503_and_the_retry_routes(
    connector: Connector, clean_faults: None
) -> None:
    purchase, payment_id = await awaiting_purchase(connector)
    await set_faults(
        connector.emulators.mollie_url,
        {
            "failNext": [
                {"method": "GET", "pathPrefix": f"/v2/payments/{payment_id}", "status": 503}
            ]
        },
    )

    [refused] = await post_mollie_webhooks(connector.api_url, [payment_id])
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) > 0
    assert await payment_signals(purchase) == []

    # Mollie retries its webhook; nothing negative was remembered, so it now gets through.
    [retried] = await post_mollie_webhooks(connector.api_url, [payment_id])
    assert (retried.status_code, retried.json()["status"]) == (200, "accepted")
    assert await payment_signals(purchase) == [payment_id]


async def test_temporal_down_is_503_for_a_real_payment(emulators: Emulators) -> None:
    payment_id = await mollie_payment(
        emulators.mollie_url, {"workflowId": f"purchase:{unused_numeric_id()}"}
    )
    settings = connector_settings(
        emulators, f"127.0.0.1:{free_port()}", "http://127.0.0.1:1", "unused"
    )
    async with asgi_shim(settings) as shim:
        answer = await shim.post("/webhooks/mollie", data={"id": payment_id})
    assert answer.status_code == 503
    assert answer.headers["retry-after"]


# Loggers of the connector itself (the shim, its clients, the worker), as opposed to the
# test's own HTTP client and the emulators, which share this process.
_CONNECTOR_LOGGERS = (
    "api",
    "uvicorn",
    "clients",
    "activities",
    "workflows",
    "temporalio",
    "worker",
)


# CI floods with 1,000 requests; `benchmarks/webhook_flood.py` runs the same test with 10,000
# (the size that once reached Temporal's per-workflow signal limit) and prints its figures.
FLOOD_REQUESTS = int(os.environ.get("WEBHOOK_FLOOD_REQUESTS", "1000"))


async def test_the_flood(
    temporal_env: WorkflowEnvironment,
    caplog: pytest.LogCaptureFixture,
    record_property: Callable[[str, object], None],
) -> None:
    """FLOOD_REQUESTS forged webhooks at a renewal cycle waiting for its capture (50 at a
    time), then the real signed capture webhook: it is accepted and the cycle captures; the log
    stays small.

    Before, every forged call was a signal into the cycle: Temporal's per-workflow signal limit
    was reached and the real capture got a 500. The rate limit is lifted here so the whole flood
    reaches the routing; `test_rate_limit_*` shows the limiter on its own.
    """
    async with connector_on_own_emulators(
        temporal_env, webhook_rate_limit_per_second=1e6, webhook_rate_limit_burst=1_000_000
    ) as connector:
        sub, authorised_payment = await authorised_renewal(connector)
        cycle = connector.client.get_workflow_handle(
            billing_workflow_id(sub.subscription_id, iso_utc(sub.expiration_date)),
            result_type=BillingView,
        )
        signals_before = len(await payment_signals(cycle))
        # Most ids are forged (100 of them, over and over); every tenth names the cycle's real
        # payment, as an attacker who learnt it would. All aim at the cycle with ?workflow=.
        forged = [forged_id() for _ in range(100)]
        forged_cycle = itertools.cycle(forged)
        ids = [
            authorised_payment if i % 10 == 0 else next(forged_cycle) for i in range(FLOOD_REQUESTS)
        ]
        url = f"{connector.api_url}/webhooks/mollie?{urlencode({'workflow': cycle.id})}"
        caplog.clear()
        with caplog.at_level(logging.INFO):
            started = time.monotonic()
            answers = await raw_flood(url, [f"id={i}".encode() for i in ids], concurrency=50)
            flood_seconds = time.monotonic() - started

            capture = await send_cleeng_webhook(connector, sub.dunning_data("capture", 0))
            assert capture.status_code == 200, capture.text
            assert capture.json()["status"] == "accepted"
            final = await asyncio.wait_for(cycle.result(), timeout=60)
            records = [
                record
                for record in caplog.records
                if record.name.split(".")[0] in _CONNECTOR_LOGGERS or record.exc_info
            ]
        assert final.status == "captured"

        assert len(answers) == FLOOD_REQUESTS
        assert {code for code, _ in answers} == {200}
        outcomes = Counter(outcome for _, outcome in answers)
        assert outcomes["ignored"] == FLOOD_REQUESTS * 9 // 10
        assert outcomes["accepted"] + outcomes["coalesced"] == FLOOD_REQUESTS // 10
        # One signal per coalescing window at most, however many repeats.
        window = connector.settings.mollie_webhook_coalesce_seconds
        assert outcomes["accepted"] <= flood_seconds / window + 1
        signals_during = len(await payment_signals(cycle)) - signals_before
        assert signals_during <= outcomes["accepted"] + 1  # + Mollie's own capture webhook
        # One look-up per forged id (per negative-cache lifetime, should the flood outlast it).
        mollie = connector.emulators.mollie_url
        ttl = connector.settings.mollie_webhook_negative_cache_seconds
        forged_lookups = [await mollie_gets(mollie, payment_id) for payment_id in forged]
        assert max(forged_lookups) <= 1 + flood_seconds // ttl
        assert min(forged_lookups) == 1
        real_lookups = await mollie_gets(mollie, authorised_payment)
        log_bytes = sum(len(record.getMessage()) for record in records)
        assert not [record for record in records if record.exc_info]
        assert len(records) < 300
        assert log_bytes < 64 * 1024

    # The figures, for the record (`--junitxml` shows them): requests, time, look-ups, log.
    record_property(
        "flood",
        {
            "requests": len(answers),
            "flood_seconds": round(flood_seconds, 2),
            "outcomes": dict(outcomes),
            "forged_lookups": sum(forged_lookups),
            "real_payment_lookups": real_lookups,
            "signals_into_cycle": signals_during,
            "log_lines": len(records),
            "log_bytes": log_bytes,
        },
    )


# --- per-source rate limit -----------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after_per_source_and_endpoint(
    emulators: Emulators, caplog: pytest.LogCaptureFixture
) -> None:
    settings = connector_settings(emulators, "127.0.0.1:1", "http://127.0.0.1:1", "unused")
    settings = settings.model_copy(
        update={"webhook_rate_limit_per_second": 0.5, "webhook_rate_limit_burst": 3}
    )
    async with asgi_shim(settings) as shim:
        with caplog.at_level(logging.INFO, logger="api"):
            # `re_` ids are answered without asking anyone: only the limiter is at work.
            answers = [await shim.post("/webhooks/mollie", data={"id": "re_abc"}) for _ in range(6)]
        # Cleeng's webhooks have a bucket of their own: a Mollie flood cannot starve them.
        cleeng = await shim.post("/webhooks/cleeng", json={"topic": "x", "data": {}})
        metrics = (await shim.get("/metrics")).text

    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]
    refused = answers[3]
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many mollie webhook requests" in refused.json()["detail"]
    assert cleeng.status_code == 401
    assert 'connector_webhooks_total{outcome="rate_limited",source="mollie"} 3.0' in metrics
    # One line for the run of refusals, not one per refused request.
    limited = [r for r in caplog.records if "rate limit" in r.getMessage()]
    assert len(limited) == 1


def test_token_bucket_refills_at_its_rate_and_forgets_old_sources() -> None:
    limiter = RateLimiter(rate=2.0, burst=2, max_sources=2)
    key = ("mollie", "192.0.2.1")
    assert [limiter.admit(key, now=0.0).allowed for _ in range(3)] == [True, True, False]
    refused = limiter.admit(key, now=0.25)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.25)
    assert not refused.episode_start  # the run of refusals began at the third request
    back = limiter.admit(key, now=0.5)
    assert back.allowed
    assert back.refused_in_episode == 2
    # A third source pushes out the least recently seen one.
    limiter.admit(("mollie", "192.0.2.2"), now=1.0)
    limiter.admit(("mollie", "192.0.2.3"), now=1.0)
    assert len(limiter._buckets) == 2


def test_ttl_cache_expires_and_stays_bounded() -> None:
    cache: BoundedTtlCache[str, str] = BoundedTtlCache(ttl=60, max_entries=3)
    for number in range(5):
        cache.put(f"tr_{number}", "not_found", now=0.0)
    assert len(cache) == 3
    assert cache.get("tr_0", now=1.0) is None  # pushed out by newer entries
    assert cache.get("tr_4", now=59.0) == "not_found"
    assert cache.get("tr_4", now=60.0) is None  # expired


# --- Temporal busy: 503 with Retry-After, never 500 ----------------------------------------


@pytest.fixture(scope="module")
async def throttled_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of its own that allows one request per second in the namespace, so
    Temporal answers RESOURCE_EXHAUSTED for real."""
    throttle = ["frontend.namespaceRPS=1", "frontend.namespaceBurstRatio=1"]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_temporal(),
        dev_server_extra_args=[
            *dev_server_flags(),
            *(arg for value in throttle for arg in ("--dynamic-config-value", value)),
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def test_temporal_resource_exhausted_is_503_with_retry_after(
    throttled_temporal: WorkflowEnvironment, emulators: Emulators
) -> None:
    address = throttled_temporal.client.service_client.config.target_host
    settings = connector_settings(emulators, address, "http://127.0.0.1:1", "throttled")
    payment_id = await mollie_payment(
        emulators.mollie_url, {"workflowId": f"purchase:{unused_numeric_id()}"}
    )
    dunning = {
        "offerId": "S000000001_NL",
        "customerId": 123321123,
        "expirationDate": "2030-01-07T18:55:41Z",
        "paymentMethodId": settings.cleeng_payment_method_id,
    }
    async with asgi_shim(settings) as shim:
        cleeng = [
            shim.post(
                "/webhooks/cleeng",
                **signed_cleeng(
                    settings,
                    contract.TOPIC_TERMINATION,
                    {**dunning, "subscriptionId": unused_numeric_id()},
                ),
            )
            for _ in range(15)
        ]
        mollie = [shim.post("/webhooks/mollie", data={"id": payment_id}) for _ in range(15)]
        answers: list[httpx.Response] = await asyncio.gather(*cleeng, *mollie)

    by_endpoint = {
        "cleeng": [a.status_code for a in answers[:15]],
        "mollie": [a.status_code for a in answers[15:]],
    }
    for statuses in by_endpoint.values():
        assert set(statuses) <= {200, 503}, by_endpoint
        assert 503 in statuses, by_endpoint
    for answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) > 0
            assert "busy" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("code", "answered"),
    [
        (RPCStatusCode.RESOURCE_EXHAUSTED, 503),
        (RPCStatusCode.UNAVAILABLE, 503),
        (RPCStatusCode.INVALID_ARGUMENT, None),
    ],
)
def test_temporal_errors_translate_to_503_only_when_retrying_can_help(
    code: RPCStatusCode, answered: int | None
) -> None:
    error = RPCError("namespace rate limit exceeded", code, b"")
    with pytest.raises((HTTPException, RPCError)) as raised, temporal_unavailable_as_503():
        raise error
    if answered is None:
        assert raised.value is error
    else:
        assert isinstance(raised.value, HTTPException)
        assert raised.value.status_code == answered
        assert raised.value.headers == {"Retry-After": "5"}


# --- strict Cleeng ids ---------------------------------------------------------------------

_DUNNING_BASE = {
    "offerId": "S000000001_NL",
    "customerId": 123321123,
    "paymentDetailsId": 665665665,
    "expirationDate": "2030-01-07T18:55:41Z",
    "currency": "EUR",
    "paymentMethodId": 555000001,
}
_REFUND_BASE = {
    "paymentId": 1,
    "orderId": 2,
    "externalPaymentId": "tr_abc",
    "amount": 5,
    "currency": "EUR",
}
_HOSTILE = "9/../../customers/1/payment_details#"


def _dunning(**changes: Any) -> dict[str, Any]:
    return {**_DUNNING_BASE, "subscriptionId": unused_numeric_id(), **changes}


def _would_start(topic: str, data: dict[str, Any]) -> str:
    """The workflow id yesterday's shim derived from the raw values (so it would exist)."""
    if topic == contract.TOPIC_DETAILS_DEACTIVATED:
        return deactivation_workflow_id(str(data["paymentDetailsId"]))
    if topic == contract.TOPIC_REFUND:
        return refund_workflow_id(str(data["paymentId"]), refund_request_key(data))
    return billing_workflow_id(str(data["subscriptionId"]), str(data["expirationDate"]))


@pytest.mark.parametrize(
    ("topic", "data", "field"),
    [
        (
            contract.TOPIC_DETAILS_DEACTIVATED,
            {"paymentDetailsId": _HOSTILE, "customerId": 1},
            "paymentDetailsId",
        ),
        (
            contract.TOPIC_DETAILS_DEACTIVATED,
            {"paymentDetailsId": 990000002, "customerId": "1/../2"},
            "customerId",
        ),
        (contract.TOPIC_TERMINATION, _dunning(subscriptionId="1/../2"), "subscriptionId"),
        (contract.TOPIC_TERMINATION, _dunning(subscriptionId=2**31), "subscriptionId"),
        (contract.TOPIC_AUTHORISATION, _dunning(customerId="0"), "customerId"),
        (contract.TOPIC_AUTHORISATION, _dunning(paymentDetailsId=_HOSTILE), "paymentDetailsId"),
        (contract.TOPIC_CAPTURE, _dunning(paymentDetailsId="12abc"), "paymentDetailsId"),
        (contract.TOPIC_CAPTURE, _dunning(paymentMethodId="555000001#"), "paymentMethodId"),
        (contract.TOPIC_CAPTURE, _dunning(offerId="S1/../../offers"), "offerId"),
        (contract.TOPIC_REFUND, {**_REFUND_BASE, "paymentId": "1/../2"}, "paymentId"),
        (contract.TOPIC_REFUND, {**_REFUND_BASE, "orderId": -2}, "orderId"),
        (contract.TOPIC_REFUND, {**_REFUND_BASE, "customerId": "1.5"}, "customerId"),
    ],
)
async def test_hostile_cleeng_ids_are_422_naming_the_field_and_start_nothing(
    connector: Connector,
    caplog: pytest.LogCaptureFixture,
    topic: str,
    data: dict[str, Any],
    field: str,
) -> None:
    with caplog.at_level(logging.INFO, logger="api"):
        answer = await send_cleeng_webhook(connector, data, topic=topic)

    assert answer.status_code == 422, answer.text
    assert f"data.{field}" in answer.json()["detail"]
    await assert_not_started(connector, _would_start(topic, data))
    # A refusal is worth a line in the log, not a traceback.
    about_it = [r for r in caplog.records if r.name.startswith("api")]
    assert len(about_it) <= 1
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    ("given", "normalised"),
    [(770000001, "770000001"), ("770000001", "770000001"), ("007", "7"), (2**31 - 1, "2147483647")],
)
def test_cleeng_ids_are_accepted_as_int_or_digits_and_normalised(
    given: object, normalised: str
) -> None:
    data = DunningData.model_validate(
        {**_DUNNING_BASE, "subscriptionId": given, "customerId": given}
    )
    assert (data.subscription_id, data.customer_id) == (normalised, normalised)
