"""`python -m api --port 8000`: serve the shim with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from api.app import create_app
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
    # log_config=None: uvicorn's own lines go through the root handler above (format,
    # redaction) instead of handlers of its own.
    uvicorn.run(
        create_app(settings), host=args.host, port=args.port, log_level="info", log_config=None
    )


if __name__ == "__main__":
    main()
