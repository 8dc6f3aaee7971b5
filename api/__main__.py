"""`python -m api --port 8000`: serve the shim with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from api.app import create_app
from settings import Settings


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description="Cleeng ⇄ Mollie connector API")
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
