"""The codec server: Temporal's remote-codec HTTP protocol over the connector's payload codec.

The Temporal Web UI (from the browser) and the `temporal` CLI (`--codec-endpoint`) send the
payloads of a history here and show what comes back:

    POST /decode   {"payloads": [<Payload as protobuf JSON>, ...]}   -> same shape, opened
    POST /encode   same, sealed with the current key (a signal or start typed into the UI)

Whoever can call it can read every customer's data in the history, so it is shut to
everyone else: it listens on loopback unless a bearer token is configured, requires that
token when one is, answers only the configured Web UI origins (a page from any other origin
gets 403, even for requests a browser would send without asking), and serves one namespace.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI, Request, Response, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from codec.payload_codec import EncryptionCodec, PayloadDecryptionError

logger = logging.getLogger(__name__)

# A page of a long history is well below this; anything larger is not the Web UI.
MAX_BODY_BYTES = 8 * 1024 * 1024
NAMESPACE_HEADER = "X-Namespace"


@dataclass(frozen=True)
class CodecServerConfig:
    codec: EncryptionCodec
    namespace: str
    allowed_origins: tuple[str, ...]
    # None: no token asked (the server must then listen on loopback only; see __main__).
    token: str | None = field(default=None, repr=False)


class CodecRequestRefused(Exception):
    """A request the server will not serve; answered as `{"detail": ...}` with its status."""

    def __init__(
        self, status_code: int, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers or {}


def create_app(config: CodecServerConfig) -> FastAPI:
    app = FastAPI(
        title="Cleeng ⇄ Mollie connector: codec server",
        description=__doc__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def authorized(request: Request) -> None:
        if config.token is None:
            return
        sent = request.headers.get("authorization", "")
        scheme, _, token = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), config.token.encode()
        ):
            raise CodecRequestRefused(
                status.HTTP_401_UNAUTHORIZED,
                "a valid `Authorization: Bearer <CODEC_SERVER_TOKEN>` is required",
                {"WWW-Authenticate": "Bearer"},
            )

    def own_namespace(request: Request) -> None:
        # The Web UI names the namespace it shows; the keys belong to this one only.
        namespace = request.headers.get(NAMESPACE_HEADER)
        if namespace is not None and namespace != config.namespace:
            raise CodecRequestRefused(
                status.HTTP_403_FORBIDDEN,
                f"this codec server serves namespace {config.namespace!r} only",
            )

    async def payloads_of(request: Request) -> Payloads:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise CodecRequestRefused(
                status.HTTP_413_CONTENT_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes"
            )
        try:
            return json_format.Parse(body, Payloads())
        except json_format.ParseError as exc:
            raise CodecRequestRefused(
                status.HTTP_400_BAD_REQUEST,
                f'body must be {{"payloads": [...]}} in protobuf JSON ({exc})',
            ) from None

    guards = [Depends(authorized), Depends(own_namespace)]

    @app.post("/decode", dependencies=guards)
    async def decode(request: Request) -> Response:
        payloads = await payloads_of(request)
        try:
            opened = await config.codec.decode(payloads.payloads)
        except PayloadDecryptionError as exc:
            # The message names the key id, never key material or payload content.
            logger.warning("decode refused: %s", exc)
            raise CodecRequestRefused(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        return _payloads_response(opened)

    @app.post("/encode", dependencies=guards)
    async def encode(request: Request) -> Response:
        payloads = await payloads_of(request)
        return _payloads_response(await config.codec.encode(payloads.payloads))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(CodecRequestRefused)
    async def refused(request: Request, exc: CodecRequestRefused) -> Response:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(config.allowed_origins),
        allow_methods=["POST"],
        allow_headers=["Content-Type", "Authorization", NAMESPACE_HEADER],
        max_age=600,
    )

    allowed = frozenset(config.allowed_origins)

    # Added last, so it runs first (before CORS answers a preflight). A browser names the
    # page's origin on every POST and preflight, so a page that is not the Web UI (or a DNS
    # rebinding of this port under another name) is refused outright: CORS alone would only
    # hide the answer from it, after the request had been served.
    @app.middleware("http")
    async def only_the_web_ui(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/").lower() not in allowed:
            return JSONResponse(
                {"detail": "origin not allowed (CODEC_SERVER_CORS_ORIGINS)"},
                status.HTTP_403_FORBIDDEN,
            )
        return await call_next(request)

    return app


def _payloads_response(payloads: Sequence[Payload]) -> Response:
    # Built field by field: MessageToDict leaves out an empty list, and the protocol's
    # callers expect the `payloads` key in every answer.
    return JSONResponse({"payloads": [json_format.MessageToDict(p) for p in payloads]})
