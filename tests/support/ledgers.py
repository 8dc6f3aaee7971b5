"""Both ledgers as a test reads them: Cleeng's renewal records (the emulator's operator view)
and Mollie's payments (its API), and the bank's settlement of a pending debit."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Emulators
from tests.support.mandates import MOLLIE_HEADERS


async def renewal_records(emulators: Emulators, subscription_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{emulators.cleeng_url}/_emulator/payments",
            params={"subscriptionId": subscription_id},
        )
    response.raise_for_status()
    return [p for p in response.json()["items"] if p["paymentOperation"] == "recurring-payment"]


async def mollie_payment(emulators: Emulators, payment_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{emulators.mollie_url}/v2/payments/{payment_id}", headers=MOLLIE_HEADERS
        )
    response.raise_for_status()
    payment: dict[str, Any] = response.json()
    return payment


async def mollie_customer_payments(emulators: Emulators, customer_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{emulators.mollie_url}/v2/customers/{customer_id}/payments", headers=MOLLIE_HEADERS
        )
    response.raise_for_status()
    payments: list[dict[str, Any]] = response.json()["_embedded"]["payments"]
    return payments


async def settle(emulators: Emulators, payment_id: str, outcome: dict[str, str]) -> None:
    """The bank settles the direct debit (Mollie's test-mode `changePaymentState`)."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{emulators.mollie_url}/_emulator/payments/{payment_id}/status", json=outcome
        )
    response.raise_for_status()
