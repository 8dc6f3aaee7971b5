"""Where the connector's processes find Temporal: Temporal's environment configuration (a TOML
profile and the `TEMPORAL_*` variables) under the connector's own settings.

The connect config is checked as built (no TLS server is needed to see that a key, a
certificate or an API key reaches `Client.connect`), and one connection through a profile
goes to the real dev server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from temporal_connection import (
    TemporalConnectionSettingsError,
    client_connect_config,
    connect_temporal,
    load_settings,
)

API_KEY = "tcld-api-key-that-must-never-be-printed"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----\n"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nclient-cert\n-----END CERTIFICATE-----\n"
CA_PEM = "-----BEGIN CERTIFICATE-----\nprivate-ca\n-----END CERTIFICATE-----\n"


@pytest.fixture(autouse=True)
def no_temporal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: the machine's own TEMPORAL_* variables stay out."""
    for name in os.environ:
        if name.startswith("TEMPORAL_"):
            monkeypatch.delenv(name)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def pem_files(directory: Path) -> dict[str, Path]:
    files = {"cert": CERT_PEM, "key": KEY_PEM, "ca": CA_PEM}
    for name, text in files.items():
        (directory / f"{name}.pem").write_text(text)
    return {name: directory / f"{name}.pem" for name in files}


def test_nothing_configured_connects_in_plain_text_to_the_local_default() -> None:
    config = client_connect_config(settings())

    assert config == {"target_host": "127.0.0.1:7233", "namespace": "default"}


def test_api_key_from_the_environment_turns_tls_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "payments.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "payments.a1b2c")
    monkeypatch.setenv("TEMPORAL_API_KEY", API_KEY)

    config = client_connect_config(settings())

    assert config == {
        "target_host": "payments.a1b2c.tmprl.cloud:7233",
        "namespace": "payments.a1b2c",
        "api_key": API_KEY,
        "tls": True,
    }


def test_mtls_files_and_server_name_from_the_environment_are_read_into_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = pem_files(tmp_path)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.internal:7233")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(files["cert"]))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(files["key"]))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(files["ca"]))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "frontend.temporal.internal")

    config = client_connect_config(settings())

    assert config["target_host"] == "temporal.internal:7233"
    assert config["tls"] == TLSConfig(
        domain="frontend.temporal.internal",
        server_root_ca_cert=CA_PEM.encode(),
        client_cert=CERT_PEM.encode(),
        client_private_key=KEY_PEM.encode(),
    )
    assert "api_key" not in config


def test_pem_text_settings_need_no_files() -> None:
    config = client_connect_config(
        settings(
            temporal_tls_client_cert_data=CERT_PEM,
            temporal_tls_client_key_data=SecretStr(KEY_PEM),
        )
    )

    tls = config["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key) == (CERT_PEM.encode(), KEY_PEM.encode())
    assert tls.server_root_ca_cert is None


def test_tls_can_be_switched_off_for_an_api_key_behind_a_local_proxy() -> None:
    config = client_connect_config(
        settings(temporal_api_key=SecretStr(API_KEY), temporal_tls=False)
    )

    assert config["tls"] is False
    assert config["api_key"] == API_KEY


def test_a_profile_of_the_config_file_is_used_and_set_variables_outrank_it(
    tmp_path: Path,
) -> None:
    files = pem_files(tmp_path)
    config_file = tmp_path / "temporal.toml"
    config_file.write_text(
        f"""
[profile.default]
address = "localhost:7233"

[profile.production]
address = "temporal.prod.internal:7233"
namespace = "payments-prod"
[profile.production.tls]
client_cert_path = "{files["cert"]}"
client_key_path = "{files["key"]}"
server_name = "frontend.prod.internal"
"""
    )

    from_profile = client_connect_config(
        settings(temporal_config_file=str(config_file), temporal_profile="production")
    )
    overridden = client_connect_config(
        settings(
            temporal_config_file=str(config_file),
            temporal_profile="production",
            temporal_namespace="payments-staging",
        )
    )

    assert from_profile["target_host"] == "temporal.prod.internal:7233"
    assert from_profile["namespace"] == "payments-prod"
    assert from_profile["tls"] == TLSConfig(
        domain="frontend.prod.internal",
        client_cert=CERT_PEM.encode(),
        client_private_key=KEY_PEM.encode(),
    )
    assert overridden["namespace"] == "payments-staging"
    assert overridden["target_host"] == "temporal.prod.internal:7233"


def test_unreadable_client_key_names_the_setting_and_no_secret(tmp_path: Path) -> None:
    files = pem_files(tmp_path)
    missing = tmp_path / "gone" / "client.key"

    with pytest.raises(TemporalConnectionSettingsError) as raised:
        client_connect_config(
            settings(
                temporal_api_key=SecretStr(API_KEY),
                temporal_tls_client_cert_path=str(files["cert"]),
                temporal_tls_client_key_path=str(missing),
            )
        )

    message = str(raised.value)
    assert message.startswith("TEMPORAL_TLS_CLIENT_KEY_PATH: cannot read ")
    assert str(missing) in message
    assert API_KEY not in message
    assert "CERTIFICATE" not in message


def test_an_entry_point_stops_at_start_on_an_unreadable_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("TEMPORAL_API_KEY", API_KEY)
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(tmp_path / "ca.pem"))

    with pytest.raises(SystemExit) as raised:
        load_settings()

    message = str(raised.value)
    assert message.startswith("configuration error:\n  TEMPORAL_TLS_SERVER_CA_CERT_PATH: ")
    assert API_KEY not in message


