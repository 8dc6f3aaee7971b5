"""The connector's settings: one object, read once from the environment (or `.env`).

With no real credentials configured the connector runs in *sandbox mode* against the bundled
Cleeng and Mollie emulators; set `CLEENG_PUBLISHER_TOKEN` (with `CLEENG_BASE_URL` and
`CLEENG_PAYMENT_METHOD_ID`) and `MOLLIE_API_KEY` (with `MOLLIE_BASE_URL`) to talk to Cleeng's
sandbox and Mollie's test mode instead. `temporal_connection.load_settings` reports every
problem at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The bottom layer: this module imports none of the connector's own modules, and everything
# else may import it (tests/test_layers.py holds both). What needs more than the settings
# themselves lives above: e.g. `temporal_connection.load_settings`, which also reads the
# Temporal connection's files, and `temporal_connection.counterparts`.

EMULATOR_PUBLISHER_TOKEN = "emulator-publisher-token"
EMULATOR_MOLLIE_API_KEY = "test_emulator0000000000000000000000"
EMULATOR_WEBHOOK_SECRET = "emulator-webhook-secret-0123456789"
EMULATOR_PAYMENT_METHOD_ID = 555000001
# The front-end API key sandbox mode accepts when FRONTEND_API_KEYS is unset (the demo scripts
# and `scripts/run`'s printed demo send it). Public, like the other EMULATOR_* values: it is
# refused outside sandbox mode.
EMULATOR_FRONTEND_API_KEY = "sandbox-frontend-key-0123456789abcdef"

# Where the real counterparts are, for the messages that ask for them.
CLEENG_SANDBOX_URL = "https://api.sandbox.cleeng.com/3.1"
MOLLIE_API_URL = "https://api.mollie.com"

# Cleeng's `sharedSecret` for HMAC webhook verification is documented as 16 to 64 bytes.
WEBHOOK_SECRET_MIN_BYTES = 16
WEBHOOK_SECRET_MAX_BYTES = 64
# A front-end API key must be long enough not to be guessed (e.g. `openssl rand -hex 32`).
FRONTEND_API_KEY_MIN_CHARS = 32


# PAYLOAD_ENCRYPTION_KEYS: the key ring workflow payloads are encrypted with, read here so a
# malformed one is named with every other problem at start (codec/keys.py has the rest: new
# keys and the dev stack's key file). An ordered list of `id:base64key` entries,
# comma-separated; the first is the *current* key (every new payload is encrypted with it),
# every entry can decrypt.
KEY_BYTES = 32  # AES-256
# A key id travels in clear in every payload's metadata and in error messages: short, plain.
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class KeyRingError(ValueError):
    """The key setting is malformed. Its message names the entry, never the key material."""


@dataclass(frozen=True)
class KeyRing:
    """Known keys by id; `current_id` is the one new payloads are encrypted with."""

    current_id: str
    keys: dict[str, bytes]

    def __repr__(self) -> str:
        # The dataclass default would print the keys themselves.
        return f"KeyRing(current_id={self.current_id!r}, ids={list(self.keys)!r})"


def parse_key_ring(text: str) -> KeyRing:
    """`id:base64key[,id:base64key...]`, first = current. Each key must be 32 bytes."""
    setting = "PAYLOAD_ENCRYPTION_KEYS"
    keys: dict[str, bytes] = {}
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        raise KeyRingError(f"{setting} holds no key (expected id:base64key, ...)")
    for position, entry in enumerate(entries, start=1):
        key_id, separator, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not separator:
            raise KeyRingError(f"{setting}: entry {position} is not id:base64key")
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise KeyRingError(
                f"{setting}: entry {position} has a key id that is not 1-64 of A-Z a-z 0-9 . _ -"
            )
        if key_id in keys:
            raise KeyRingError(f"{setting}: key id {key_id!r} appears twice")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise KeyRingError(
                f"{setting}: key {key_id!r} is not valid base64"
            ) from None  # the value is a secret: no chained error that might quote it
        if len(key) != KEY_BYTES:
            raise KeyRingError(
                f"{setting}: key {key_id!r} is {len(key)} bytes, AES-256 needs {KEY_BYTES} "
                "(e.g. `openssl rand -base64 32`)"
            )
        keys[key_id] = key
    return KeyRing(current_id=entries[0].partition(":")[0].strip(), keys=keys)


class SettingProblem(NamedTuple):
    """One thing wrong with the settings: the setting it is about, and a message that starts
    with the setting's name and never shows its value."""

    setting: str
    message: str


