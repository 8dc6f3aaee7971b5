"""How every process of the connector reaches Temporal.

The worker, the API, the operator CLI and the schedules all connect through here, so they
agree on the address, the namespace, how payloads are encoded and which interceptors run.

Where Temporal is comes from Temporal's own environment configuration (the variables and TOML
profiles the Temporal CLI and SDKs share: `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`, `TEMPORAL_CONFIG_FILE`, `TEMPORAL_PROFILE`), read through
the connector's settings so `.env` works for them as for everything else. The SDK merges a
profile with the variables (a variable wins); the connector then reads any certificate files
itself, so a path that cannot be read stops the process with the setting's name.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from pydantic import SecretStr
from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig, DataSource
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, TLSConfig

from codec.failure_converter import ClearTypeAndRedactedMessageFailureConverter
from codec.payload_codec import EncryptionCodec
from settings import KeyRing, Settings, settings_as_read
from telemetry.tracing import tracing_on
from telemetry.workflow_log_ids import WorkflowIdsInLogs


def data_converter(settings: Settings) -> DataConverter:
    """How workflow inputs, results and signals become payloads in the history: encrypted
    with the current key of PAYLOAD_ENCRYPTION_KEYS when it is set.

    Failures: each keeps in clear its type and its message, led by the type, with customer
    data redacted (emails, IBANs, Mollie customer and mandate ids, values quoted by a
    validation error); the whole message and the stack trace are encrypted in its
    `encoded_attributes`
    (`codec.failure_converter`). An operator acts on failure types and messages (the runbook),
    and the Temporal Web UI and CLI show a failure's headline and "Failure Message" from the
    clear fields only: with every message encrypted (Temporal's
    `DefaultFailureConverterWithEncodedAttributes`) both read "Encoded failure", even through
    the codec server. The connector itself reads the whole message back, as before."""
    return data_converter_for(settings.payload_key_ring())


def data_converter_for(key_ring: KeyRing | None) -> DataConverter:
    """`data_converter` for a key ring at hand (a tool reading a stack's own key file)."""
    if key_ring is None:
        return DataConverter.default
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=EncryptionCodec(key_ring),
        failure_converter_class=ClearTypeAndRedactedMessageFailureConverter,
    )


class ClearPayloadsRefused(SystemExit):
    """Real credentials, no PAYLOAD_ENCRYPTION_KEYS, and clear payloads not explicitly allowed."""


def check_payload_encryption(settings: Settings, logger: logging.Logger) -> None:
    """Called as the worker and the API start. Without keys, customer emails, names and
    Mollie customer/mandate ids would sit in clear in Temporal's history (and its backups)
    for the namespace's retention, and a cluster (or Temporal Cloud) operator could read them.

    - keys set: nothing to say;
    - sandbox mode (emulators, made-up customers): start, with a warning;
    - real credentials: refuse to start, unless ALLOW_CLEAR_PAYLOADS=true says on purpose
      that the history may hold them (then a warning at every start).

    This is checked here, not when the settings are read, because the launcher reads the
    settings first and only then supplies its own data dir's key to the processes it starts.
    """
    if settings.payload_encryption_keys is not None:
        return
    if settings.sandbox_mode or settings.allow_clear_payloads:
        logger.warning(
            "PAYLOAD_ENCRYPTION_KEYS is not set: workflow payloads (customer emails, names, "
            "Mollie customer and mandate ids) are stored in clear in Temporal's history%s",
            "" if settings.sandbox_mode else " (ALLOW_CLEAR_PAYLOADS=true)",
        )
        return
    raise ClearPayloadsRefused(
        "configuration error:\n  PAYLOAD_ENCRYPTION_KEYS is required with real credentials: "
        "without it customer data is stored in clear in Temporal's history (set "
        "ALLOW_CLEAR_PAYLOADS=true to start anyway)"
    )


def client_interceptors(settings: Settings) -> list[Interceptor]:
    """Interceptors on every client (and so on every worker built from it)."""
    return [WorkflowIdsInLogs(), *tracing_interceptors(settings)]


