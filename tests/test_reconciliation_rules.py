"""Which paid Mollie payments reconciliation calls drift: judged by the workflow that took them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from domain.money import Money
from domain.reconciliation import (
    COMPLETED,
    FOR_A_PERSON,
    NOT_FOUND,
    PAID_NOT_RECORDED,
    PAID_TWICE,
    RUNNING,
    ConnectorPayment,
    WorkflowState,
    paid_twice_findings,
    payment_finding,
    shares_paid_group,
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


CYCLE = "billing:9:2026-12-27T08:00:00Z"


def renewal(
    payment_id: str, status: str, order_id: str = "501", **changes: Any
) -> ConnectorPayment:
    return replace(
        PAID,
        payment_id=payment_id,
        status=status,
        owner_workflow_id=CYCLE,
        order_id=order_id,
        created_at=f"2026-12-27T08:00:0{payment_id[-1]}+00:00",
        **changes,
    )


@pytest.mark.parametrize(
    "payments",
    [
        pytest.param(
            [
                renewal("tr_1", "failed", "501"),
                renewal("tr_2", "failed", "502"),
                renewal("tr_3", "paid", "503"),
            ],
            id="declined-attempts-then-paid",
        ),
        pytest.param([renewal("tr_1", "paid"), renewal("tr_2", "canceled")], id="one-paid"),
        pytest.param(
            [
                renewal("tr_1", "paid"),
                renewal(
                    "tr_2",
                    "paid",
                    refunded=Money(minor=500, currency="EUR"),
                    charged_back=Money(minor=499, currency="EUR"),
                ),
            ],
            id="second-given-back-in-full",
        ),
        pytest.param(
            [
                renewal("tr_1", "paid", amount=Money(minor=0, currency="EUR")),
                renewal("tr_2", "paid"),
            ],
            id="a-zero-amount-check-moves-no-money",
        ),
        pytest.param(
            [
                PAID,
                replace(PAID, payment_id="tr_2", owner_workflow_id="purchase:43", order_id="43"),
            ],
            id="different-orders-and-workflows",
        ),
    ],
)
def test_one_paid_payment_per_order_and_cycle_is_not_drift(
    payments: list[ConnectorPayment],
) -> None:
    assert paid_twice_findings(payments) == []


def test_two_paid_payments_of_one_cycle_are_one_finding_naming_both() -> None:
    # Different orders (a restarted cycle made a new one): the cycle's workflow id groups them.
    payments = [
        renewal("tr_1", "paid", "501"),
        renewal("tr_2", "failed", "502"),
        renewal("tr_3", "paid", "503"),
    ]
    [finding] = paid_twice_findings(payments)
    assert (finding.kind, finding.action) == (PAID_TWICE, FOR_A_PERSON)
    assert finding.workflow_id == CYCLE
    assert finding.mollie_payment_id == "tr_3"  # the later charge
    assert "tr_1" in finding.detail
    assert "tr_3" in finding.detail
    assert "tr_2" not in finding.detail
    assert shares_paid_group(payments) == {"tr_1", "tr_3"}


def test_two_paid_payments_for_one_order_are_found_across_workflows() -> None:
    other = replace(PAID, payment_id="tr_2", owner_workflow_id="purchase:42:retry")
    [finding] = paid_twice_findings([PAID, other])
    assert "Cleeng order 42" in finding.detail


def test_the_same_payments_under_order_and_cycle_are_reported_once() -> None:
    [finding] = paid_twice_findings([renewal("tr_1", "paid"), renewal("tr_2", "paid")])
    assert finding.mollie_payment_id == "tr_2"


def test_a_refunded_second_charge_still_shares_its_cycle() -> None:
    given_back = renewal("tr_2", "paid", refunded=Money(minor=999, currency="EUR"))
    payments = [renewal("tr_1", "paid"), given_back]
    assert paid_twice_findings(payments) == []
    assert shares_paid_group(payments) == {"tr_1", "tr_2"}


def test_within_one_second_the_later_charge_is_the_one_mollie_lists_first() -> None:
    # createdAt has whole seconds; "list-payments" answers newest first.
    same_second = "2026-12-27T08:00:00+00:00"
    later = replace(renewal("tr_9", "paid"), created_at=same_second)
    earlier = replace(renewal("tr_1", "paid"), created_at=same_second)
    [finding] = paid_twice_findings([later, earlier])
    assert finding.mollie_payment_id == "tr_9"
    [finding] = paid_twice_findings([earlier, later])
    assert finding.mollie_payment_id == "tr_1"
