"""What the shim's routes need, built once per app and reached through `request.app.state`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from api.temporal_access import TemporalAccess
from clients.cleeng import CleengClient
from settings import Settings


@dataclass(frozen=True)
class ShimServices:
    settings: Settings
    temporal: TemporalAccess
    cleeng: CleengClient


def services(request: Request) -> ShimServices:
    found: ShimServices = request.app.state.services
    return found
