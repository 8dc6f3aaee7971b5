"""Going live in one restart: with real credentials every missing or unsafe setting is named
at once, in one message, and nothing silently keeps an emulator's address or ids.

Unit tests on `Settings` and `load_settings` (temporal_connection.py), and the entry points
users run (`python -m launcher`, which `scripts/run` execs, and the worker and the API) started
with real credentials and every other setting missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.__main__ import server_config
from domain.operations import DEFAULT_POLL_SCHEDULE_SECONDS
from launcher import Ports, banner
from settings import (
    EMULATOR_PAYMENT_METHOD_ID,
    EMULATOR_WEBHOOK_SECRET,
    Settings,
)
from temporal_connection import counterparts, load_settings
from tests.support.servers import clean_env

REPO = Path(__file__).resolve().parent.parent
TOKEN = "publisher-token-of-a-settings-test"
MOLLIE_KEY = "test_settingstest0000000000000000"
FRONTEND_KEY = "frontend-key-" + "0123456789abcdef" * 2
# Everything real mode needs, so a test can leave out exactly what it is about.
COMPLETE: dict[str, str] = {
    "CLEENG_PUBLISHER_TOKEN": TOKEN,
    "CLEENG_BASE_URL": "https://api.sandbox.cleeng.com/3.1",
    "CLEENG_PAYMENT_METHOD_ID": "123456789",
    "CLEENG_WEBHOOK_SECRET": "webhook-secret-of-a-settings-test",
    "MOLLIE_API_KEY": MOLLIE_KEY,
    "MOLLIE_BASE_URL": "https://api.mollie.com",
    "FRONTEND_API_KEYS": FRONTEND_KEY,
    "FRONTEND_REDIRECT_ORIGINS": "https://shop.example.com",
}
SECRETS = (TOKEN, MOLLIE_KEY, FRONTEND_KEY, COMPLETE["CLEENG_WEBHOOK_SECRET"])
# What real credentials alone leave missing, each named in the one message.
MISSING_WITH_CREDENTIALS_ONLY = (
    "CLEENG_BASE_URL",
    "CLEENG_PAYMENT_METHOD_ID",
    "CLEENG_WEBHOOK_SECRET",
    "MOLLIE_BASE_URL",
    "FRONTEND_API_KEYS",
    "FRONTEND_REDIRECT_ORIGINS",
)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **{key.lower(): value for key, value in values.items()})


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with no connector setting and no `.env`, for `load_settings`."""
    monkeypatch.chdir(tmp_path)
    for key in set(Settings.model_fields) | {"PAYLOAD_ENCRYPTION_KEYS"}:
        monkeypatch.delenv(key.upper(), raising=False)
    return monkeypatch


def problem_lines(raised: pytest.ExceptionInfo[SystemExit]) -> list[str]:
    message = str(raised.value)
    header, *lines = message.splitlines()
    assert header == "configuration error:"
    return [line.strip() for line in lines]


def test_complete_real_settings_start() -> None:
    real = settings(**COMPLETE)
    assert not real.sandbox_mode
    assert real.cleeng_payment_method_id == 123456789


def test_sandbox_mode_keeps_the_emulator_defaults() -> None:
    sandbox = settings()
    assert sandbox.sandbox_mode
    assert sandbox.cleeng_base_url.startswith("http://127.0.0.1:")
    assert sandbox.mollie_base_url.startswith("http://127.0.0.1:")
    assert sandbox.cleeng_payment_method_id == EMULATOR_PAYMENT_METHOD_ID


@pytest.mark.parametrize("left_out", ["CLEENG_BASE_URL", "CLEENG_PAYMENT_METHOD_ID"])
def test_a_cleeng_token_needs_cleengs_address_and_payment_method_id(left_out: str) -> None:
    values = {key: value for key, value in COMPLETE.items() if key != left_out}
    with pytest.raises(ValidationError, match=f"{left_out} is required with CLEENG_PUBLISHER"):
        settings(**values)


def test_a_mollie_key_needs_mollies_address() -> None:
    values = {key: value for key, value in COMPLETE.items() if key != "MOLLIE_BASE_URL"}
    with pytest.raises(ValidationError, match="MOLLIE_BASE_URL is required with MOLLIE_API_KEY"):
        settings(**values)