def tracing_interceptors(settings: Settings) -> list[Interceptor]:
    """With tracing on, the current span travels in the headers of workflow starts, signals,
    updates and activities, so the worker's spans join the trace of the request that caused
    them. Off, nothing is added to any call."""
    return [TracingInterceptor()] if tracing_on(settings) else []


# The settings handed to Temporal's loader under Temporal's own variable names (each field's
# environment name is its upper-cased name, the same for pydantic-settings and Temporal).
_ENVIRONMENT_CONFIG_FIELDS = (
    "temporal_api_key",
    "temporal_tls",
    "temporal_tls_client_cert_path",
    "temporal_tls_client_cert_data",
    "temporal_tls_client_key_path",
    "temporal_tls_client_key_data",
    "temporal_tls_server_ca_cert_path",
    "temporal_tls_server_ca_cert_data",
    "temporal_tls_server_name",
)
# Fields with a connector default: only a value someone set outranks a profile's.
_DEFAULTED_FIELDS = ("temporal_address", "temporal_namespace")


class TemporalConnectionSettingsError(ValueError):
    """The Temporal connection settings cannot be used. The message names the setting (or the
    profile key) and never carries a value that may be secret."""


async def connect_temporal(
    settings: Settings,
    *,
    retry_config: RetryConfig | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """`runtime`: the SDK runtime (e.g. one serving metrics, `telemetry.sdk_metrics`); the
    SDK's default when None."""
    return await Client.connect(
        **client_connect_config(settings),
        data_converter=data_converter(settings),
        interceptors=client_interceptors(settings),
        retry_config=retry_config,
        runtime=runtime,
    )


def client_connect_config(settings: Settings) -> ClientConnectConfig:
    """The arguments of `Client.connect` that say where Temporal is and how to authenticate:
    a profile of `TEMPORAL_CONFIG_FILE` (if set) under the `TEMPORAL_*` settings, with any
    certificate files already read. Raises `TemporalConnectionSettingsError`."""
    profile = _load_profile(settings)
    config: ClientConnectConfig = {
        "target_host": profile.address or settings.temporal_address,
        "namespace": profile.namespace or settings.temporal_namespace,
    }
    if profile.api_key is not None:
        config["api_key"] = profile.api_key
    tls = _tls(profile, settings)
    if tls is not None:
        config["tls"] = tls
    if profile.grpc_meta:
        config["rpc_metadata"] = profile.grpc_meta
    return config


def load_settings() -> Settings:
    """`Settings()` for a process's entry point: a configuration problem ends the process
    with one message listing every problem, a line each naming the setting (never its
    value), not a traceback, so one restart fixes them all.

    Besides the settings themselves (`settings.settings_as_read`), Temporal's connection
    settings can name files (a profile, certificates): they are read now, so a wrong one stops
    the process at its start rather than at its first connection (the API connects on its
    first request)."""
    read, problems = settings_as_read()
    if read is not None:
        try:
            client_connect_config(read)
        except TemporalConnectionSettingsError as error:
            problems.append(str(error))
    if problems:
        raise SystemExit(
            "configuration error:\n" + "\n".join(f"  {problem}" for problem in problems)
        )
    return Settings()


def counterparts(settings: Settings) -> str:
    """Where this process reaches Cleeng, Mollie and Temporal, for its start-up line: a
    wrong address shows at the start, not at the first payment."""
    temporal = client_connect_config(settings)
    cleeng = "emulator" if settings.cleeng_emulated else "real"
    mollie = "emulator" if settings.mollie_emulated else "real"
    return (
        f"Cleeng at {settings.cleeng_base_url} ({cleeng}, paymentMethodId "
        f"{settings.cleeng_payment_method_id}), Mollie at {settings.mollie_base_url} ({mollie}), "
        f"Temporal at {temporal['target_host']} (namespace {temporal['namespace']})"
    )


def _load_profile(settings: Settings) -> ClientConfigProfile:
    source: bytes | None = None
    if settings.temporal_config_file is not None:
        # Read here: Temporal's loader treats a missing file as an empty one, and a typo in
        # the path would quietly connect to the local default instead of the cluster.
        try:
            source = Path(settings.temporal_config_file).read_bytes()
        except OSError as exc:
            raise TemporalConnectionSettingsError(
                f"TEMPORAL_CONFIG_FILE: cannot read {settings.temporal_config_file} "
                f"({exc.strerror or type(exc).__name__})"
            ) from exc
    elif settings.temporal_profile is not None:
        raise TemporalConnectionSettingsError(
            "TEMPORAL_PROFILE is set but TEMPORAL_CONFIG_FILE is not: name the file that "
            "holds the profile"
        )
    try:
        return ClientConfigProfile.load(
            profile=settings.temporal_profile,
            config_source=source,
            # Only an explicit file: a service's configuration is its environment, not a
            # developer's ~/.config/temporalio/temporal.toml.
            disable_file=source is None,
            override_env_vars=_environment(settings),
        )
    except RuntimeError as exc:
        # The loader's first line says what is wrong (a missing profile, a TOML error's
        # line and column); the lines after it quote the file, which may hold an API key.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = "TEMPORAL_CONFIG_FILE" if source is not None else "TEMPORAL_* settings"
        raise TemporalConnectionSettingsError(f"{where}: {reason}") from None


def _environment(settings: Settings) -> dict[str, str]:
    """The settings that take part, as the environment Temporal's loader reads."""
    environment: dict[str, str] = {}
    for name in _DEFAULTED_FIELDS:
        if name in settings.model_fields_set:
            environment[name.upper()] = str(getattr(settings, name))
    for name in _ENVIRONMENT_CONFIG_FIELDS:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        if value is not None:
            environment[name.upper()] = value
    return environment


def _tls(profile: ClientConfigProfile, settings: Settings) -> bool | TLSConfig | None:
    """TLS as Temporal's environment configuration defines it: off when disabled, on with the
    given material when any TLS setting is present, on with system CAs for an API key alone."""
    if profile.tls is None:
        return True if profile.api_key is not None else None
    if profile.tls.disabled is True:
        return False
    client_cert = _read(profile.tls.client_cert, "client_cert", settings)
    client_key = _read(profile.tls.client_private_key, "client_key", settings)
    if (client_cert is None) != (client_key is None):
        raise TemporalConnectionSettingsError(
            "TEMPORAL_TLS_CLIENT_CERT_* and TEMPORAL_TLS_CLIENT_KEY_* (tls.client_cert_* and "
            "tls.client_key_* in a profile) go together: set both for mTLS, or neither"
        )
    return TLSConfig(
        domain=profile.tls.server_name,
        server_root_ca_cert=_read(profile.tls.server_root_ca_cert, "server_ca_cert", settings),
        client_cert=client_cert,
        client_private_key=client_key,
    )


def _read(source: DataSource | None, key: str, settings: Settings) -> bytes | None:
    """PEM bytes of one TLS source: the text itself, or the file a path names."""
    if source is None:
        return None
    if isinstance(source, bytes):
        return source
    if isinstance(source, str):
        return source.encode()
    try:
        return source.read_bytes()
    except OSError as exc:
        raise TemporalConnectionSettingsError(
            f"{_path_setting(key, settings)}: cannot read {source} "
            f"({exc.strerror or type(exc).__name__})"
        ) from exc


def _path_setting(key: str, settings: Settings) -> str:
    """Where a certificate path came from: the variable when it is set (it outranks any
    profile), else the key of the profile in the file."""
    variable = f"TEMPORAL_TLS_{key.upper()}_PATH"
    if getattr(settings, variable.lower()) is not None:
        return variable
    profile = settings.temporal_profile or "default"
    return f"tls.{key}_path of profile {profile!r} in TEMPORAL_CONFIG_FILE"
