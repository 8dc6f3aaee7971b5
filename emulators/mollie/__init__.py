"""Mollie API v2 emulator: a real HTTP server for offline development, demos and CI.

`create_app(MollieEmulatorConfig(...))` builds it; `python -m emulators.mollie` runs it.
"""

from .app import create_app
from .config import MollieEmulatorConfig

__all__ = ["MollieEmulatorConfig", "create_app"]
