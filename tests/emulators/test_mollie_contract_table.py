"""docs/mollie-contract.md lists exactly the Mollie calls `clients.mollie.MollieGateway` makes.

Every public gateway method is driven against the emulator, which journals each /v2 request
it answers (`GET /_emulator/requests`). The paths, with ids turned back into placeholders
(`tr_...` -> `{paymentId}`), must be the rows of the contract table, no more and no fewer. A new
gateway method fails `test_every_gateway_method_is_driven` until it is driven here, and then
fails the table check until the table lists what it calls.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from clients.mollie import MollieGateway
from domain.money import Money
from tests.emulators.test_mollie_support import API_KEY, RunningEmulator, running_emulator

DOC = Path(__file__).resolve().parents[2] / "docs" / "mollie-contract.md"
REDIRECT = "https://shop.example/return"

_PLACEHOLDERS = (
    ("tr_", "{paymentId}"),
    ("cst_", "{customerId}"),
    ("mdt_", "{mandateId}"),
    ("re_", "{refundId}"),
    ("cpt_", "{captureId}"),
    ("chb_", "{chargebackId}"),
)
# A table row starts with the HTTP method and the path, either of them in backticks or not.
_ROW = re.compile(r"^\|\s*`?(GET|POST|PATCH|PUT|DELETE)`?\s*\|\s*`?(/v2/[^`|\s]*)`?\s*\|", re.M)

Call = tuple[str, str]
_T = TypeVar("_T")


def path_template(path: str) -> str:
    """`/v2/payments/tr_Ab12/refunds` -> `/v2/payments/{paymentId}/refunds`."""
    segments = []
    for segment in path.split("/"):
        for prefix, placeholder in _PLACEHOLDERS:
            if segment.startswith(prefix) and len(segment) > len(prefix):
                segment = placeholder
                break
        segments.append(segment)
    return "/".join(segments)


def documented_calls(markdown: str) -> set[Call]:
    return {(method, path) for method, path in _ROW.findall(markdown)}


def table_problems(observed: set[Call], markdown: str) -> list[str]:
    documented = documented_calls(markdown)
    problems = [f"not in the contract table: {m} {p}" for m, p in sorted(observed - documented)]
    problems += [f"in the table, never called: {m} {p}" for m, p in sorted(documented - observed)]
    return problems


# Closing the gateway's threads and connections talks to nobody.
LIFECYCLE_METHODS = frozenset({"aclose"})


def gateway_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(MollieGateway, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in LIFECYCLE_METHODS
    }


@pytest.fixture(scope="module")
def server() -> Iterator[RunningEmulator]:
    with running_emulator(deliver_webhooks=False) as running:
        yield running


async def drive_every_gateway_method(emulator: RunningEmulator) -> set[str]:
    """Call each public gateway method once, the way the activities do; answers their names."""
    gateway = MollieGateway(emulator.base_url, API_KEY, timeout_seconds=5)
    driven: set[str] = set()

    async def call(name: str, make: Callable[[], Awaitable[_T]]) -> _T:
        driven.add(name)
        return await make()

    offered = await call(
        "list_methods",
        lambda: gateway.list_methods(
            sequence_type="first",
            amount=Money.from_decimal("10.00", "EUR"),
            billing_country="NL",
            include_wallets=("applepay",),
        ),
    )
    assert [method.id for method in offered][:2] == ["creditcard", "applepay"]
    assert offered[0].minimum_amount == Money.from_decimal("0.00", "EUR")
    assert await call("find_customer", lambda: gateway.find_customer("cleeng-1")) is None
    customer = await call(
        "create_customer",
        lambda: gateway.create_customer(
            cleeng_customer_id="cleeng-1", email="a@example.com", idempotency_key="customer:1"
        ),
    )
    first_key = "purchase:1:payment"
    found = await call(
        "find_customer_payment", lambda: gateway.find_customer_payment(customer, first_key)
    )
    assert found is None
    assert await call("workflow_payments", lambda: gateway.workflow_payments(customer, "x")) == []
    first = await call(
        "create_payment",
        lambda: gateway.create_payment(
            {
                "amount": {"currency": "EUR", "value": "10.00"},
                "description": "Order 1",
                "redirectUrl": REDIRECT,
                "webhookUrl": "https://connector.example/webhooks/mollie",
                "sequenceType": "first",
                "customerId": customer,
                "metadata": {"operation": first_key},
            },
            first_key,
        ),
    )
    assert first.checkout_url is not None
    assert emulator.checkout(first.checkout_url, "paid").status_code == 303
    paid = await call("get_payment", lambda: gateway.get_payment(first.id))
    assert paid.status == "paid"
    assert paid.mandate_id is not None
    mandate_id = paid.mandate_id
    pointed = await call(
        "update_payment_metadata",
        lambda: gateway.update_payment_metadata(
            first.id, {**paid.metadata, "orderId": "2"}, "purchase:1:order"
        ),
    )
    assert pointed.metadata["orderId"] == "2"
    assert pointed.metadata["operation"] == first_key
    mandate = await call("get_mandate", lambda: gateway.get_mandate(customer, mandate_id))
    assert mandate.status == "valid"

    def renewal(n: int) -> dict[str, object]:
        return {
            "amount": {"currency": "EUR", "value": "10.00"},
            "description": f"Renewal {n}",
            "sequenceType": "recurring",
            "customerId": customer,
            "mandateId": mandate_id,
            "captureMode": "manual",
            "metadata": {"operation": f"billing:{n}"},
        }

    held = await gateway.create_payment(renewal(1), "billing:1")
    assert held.status == "authorized"
    assert await call("capture_statuses", lambda: gateway.capture_statuses(held.id)) == []
    holds = await call("authorized_payments", gateway.authorized_payments)
    assert [payment.id for payment in holds] == [held.id]
    await call(
        "create_capture",
        lambda: gateway.create_capture(held.id, description="Renewal 1", idempotency_key="cap:1"),
    )
    released = await gateway.create_payment(renewal(2), "billing:2")
    await call(
        "release_authorization",
        lambda: gateway.release_authorization(released.id, "release:2"),
    )

    refund = await call(
        "create_refund",
        lambda: gateway.create_refund(
            first.id,
            amount=Money.from_decimal("4.00", "EUR"),
            description="Refund 1",
            metadata={"operation": "refund:1"},
            idempotency_key="refund:1",
        ),
    )
    assert [r.id for r in await call("list_refunds", lambda: gateway.list_refunds(first.id))] == [
        refund.id
    ]
    assert (await call("get_refund", lambda: gateway.get_refund(first.id, refund.id))).id == (
        refund.id
    )
    assert await call("list_chargebacks", lambda: gateway.list_chargebacks(first.id)) == []
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    refunded, refunds_covered = await call(
        "refunds_created_since",
        lambda: gateway.refunds_created_since(an_hour_ago, max_pages=1),
    )
    assert refunds_covered
    assert (refunded[0].id, refunded[0].payment_id) == (refund.id, first.id)
    chargeback = emulator.control(
        "POST", f"/payments/{first.id}/chargeback", {"amount": {"currency": "EUR", "value": "1.00"}}
    )
    charged_back, chargebacks_covered = await call(
        "chargebacks_created_since",
        lambda: gateway.chargebacks_created_since(an_hour_ago, max_pages=1),
    )
    assert chargebacks_covered
    assert [(c.id, c.payment_id) for c in charged_back] == [(chargeback["id"], first.id)]
    recent, covered = await call(
        "payments_created_since",
        lambda: gateway.payments_created_since(datetime.now(UTC) - timedelta(hours=1), max_pages=1),
    )
    assert covered
    assert {first.id, held.id, released.id} <= {payment.id for payment in recent}
    assert next(p for p in recent if p.id == first.id).amount_refunded == Money.from_decimal(
        "4.00", "EUR"
    )
    await call("revoke_mandate", lambda: gateway.revoke_mandate(customer, mandate_id))
    return driven


async def test_every_gateway_method_is_driven(emulator: RunningEmulator) -> None:
    assert await drive_every_gateway_method(emulator) == gateway_methods()


async def test_contract_table_lists_exactly_the_calls_the_gateway_makes(
    emulator: RunningEmulator,
) -> None:
    await drive_every_gateway_method(emulator)
    journal = emulator.control("GET", "/requests")["requests"]
    observed = {(entry["method"], path_template(entry["path"])) for entry in journal}
    assert ("GET", "/v2/customers") in observed  # the journal really saw the calls
    assert table_problems(observed, DOC.read_text(encoding="utf-8")) == []


def test_the_check_catches_a_call_missing_from_the_table() -> None:
    markdown = DOC.read_text(encoding="utf-8")
    documented = documented_calls(markdown)
    revoke = ("DELETE", "/v2/customers/{customerId}/mandates/{mandateId}")
    assert revoke in documented
    without = "\n".join(
        line for line in markdown.splitlines() if documented_calls(line) != {revoke}
    )
    assert table_problems(documented, without) == [
        "not in the contract table: DELETE /v2/customers/{customerId}/mandates/{mandateId}"
    ]
    assert path_template("/v2/payments/tr_Ab12/refunds/re_Cd34") == (
        "/v2/payments/{paymentId}/refunds/{refundId}"
    )
