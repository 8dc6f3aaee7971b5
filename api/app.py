"""The FastAPI shim: verify, map to a workflow, acknowledge. No business logic lives here."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from api import cleeng_webhooks, mollie_webhooks, payment_details, purchase_methods, purchases
from api.frontend_auth import FrontendAuth
from api.limits import BoundedInput
from api.metrics import ShimMetrics
from api.schemas import Problem
from api.services import BoundedTtlCache, ShimServices
from api.temporal_access import TemporalAccess, TemporalUnavailable
from clients.cleeng import CleengClient
from offline_docs import serve_docs_offline
from settings import Settings

logger = logging.getLogger(__name__)

DESCRIPTION = """
The Cleeng ⇄ Mollie payment connector. Front ends start purchases here; Cleeng and Mollie
deliver their webhooks here. Every call is turned into a Temporal workflow start or signal and
acknowledged as soon as Temporal has accepted it.

The front-end API (`/purchases`, `/payment-details`) is for the publisher's backend: it sends
`Authorization: Bearer <key>` and names the customer it acts for (`X-Cleeng-Customer-Id`, or
the customer's Cleeng JWT in `X-Cleeng-Customer-Token` where the connector is configured for
it). Every request is bounded: body, headers, query string and JSON depth.
"""

# Answers the middleware (api/limits.py) and the framework give on any route, before the route
# runs: documented on every operation so the OpenAPI lists every status the shim returns.
APP_WIDE_RESPONSES: dict[str, dict[str, Any]] = {
    "400": {"description": "Unreadable body, or JSON nested too deep"},
    "413": {"description": "Body larger than MAX_BODY_BYTES"},
    "414": {"description": "Query string longer than MAX_QUERY_BYTES"},
    "431": {"description": "Too many or too large request headers"},
}
# Rate-limit refusals are logged per episode by their own dependency (api/services.py).
_NOT_LOGGED_PER_REQUEST = frozenset({status.HTTP_429_TOO_MANY_REQUESTS})
# Requests to these paths make no span: scrapes and probes would drown the payments.
_UNTRACED_PATHS = frozenset({"/health", "/metrics"})


def route_template(request: Request) -> str:
    """`/purchases/{orderId}`, not the concrete path: a metric label must not carry ids."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))


class Health(BaseModel):
    status: str


def create_app(settings: Settings, temporal: TemporalAccess | None = None) -> FastAPI:
    temporal_access = temporal or TemporalAccess(settings)
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
        # Served by offline_docs instead: FastAPI's own pages load from a CDN.
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry support: once the process has a tracer provider
        # (TRACING_EXPORTER, telemetry/tracing.py) each request gets a server span, the parent
        # of the workflow start or signal it makes; without one it does nothing. Its log
        # records (validation failures with the values sent) and its metrics stay off: the
        # shim's logs and /metrics are its own.
        telemetry={"exclude": untraced, "logs": False, "metrics": False},
    )
    serve_docs_offline(app, docs_url="/docs", redoc_url="/redoc", assets_url="/docs-assets")
    app.state.services = ShimServices(settings=settings, temporal=temporal_access, cleeng=cleeng)
    app.state.metrics = ShimMetrics()

    app.state.frontend_auth = FrontendAuth(settings)
    # Which customer each order belongs to, as Cleeng said: an order never changes hands, so
    # an answer spares Cleeng a call on every poll of GET /purchases/{orderId}.
    app.state.order_owners = BoundedTtlCache[str, str](ttl=math.inf, max_entries=10_000)
    app.add_middleware(
        BoundedInput,
        max_body_bytes=settings.max_body_bytes,
        max_header_count=settings.max_header_count,
        max_header_bytes=settings.max_header_bytes,
        max_query_bytes=settings.max_query_bytes,
        max_json_depth=settings.max_json_depth,
    )

    @app.exception_handler(StarletteHTTPException)
    async def log_refusal(request: Request, error: StarletteHTTPException) -> Response:
        # One line per refused request (never a traceback); the detail never holds secrets.
        if error.status_code == status.HTTP_503_SERVICE_UNAVAILABLE and isinstance(
            error.__cause__, TemporalUnavailable | RPCError
        ):
            app.state.metrics.temporal_unavailable.labels(route_template(request)).inc()
        if error.status_code not in _NOT_LOGGED_PER_REQUEST:
            logger.info(
                "refused %s %s: %d %s",
                request.method,
                request.url.path[:200],
                error.status_code,
                str(error.detail)[:300],
            )
        return await http_exception_handler(request, error)

    @app.exception_handler(RequestValidationError)
    async def log_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # Names the fields only: the values are whatever the caller sent.
        fields = ", ".join(
            ".".join(str(part) for part in problem.get("loc", ())) for problem in error.errors()
        )
        logger.info("refused %s %s: 422 %s", request.method, request.url.path[:200], fields)
        if route_template(request) == "/webhooks/mollie":
            app.state.metrics.webhooks.labels("mollie", "rejected").inc()
        return await request_validation_exception_handler(request, error)

    app.include_router(purchases.router)
    app.include_router(purchase_methods.router)
    app.include_router(mollie_webhooks.router)
    app.include_router(cleeng_webhooks.router)
    app.include_router(payment_details.router)

    @app.get(
        "/health",
        tags=["operations"],
        summary="Is Temporal reachable?",
        response_model=Health,
        responses={503: {"model": Health, "description": "Temporal unreachable"}},
    )
    async def health() -> JSONResponse:
        healthy = await temporal_access.healthy()
        return JSONResponse(
            {"status": "ok" if healthy else "temporal unreachable"},
            status_code=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            problem = {"$ref": "#/components/schemas/Problem"}
            schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
                "Problem", Problem.model_json_schema()
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.setdefault("responses", {})
                    for code, documented in APP_WIDE_RESPONSES.items():
                        responses.setdefault(
                            code,
                            {**documented, "content": {"application/json": {"schema": problem}}},
                        )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _UNTRACED_PATHS
