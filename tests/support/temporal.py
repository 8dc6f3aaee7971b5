"""Temporal helpers for tests."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client

from domain import search_attributes
from settings import Settings
from temporal_connection import data_converter


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """The time-skipping server starts without our custom attributes; add them."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in search_attributes.ALL
            },
        )
    )


def client_for(settings: Settings, client: Client) -> Client:
    """`client`'s connection, with the payload encoding `settings` give every process (the
    codec when PAYLOAD_ENCRYPTION_KEYS is set), as `connect_temporal` would build it."""
    config = client.config()
    config["data_converter"] = data_converter(settings)
    return Client(**config)
