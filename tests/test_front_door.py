"""The front door: the front-end API only for the publisher's backend and only for
the customer it acts for; redirects only to the publisher's sites; bounded input; settings
that refuse to start open.

Each test here reproduces an attack that worked before: an open front-end API, someone else's
order bought or read, Mollie sending shoppers to a phishing page, a 200 MiB chunked body read
whole, and weak settings accepted silently.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError
from temporalio.service import RPCError

from api.app import create_app
from domain.payment_details import new_details_workflow_id
from domain.purchase import purchase_workflow_id
from settings import EMULATOR_FRONTEND_API_KEY, EMULATOR_WEBHOOK_SECRET, Settings
from tests.conftest import Connector
from tests.support.shop import frontend_headers, seed_order, set_faults

ROOT = Path(__file__).resolve().parent.parent
PUBLISHER_ID = 100000001
THANKS = "https://shop.example/thanks"


@pytest.fixture
async def shim(connector: Connector) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(connector.settings) as http:
        yield http


def asgi_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://shim"
    )


async def assert_not_started(connector: Connector, workflow_id: str) -> None:
    with pytest.raises(RPCError, match="not found"):
        await connector.client.get_workflow_handle(workflow_id).describe()


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key-0000000000000000000000000000", f"Basic {EMULATOR_FRONTEND_API_KEY}"],
)
async def test_a_call_without_the_api_key_is_401_and_starts_nothing(
    shim: httpx.AsyncClient, connector: Connector, authorization: str | None
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id, customer_id = str(seeded["orderId"]), str(seeded["customerId"])
    headers = {"X-Cleeng-Customer-Id": customer_id}
    if authorization is not None:
        headers["Authorization"] = authorization
    calls = [
        shim.post("/purchases", json={"orderId": order_id, "redirectUrl": THANKS}, headers=headers),
        shim.get(f"/purchases/{order_id}", headers=headers),
        shim.post(
            "/payment-details",
            json={"customerId": customer_id, "redirectUrl": THANKS},
            headers=headers,
        ),
        shim.get(f"/payment-details/{customer_id}", headers=headers),
    ]
    for response in await asyncio.gather(*calls):
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    await assert_not_started(connector, purchase_workflow_id(order_id))
    await assert_not_started(connector, new_details_workflow_id(customer_id))


async def test_a_call_that_names_no_customer_is_401(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    key_only = {"Authorization": f"Bearer {EMULATOR_FRONTEND_API_KEY}"}
    response = await shim.post(
        "/purchases",
        json={"orderId": str(seeded["orderId"]), "redirectUrl": THANKS},
        headers=key_only,
    )
    assert response.status_code == 401
    assert "X-Cleeng-Customer-Id" in response.json()["detail"]


# --- ownership -------------------------------------------------------------------------------


async def test_a_purchase_of_someone_elses_order_is_refused_like_a_missing_order(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    mine = await seed_order(connector.emulators.cleeng_url)
    theirs = await seed_order(connector.emulators.cleeng_url)
    as_me = frontend_headers(connector.settings, mine["customerId"])

    response = await shim.post(
        "/purchases", json={"orderId": str(theirs["orderId"]), "redirectUrl": THANKS}, headers=as_me
    )
    missing = await shim.post(
        "/purchases", json={"orderId": "2147483000", "redirectUrl": THANKS}, headers=as_me
    )

    assert response.status_code == missing.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "orderId"]
    assert problem["msg"].replace(str(theirs["orderId"]), "X") == missing.json()["detail"][0][
        "msg"
    ].replace("2147483000", "X")
    await assert_not_started(connector, purchase_workflow_id(str(theirs["orderId"])))


async def test_a_purchase_is_readable_by_its_customer_only(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id = str(seeded["orderId"])
    owner = frontend_headers(connector.settings, seeded["customerId"])
    stranger = frontend_headers(connector.settings, int(seeded["customerId"]) + 1)
    started = await shim.post(
        "/purchases", json={"orderId": order_id, "redirectUrl": THANKS}, headers=owner
    )
    assert started.status_code == 201, started.text

    as_owner = await shim.get(f"/purchases/{order_id}", headers=owner)
    as_stranger = await shim.get(f"/purchases/{order_id}", headers=stranger)
    never_bought = await seed_order(connector.emulators.cleeng_url)
    unbought = await shim.get(
        f"/purchases/{never_bought['orderId']}",
        headers=frontend_headers(connector.settings, never_bought["customerId"]),
    )

    assert as_owner.status_code == 200
    assert as_owner.json()["checkoutUrl"] == started.json()["checkoutUrl"]
    # The stranger learns nothing: the same answer as for an order nobody bought.
    assert as_stranger.status_code == unbought.status_code == 404
    assert as_stranger.json() == unbought.json()


async def test_polling_a_purchase_asks_cleeng_for_its_owner_once(
    shim: httpx.AsyncClient, connector: Connector, clean_faults: None
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id = str(seeded["orderId"])
    owner = frontend_headers(connector.settings, seeded["customerId"])
    started = await shim.post(
        "/purchases", json={"orderId": order_id, "redirectUrl": THANKS}, headers=owner
    )
    assert started.status_code == 201, started.text
    # Cleeng down for order reads: the owner is already known, polling goes on.
    await set_faults(
        connector.emulators.cleeng_url,
        {"failNext": [{"method": "GET", "pathPrefix": "/3.1/orders", "status": 503, "count": 9}]},
    )
    for _ in range(3):
        assert (await shim.get(f"/purchases/{order_id}", headers=owner)).status_code == 200
    stranger = frontend_headers(connector.settings, int(seeded["customerId"]) + 1)
    assert (await shim.get(f"/purchases/{order_id}", headers=stranger)).status_code == 404
    # An order whose owner is not known yet needs Cleeng: 503 while it is down.
    other = await seed_order(connector.emulators.cleeng_url)
    unknown = await shim.get(
        f"/purchases/{other['orderId']}",
        headers=frontend_headers(connector.settings, other["customerId"]),
    )
    assert unknown.status_code == 503


async def test_a_card_change_for_another_customer_is_403_and_starts_nothing(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    mine = await seed_order(connector.emulators.cleeng_url)
    theirs = await seed_order(connector.emulators.cleeng_url)
    as_me = frontend_headers(connector.settings, mine["customerId"])
    their_id = str(theirs["customerId"])

    started = await shim.post(
        "/payment-details",
        json={"customerId": their_id, "redirectUrl": THANKS},
        headers=as_me,
    )
    progress = await shim.get(f"/payment-details/{their_id}", headers=as_me)

    assert started.status_code == 403
    assert progress.status_code == 403
    await assert_not_started(connector, new_details_workflow_id(their_id))


# --- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_url",
    [
        "https://evil.example/phish",
        "http://shop.example/thanks",  # right host, wrong scheme
        "https://shop.example:8443/thanks",  # right host, wrong port
        "https://shop.example.evil.example/",
        "https://shop.example@evil.example/",
        "https://evil.example\\@shop.example/",  # browsers read the backslash as a slash
    ],
)
async def test_a_redirect_outside_the_publisher_origins_is_422_and_starts_nothing(
    shim: httpx.AsyncClient, connector: Connector, redirect_url: str
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    order_id, customer_id = str(seeded["orderId"]), str(seeded["customerId"])
    headers = frontend_headers(connector.settings, customer_id)

    purchase = await shim.post(
        "/purchases", json={"orderId": order_id, "redirectUrl": redirect_url}, headers=headers
    )
    card = await shim.post(
        "/payment-details",
        json={"customerId": customer_id, "redirectUrl": redirect_url},
        headers=headers,
    )

    for response in (purchase, card):
        assert response.status_code == 422, response.text
        assert [p["loc"] for p in response.json()["detail"]] == [["body", "redirectUrl"]]
        # The refusal names the origins allowed now, so the front end sees which it missed.
        allowed = ", ".join(connector.settings.effective_redirect_origins)
        assert f"(allowed now: {allowed})" in response.json()["detail"][0]["msg"]
    await assert_not_started(connector, purchase_workflow_id(order_id))
    await assert_not_started(connector, new_details_workflow_id(customer_id))


# --- the customer's Cleeng JWT -------------------------------------------------------------


class CleengSigner:
    """Stands in for Cleeng's auth service: an RSA key, its JWKS, and customer tokens."""

    def __init__(self, kid: str = "cleeng-test-1") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = json.dumps({"keys": [{**public, "kid": kid, "use": "sig"}]})

    def token(self, customer_id: Any, **claims: Any) -> str:
        payload = {
            "customerId": customer_id,
            "publisherId": PUBLISHER_ID,
            "exp": int(time.time()) + 900,
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def cleeng_signer() -> CleengSigner:
    return CleengSigner()


@pytest.fixture
async def jwt_shim(
    connector: Connector, cleeng_signer: CleengSigner
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,
        **{
            **connector.settings.model_dump(),
            "cleeng_customer_jwt_keys": cleeng_signer.jwks,
            "cleeng_publisher_id": PUBLISHER_ID,
        },
    )
    async with asgi_client(settings) as http:
        yield http


def hs256_with_public_key(signer: CleengSigner, customer_id: int) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the (public) verifying key."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "kid": signer.kid}).encode())
    claims = {"customerId": customer_id, "publisherId": PUBLISHER_ID, "exp": time.time() + 900}
    body = b64(json.dumps(claims).encode())
    secret = signer.jwks.encode()
    signature = b64(hmac.new(secret, header + b"." + body, hashlib.sha256).digest())
    return (header + b"." + body + b"." + signature).decode()


async def test_with_jwt_keys_the_customer_is_the_one_cleeng_signed_for(
    jwt_shim: httpx.AsyncClient, connector: Connector, cleeng_signer: CleengSigner
) -> None:
    mine = await seed_order(connector.emulators.cleeng_url)
    theirs = await seed_order(connector.emulators.cleeng_url)
    key = {"Authorization": f"Bearer {EMULATOR_FRONTEND_API_KEY}"}
    my_token = {**key, "X-Cleeng-Customer-Token": cleeng_signer.token(mine["customerId"])}

    own = await jwt_shim.post(
        "/purchases",
        json={"orderId": str(mine["orderId"]), "redirectUrl": THANKS},
        headers=my_token,
    )
    other = await jwt_shim.post(
        "/purchases",
        json={"orderId": str(theirs["orderId"]), "redirectUrl": THANKS},
        headers=my_token,
    )
    # Naming another customer beside my token changes nothing: the token decides.
    claimed = await jwt_shim.post(
        "/purchases",
        json={"orderId": str(theirs["orderId"]), "redirectUrl": THANKS},
        headers={**my_token, "X-Cleeng-Customer-Id": str(theirs["customerId"])},
    )
    # Without a token the customer header alone is not enough any more.
    header_only = await jwt_shim.post(
        "/purchases",
        json={"orderId": str(theirs["orderId"]), "redirectUrl": THANKS},
        headers=frontend_headers(connector.settings, theirs["customerId"]),
    )

    assert own.status_code == 201, own.text
    assert other.status_code == 422
    assert claimed.status_code == 403
    assert header_only.status_code == 401
    await assert_not_started(connector, purchase_workflow_id(str(theirs["orderId"])))


@pytest.mark.parametrize(
    "forge",
    [
        "expired",
        "other_key",
        "other_publisher",
        "alg_none",
        "hs256_confusion",
        "no_customer",
        "garbage",
    ],
)
async def test_forged_or_stale_customer_tokens_are_401(
    jwt_shim: httpx.AsyncClient, connector: Connector, cleeng_signer: CleengSigner, forge: str
) -> None:
    seeded = await seed_order(connector.emulators.cleeng_url)
    customer = int(seeded["customerId"])
    tokens: dict[str, Callable[[], str]] = {
        "expired": lambda: cleeng_signer.token(customer, exp=int(time.time()) - 3600),
        "other_key": lambda: CleengSigner(kid=cleeng_signer.kid).token(customer),
        "other_publisher": lambda: cleeng_signer.token(customer, publisherId=PUBLISHER_ID + 1),
        "alg_none": lambda: jwt.encode(
            {"customerId": customer, "publisherId": PUBLISHER_ID, "exp": time.time() + 900},
            "",
            algorithm="none",
        ),
        "hs256_confusion": lambda: hs256_with_public_key(cleeng_signer, customer),
        "no_customer": lambda: cleeng_signer.token(None),
        "garbage": lambda: "not-a-jwt",
    }
    response = await jwt_shim.post(
        "/purchases",
        json={"orderId": str(seeded["orderId"]), "redirectUrl": THANKS},
        headers={
            "Authorization": f"Bearer {EMULATOR_FRONTEND_API_KEY}",
            "X-Cleeng-Customer-Token": tokens[forge](),
        },
    )
    assert response.status_code == 401, response.text
    await assert_not_started(connector, purchase_workflow_id(str(seeded["orderId"])))


# --- bounded input ---------------------------------------------------------------------------

MIB = 1024 * 1024


async def test_a_200_mib_chunked_body_gets_413_while_it_is_still_streaming(
    connector: Connector,
) -> None:
    """Chunked: no Content-Length to check. The 413 must come back while the client is still
    sending, and the server must not hold the body."""
    address = urlsplit(connector.api_url)
    assert address.hostname is not None
    assert address.port is not None
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(
        b"POST /purchases HTTP/1.1\r\nHost: shim\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )

    def body_chunks(total: int = 200 * MIB, size: int = 64 * 1024) -> Iterator[bytes]:
        piece = b" " * size  # produced lazily: the test never holds 200 MiB either
        for _ in range(total // size):
            yield piece

    sent = 0

    async def send_body() -> None:
        nonlocal sent
        for chunk in body_chunks():
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0)  # let the reader see an early answer
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.monotonic()
    sender = asyncio.create_task(send_body())
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=60)
        elapsed = time.monotonic() - started
        sent_when_answered = sent
    finally:
        sender.cancel()
        writer.close()
    peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before

    assert status_line.split()[1] == b"413", status_line
    assert sent_when_answered < 64 * MIB, f"answered only after {sent_when_answered} bytes"
    assert elapsed < 10
    # Server and test run in this process: neither held the body.
    assert peak_growth < 64 * MIB, f"peak memory grew by {peak_growth} bytes"


async def test_json_nested_deeper_than_the_limit_is_400_before_any_parsing(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    depth = connector.settings.max_json_depth + 1
    nested = "[" * depth + "1" + "]" * depth
    body = f'{{"orderId": {nested}, "redirectUrl": "{THANKS}"}}'
    response = await shim.post(
        "/purchases",
        content=body.encode(),
        headers={"content-type": "application/json", **frontend_headers(connector.settings, 1)},
    )
    assert response.status_code == 400
    assert "nested deeper" in response.json()["detail"]
    # Brackets inside strings are text, not nesting.
    flat = json.dumps({"orderId": "[" * 1000, "redirectUrl": THANKS})
    response = await shim.post(
        "/purchases",
        content=flat.encode(),
        headers={"content-type": "application/json", **frontend_headers(connector.settings, 1)},
    )
    assert response.status_code == 422


async def test_too_many_headers_or_too_long_a_query_are_refused(
    shim: httpx.AsyncClient, connector: Connector
) -> None:
    many = {f"X-Filler-{n}": "x" for n in range(connector.settings.max_header_count + 1)}
    assert (await shim.get("/health", headers=many)).status_code == 431
    large = {"X-Filler": "x" * (connector.settings.max_header_bytes + 1)}
    assert (await shim.get("/health", headers=large)).status_code == 431
    query = {"q": "x" * (connector.settings.max_query_bytes + 1)}
    assert (await shim.get("/health", params=query)).status_code == 414


async def test_each_refusal_logs_one_line_and_no_traceback(
    shim: httpx.AsyncClient, connector: Connector, caplog: pytest.LogCaptureFixture
) -> None:
    requests = [
        ("no key", shim.post("/purchases", json={"orderId": "1", "redirectUrl": THANKS})),
        (
            "too large",
            shim.post(
                "/purchases",
                content=b" " * (connector.settings.max_body_bytes + 1),
                headers={"content-type": "application/json"},
            ),
        ),
        (
            "invalid",
            shim.post(
                "/purchases",
                json={"orderId": "x", "redirectUrl": THANKS},
                headers=frontend_headers(connector.settings, 1),
            ),
        ),
    ]
    for name, request in requests:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="api"):
            response = await request
        assert 400 <= response.status_code < 500, name
        mine = [r for r in caplog.records if r.name.startswith("api")]
        assert len(mine) == 1, (name, [r.getMessage() for r in mine])
        assert mine[0].exc_info is None
        assert "\n" not in mine[0].getMessage()


# --- settings that fail closed ---------------------------------------------------------------

REAL = {
    "cleeng_publisher_token": "publisher-token",
    "cleeng_base_url": "https://api.sandbox.cleeng.com/3.1",
    "cleeng_payment_method_id": 123456789,
    "mollie_api_key": "test_real",
    "mollie_base_url": "https://api.mollie.com",
}
GOOD: dict[str, Any] = {
    **REAL,
    "cleeng_webhook_secret": "a-webhook-secret-of-32-bytes-xyz",
    "frontend_api_keys": "k" * 40,
    "frontend_redirect_origins": "https://shop.example.com",
}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"cleeng_webhook_secret": "x"}, "CLEENG_WEBHOOK_SECRET"),
        ({"cleeng_webhook_secret": "s" * 65}, "CLEENG_WEBHOOK_SECRET"),
        ({"cleeng_webhook_secret": EMULATOR_WEBHOOK_SECRET}, "CLEENG_WEBHOOK_SECRET"),
        ({"cleeng_webhook_verification": False}, "CLEENG_WEBHOOK_VERIFICATION"),
        ({"frontend_api_keys": ""}, "FRONTEND_API_KEYS"),
        ({"frontend_api_keys": "short-key"}, "FRONTEND_API_KEYS"),
        ({"frontend_api_keys": EMULATOR_FRONTEND_API_KEY}, "FRONTEND_API_KEYS"),
        ({"frontend_redirect_origins": ""}, "FRONTEND_REDIRECT_ORIGINS"),
        ({"frontend_redirect_origins": "http://shop.example.com"}, "FRONTEND_REDIRECT_ORIGINS"),
        ({"frontend_redirect_origins": "https://shop.example.com/x"}, "FRONTEND_REDIRECT_ORIGINS"),
        ({"cleeng_customer_jwt_keys": '{"keys": []}'}, "CLEENG_CUSTOMER_JWT_KEYS"),
        (
            {"cleeng_customer_jwt_keys": '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'},
            "CLEENG_CUSTOMER_JWT_KEYS",
        ),
    ],
)
def test_weak_or_unsafe_settings_refuse_to_start_naming_the_setting(
    overrides: dict[str, Any], named: str
) -> None:
    Settings(_env_file=None, **GOOD)  # the baseline itself is fine
    settings = {k: v for k, v in {**GOOD, **overrides}.items() if v != ""}
    with pytest.raises(ValidationError, match=named) as refused:
        Settings(_env_file=None, **settings)
    # Secrets never appear in the message.
    assert GOOD["cleeng_webhook_secret"] not in str(refused.value)
    assert str(GOOD["frontend_api_keys"]) not in str(refused.value)


