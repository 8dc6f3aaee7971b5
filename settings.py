"""The connector's settings: one object, read once from the environment (or `.env`).

With no real credentials configured the connector runs in *sandbox mode* against the bundled
Cleeng and Mollie emulators; set `CLEENG_PUBLISHER_TOKEN` and `MOLLIE_API_KEY` (and the base
URLs) to talk to Cleeng's sandbox and Mollie's test mode instead.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clients.cleeng_contract import DEFAULT_SIGNATURE_HEADER

EMULATOR_PUBLISHER_TOKEN = "emulator-publisher-token"
EMULATOR_MOLLIE_API_KEY = "test_emulator0000000000000000000000"
EMULATOR_WEBHOOK_SECRET = "emulator-webhook-secret-0123456789"
EMULATOR_PAYMENT_METHOD_ID = 555000001


class Settings(BaseSettings):
    """Everything the worker, the API and the launcher need to know."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True
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
    cleeng_signature_header: str = DEFAULT_SIGNATURE_HEADER
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
        default="terminate",
        description=(
            "How to terminate a subscription: 'terminate' = POST /3.1/subscriptions/{id}/"
            "terminate (the reference); 'patch' = the Connector Checklist's deprecated PATCH "
            "{status: terminated}"
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

    # API server
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = 64 * 1024

    @model_validator(mode="after")
    def _secrets_only_default_in_sandbox(self) -> Settings:
        # Real credentials must come with a real webhook secret: falling back to the
        # emulator's well-known secret in production would accept forged webhooks.
        if (
            not self.sandbox_mode
            and self.cleeng_webhook_secret is None
            and self.cleeng_webhook_verification
        ):
            raise ValueError(
                "CLEENG_WEBHOOK_SECRET is required when real credentials are configured"
            )
        return self

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
        """The per-payment webhookUrl: it carries the workflow id back to the shim."""
        base = self.connector_public_url.rstrip("/")
        return f"{base}/webhooks/mollie?workflow={quote(workflow_id, safe='')}"
