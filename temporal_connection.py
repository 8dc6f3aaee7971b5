"""How every process of the connector reaches Temporal.

The worker, the API, the operator CLI and the schedules all connect through here, so they
agree on the address, the namespace, how payloads are encoded and which interceptors run.
"""

from __future__ import annotations

from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.service import RetryConfig

from settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """How workflow inputs, results and signals become payloads in the history."""
    return DataConverter.default


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
