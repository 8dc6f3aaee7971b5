"""The FastAPI shim: verify, map to a workflow, acknowledge. No business logic lives here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import cleeng_webhooks, mollie_webhooks, payment_details, purchases
from api.metrics import ShimMetrics
from api.services import ShimServices
from api.temporal_access import TemporalAccess
from clients.cleeng import CleengClient
from settings import Settings

logger = logging.getLogger(__name__)

DESCRIPTION = """
The Cleeng ⇄ Mollie payment connector. Front ends start purchases here; Cleeng and Mollie
deliver their webhooks here. Every call is turned into a Temporal workflow start or signal and
acknowledged as soon as Temporal has accepted it.
"""


def create_app(settings: Settings, temporal: TemporalAccess | None = None) -> FastAPI:
    temporal_access = temporal or TemporalAccess(
        settings.temporal_address, settings.temporal_namespace, settings.temporal_task_queue
    )
    cleeng = CleengClient(
        settings.cleeng_base_url,
        settings.effective_publisher_token,
        timeout_seconds=settings.cleeng_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await cleeng.aclose()

    app = FastAPI(
        title="Cleeng ⇄ Mollie connector",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = ShimServices(settings=settings, temporal=temporal_access, cleeng=cleeng)
    app.state.metrics = ShimMetrics()

    @app.middleware("http")
    async def limit_body_size(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Webhooks and front-end calls are small; a large body is a mistake or an attack.
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            return JSONResponse(
                {"detail": f"body larger than {settings.max_body_bytes} bytes"},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            )
        return await call_next(request)

    app.include_router(purchases.router)
    app.include_router(mollie_webhooks.router)
    app.include_router(cleeng_webhooks.router)
    app.include_router(payment_details.router)

    @app.get("/health", tags=["operations"], summary="Is Temporal reachable?")
    async def health() -> JSONResponse:
        healthy = await temporal_access.healthy()
        return JSONResponse(
            {"status": "ok" if healthy else "temporal unreachable"},
            status_code=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
