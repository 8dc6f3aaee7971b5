"""Interactive API docs (Swagger UI, ReDoc) that work with no network.

FastAPI's own `/docs` and `/redoc` pages load their JavaScript and CSS from a CDN, so offline
(development, demos, CI) they are blank pages. The pages built here are the same ones, made by
FastAPI's `get_swagger_ui_html` / `get_redoc_html`, but pointing at the Swagger UI and ReDoc
dist files that the pinned `fastapi-offline` package installs, served by the app itself.

The API and both emulators use it. It imports nothing but FastAPI and Starlette, so the
emulators still share no code with the connector's clients.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

# Where the installed package keeps the dist files: swagger-ui-bundle.js, swagger-ui.css,
# redoc.standalone.js and favicon.png.
ASSET_PACKAGE = ("fastapi_offline", "static")

# Swagger UI's default validator is a public web service; nothing here may call out.
_SWAGGER_UI_OFFLINE_PARAMETERS: dict[str, Any] = {"validatorUrl": None}

# ReDoc's sidebar always shows its vendor's logo from the vendor's CDN (the bundle has no
# option to drop it; offline the image just fails and is hidden). The browser is told to load
# images from this server and inline data only, so the page never calls out, online or not.
# Scripts and styles stay unrestricted: both bundles use inline ones.
_IMAGES_FROM_HERE_ONLY = "img-src 'self' data:"


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _IMAGES_FROM_HERE_ONLY
    return page


def serve_docs_offline(
    app: FastAPI,
    *,
    docs_url: str,
    redoc_url: str | None,
    assets_url: str,
) -> None:
    """Serve Swagger UI at `docs_url` (and ReDoc at `redoc_url`, unless None) with every
    asset under `assets_url`, all from this app.

    The app must be built with `docs_url=None, redoc_url=None`, so FastAPI does not also add
    its CDN-backed pages; the OAuth2 redirect page goes to `app.swagger_ui_oauth2_redirect_url`
    as FastAPI would put it.
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None and redoc_url=None")
    if app.openapi_url is None:
        raise ValueError("the docs pages need the app's OpenAPI document (openapi_url)")
    openapi_url = app.openapi_url
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
    app.mount(assets_url, StaticFiles(packages=[ASSET_PACKAGE]), name="docs-assets")

    def root_of(request: Request) -> str:
        # Behind a proxy that strips a prefix, every URL the page loads needs it back.
        root_path: str = request.scope.get("root_path", "")
        return root_path.rstrip("/")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = root_of(request)
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{assets_url}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets_url}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets_url}/favicon.png",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}" if oauth2_redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters={
                **(app.swagger_ui_parameters or {}),
                **_SWAGGER_UI_OFFLINE_PARAMETERS,
            },
        )
        return _offline(page)

    app.add_route(docs_url, swagger_ui, include_in_schema=False)

    if oauth2_redirect_url:

        async def swagger_ui_oauth2_redirect(_: Request) -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

        app.add_route(oauth2_redirect_url, swagger_ui_oauth2_redirect, include_in_schema=False)

    if redoc_url is not None:

        async def redoc(request: Request) -> HTMLResponse:
            root = root_of(request)
            page = get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{assets_url}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{assets_url}/favicon.png",
                # The fonts would come from Google; ReDoc falls back to the system's.
                with_google_fonts=False,
            )
            return _offline(page)

        app.add_route(redoc_url, redoc, include_in_schema=False)
