"""Which paid Mollie payments reconciliation calls drift: judged by the workflow that took them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain.money import Money
from domain.reconciliation import (
    COMPLETED,
    FOR_A_PERSON,
    NOT_FOUND,
    PAID_NOT_RECORDED,
    RUNNING,
    ConnectorPayment,
    WorkflowState,
    payment_finding,
)

PAID = ConnectorPayment(
    payment_id="tr_1",
    status="paid",
    amount=Money(minor=999, currency="EUR"),
    created_at="2026-11-27T08:00:00+00:00",
    owner_workflow_id="purchase:42",
    order_id="42",
)


def owner(status: str, cleeng_payment_id: str | None = None) -> WorkflowState:
    return WorkflowState(
        workflow_id="purchase:42", status=status, cleeng_payment_id=cleeng_payment_id
    )


@pytest.mark.parametrize(
    ("payment", "state"),
    [
        pytest.param(PAID, owner(COMPLETED, "777"), id="recorded"),
        pytest.param(PAID, owner(RUNNING), id="still-being-recorded"),
        pytest.param(
            replace(PAID, refunded=Money(minor=999, currency="EUR")),
            owner("FAILED"),
            id="given-back-after-cleeng-refused",
        ),
        pytest.param(replace(PAID, order_id=None), owner(COMPLETED), id="card-check-no-order"),
        pytest.param(replace(PAID, status="failed"), owner("FAILED"), id="no-money-taken"),
    ],
)
def test_money_accounted_for_is_not_drift(payment: ConnectorPayment, state: WorkflowState) -> None:
    assert payment_finding(payment, state) is None


@pytest.mark.parametrize(
    "state",
    [
        owner("FAILED"),
        owner("TERMINATED"),
        owner(COMPLETED),  # completed, but no Cleeng payment recorded
        owner(NOT_FOUND),
    ],
    ids=["failed", "terminated", "completed-unrecorded", "history-gone"],
)
def test_money_taken_and_not_recorded_is_left_for_a_person(state: WorkflowState) -> None:
    partly_refunded = replace(PAID, refunded=Money(minor=500, currency="EUR"))
    for payment in (PAID, partly_refunded):
        finding = payment_finding(payment, state)
        assert finding is not None
        assert (finding.kind, finding.action) == (PAID_NOT_RECORDED, FOR_A_PERSON)
        assert finding.mollie_payment_id == "tr_1"
        assert "order 42" in finding.detail
        assert state.status in finding.detail
