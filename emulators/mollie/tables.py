"""The tables of one emulated Mollie account and the lookups every operation needs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from .clock import EmulatorClock
from .config import MollieEmulatorConfig
from .errors import not_found
from .models import Capture, Chargeback, Customer, Mandate, Outcome, Payment, Refund

_T = TypeVar("_T")


class AccountTables:
    """Records by id, in creation order, plus the hook that announces payment changes."""

    def __init__(
        self,
        config: MollieEmulatorConfig,
        clock: EmulatorClock,
        notify: Callable[[Payment], None],
    ) -> None:
        self.config = config
        self.clock = clock
        self._notify = notify
        self.customers: dict[str, Customer] = {}
        self.mandates: dict[str, Mandate] = {}
        self.payments: dict[str, Payment] = {}
        self.captures: dict[str, Capture] = {}
        self.refunds: dict[str, Refund] = {}
        self.chargebacks: dict[str, Chargeback] = {}
        # A customer's mandates and payments: charging a mandate looks them up, and a scan of
        # every customer's made each charge slower as the store grew.
        self.mandates_by_customer: dict[str, list[Mandate]] = {}
        self.payments_by_customer: dict[str, list[Payment]] = {}
        # Records the clock may still change (a payment not final yet, a capture or refund not
        # settled yet), in creation order: each tick looks at these, not at every record ever
        # made, which made a tick cost more the longer the emulator ran. The store drops a
        # record from here once nothing is scheduled for it any more.
        self.payments_in_motion: dict[str, Payment] = {}
        self.captures_in_motion: dict[str, Capture] = {}
        self.refunds_in_motion: dict[str, Refund] = {}

    def add_mandate(self, mandate: Mandate) -> None:
        self.mandates[mandate.id] = mandate
        self.mandates_by_customer.setdefault(mandate.customer_id, []).append(mandate)

    def add_payment(self, payment: Payment) -> None:
        self.payments[payment.id] = payment
        self.payments_in_motion[payment.id] = payment
        if payment.customer_id is not None:
            self.payments_by_customer.setdefault(payment.customer_id, []).append(payment)

    def add_capture(self, capture: Capture) -> None:
        self.captures[capture.id] = capture
        self.captures_in_motion[capture.id] = capture

    def add_refund(self, refund: Refund) -> None:
        self.refunds[refund.id] = refund
        self.refunds_in_motion[refund.id] = refund

    def reindex(self) -> None:
        """Rebuild the per-customer lists and the records in motion from the tables (after
        loading saved state). Every record counts as in motion until the next tick looks."""
        self.mandates_by_customer.clear()
        self.payments_by_customer.clear()
        for mandate in list(self.mandates.values()):
            self.mandates_by_customer.setdefault(mandate.customer_id, []).append(mandate)
        for payment in list(self.payments.values()):
            if payment.customer_id is not None:
                self.payments_by_customer.setdefault(payment.customer_id, []).append(payment)
        self.payments_in_motion = dict(self.payments)
        self.captures_in_motion = dict(self.captures)
        self.refunds_in_motion = dict(self.refunds)

    def clear(self) -> None:
        for table in (
            self.customers,
            self.mandates,
            self.payments,
            self.captures,
            self.refunds,
            self.chargebacks,
        ):
            table.clear()
        self.reindex()

    @property
    def mode(self) -> str:
        return self.config.mode

    def payment(self, payment_id: str) -> Payment:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise not_found("payment", payment_id)
        return payment

    def _transition(self, payment: Payment, outcome: Outcome, at: datetime | None = None) -> None:
        raise NotImplementedError

    @staticmethod
    def _child(table: dict[str, _T], owned: list[str], child_id: str, kind: str) -> _T:
        """A capture, refund or chargeback, but only one that belongs to the payment."""
        if child_id not in owned:
            raise not_found(kind, child_id)
        return table[child_id]
