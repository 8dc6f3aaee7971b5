"""The operation keys and workflow ids, pinned as literal text.

Every money-moving write the connector makes is idempotent by business identity: the workflow
id names the Cleeng order, billing cycle, refund request or chargeback, and each Mollie write
carries an Idempotency-Key built from that id and the step. A worker lost mid-step runs the
step again with the same key, and Mollie answers with the first call's payment instead of
charging again; a redelivered webhook finds the same workflow by its id. So a key whose text
changes between two releases is a second charge (capture, refund) for every step in flight
across the upgrade, and a changed workflow id a second workflow for the same cycle.

These strings are what the release that shipped (bf66b6e) sends. Change one only with a
migration that still answers to the old text; never to tidy it.
"""

from __future__ import annotations

from domain.billing import BillingEvent, billing_workflow_id
from domain.operation_keys import (
    capture_key,
    compensating_refund_key,
    customer_key,
    details_owner,
    details_payment_key,
    orphan_release_key,
    point_at_order_key,
    purchase_payment_key,
    release_key,
    renewal_charge_key,
    verification_refund_key,
)
from domain.payment_details import deactivation_workflow_id, new_details_workflow_id
from domain.purchase import purchase_workflow_id
from domain.reconciliation import orphan_hold_workflow_id, outside_refund_workflow_id
from domain.refunds import (
    chargeback_workflow_id,
    follow_up_workflow_id,
    refund_request_key,
    refund_workflow_id,
)
from domain.tokens import MollieToken, no_mandate_token

CYCLE = "billing:712345678:2026-12-01T00:00:00Z"


def test_workflow_ids_name_the_business_object() -> None:
    assert purchase_workflow_id("812345678") == "purchase:812345678"
    assert billing_workflow_id("712345678", "2026-12-01T00:00:00Z") == CYCLE
    # A refund's Mollie Idempotency-Key is its workflow id (workflows/refund.py).
    assert refund_workflow_id("912345678", "f4b63ebb2fe9c67e5a43") == (
        "refund:912345678:f4b63ebb2fe9c67e5a43"
    )
    assert chargeback_workflow_id("chb_xvb2k8") == "chargeback:chb_xvb2k8"
    assert follow_up_workflow_id("tr_WDqYK6vllg") == "payment-followup:tr_WDqYK6vllg"
    assert (
        follow_up_workflow_id("tr_WDqYK6vllg", started_by="refund:1:ab")
        == "payment-followup:tr_WDqYK6vllg:refund:1:ab"
    )
    assert new_details_workflow_id("950123456") == "payment-details:950123456"
    assert deactivation_workflow_id("612345678") == "details-deactivated:612345678"
    assert orphan_hold_workflow_id("tr_7UhSN1zuXS") == "orphan-hold:tr_7UhSN1zuXS"
    assert outside_refund_workflow_id("re_4qqhO89gsT") == "mollie-refund:re_4qqhO89gsT"


def test_a_refund_request_is_the_digest_of_its_whole_webhook_data() -> None:
    # Ids compare as text: Cleeng sending 123 or "123" is one request.
    data = {"paymentId": 123, "amount": 4.99, "currency": "EUR", "reason": "goodwill"}
    assert refund_request_key(data) == "f4b63ebb2fe9c67e5a43"
    assert refund_request_key({**data, "paymentId": "123"}) == "f4b63ebb2fe9c67e5a43"


def test_a_dunning_attempt_is_its_kind_and_date() -> None:
    event = BillingEvent(
        kind="authorise",
        attempt_date="2026-11-28T06:00:00Z",
        customer_id="950123456",
        offer_id="S123456789_NL",
    )
    assert event.attempt_key == "authorise:2026-11-28T06:00:00Z"


def test_tokens_stored_in_cleeng() -> None:
    token = MollieToken(customer_id="cst_8wmqcHMN4U", mandate_id="mdt_pWUnw6pkBN")
    assert token.encode() == "mollie:cst_8wmqcHMN4U:mdt_pWUnw6pkBN"
    assert no_mandate_token("tr_7UhSN1zuXS") == "mollie-payment:tr_7UhSN1zuXS"


def test_purchase_keys() -> None:
    purchase = "purchase:812345678"
    assert customer_key(purchase) == "purchase:812345678:customer"
    assert purchase_payment_key(purchase) == "purchase:812345678:payment"
    assert purchase_payment_key(purchase, "0b1e-run") == "purchase:812345678:0b1e-run:payment"
    assert verification_refund_key(purchase) == "purchase:812345678:verification-refund"
    assert compensating_refund_key(purchase) == "purchase:812345678:compensating-refund"


def test_card_change_keys_carry_the_run() -> None:
    owner = details_owner("payment-details:950123456", "0b1e-run")
    assert owner == "payment-details:950123456:0b1e-run"
    assert customer_key(owner) == "payment-details:950123456:0b1e-run:customer"
    assert details_payment_key(owner) == "payment-details:950123456:0b1e-run:first"
    assert verification_refund_key(owner) == (
        "payment-details:950123456:0b1e-run:verification-refund"
    )
    assert release_key("details-deactivated:612345678", "tr_7UhSN1zuXS") == (
        "details-deactivated:612345678:release:tr_7UhSN1zuXS"
    )


def test_renewal_keys() -> None:
    attempt = "2026-11-28T06:00:00Z"
    assert renewal_charge_key(CYCLE, manual_capture=True, attempt_date=attempt) == (
        "billing:712345678:2026-12-01T00:00:00Z:authorise:2026-11-28T06:00:00Z"
    )
    assert renewal_charge_key(CYCLE, manual_capture=False, attempt_date=attempt) == (
        "billing:712345678:2026-12-01T00:00:00Z:charge:2026-11-28T06:00:00Z"
    )
    assert capture_key(CYCLE, "tr_7UhSN1zuXS") == (
        "billing:712345678:2026-12-01T00:00:00Z:capture:tr_7UhSN1zuXS"
    )
    assert release_key(CYCLE, "tr_7UhSN1zuXS") == (
        "billing:712345678:2026-12-01T00:00:00Z:release:tr_7UhSN1zuXS"
    )
    assert point_at_order_key(CYCLE, "tr_7UhSN1zuXS", "812345679") == (
        "billing:712345678:2026-12-01T00:00:00Z:order:tr_7UhSN1zuXS:812345679"
    )
    assert compensating_refund_key(CYCLE) == (
        "billing:712345678:2026-12-01T00:00:00Z:compensating-refund"
    )


def test_reconciliation_repair_keys() -> None:
    assert orphan_release_key("orphan-hold:tr_7UhSN1zuXS") == "orphan-hold:tr_7UhSN1zuXS:release"