def test_jwt_keys_need_the_publisher_id(cleeng_signer: CleengSigner) -> None:
    with pytest.raises(ValidationError, match="CLEENG_PUBLISHER_ID"):
        Settings(_env_file=None, cleeng_customer_jwt_keys=cleeng_signer.jwks)


def test_sandbox_mode_still_starts_with_the_documented_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.sandbox_mode
    assert settings.effective_frontend_api_keys == (EMULATOR_FRONTEND_API_KEY,)
    assert "http://127.0.0.1:8000" in settings.effective_redirect_origins
    # Keys of one's own replace the sandbox key, in sandbox mode too.
    own = Settings(_env_file=None, frontend_api_keys="k" * 40)
    assert own.effective_frontend_api_keys == ("k" * 40,)


def test_the_api_process_refuses_to_start_and_says_what_is_wrong(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLEENG_", "MOLLIE_", "FRONTEND_", "CONNECTOR_", "API_"))
    }
    env.update(
        CLEENG_PUBLISHER_TOKEN="publisher-token",
        CLEENG_WEBHOOK_SECRET="too-short",
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-m", "api", "--port", "1"],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "CLEENG_WEBHOOK_SECRET must be 16 to 64 bytes" in result.stderr
    assert "Traceback" not in result.stderr
    assert "too-short" not in result.stderr