def test_an_address_set_to_the_emulators_on_purpose_is_accepted() -> None:
    # The test stacks run real-mode settings against the emulators: set, not defaulted.
    emulated = Settings.model_fields["cleeng_base_url"].default
    assert settings(**{**COMPLETE, "CLEENG_BASE_URL": emulated}).cleeng_base_url == emulated


def test_each_counterpart_needs_its_own_address_only() -> None:
    # With only a Mollie key, Cleeng stays emulated: its address and ids keep their defaults.
    mollie_only = {k: v for k, v in COMPLETE.items() if not k.startswith("CLEENG_")}
    assert settings(**mollie_only, CLEENG_WEBHOOK_SECRET="x" * 20).cleeng_emulated
    # With only a Cleeng token, Mollie stays emulated.
    cleeng_only = {k: v for k, v in COMPLETE.items() if not k.startswith("MOLLIE_")}
    assert settings(**cleeng_only).mollie_emulated


def test_settings_name_every_problem_across_settings_at_once() -> None:
    with pytest.raises(ValidationError) as refused:
        settings(CLEENG_PUBLISHER_TOKEN=TOKEN, MOLLIE_API_KEY=MOLLIE_KEY)

    for setting in MISSING_WITH_CREDENTIALS_ONLY:
        assert f"{setting} is required" in str(refused.value)


