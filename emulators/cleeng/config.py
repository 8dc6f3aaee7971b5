"""Configuration of one Cleeng emulator instance."""

from __future__ import annotations

from dataclasses import dataclass

from .reference import DEFAULT_SIGNATURE_HEADER

DEFAULT_OFFER_ID = "S000000001_NL"
DEFAULT_OFFER_TITLE = "Premium monthly"
DEFAULT_OFFER_PRICE_MINOR = 999
DEFAULT_OFFER_CURRENCY = "EUR"
DEFAULT_OFFER_PERIOD = "month"
DEFAULT_CUSTOMER_EMAIL = "demo@example.com"
DEFAULT_CUSTOMER_COUNTRY = "NL"
DEFAULT_CUSTOMER_LOCALE = "nl_NL"


@dataclass(frozen=True, kw_only=True)
class CleengEmulatorConfig:
    """Everything an emulator instance needs; immutable once the app is built.

    The webhook back-off tables are indexed by the number of failed attempts so far: a retry
    happens when *either* the real-time or the emulator-clock delay has passed, so a briefly
    down receiver gets its webhook within seconds while a clock jump also triggers retries.
    """

    public_url: str = "http://127.0.0.1:8102"
    publisher_token: str = "emulator-publisher-token"
    publisher_id: int = 100000001
    mollie_payment_method_id: int = 555000001
    # Seed of the id allocators and fault dice; None draws fresh random id ranges per process,
    # so ids from an earlier run (held in Temporal workflow ids) never collide with new ones.
    id_seed: int | None = None
    seed_defaults: bool = True
    signature_header: str = DEFAULT_SIGNATURE_HEADER
    # Adding active payment details deactivates the customer's other active details and sends
    # paymentDetailsDeactivated for each, as Cleeng does when a customer changes method.
    deactivate_replaced_payment_details: bool = True
    billing_enabled: bool = True
    billing_tick_seconds: float = 1.0
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 10
    webhook_real_backoff_seconds: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    webhook_clock_backoff_seconds: tuple[float, ...] = (
        60.0,
        300.0,
        900.0,
        3600.0,
        3 * 3600.0,
        6 * 3600.0,
        12 * 3600.0,
        24 * 3600.0,
    )
    # How long a "timeout" fault holds a request open at most (it ends earlier when the client
    # gives up and disconnects).
    timeout_fault_hang_seconds: float = 30.0
