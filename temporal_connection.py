"""How every process of the connector reaches Temporal.

The worker, the API, the operator CLI and the schedules all connect through here, so they
agree on the address, the namespace, how payloads are encoded and which interceptors run.
"""

from __future__ import annotations

import dataclasses
import logging

from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.service import RetryConfig

from codec.payload_codec import EncryptionCodec
from settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """How workflow inputs, results and signals become payloads in the history: encrypted
    with the current key of PAYLOAD_ENCRYPTION_KEYS when it is set. Failure messages and
    stack traces are encrypted too (a Mollie or Cleeng error may quote what it refused);
    failure types stay in clear, so an operator can still search and triage by them."""
    key_ring = settings.payload_key_ring()
    if key_ring is None:
        return DataConverter.default
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=EncryptionCodec(key_ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
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
    return []


async def connect_temporal(
    settings: Settings, *, retry_config: RetryConfig | None = None
) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        interceptors=client_interceptors(settings),
        retry_config=retry_config,
    )