def test_load_settings_lists_every_missing_setting_in_one_message(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("CLEENG_PUBLISHER_TOKEN", TOKEN)
    environment.setenv("MOLLIE_API_KEY", MOLLIE_KEY)

    with pytest.raises(SystemExit) as raised:
        load_settings()

    lines = problem_lines(raised)
    assert sorted(line.split()[0] for line in lines) == sorted(MISSING_WITH_CREDENTIALS_ONLY)
    assert not any(secret in str(raised.value) for secret in SECRETS)


def test_load_settings_lists_invalid_settings_with_the_missing_ones(
    environment: pytest.MonkeyPatch,
) -> None:
    # A setting that is wrong on its own does not hide the checks across settings.
    for key, value in COMPLETE.items():
        environment.setenv(key, value)
    environment.delenv("CLEENG_BASE_URL")
    environment.setenv("CLEENG_WEBHOOK_SECRET", "too-short")
    environment.setenv("CLEENG_PAYMENT_METHOD_ID", "not-a-number")
    environment.setenv("FRONTEND_API_KEYS", "short-key")
    environment.setenv("FRONTEND_REDIRECT_ORIGINS", "http://shop.example.com")

    with pytest.raises(SystemExit) as raised:
        load_settings()

    named = sorted(line.split()[0].removesuffix(":") for line in problem_lines(raised))
    assert named == sorted(
        [
            "CLEENG_BASE_URL",
            "CLEENG_PAYMENT_METHOD_ID",
            "CLEENG_WEBHOOK_SECRET",
            "FRONTEND_API_KEYS",
            "FRONTEND_REDIRECT_ORIGINS",
        ]
    )
    for value in ("too-short", "not-a-number", "short-key"):
        assert value not in str(raised.value)


def test_load_settings_names_the_emulators_public_secret_once(
    environment: pytest.MonkeyPatch,
) -> None:
    for key, value in COMPLETE.items():
        environment.setenv(key, value)
    environment.setenv("CLEENG_WEBHOOK_SECRET", EMULATOR_WEBHOOK_SECRET)
    environment.delenv("FRONTEND_REDIRECT_ORIGINS")

    with pytest.raises(SystemExit) as raised:
        load_settings()

    assert [line.split()[0].removesuffix(":") for line in problem_lines(raised)] == [
        "CLEENG_WEBHOOK_SECRET",
        "FRONTEND_REDIRECT_ORIGINS",
    ]


def test_load_settings_returns_complete_real_settings(environment: pytest.MonkeyPatch) -> None:
    for key, value in COMPLETE.items():
        environment.setenv(key, value)

    loaded = load_settings()

    assert type(loaded) is Settings
    assert loaded.cleeng_base_url == COMPLETE["CLEENG_BASE_URL"]


@pytest.mark.parametrize(
    "entry_point",
    [["launcher", "--data-dir", "data"], ["worker"], ["api"]],
    ids=["launcher", "worker", "api"],
)
def test_an_entry_point_started_with_credentials_only_names_every_missing_setting(
    entry_point: list[str], tmp_path: Path
) -> None:
    """`scripts/run` (which execs `python -m launcher`), the worker and the API, started in a
    directory without a `.env`, with real credentials and nothing else: one message, every
    missing setting named, no traceback and no secret; nothing is started."""
    env = {
        **clean_env(),
        "CLEENG_PUBLISHER_TOKEN": TOKEN,
        "MOLLIE_API_KEY": MOLLIE_KEY,
        "PYTHONPATH": str(REPO),
    }
    finished = subprocess.run(
        [sys.executable, "-m", *entry_point],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 1
    assert finished.stdout == ""
    header, *lines = finished.stderr.strip().splitlines()
    assert header == "configuration error:"
    assert sorted(line.split()[0] for line in lines) == sorted(MISSING_WITH_CREDENTIALS_ONLY)
    assert "Traceback" not in finished.stderr
    assert not any(secret in finished.stderr for secret in SECRETS)
    assert not (tmp_path / "data").exists()


def test_the_banner_shows_where_each_real_counterpart_is(tmp_path: Path) -> None:
    real = settings(**COMPLETE)

    shown = banner(real, Ports(), tmp_path)

    assert f"Cleeng              {COMPLETE['CLEENG_BASE_URL']}" in shown
    assert f"paymentMethodId {COMPLETE['CLEENG_PAYMENT_METHOD_ID']}" in shown
    assert f"Mollie              {COMPLETE['MOLLIE_BASE_URL']}" in shown
    assert "emulator" not in shown
    assert not any(secret in shown for secret in SECRETS)


def test_the_banner_shows_an_emulator_in_place_of_a_counterpart_without_credentials(
    tmp_path: Path,
) -> None:
    ports = Ports()
    mollie_only = {k: v for k, v in COMPLETE.items() if not k.startswith("CLEENG_")}
    real_mollie = settings(**mollie_only, CLEENG_WEBHOOK_SECRET=COMPLETE["CLEENG_WEBHOOK_SECRET"])

    shown = banner(real_mollie, ports, tmp_path)

    assert f"Mollie              {COMPLETE['MOLLIE_BASE_URL']}" in shown
    assert f"Cleeng emulator     http://127.0.0.1:{ports.cleeng}/" in shown


def test_each_process_logs_where_its_counterparts_are() -> None:
    line = counterparts(settings(**COMPLETE, TEMPORAL_ADDRESS="temporal.internal:7233"))

    assert line == (
        f"Cleeng at {COMPLETE['CLEENG_BASE_URL']} (real, paymentMethodId 123456789), "
        f"Mollie at {COMPLETE['MOLLIE_BASE_URL']} (real), "
        "Temporal at temporal.internal:7233 (namespace default)"
    )


def test_the_sandbox_banner_names_the_data_dir_the_demo_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demos find a stack by its data dir: the banner's demo line names a data dir other
    than the default, and leaves the default unsaid."""
    monkeypatch.chdir(tmp_path)
    sandbox = settings()

    other = banner(sandbox, Ports(), tmp_path / "stack-b")
    default = banner(sandbox, Ports(), (tmp_path / ".data").resolve())

    assert "scripts/demo_purchase.py --data-dir stack-b" in other
    assert (
        default.splitlines().count("  Or run all of it: .venv/bin/python scripts/demo_purchase.py")
        == 1
    )


def test_the_poll_schedule_is_read_comma_separated_and_defaults_to_the_domains() -> None:
    assert settings().payment_poll_schedule_seconds == DEFAULT_POLL_SCHEDULE_SECONDS
    assert settings(PAYMENT_POLL_SCHEDULE_SECONDS="5, 15,60").payment_poll_schedule_seconds == (
        5,
        15,
        60,
    )
    for unusable in ("", "0", "5,-1"):
        with pytest.raises(ValidationError, match="PAYMENT_POLL_SCHEDULE_SECONDS"):
            settings(PAYMENT_POLL_SCHEDULE_SECONDS=unusable)


def test_the_api_keeps_idle_connections_open_longer_than_a_load_balancer_does() -> None:
    """The server `python -m api` runs: uvicorn's own 5 s would close idle connections that a
    load balancer (60 s idle timeout is common) still reuses, and it would answer 502."""
    config = server_config(settings(), "127.0.0.1", 8000)
    assert config.timeout_keep_alive == 75
    longer = settings(API_KEEP_ALIVE_SECONDS="400")
    assert server_config(longer, "127.0.0.1", 8000).timeout_keep_alive == 400
    with pytest.raises(ValidationError, match="api_keep_alive_seconds"):
        settings(API_KEEP_ALIVE_SECONDS="0")
