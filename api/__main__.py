"""`python -m api --port 8000`: serve the shim with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from api.app import create_app
from settings import Settings
from telemetry.logs import configure_process_logging, settings_secrets
from telemetry.tracing import install_tracing
from temporal_connection import check_payload_encryption, counterparts, load_settings

logger = logging.getLogger("api")


def main() -> None:
    settings = load_settings()
    parser = argparse.ArgumentParser(description="Cleeng ⇄ Mollie connector API")
    parser.add_argument(
        "--host",
        default=settings.api_host,
        help="address to listen on (API_HOST, default %(default)s)",
    )
    parser.add_argument(
        "--port", type=int, default=settings.api_port, help="port (API_PORT, default %(default)s)"
    )
    args = parser.parse_args()
    configure_process_logging(settings, "api")
    install_tracing(settings, "connector-api", settings_secrets(settings))
    if settings.sandbox_mode and not settings.frontend_api_keys:
        # Never silent: the public sandbox key opens the front-end API of this process.
        logger.warning(
            "sandbox mode: the front-end API accepts the public sandbox key; set "
            "FRONTEND_API_KEYS before exposing this API"
        )
    check_payload_encryption(settings, logger)
    logger.info("counterparts: %s", counterparts(settings))
    uvicorn.Server(server_config(settings, args.host, args.port)).run()


def server_config(settings: Settings, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        # uvicorn's own lines go through the root handler configured above (format,
        # redaction) instead of handlers of its own.
        log_config=None,
        # uvicorn's default is 5 s, shorter than a load balancer's idle timeout: the balancer
        # would reuse a connection the API has just closed and answer that request 502.
        timeout_keep_alive=settings.api_keep_alive_seconds,
    )


if __name__ == "__main__":
    main()
