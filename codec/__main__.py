"""`python -m codec --host 127.0.0.1 --port 8234`: serve the codec server with uvicorn.

It needs PAYLOAD_ENCRYPTION_KEYS (the same keys as the worker and the API). Without
CODEC_SERVER_TOKEN it listens on loopback only: anyone who can reach it can read the
customers' data in every history.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging

import uvicorn

from codec.payload_codec import EncryptionCodec
from codec.server import CodecServerConfig, create_app
from settings import Settings
from temporal_connection import load_settings

logger = logging.getLogger("codec")

DEFAULT_PORT = 8234


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def server_config(settings: Settings, host: str) -> CodecServerConfig:
    """What the server needs, or SystemExit naming the missing setting."""
    key_ring = settings.payload_key_ring()
    if key_ring is None:
        raise SystemExit(
            "configuration error:\n  PAYLOAD_ENCRYPTION_KEYS is not set: the codec server has "
            "no key to decode with"
        )
    token = settings.codec_server_token
    if token is None and not is_loopback(host):
        raise SystemExit(
            f"configuration error:\n  CODEC_SERVER_TOKEN is required to listen on {host}: "
            "without it anyone who reaches the port can decrypt every history"
        )
    return CodecServerConfig(
        codec=EncryptionCodec(key_ring),
        namespace=settings.temporal_namespace,
        allowed_origins=settings.codec_server_cors_origins,
        token=token.get_secret_value() if token is not None else None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Codec server for the Temporal Web UI and CLI")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default %(default)s; anything but loopback needs "
        "CODEC_SERVER_TOKEN)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = server_config(load_settings(), args.host)
    logger.info(
        "codec server for namespace %s on %s:%d; origins %s; current key id %s; token %s",
        config.namespace,
        args.host,
        args.port,
        ", ".join(config.allowed_origins) or "none",
        config.codec.current_key_id,
        "required" if config.token is not None else "not required (loopback only)",
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
