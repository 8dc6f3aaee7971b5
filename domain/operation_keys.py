"""The Idempotency-Keys of the connector's Mollie writes, built from business identity.

Each key names what the write is for (the workflow that owns it, which is named after the
Cleeng order, billing cycle or customer, and the step), never a random value or a run's
counter: a step repeated after a lost worker or a lost reply sends the same key, and Mollie
answers with the first call's object instead of moving money again. A key that changes its
text between releases is therefore a second charge (or capture, or refund) for every step in
flight across the upgrade; tests/test_operation_keys.py pins each format with literal strings.

The workflow ids they start from are built in domain/purchase.py, billing.py, payment_details.py,
refunds.py and reconciliation.py (pinned by the same test).
"""

from __future__ import annotations


def customer_key(owner: str) -> str:
    """Create-customer for a purchase (`owner` = its workflow id) or a card change
    (`owner` = workflow id and run id, see `details_owner`)."""
    return f"{owner}:customer"


def purchase_payment_key(workflow_id: str, restarted_run_id: str | None = None) -> str:
    """A purchase's first payment; a run that starts a failed purchase again names itself,
    so it never adopts a payment the failed run made and handed to nobody."""
    if restarted_run_id is not None:
        return f"{workflow_id}:{restarted_run_id}:payment"
    return f"{workflow_id}:payment"


def details_owner(workflow_id: str, run_id: str) -> str:
    """A card change's keys carry the run too: the customer's next card change reuses the
    workflow id."""
    return f"{workflow_id}:{run_id}"


def details_payment_key(owner: str) -> str:
    """A card change's first payment (the mandate's verification)."""
    return f"{owner}:first"


def verification_refund_key(owner: str) -> str:
    """Giving back a verification amount (a card change's, or a free trial's)."""
    return f"{owner}:verification-refund"


def compensating_refund_key(workflow_id: str) -> str:
    """Giving back a charge Cleeng refused to record."""
    return f"{workflow_id}:compensating-refund"


def renewal_charge_key(workflow_id: str, *, manual_capture: bool, attempt_date: str) -> str:
    """A renewal's charge for one dunning attempt: `authorise` (manual capture, a hold) or
    `charge` (automatic capture), keyed by the attempt's date in Cleeng's webhook."""
    step = "authorise" if manual_capture else "charge"
    return f"{workflow_id}:{step}:{attempt_date}"


def capture_key(workflow_id: str, payment_id: str) -> str:
    return f"{workflow_id}:capture:{payment_id}"


def release_key(workflow_id: str, payment_id: str) -> str:
    """Releasing one held payment (a billing cycle's, or a deactivation's)."""
    return f"{workflow_id}:release:{payment_id}"


def orphan_release_key(workflow_id: str) -> str:
    """Releasing the one hold a ReleaseOrphanHold workflow is named after."""
    return f"{workflow_id}:release"


def point_at_order_key(workflow_id: str, payment_id: str, order_id: str) -> str:
    """Pointing a payment's metadata at the order that records it (its first order expired)."""
    return f"{workflow_id}:order:{payment_id}:{order_id}"
