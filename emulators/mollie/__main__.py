"""Run the Mollie emulator: `python -m emulators.mollie --port 8101 --public-url ...`.

Every option falls back to an environment variable MOLLIE_EMULATOR_<OPTION>.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from telemetry.logs import configure_logging, env_log_format

from .. import KEEP_ALIVE_SECONDS
from ..state_file import DEFAULT_SAVE_INTERVAL_SECONDS
from .app import create_app
from .config import MollieEmulatorConfig

_DEFAULTS = MollieEmulatorConfig()


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MOLLIE_EMULATOR_{name}", default)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulators.mollie", description=__doc__)
    parser.add_argument(
        "--host",
        default=_env("HOST", "127.0.0.1"),
        help="address to listen on (default %(default)s)",
    )
    parser.add_argument(
        "--port", type=int, default=int(_env("PORT", "8101")), help="port (default %(default)s)"
    )
    parser.add_argument(
        "--api-key",
        default=_env("API_KEY", _DEFAULTS.api_key),
        # The value is never shown: the environment may hold one of its own.
        help="the API key clients must send (default: MOLLIE_EMULATOR_API_KEY, else the "
        "emulator's test key the connector's sandbox uses)",
    )
    parser.add_argument(
        "--public-url",
        default=_env("PUBLIC_URL", ""),
        help="base URL clients use to reach this emulator (default http://HOST:PORT)",
    )
    parser.add_argument(
        "--no-webhooks",
        action="store_true",
        default=_env("DELIVER_WEBHOOKS", "true").lower() in {"0", "false", "no"},
        help="record nothing and send no webhooks",
    )
    parser.add_argument(
        "--pending-settle-seconds",
        type=float,
        default=float(_env("PENDING_SETTLE_SECONDS", str(_DEFAULTS.pending_settle_seconds))),
        help="how long a SEPA direct debit stays pending before it settles, in seconds of the "
        "emulator's clock (default %(default)s)",
    )
    parser.add_argument(
        "--refund-settle-seconds",
        type=float,
        default=float(_env("REFUND_SETTLE_SECONDS", str(_DEFAULTS.refund_settle_seconds))),
        help="how long a refund takes to settle, in seconds of the emulator's clock "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=_env("STATE_FILE", "") or None,
        help="load state from this file at start and keep it saved there (trusted local file)",
    )
    parser.add_argument(
        "--state-save-seconds",
        type=float,
        default=float(_env("STATE_SAVE_SECONDS", str(DEFAULT_SAVE_INTERVAL_SECONDS))),
        help="how often changed state is saved while running, in seconds (default %(default)s)",
    )
    parser.add_argument(
        "--log-level", default=_env("LOG_LEVEL", "info"), help="log level (default %(default)s)"
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> MollieEmulatorConfig:
    return MollieEmulatorConfig(
        api_key=args.api_key,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        deliver_webhooks=not args.no_webhooks,
        pending_settle_seconds=args.pending_settle_seconds,
        refund_settle_seconds=args.refund_settle_seconds,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # LOG_FORMAT as the connector's processes read it, so the launcher's logs are alike.
    configure_logging(env_log_format(), "mollie-emulator", [args.api_key], level=args.log_level)
    config = config_from_args(args)
    # uvicorn's access log is off: RequestLogMiddleware writes the one line per request.
    uvicorn.run(
        create_app(config, state_file=args.state_file, state_save_seconds=args.state_save_seconds),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()