def test_unreadable_file_of_a_profile_names_the_profile_key(tmp_path: Path) -> None:
    config_file = tmp_path / "temporal.toml"
    config_file.write_text(
        f"""
[profile.production]
api_key = "{API_KEY}"
[profile.production.tls]
server_ca_cert_path = "{tmp_path / "no-such-ca.pem"}"
"""
    )

    with pytest.raises(TemporalConnectionSettingsError) as raised:
        client_connect_config(
            settings(temporal_config_file=str(config_file), temporal_profile="production")
        )

    message = str(raised.value)
    assert message.startswith(
        "tls.server_ca_cert_path of profile 'production' in TEMPORAL_CONFIG_FILE: cannot read"
    )
    assert API_KEY not in message


def test_a_client_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    files = pem_files(tmp_path)

    with pytest.raises(TemporalConnectionSettingsError, match="go together"):
        client_connect_config(settings(temporal_tls_client_cert_path=str(files["cert"])))


def test_a_missing_config_file_is_an_error_not_the_local_default(tmp_path: Path) -> None:
    with pytest.raises(
        TemporalConnectionSettingsError, match=r"^TEMPORAL_CONFIG_FILE: cannot read"
    ):
        client_connect_config(settings(temporal_config_file=str(tmp_path / "temporal.toml")))


def test_a_profile_needs_its_file() -> None:
    with pytest.raises(TemporalConnectionSettingsError, match="TEMPORAL_CONFIG_FILE is not"):
        client_connect_config(settings(temporal_profile="production"))


def test_a_profile_missing_from_the_file_is_named(tmp_path: Path) -> None:
    config_file = tmp_path / "temporal.toml"
    config_file.write_text('[profile.default]\naddress = "localhost:7233"\n')

    with pytest.raises(TemporalConnectionSettingsError, match="'production'"):
        client_connect_config(
            settings(temporal_config_file=str(config_file), temporal_profile="production")
        )


def test_a_broken_config_file_is_reported_without_quoting_it(tmp_path: Path) -> None:
    config_file = tmp_path / "temporal.toml"
    # An unterminated string: the TOML parser's own message quotes the offending line.
    config_file.write_text(f'[profile.default]\napi_key = "{API_KEY}\n')

    with pytest.raises(TemporalConnectionSettingsError) as raised:
        client_connect_config(settings(temporal_config_file=str(config_file)))

    message = str(raised.value)
    assert message.startswith("TEMPORAL_CONFIG_FILE: ")
    assert "line 2" in message
    assert API_KEY not in message
    # Nor through the exception it replaced, which a traceback would print.
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


async def test_connects_where_the_profile_says(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = temporal_env.client.service_client.config.target_host
    assert address != Settings.model_fields["temporal_address"].default
    config_file = tmp_path / "temporal.toml"
    config_file.write_text(f'[profile.dev]\naddress = "{address}"\nnamespace = "default"\n')

    # Only the profile leads to the dev server: the connector's own default address does not.
    client = await connect_temporal(
        settings(temporal_config_file=str(config_file), temporal_profile="dev")
    )

    assert client.service_client.config.target_host == address
    assert await client.service_client.check_health()
