"""The payload codec, its keys, the codec server's refusals, and when clear payloads are allowed.

The codec server runs here in process through httpx's ASGI transport;
tests/test_encrypted_history.py drives it over real HTTP against a real history.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr, ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from codec.__main__ import server_config
from codec.failure_converter import redact
from codec.keys import DEV_KEY_FILE, KeyRingError, dev_key_ring_text, new_key_entry, parse_key_ring
from codec.payload_codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadDecryptionError,
)
from codec.server import CodecServerConfig, create_app
from launcher import with_payload_keys
from settings import Settings
from temporal_connection import ClearPayloadsRefused, check_payload_encryption, data_converter
from tests.support.histories import SAVED, replay_failures
from worker import WORKFLOWS

REPO = Path(__file__).resolve().parent.parent
UI_ORIGIN = "http://127.0.0.1:8233"
TOKEN = "codec-token-" + "0123456789abcdef" * 2
OLD = new_key_entry("old")
NEW = new_key_entry("new")


def clear_payload(text: str = '{"email": "ada@example.com"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


def codec_for(*entries: str) -> EncryptionCodec:
    return EncryptionCodec(parse_key_ring(",".join(entries)))


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


# --------------------------------------------------------------------------- the codec


async def test_a_payload_comes_back_as_it_went_in() -> None:
    codec = codec_for(NEW)
    original = clear_payload()
    [sealed] = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"new"
    assert b"ada@example.com" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [original]


async def test_the_same_payload_encrypts_differently_each_time() -> None:
    codec = codec_for(NEW)
    first, second = await codec.encode([clear_payload(), clear_payload()])
    assert first.data != second.data


async def test_after_a_rotation_old_payloads_still_open_and_new_ones_use_the_new_key() -> None:
    [written_before] = await codec_for(OLD).encode([clear_payload("before")])
    rotated = codec_for(NEW, OLD)
    [written_after] = await rotated.encode([clear_payload("after")])
    assert written_after.metadata[KEY_ID_METADATA] == b"new"
    assert await rotated.decode([written_before, written_after]) == [
        clear_payload("before"),
        clear_payload("after"),
    ]


async def test_a_payload_under_an_unknown_key_id_is_an_error_naming_it() -> None:
    [sealed] = await codec_for(OLD).encode([clear_payload()])
    with pytest.raises(PayloadDecryptionError, match=r"key id 'old'.*known: new"):
        await codec_for(NEW).decode([sealed])


async def test_an_altered_ciphertext_fails_authentication() -> None:
    codec = codec_for(NEW)
    [sealed] = await codec.encode([clear_payload()])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 0x01
    sealed.data = bytes(flipped)
    with pytest.raises(PayloadDecryptionError, match="fails authentication"):
        await codec.decode([sealed])


async def test_a_ciphertext_relabelled_with_another_known_key_id_fails() -> None:
    # Same key material under two ids: only the associated data (the key id) tells them apart.
    key = NEW.partition(":")[2]
    codec = codec_for(f"a:{key}", f"b:{key}")
    [sealed] = await codec.encode([clear_payload()])
    sealed.metadata[KEY_ID_METADATA] = b"b"
    with pytest.raises(PayloadDecryptionError, match="'b' fails authentication"):
        await codec.decode([sealed])


async def test_payloads_without_the_marker_pass_through_unchanged() -> None:
    plain = clear_payload()
    assert await codec_for(NEW).decode([plain]) == [plain]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "holds no key"),
        ("nocolon", "is not id:base64key"),
        ("bad id:" + NEW.partition(":")[2], "key id that is not"),
        ("k1:not-base64!!", "'k1' is not valid base64"),
        ("k1:" + "QUJD", "'k1' is 3 bytes"),
        (f"{NEW},{NEW}", "'new' appears twice"),
    ],
    # Named, not shown: the random key would make every collection of the tests differ.
    ids=["empty", "no-colon", "bad-id", "not-base64", "too-short", "id-twice"],
)
def test_a_malformed_key_ring_is_named_without_its_keys(text: str, problem: str) -> None:
    with pytest.raises(KeyRingError, match=problem) as raised:
        parse_key_ring(text)
    assert NEW.partition(":")[2] not in str(raised.value)


def test_the_key_setting_is_secret_and_checked_at_startup() -> None:
    key = NEW.partition(":")[2]
    configured = settings(payload_encryption_keys=f"{NEW},{OLD}")
    assert key not in repr(configured)
    assert configured.payload_key_ring() is not None
    assert key not in repr(configured.payload_key_ring())
    with pytest.raises(ValidationError, match="'k1' is 3 bytes") as raised:
        settings(payload_encryption_keys="k1:QUJD")
    assert "QUJD" not in str(raised.value)


async def test_the_saved_clear_histories_replay_through_the_codec() -> None:
    # Histories written before encryption was switched on stay readable once it is on.
    converter = data_converter(settings(payload_encryption_keys=NEW))
    assert converter is not DataConverter.default
    replayer = Replayer(workflows=WORKFLOWS, data_converter=converter)
    failures = await replay_failures(replayer, SAVED)
    assert {stem: failure for stem, failure in failures.items() if failure} == {}
    assert len(failures) == len(SAVED)


# ------------------------------------------------------------------------------ failures


@pytest.mark.parametrize(
    ("quoted", "kept"),
    [
        ("customer ada.lovelace+shop@example.co.uk exists", "customer <email> exists"),
        ("mandate mdt_pWUnw6pkBN of cst_8wmqcHMN4U", "mandate mdt_<redacted> of cst_<redacted>"),
        ("IBAN NL91ABNA0417164300 refused", "IBAN <iban> refused"),
        ("IBAN DE89 3704 0044 0532 0130 00 refused", "IBAN <iban> refused"),
        (
            "email\n  Field required [type=missing, input_value={'name': 'Ada Lovelace'}, "
            "input_type=dict]",
            "email\n  Field required [type=missing, input_value=<redacted>, input_type=dict]",
        ),
        # Not customer data: payment, refund and order ids, amounts, HTTP statuses.
        (
            "order 123456: payment tr_WDqYK6vllg refund re_4qqhO89gsT 9.99 EUR (HTTP 422)",
            "order 123456: payment tr_WDqYK6vllg refund re_4qqhO89gsT 9.99 EUR (HTTP 422)",
        ),
    ],
)
def test_failure_messages_lose_customer_data_and_keep_what_operators_need(
    quoted: str, kept: str
) -> None:
    assert redact(quoted) == kept


def raised(message: str, kind: str, cause: BaseException) -> ApplicationError:
    try:
        raise ApplicationError(message, {"mandate": "mdt_secret"}, type=kind) from cause
    except ApplicationError as error:
        return error


async def test_a_failure_keeps_its_type_and_redacted_message_in_clear_and_the_rest_encrypted() -> (
    None
):
    converter = data_converter(settings(payload_encryption_keys=NEW))
    message = "Cleeng refused to record payment tr_1 for order 7: customer ada@example.com"
    error = raised(message, "CleengRefusedPayment", ValueError("mandate mdt_abc of cst_def"))
    failure = Failure()
    await converter.encode_failure(error, failure)

    assert failure.message == (
        "CleengRefusedPayment: Cleeng refused to record payment tr_1 for order 7: customer <email>"
    )
    assert failure.application_failure_info.type == "CleengRefusedPayment"
    assert failure.stack_trace == ""
    assert failure.cause.message == "ValueError: mandate mdt_<redacted> of cst_<redacted>"
    stored = failure.SerializeToString()
    for secret in (b"ada@example.com", b"mdt_abc", b"cst_def", b"mdt_secret", b"raised"):
        assert secret not in stored, secret
    for sealed in (failure, failure.cause):
        assert sealed.encoded_attributes.metadata["encoding"] == ENCODING

    # The connector reads the whole message back, and the cause's.
    read = await converter.decode_failure(failure)
    assert isinstance(read, ApplicationError)
    assert read.message == message
    assert read.type == "CleengRefusedPayment"
    assert read.details == ({"mandate": "mdt_secret"},)
    assert "mdt_abc of cst_def" in str(read.__cause__)

    # Passed on again (a workflow re-raising an activity's error): stored the same way.
    again = Failure()
    await converter.encode_failure(read, again)
    assert again.message == failure.message
    assert again.cause.message == failure.cause.message
    assert b"ada@example.com" not in again.SerializeToString()
    read_again = await converter.decode_failure(again)
    assert isinstance(read_again, ApplicationError)
    assert read_again.message == message


async def test_a_failure_stored_with_encoded_attributes_only_still_reads_whole() -> None:
    # Histories written before this converter: message "Encoded failure", all else encrypted.
    converter = data_converter(settings(payload_encryption_keys=NEW))
    before = dataclasses.replace(
        converter, failure_converter_class=DefaultFailureConverterWithEncodedAttributes
    )
    failure = Failure()
    await before.encode_failure(
        raised("Cleeng has no order 7", "OrderNotFound", KeyError()), failure
    )
    assert failure.message == "Encoded failure"

    read = await converter.decode_failure(failure)
    assert isinstance(read, ApplicationError)
    assert (read.type, read.message) == ("OrderNotFound", "Cleeng has no order 7")


# ------------------------------------------------------------------- the dev stack's key


def test_the_launcher_makes_a_private_key_once_and_reuses_it(tmp_path: Path) -> None:
    first = with_payload_keys(settings(), tmp_path)
    key_file = tmp_path / DEV_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = with_payload_keys(settings(), tmp_path)
    assert first.payload_encryption_keys is not None
    assert again.payload_encryption_keys is not None
    assert (
        first.payload_encryption_keys.get_secret_value()
        == again.payload_encryption_keys.get_secret_value()
        == key_file.read_text().strip()
    )
    assert first.payload_key_ring() is not None


def test_the_launcher_leaves_configured_keys_alone(tmp_path: Path) -> None:
    configured = with_payload_keys(settings(payload_encryption_keys=NEW), tmp_path)
    assert configured.payload_encryption_keys is not None
    assert configured.payload_encryption_keys.get_secret_value() == NEW
    assert not (tmp_path / DEV_KEY_FILE).exists()


def test_a_key_file_left_readable_by_others_is_made_private(tmp_path: Path) -> None:
    dev_key_ring_text(tmp_path)
    key_file = tmp_path / DEV_KEY_FILE
    key_file.chmod(0o644)
    dev_key_ring_text(tmp_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


# ------------------------------------------------------------- when clear payloads are allowed

REAL_CREDENTIALS = {
    "CLEENG_PUBLISHER_TOKEN": "publisher-token-for-a-refusal-test",
    "CLEENG_BASE_URL": "https://api.sandbox.cleeng.com/3.1",
    "CLEENG_PAYMENT_METHOD_ID": "123456789",
    "MOLLIE_API_KEY": "test_refusaltest000000000000000000",
    "MOLLIE_BASE_URL": "https://api.mollie.com",
    "CLEENG_WEBHOOK_SECRET": "webhook-secret-0123456789",
    "FRONTEND_API_KEYS": "frontend-key-" + "0123456789abcdef" * 2,
    "FRONTEND_REDIRECT_ORIGINS": "https://shop.example",
}


def real_settings(**values: Any) -> Settings:
    return settings(**{key.lower(): value for key, value in REAL_CREDENTIALS.items()}, **values)


def test_real_credentials_without_keys_refuse_to_start() -> None:
    with pytest.raises(ClearPayloadsRefused, match="PAYLOAD_ENCRYPTION_KEYS is required"):
        check_payload_encryption(real_settings(), logging.getLogger("test"))


def test_clear_payloads_explicitly_allowed_start_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        check_payload_encryption(real_settings(allow_clear_payloads=True), logging.getLogger("t"))
    assert "stored in clear" in caplog.text
    assert "ALLOW_CLEAR_PAYLOADS=true" in caplog.text


def test_sandbox_mode_without_keys_starts_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_payload_encryption(settings(), logging.getLogger("t"))
    assert "stored in clear" in caplog.text


def test_keys_set_start_quietly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_payload_encryption(real_settings(payload_encryption_keys=NEW), logging.getLogger("t"))
    assert caplog.text == ""


@pytest.mark.parametrize("process", ["worker", "api"])
def test_the_worker_and_the_api_refuse_real_credentials_without_keys(
    process: str, tmp_path: Path
) -> None:
    # The real entry points, in a directory without a .env; they stop before reaching Temporal.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLEENG_", "MOLLIE_", "FRONTEND_", "PAYLOAD_", "ALLOW_"))
    }
    env.update(REAL_CREDENTIALS, PYTHONPATH=str(REPO), TEMPORAL_ADDRESS="127.0.0.1:9")
    finished = subprocess.run(
        [sys.executable, "-m", process],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 1
    assert "PAYLOAD_ENCRYPTION_KEYS is required with real credentials" in finished.stderr


# ------------------------------------------------------------------------ the codec server


def test_the_codec_server_needs_keys_and_a_token_off_loopback() -> None:
    with pytest.raises(SystemExit, match="PAYLOAD_ENCRYPTION_KEYS is not set"):
        server_config(settings(), "127.0.0.1")
    with pytest.raises(SystemExit, match=r"CODEC_SERVER_TOKEN is required to listen on 0\.0\.0\.0"):
        server_config(settings(payload_encryption_keys=NEW), "0.0.0.0")
    assert server_config(settings(payload_encryption_keys=NEW), "::1").token is None
    with_token = settings(payload_encryption_keys=NEW, codec_server_token=SecretStr(TOKEN))
    assert server_config(with_token, "0.0.0.0").token == TOKEN


def test_a_short_codec_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="CODEC_SERVER_TOKEN is shorter than 32"):
        settings(codec_server_token="short")


def codec_server(token: str | None = None) -> httpx.AsyncClient:
    app = create_app(
        CodecServerConfig(
            codec=codec_for(NEW, OLD),
            namespace="default",
            allowed_origins=(UI_ORIGIN,),
            token=token,
        )
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec")


def body_of(*payloads: Payload) -> dict[str, Any]:
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


def payloads_in(response: httpx.Response) -> list[Payload]:
    return [json_format.ParseDict(p, Payload()) for p in response.json()["payloads"]]


UI_HEADERS = {"Origin": UI_ORIGIN, "X-Namespace": "default"}


async def test_the_codec_server_encodes_and_decodes_for_the_web_ui() -> None:
    async with codec_server() as http:
        encoded = await http.post("/encode", json=body_of(clear_payload()), headers=UI_HEADERS)
        assert encoded.status_code == 200
        assert encoded.headers["access-control-allow-origin"] == UI_ORIGIN
        [sealed] = payloads_in(encoded)
        assert sealed.metadata[KEY_ID_METADATA] == b"new"
        decoded = await http.post("/decode", json=body_of(sealed, clear_payload("plain")))
        assert decoded.status_code == 200
        assert payloads_in(decoded) == [clear_payload(), clear_payload("plain")]
        empty = await http.post("/decode", json={"payloads": []})
        assert empty.json() == {"payloads": []}


async def test_the_codec_server_answers_the_web_ui_preflight() -> None:
    async with codec_server(TOKEN) as http:
        preflight = await http.options(
            "/decode",
            headers={
                "Origin": UI_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
            },
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI_ORIGIN


async def test_the_codec_server_refuses_other_origins() -> None:
    [sealed] = await codec_for(NEW).encode([clear_payload()])
    async with codec_server() as http:
        for origin in ("https://evil.example", "http://127.0.0.1:8234", "http://localhost:8233"):
            # Even a "simple" request (no preflight) is refused before it is served.
            answer = await http.post(
                "/decode",
                content=json.dumps(body_of(sealed)),
                headers={"Origin": origin, "Content-Type": "text/plain"},
            )
            assert answer.status_code == 403, origin
            assert "access-control-allow-origin" not in answer.headers
            assert b"ada@example.com" not in answer.content
            preflight = await http.options(
                "/decode",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            assert preflight.status_code == 403, origin
            assert "access-control-allow-origin" not in preflight.headers


async def test_the_codec_server_requires_its_token_when_one_is_set() -> None:
    [sealed] = await codec_for(NEW).encode([clear_payload()])
    async with codec_server(TOKEN) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            for path in ("/decode", "/encode"):
                refused = await http.post(path, json=body_of(sealed), headers=headers)
                assert refused.status_code == 401, (path, headers)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert b"ada@example.com" not in refused.content
        allowed = await http.post(
            "/decode", json=body_of(sealed), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert allowed.status_code == 200
        assert payloads_in(allowed) == [clear_payload()]


async def test_the_codec_server_serves_its_own_namespace_only() -> None:
    [sealed] = await codec_for(NEW).encode([clear_payload()])
    async with codec_server() as http:
        other = await http.post("/decode", json=body_of(sealed), headers={"X-Namespace": "other"})
    assert other.status_code == 403
    assert "'default' only" in other.json()["detail"]


async def test_the_codec_server_names_what_it_cannot_decode() -> None:
    [foreign] = await codec_for(new_key_entry("gone")).encode([clear_payload()])
    async with codec_server() as http:
        unknown = await http.post("/decode", json=body_of(foreign))
        malformed = await http.post("/decode", content=b'{"payloads": 3}')
    assert unknown.status_code == 422
    assert "key id 'gone'" in unknown.json()["detail"]
    assert malformed.status_code == 400
