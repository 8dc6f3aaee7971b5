"""Run the Cleeng emulator: ``python -m emulators.cleeng --port 8102``.

Every option falls back to a ``CLEENG_EMULATOR_*`` environment variable.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from telemetry.logs import configure_logging, env_log_format

from .. import KEEP_ALIVE_SECONDS
from ..state_file import DEFAULT_SAVE_INTERVAL_SECONDS
from .app import create_app
from .config import CleengEmulatorConfig

_ENV = "CLEENG_EMULATOR_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(_ENV + name, default)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = CleengEmulatorConfig()
    parser = argparse.ArgumentParser(prog="python -m emulators.cleeng", description=__doc__)
    parser.add_argument(
        "--host",
        default=_env("HOST", "127.0.0.1"),
        help="address to listen on (default %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(_env("PORT", "8102") or 8102),
        help="port (default %(default)s)",
    )
    parser.add_argument(
        "--publisher-token",
        default=_env("PUBLISHER_TOKEN", defaults.publisher_token),
        # The value is never shown: the environment may hold one of its own.
        help="the X-Publisher-Token clients must send (default: CLEENG_EMULATOR_PUBLISHER_TOKEN, "
        "else the emulator's token the connector's sandbox uses)",
    )
    parser.add_argument(
        "--public-url",
        default=_env("PUBLIC_URL"),
        help="base URL clients use to reach this emulator (default http://HOST:PORT)",
    )
    parser.add_argument(
        "--publisher-id",
        type=int,
        default=int(_env("PUBLISHER_ID") or defaults.publisher_id),
        help="the publisher's id (default %(default)s)",
    )
    parser.add_argument(
        "--mollie-payment-method-id",
        type=int,
        default=int(_env("MOLLIE_PAYMENT_METHOD_ID") or defaults.mollie_payment_method_id),
        help="the paymentMethodId of the Mollie connector in this publisher's account "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--signature-header",
        default=_env("SIGNATURE_HEADER", defaults.signature_header),
        help="the header that carries each webhook's signature (default %(default)s)",
    )
    parser.add_argument(
        "--id-seed",
        type=int,
        default=int(seed) if (seed := _env("ID_SEED")) else None,
        help="seed for the ids it hands out, for repeatable runs (default: random)",
    )
    parser.add_argument(
        "--no-billing",
        action="store_true",
        default=_env("BILLING", "on") == "off",
        help="do not send renewal webhooks",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=_env("STATE_FILE"),
        help="load state from this file at start and keep it saved there (trusted local file)",
    )
    parser.add_argument(
        "--state-save-seconds",
        type=float,
        default=float(_env("STATE_SAVE_SECONDS") or DEFAULT_SAVE_INTERVAL_SECONDS),
        help="how often changed state is saved while running, in seconds (default %(default)s)",
    )
    parser.add_argument(
        "--log-level", default=_env("LOG_LEVEL", "info"), help="log level (default %(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # LOG_FORMAT as the connector's processes read it, so the launcher's logs are alike.
    configure_logging(
        env_log_format(), "cleeng-emulator", [args.publisher_token], level=args.log_level
    )
    config = CleengEmulatorConfig(
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        publisher_token=args.publisher_token,
        publisher_id=args.publisher_id,
        mollie_payment_method_id=args.mollie_payment_method_id,
        signature_header=args.signature_header,
        id_seed=args.id_seed,
        billing_enabled=not args.no_billing,
    )
    logging.getLogger("emulators.cleeng").info(
        "Cleeng emulator on %s (publisher %s, Mollie paymentMethodId %s)",
        config.public_url,
        config.publisher_id,
        config.mollie_payment_method_id,
    )
    # uvicorn's access log would duplicate our one line per request.
    uvicorn.run(
        create_app(config, state_file=args.state_file, state_save_seconds=args.state_save_seconds),
        host=args.host,
        port=args.port,
        access_log=False,
        log_config=None,
        log_level=args.log_level.lower(),
        # The app stamps Date from the emulator's (movable) clock.
        date_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()