class Settings(BaseSettings):
    """Everything the worker, the API and the launcher need to know."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        # A startup error names the setting and the rule, never the value: it may be a secret.
        hide_input_in_errors=True,
    )

    # Cleeng
    cleeng_base_url: str = Field(
        default="http://127.0.0.1:8102/3.1",
        description="Cleeng Core API base, e.g. https://api.sandbox.cleeng.com/3.1",
    )
    cleeng_publisher_token: SecretStr | None = Field(
        default=None, description="X-Publisher-Token; unset means sandbox mode (emulator)"
    )
    cleeng_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 secret Cleeng signs webhooks with"
    )
    # clients/cleeng_contract.py's DEFAULT_SIGNATURE_HEADER (tests/test_layers.py holds them
    # equal): the header name is not documented.
    cleeng_signature_header: str = "X-Cleeng-Signature"
    cleeng_webhook_verification: bool = Field(
        default=True,
        description="Switch off HMAC verification of Cleeng webhooks (sandbox only)",
    )
    cleeng_payment_method_id: int = Field(
        default=EMULATOR_PAYMENT_METHOD_ID,
        description="Cleeng paymentMethodId configured for Mollie",
    )
    cleeng_timeout_seconds: float = 10.0
    cleeng_termination_call: Literal["terminate", "patch"] = Field(
        default="patch",
        description=(
            "How to terminate a subscription: 'patch' = PATCH /3.1/subscriptions/{id} "
            "{status: terminated}, the call the Connector Checklist and the Termination guide "
            "name; 'terminate' = POST /3.1/subscriptions/{id}/terminate (terminate-subscription) "
            "with terminationType: paymentCancel, a body key the page does not show (inferred)"
        ),
    )
    cleeng_delete_deactivated_details: bool = Field(
        default=False,
        description="Delete payment details in Cleeng once they are deactivated (irreversible)",
    )

    # Mollie
    mollie_base_url: str = Field(
        default="http://127.0.0.1:8101",
        description="Mollie API host without /v2, e.g. https://api.mollie.com",
    )
    mollie_api_key: SecretStr | None = Field(
        default=None, description="Mollie API key test_... or live_...; unset = emulator"
    )
    mollie_timeout_seconds: float = 10.0
    mollie_threads: int = Field(
        default=16,
        ge=0,
        description=(
            "Threads the worker's Mollie client runs its blocking requests on, each keeping "
            "one connection to Mollie alive; 0 = the event loop's shared default executor "
            "(min(32, cpus + 4) threads) and the client's own connection pool. More threads "
            "than activity plus local activity slots are never all busy"
        ),
    )
    mollie_recurring_manual_capture: bool = Field(
        default=True,
        description="Authorise renewals with captureMode=manual; false = charge at capture",
    )

    # Where Mollie and Cleeng reach the connector (webhooks).
    connector_public_url: str = "http://127.0.0.1:8000"

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "cleeng-mollie"
    # A remote cluster or Temporal Cloud, through Temporal's own environment configuration:
    # the same variable names as the Temporal CLI and SDKs, and optionally a profile of a
    # TOML file (temporal_connection.py). TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE above
    # override the profile's when they are set.
    temporal_config_file: str | None = Field(
        default=None,
        description=(
            "TOML file of Temporal client profiles (Temporal's environment configuration); "
            "unset = no file (the CLI's default file in the home directory is not read)"
        ),
    )
    temporal_profile: str | None = Field(
        default=None,
        description="Profile of TEMPORAL_CONFIG_FILE to connect with; unset = 'default'",
    )
    temporal_api_key: SecretStr | None = Field(
        default=None,
        description="API key sent to Temporal (Temporal Cloud); set => TLS on by default",
    )
    temporal_tls: bool | None = Field(
        default=None,
        description=(
            "TLS towards Temporal: true / false; unset = on with an API key or TLS material, "
            "off otherwise"
        ),
    )
    temporal_tls_client_cert_path: str | None = Field(
        default=None, description="Client certificate (PEM file) for mTLS to Temporal"
    )
    temporal_tls_client_cert_data: str | None = Field(
        default=None, description="Client certificate (PEM text) for mTLS to Temporal"
    )
    temporal_tls_client_key_path: str | None = Field(
        default=None, description="Client private key (PEM file) for mTLS to Temporal"
    )
    temporal_tls_client_key_data: SecretStr | None = Field(
        default=None, description="Client private key (PEM text) for mTLS to Temporal"
    )
    temporal_tls_server_ca_cert_path: str | None = Field(
        default=None,
        description="CA (PEM file) that signed Temporal's server certificate; unset = system CAs",
    )
    temporal_tls_server_ca_cert_data: str | None = Field(
        default=None,
        description="CA (PEM text) that signed Temporal's server certificate; unset = system CAs",
    )
    temporal_tls_server_name: str | None = Field(
        default=None,
        description="Name to expect on Temporal's server certificate (SNI), if not the host's",
    )
    # How much one worker process takes on at once (Temporal's SDK default is 100 of each).
    worker_max_concurrent_activities: int = Field(
        default=64,
        ge=1,
        description="Activity tasks one worker process runs at once",
    )
    worker_max_concurrent_local_activities: int = Field(
        default=64,
        ge=1,
        description="Local activities (a renewal's steps) one worker process runs at once",
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        default=64,
        ge=2,  # the SDK's minimum with a workflow cache
        description=(
            "Workflow tasks one worker process holds at once; a task whose local activities "
            "are running holds its slot until they end"
        ),
    )
    worker_max_cached_workflows: int = Field(
        # The SDK's default. A cached cycle holds about 175 KB (its sandboxed modules), so
        # 10,000 waiting at once take 1.9 GB; raise it where memory allows
        # (docs/performance.md, "Tuning the worker").
        default=1_000,
        ge=0,
        description=(
            "Workflows one worker process keeps in memory between their tasks; a cycle "
            "pushed out is replayed from its history at its next webhook (0 = no cache)"
        ),
    )
    dev_server_cached_workflows: int = Field(
        default=16_384,
        ge=0,
        description=(
            "Workflows the embedded Temporal dev server keeps in its history cache "
            "(and 4 KiB of events each); 0 = the server's defaults (512 and 512 KiB)"
        ),
    )
    worker_processes: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Worker processes the launcher starts on the task queue",
    )
    workflow_sandbox_passthrough: bool = Field(
        default=True,
        description=(
            "Load the workflows' pure modules (domain, contract constants, workflow helpers) "
            "once per worker instead of once per workflow run"
        ),
    )
    renewal_compact_history: bool = Field(
        default=True,
        description=(
            "Run a renewal's steps as local activities and set its search attributes once "
            "(about half the history events); false = one activity task per step"
        ),
    )

    # Reconciliation (a Temporal Schedule: `python -m connector_ops schedules ensure`)
    reconciliation_interval_minutes: int = Field(
        default=60,
        ge=0,
        description=(
            "How often the reconciliation schedule checks Mollie against Cleeng and releases "
            "orphan holds; 0 = the schedule is paused"
        ),
    )
    reconciliation_window_hours: int = Field(
        default=72,
        ge=1,
        description="How far back each reconciliation run reads Mollie's payments",
    )

    # Telemetry: logs, traces, the worker's SDK metrics (docs/operating.md, "Telemetry")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description=(
            "How every process writes its log lines: 'text' for a person at a terminal, "
            "'json' (one object a line, with workflow, activity and business ids) for a "
            "log pipeline; both are redacted of secrets and customer data"
        ),
    )
    tracing_exporter: Literal["none", "console", "otlp"] = Field(
        default="none",
        description=(
            "Where OpenTelemetry spans go: 'none' (no tracing), 'console' (stdout) or 'otlp' "
            "(OTLP over HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318)"
        ),
    )
    worker_metrics_address: str = Field(
        default="",
        description=(
            "host:port where a worker serves the Temporal SDK's Prometheus metrics (workflow, "
            "activity and worker series); empty = none. The launcher gives each worker its own"
        ),
    )

    # API server
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        description=(
            "how long the API keeps an idle HTTP connection open; longer than the idle timeout "
            "of any load balancer or proxy in front (60 s is common), or the proxy can send a "
            "request on a connection the API is closing and answer it 502"
        ),
    )
    max_body_bytes: int = 64 * 1024
    purchase_answer_seconds: float = Field(
        default=10.0,
        gt=0,
        le=25,
        description="How long POST /purchases and POST /payment-details wait for the checkout "
        "before answering 202 (the front end then polls); well inside a browser's or CDN's 30 s",
    )

    payment_poll_schedule_seconds: Annotated[tuple[int, ...], NoDecode] = Field(
        # domain.operations.DEFAULT_POLL_SCHEDULE_SECONDS (settings import nothing of the
        # connector; tests/test_settings.py keeps the two equal).
        default=(60, 300, 900, 3600),
        description=(
            "Seconds between looks at a Mollie payment whose webhook has not come, comma-"
            "separated: one per look, the last repeated (doubling up to 6 hours); given to each "
            "workflow the shim starts"
        ),
    )

    # Webhook defences: a token bucket per source address on each webhook endpoint,
    # and the shim's bounded in-memory tables for routing Mollie webhooks by what Mollie says.
    webhook_rate_limit_per_second: float = Field(
        default=100.0,
        gt=0,
        description="Webhook requests per second one source address may sustain, per endpoint",
    )
    webhook_rate_limit_burst: int = Field(
        default=1000,
        ge=1,
        description="Webhook requests one source address may send at once, per endpoint",
    )
    mollie_webhook_negative_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a Mollie id that is not ours (or unknown) is answered from memory",
    )
    mollie_webhook_coalesce_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Window in which one payment status is signalled into its workflow once",
    )
    webhook_cache_max_entries: int = Field(
        default=10_000,
        ge=1,
        description="Bound on each of the shim's webhook tables (answers, signals, sources)",
    )

    # --- Front door: front-end API authentication, bounded input --------------------------
    # Who may call the front-end API (api/frontend_auth.py), for which customer, and where
    # Mollie may send shoppers back to. Lists are comma-separated in the environment.
    frontend_api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(),
        description=(
            "Keys the publisher's backend sends as `Authorization: Bearer <key>`, comma-"
            "separated (several at once for rotation); required outside sandbox mode"
        ),
    )
    frontend_redirect_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "Origins (scheme://host[:port]) a redirectUrl may point to, comma-separated; "
            "required outside sandbox mode, where the connector's own origin is the default"
        ),
    )
    cleeng_customer_jwt_keys: str | None = Field(
        default=None,
        description=(
            "JWKS (JSON) of the public keys that sign Cleeng customer JWTs, e.g. the document "
            "at Cleeng's /.well-known/jwks.json; set => every front-end call must carry the "
            "customer's JWT in X-Cleeng-Customer-Token"
        ),
    )
    cleeng_publisher_id: int | None = Field(
        default=None,
        gt=0,
        description="Cleeng publisherId; a customer JWT must carry it (required with JWT keys)",
    )
    max_header_count: int = Field(default=64, ge=8, description="More request headers: 431")
    max_header_bytes: int = Field(
        default=8192, ge=1024, description="Larger request headers (names + values): 431"
    )
    max_query_bytes: int = Field(default=2048, ge=64, description="Longer query strings: 414")
    max_json_depth: int = Field(default=32, ge=2, description="Deeper JSON bodies: 400")

    # --- Encrypted history (codec/) -------------------------------------------------------
    # Workflow payloads carry customer emails, names and Mollie customer/mandate ids; with
    # keys set, Temporal stores them AES-GCM encrypted and the codec server decrypts them for
    # the Web UI and the CLI.
    payload_encryption_keys: SecretStr | None = Field(
        default=None,
        description=(
            "Keys that encrypt workflow payloads in Temporal's history: comma-separated "
            "`id:base64key` entries (32-byte keys, e.g. `openssl rand -base64 32`); the first "
            "encrypts, every one decrypts. Unset: the launcher makes one in its data dir; a "
            "worker or API with real credentials refuses to start (see ALLOW_CLEAR_PAYLOADS)"
        ),
    )
    allow_clear_payloads: bool = Field(
        default=False,
        description=(
            "Let the worker and the API start with real credentials and no "
            "PAYLOAD_ENCRYPTION_KEYS, storing customer data in clear in Temporal's history"
        ),
    )
    codec_server_cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("http://127.0.0.1:8233", "http://localhost:8233"),
        description=(
            "Origins of the Temporal Web UI allowed to call the codec server, comma-separated "
            "(the launcher sets its own UI's); requests from any other origin get 403"
        ),
    )
    codec_server_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token the codec server requires (`Authorization: Bearer <token>`, at least "
            "32 characters); required to listen on anything but loopback"
        ),
    )

    @field_validator(
        "frontend_api_keys",
        "frontend_redirect_origins",
        "codec_server_cors_origins",
        "payment_poll_schedule_seconds",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("payment_poll_schedule_seconds")
    @classmethod
    def _poll_schedule_usable(cls, schedule: tuple[int, ...]) -> tuple[int, ...]:
        if not schedule or any(seconds <= 0 for seconds in schedule):
            raise ValueError(
                "PAYMENT_POLL_SCHEDULE_SECONDS: one or more positive numbers of seconds, "
                "comma-separated (e.g. 60,300,900,3600)"
            )
        return schedule

    @field_validator("frontend_api_keys")
    @classmethod
    def _keys_long_enough(cls, keys: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for position, key in enumerate(keys, start=1):
            if len(key.get_secret_value()) < FRONTEND_API_KEY_MIN_CHARS:
                raise ValueError(
                    f"FRONTEND_API_KEYS: key {position} is shorter than "
                    f"{FRONTEND_API_KEY_MIN_CHARS} characters (use e.g. `openssl rand -hex 32`)"
                )
        return keys

    @field_validator("frontend_redirect_origins")
    @classmethod
    def _origins_well_formed(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(
            _origin_of(origin, "FRONTEND_REDIRECT_ORIGINS", bare=True) for origin in origins
        )

    @field_validator("codec_server_cors_origins")
    @classmethod
    def _codec_origins_well_formed(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(
            _origin_of(origin, "CODEC_SERVER_CORS_ORIGINS", bare=True) for origin in origins
        )

    @field_validator("payload_encryption_keys")
    @classmethod
    def _key_ring_readable(cls, keys: SecretStr | None) -> SecretStr | None:
        if keys is not None:
            parse_key_ring(keys.get_secret_value())
        return keys

    @field_validator("codec_server_token")
    @classmethod
    def _codec_token_long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < FRONTEND_API_KEY_MIN_CHARS:
            raise ValueError(
                f"CODEC_SERVER_TOKEN is shorter than {FRONTEND_API_KEY_MIN_CHARS} characters "
                "(use e.g. `openssl rand -hex 32`)"
            )
        return token

    @field_validator("cleeng_webhook_secret")
    @classmethod
    def _secret_length_as_cleeng_documents(cls, secret: SecretStr | None) -> SecretStr | None:
        # Cleeng's HMAC verification takes a sharedSecret of 16-64 bytes; a shorter one is
        # guessable, a longer one Cleeng would not accept when the webhook is registered.
        if secret is None:
            return None
        size = len(secret.get_secret_value().encode())
        if not WEBHOOK_SECRET_MIN_BYTES <= size <= WEBHOOK_SECRET_MAX_BYTES:
            raise ValueError(
                f"CLEENG_WEBHOOK_SECRET must be {WEBHOOK_SECRET_MIN_BYTES} to "
                f"{WEBHOOK_SECRET_MAX_BYTES} bytes (Cleeng's sharedSecret), got {size}"
            )
        return secret

    @field_validator("cleeng_customer_jwt_keys")
    @classmethod
    def _jwt_keys_readable(cls, text: str | None) -> str | None:
        if text is not None:
            _public_jwks(text)
        return text

    @model_validator(mode="after")
    def _every_problem_at_once(self) -> Settings:
        # One refusal naming every problem, so going live takes one restart, not one per
        # missing setting. Each line names its setting and never a value.
        problems = self.problems_across_settings()
        if problems:
            raise ValueError("\n".join(problem.message for problem in problems))
        return self

    def problems_across_settings(self) -> list[SettingProblem]:
        """What is wrong with the settings taken together: outside sandbox mode nothing falls
        back to a public default or to an emulator's address, so every such gap is named at
        start-up instead of surfacing as an open door or a wrong counterpart later."""
        problems: list[SettingProblem] = []

        def problem(setting: str, message: str) -> None:
            problems.append(SettingProblem(setting, f"{setting}{message}"))

        explicit = self.model_fields_set
        # Each real counterpart needs its address and ids set on purpose: their defaults are
        # the emulators' (the launcher points an emulated service at its emulator itself).
        if not self.cleeng_emulated:
            if "cleeng_base_url" not in explicit:
                problem(
                    "CLEENG_BASE_URL",
                    f" is required with CLEENG_PUBLISHER_TOKEN, e.g. {CLEENG_SANDBOX_URL} "
                    "(its default is the emulator's address)",
                )
            if "cleeng_payment_method_id" not in explicit:
                problem(
                    "CLEENG_PAYMENT_METHOD_ID",
                    " is required with CLEENG_PUBLISHER_TOKEN: the paymentMethodId Cleeng "
                    "gave this connector's Mollie payment method (its default is the "
                    "emulator's)",
                )
        if not self.mollie_emulated and "mollie_base_url" not in explicit:
            problem(
                "MOLLIE_BASE_URL",
                f" is required with MOLLIE_API_KEY: {MOLLIE_API_URL} (its default is the "
                "emulator's address)",
            )
        if not self.sandbox_mode:
            if not self.cleeng_webhook_verification:
                problem(
                    "CLEENG_WEBHOOK_VERIFICATION",
                    "=false is only allowed in sandbox mode (no CLEENG_PUBLISHER_TOKEN and no "
                    "MOLLIE_API_KEY): with real credentials unsigned webhooks would be accepted",
                )
            if self.cleeng_webhook_secret is None:
                # Falling back to the emulator's well-known secret would accept forged webhooks.
                problem(
                    "CLEENG_WEBHOOK_SECRET", " is required when real credentials are configured"
                )
            if self.cleeng_webhook_secret is not None and (
                self.cleeng_webhook_secret.get_secret_value() == EMULATOR_WEBHOOK_SECRET
            ):
                problem(
                    "CLEENG_WEBHOOK_SECRET",
                    ": the emulator's public secret is refused with real credentials",
                )
            if not self.frontend_api_keys:
                problem(
                    "FRONTEND_API_KEYS",
                    " is required when real credentials are configured (the sandbox key is "
                    "refused there)",
                )
            elif any(
                k.get_secret_value() == EMULATOR_FRONTEND_API_KEY for k in self.frontend_api_keys
            ):
                problem(
                    "FRONTEND_API_KEYS",
                    ": the public sandbox key is refused with real credentials",
                )
            if not self.frontend_redirect_origins:
                problem(
                    "FRONTEND_REDIRECT_ORIGINS",
                    " is required when real credentials are configured",
                )
            plain = [o for o in self.frontend_redirect_origins if not o.startswith("https://")]
            if plain:
                problem(
                    "FRONTEND_REDIRECT_ORIGINS",
                    f": only https origins with real credentials, got {', '.join(plain)}",
                )
        if self.cleeng_customer_jwt_keys is not None and self.cleeng_publisher_id is None:
            problem(
                "CLEENG_PUBLISHER_ID",
                " is required with CLEENG_CUSTOMER_JWT_KEYS: a customer JWT is only accepted "
                "for this publisher",
            )
        return problems

    @property
    def effective_frontend_api_keys(self) -> tuple[str, ...]:
        """The keys the front-end API accepts; the public sandbox key only in sandbox mode."""
        if self.frontend_api_keys:
            return tuple(key.get_secret_value() for key in self.frontend_api_keys)
        return (EMULATOR_FRONTEND_API_KEY,) if self.sandbox_mode else ()

    @property
    def effective_redirect_origins(self) -> tuple[str, ...]:
        """Where a redirectUrl may point; in sandbox mode by default the connector itself,
        at its public URL and on loopback (the demo sends shoppers back to the API's pages)."""
        if self.frontend_redirect_origins:
            return self.frontend_redirect_origins
        if self.sandbox_mode:
            public = _origin_of(self.connector_public_url, "CONNECTOR_PUBLIC_URL")
            return tuple(dict.fromkeys((public, f"http://127.0.0.1:{self.api_port}")))
        return ()

    def customer_jwt_keys(self) -> tuple[PyJWK, ...]:
        """The public keys Cleeng customer JWTs are verified with (none: JWTs not used)."""
        if self.cleeng_customer_jwt_keys is None:
            return ()
        return _public_jwks(self.cleeng_customer_jwt_keys)

    @property
    def cleeng_emulated(self) -> bool:
        """No Cleeng token: the launcher starts the Cleeng emulator in its place."""
        return self.cleeng_publisher_token is None

    @property
    def mollie_emulated(self) -> bool:
        """No Mollie key: the launcher starts the Mollie emulator in its place."""
        return self.mollie_api_key is None

    @property
    def sandbox_mode(self) -> bool:
        """True when no real credentials are set: talk to the bundled emulators."""
        return self.cleeng_emulated and self.mollie_emulated

    @property
    def effective_publisher_token(self) -> str:
        if self.cleeng_publisher_token is not None:
            return self.cleeng_publisher_token.get_secret_value()
        return EMULATOR_PUBLISHER_TOKEN

    def payload_key_ring(self) -> KeyRing | None:
        """The keys workflow payloads are encrypted with; None: payloads are stored in clear."""
        if self.payload_encryption_keys is None:
            return None
        return parse_key_ring(self.payload_encryption_keys.get_secret_value())

    @property
    def effective_mollie_api_key(self) -> str:
        if self.mollie_api_key is not None:
            return self.mollie_api_key.get_secret_value()
        return EMULATOR_MOLLIE_API_KEY

    @property
    def effective_webhook_secret(self) -> str:
        """The Cleeng webhook secret; empty means every signed webhook is refused."""
        if self.cleeng_webhook_secret is not None:
            return self.cleeng_webhook_secret.get_secret_value()
        return EMULATOR_WEBHOOK_SECRET if self.sandbox_mode else ""

    def mollie_webhook_url(self, workflow_id: str) -> str:
        """The per-payment webhookUrl. It names no workflow: the shim routes each webhook by
        the payment's own metadata at Mollie, never by anything the caller sends
        (`workflow_id` stays in the signature so callers need not change)."""
        del workflow_id
        return f"{self.connector_public_url.rstrip('/')}/webhooks/mollie"


class _SettingsAsRead(Settings):
    """The settings with each one checked on its own, not yet against the others:
    `settings_as_read` runs the checks across settings itself, so that it can report their
    problems together with those of single settings."""

    @model_validator(mode="after")
    def _every_problem_at_once(self) -> _SettingsAsRead:
        return self


def settings_as_read() -> tuple[Settings | None, list[str]]:
    """The settings from the environment (or `.env`), with every problem found in them: a
    line each naming the setting (never its value), those of single settings and those across
    settings. With problems, the settings returned hold the unusable ones at their defaults,
    so that later checks can still run (None: not even that could be built).
    `temporal_connection.load_settings` is what a process's entry point calls."""
    problems: list[str] = []
    named: set[str] = set()
    try:
        read = _SettingsAsRead()
    except ValidationError as error:
        unusable: dict[str, Any] = {}
        for problem in error.errors():
            setting = "_".join(str(part) for part in problem["loc"]).upper()
            message = problem["msg"].removeprefix("Value error, ")
            in_message = not setting or message.startswith(setting)
            problems.append(message if in_message else f"{setting}: {message}")
            if problem["loc"] and str(problem["loc"][0]) in Settings.model_fields:
                field = str(problem["loc"][0])
                named.add(field.upper())
                default = Settings.model_fields[field].get_default(call_default_factory=True)
                unusable[field] = default
        # The checks across settings run too, with the unusable settings at their defaults
        # (a problem about a setting already named is not repeated).
        try:
            read = _SettingsAsRead(**unusable)
        except ValidationError:
            return None, problems
    problems += [
        problem.message
        for problem in read.problems_across_settings()
        if problem.setting not in named
    ]
    return read, problems


def _origin_of(url: str, setting: str, *, bare: bool = False) -> str:
    """`scheme://host[:port]` of a URL, lower-cased, default port dropped. `bare`: the value
    must be an origin itself (no path, query, fragment or user info)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{setting}: {url!r} is not a URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{setting}: {url!r} must be an http(s) URL with a host")
    if bare and (parts.path not in ("", "/") or parts.query or parts.fragment or parts.username):
        raise ValueError(f"{setting}: {url!r} must be an origin: scheme://host[:port], no path")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    suffix = f":{port}" if port is not None and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


def _public_jwks(text: str) -> tuple[PyJWK, ...]:
    """Parse CLEENG_CUSTOMER_JWT_KEYS: a JWKS of public, asymmetric keys only. A symmetric
    ("oct") key or a private key would make the verifier able to mint customer tokens."""
    setting = "CLEENG_CUSTOMER_JWT_KEYS"
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{setting} must be a JWKS JSON document ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(f'{setting} must be a JWKS JSON document: {{"keys": [...]}}')
    for key in document["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC", "OKP"):
            raise ValueError(f"{setting}: only RSA, EC or OKP public keys are accepted")
        if "d" in key:
            raise ValueError(f"{setting}: key {key.get('kid')!r} is a private key")
    try:
        return tuple(PyJWKSet.from_dict(document))
    except (PyJWKError, PyJWKSetError) as exc:
        raise ValueError(f"{setting}: {exc}") from exc
