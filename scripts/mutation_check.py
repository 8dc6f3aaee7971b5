"""Delete each guard that protects money, once, and show which test catches it.

Runs in a scratch git worktree holding a copy of your working tree's files, changes not yet
committed included (your working tree is never touched): for each guard, the guarding line is
replaced, the tests named for it run, and the line comes back. A guard
whose removal leaves its tests green is reported SURVIVED: the tests do not protect it.

    .venv/bin/python scripts/mutation_check.py            # every guard (about 1-2 minutes)
    .venv/bin/python scripts/mutation_check.py --only refund

Exit status 1 when any mutation survives or no longer applies (the guarded line moved: update
the table below with the code).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTEST = REPO / ".venv" / "bin" / "pytest"

# (guard, file, the guarding text, what replaces it, tests that must go red)
MUTATIONS: list[tuple[str, str, str, str, list[str]]] = [
    (
        "in-workflow duplicate webhook guard",
        "workflows/recurring_billing.py",
        "            if event.attempt_key in self._handled:",
        "            if False:",
        [
            "tests/test_recurring_billing.py::test_a_redelivered_attempt_after_its_decline_is_not_tried_again"
        ],
    ),
    (
        "cycle-already-paid guard",
        "workflows/recurring_billing.py",
        "        if paid:\n            self._note_already_paid()",
        "        paid = False\n        if paid:\n            self._note_already_paid()",
        ["tests/test_recurring_billing.py::test_webhooks_for_a_finished_cycle_charge_nothing"],
    ),
    (
        "adopt an existing checkout payment",
        "activities/mollie_activities.py",
        '        if earlier is not None:\n            activity.logger.info("adopting',
        '        if False:\n            activity.logger.info("adopting',
        [
            "tests/test_initial_purchase.py::test_a_checkout_retried_after_mollie_forgot_the_key_is_not_made_twice"
        ],
    ),
    (
        "adopt an existing recurring charge",
        "activities/mollie_activities.py",
        "                if earlier.metadata.get(OPERATION_METADATA_KEY) == request.operation_key:",
        "                if False:",
        [
            "tests/test_recurring_billing.py::test_charge_retried_after_mollie_forgot_the_key_is_not_repeated"
        ],
    ),
    (
        "refund only on Cleeng's documented refusal",
        "activities/cleeng_activities.py",
        "            if await self._order_expired(request.order_id):",
        "            if True:",
        [
            "tests/test_initial_purchase.py::test_an_undocumented_refusal_never_refunds_a_good_payment",
            "tests/test_recurring_billing.py::test_an_undocumented_refusal_of_the_record_is_retried_and_never_releases_the_money",
        ],
    ),
    (
        "restart only a purchase that never had a Mollie payment",
        "api/purchases.py",
        "    return run.typed_search_attributes.get(search_attributes.MOLLIE_PAYMENT_ID) is None",
        "    return True",
        [
            "tests/test_purchase_outage.py::test_a_refunded_purchase_answers_its_outcome_and_is_not_started_again"
        ],
    ),
    (
        "a restarted purchase makes its own Mollie payment",
        "workflows/initial_purchase.py",
        "workflow.info().run_id if request.restarts_run else None",
        "None",
        [
            "tests/test_purchase_outage.py::test_a_restart_never_hands_out_a_payment_the_failed_run_left_at_mollie"
        ],
    ),
    (
        "release a refused capture's hold",
        "workflows/recurring_billing.py",
        '        await self._release_hold("capture refused")',
        "        pass",
        [
            "tests/test_recurring_billing.py::test_a_refused_capture_releases_its_hold_before_the_next_authorisation"
        ],
    ),
    (
        "one release key per payment",
        "workflows/recurring_billing.py",
        "operation_key=release_key(workflow.info().workflow_id, payment_id)",
        'operation_key=release_key(workflow.info().workflow_id, "")',
        [
            "tests/test_recurring_billing.py::test_two_releases_in_one_cycle_each_release_their_own_hold"
        ],
    ),
    (
        "replayed refund records nothing again",
        "workflows/refund.py",
        "        if inherited and refund.status == MOLLIE_REFUND_DONE:",
        "        if False:",
        ["tests/test_refunds.py::test_refund_replayed_after_its_history_expired_changes_nothing"],
    ),
    (
        "refund unsettled at its deadline is not recorded and fails for an operator",
        "workflows/refund.py",
        "        if waited.end is WaitEnd.DEADLINE_PASSED:",
        "        if False:",
        [
            "tests/test_refund_time_skipping.py::"
            "test_a_refund_mollie_never_settles_fails_at_its_deadline_naming_the_refund"
        ],
    ),
    (
        "refund key from the whole webhook data",
        "api/cleeng_webhooks.py",
        "            data.request_key = refund_request_key(envelope.data)",
        "            data.request_key = data.payment_id",
        [
            "tests/test_refunds.py::test_two_equal_refunds_asked_apart_each_land_once_at_mollie_and_in_cleeng"
        ],
    ),
    (
        "refund the verification amount first",
        "workflows/payment_details.py",
        "            workflow.deprecate_patch(PATCH_REFUND_VERIFICATION_FIRST)\n"
        "            await self._refund_verification(payment, key)",
        "            workflow.deprecate_patch(PATCH_REFUND_VERIFICATION_FIRST)",
        [
            "tests/test_payment_details.py::test_verification_charge_is_refunded_when_cleeng_refuses_the_new_details"
        ],
    ),
    (
        "a paid verification that left no mandate is refunded",
        "workflows/payment_details.py",
        '                self._failure = "the verification payment left no mandate"\n'
        "                await self._refund_verification(payment, key)",
        '                self._failure = "the verification payment left no mandate"',
        [
            "tests/test_verification_without_mandate.py::"
            "test_a_paid_verification_that_left_no_mandate_is_refunded"
        ],
    ),
    (
        "deactivation without token fails visibly",
        "workflows/payment_details.py",
        "        if token is None:\n            raise ApplicationError(",
        "        if False:\n            raise ApplicationError(",
        [
            "tests/test_payment_details.py::test_deactivation_without_a_token_releases_the_holds_and_fails_for_an_operator"
        ],
    ),
    (
        "ids checked before they reach a URL",
        "clients/cleeng.py",
        '    return quote(str(int32(value, field)), safe="")',
        "    return str(value)",
        ["tests/test_clients.py::test_cleeng_ids_that_are_not_int32_never_reach_a_url"],
    ),
    (
        "front-end API key",
        "api/frontend_auth.py",
        "        return any(matches)",
        "        return True",
        ["tests/test_front_door.py::test_a_call_without_the_api_key_is_401_and_starts_nothing"],
    ),
    (
        "purchase only for the caller's own order",
        "api/purchases.py",
        "    if owner != caller.customer_id:",
        "    if False:",
        [
            "tests/test_front_door.py::"
            "test_a_purchase_of_someone_elses_order_is_refused_like_a_missing_order"
        ],
    ),
    (
        "redirect only to the publisher's origins",
        "api/frontend_auth.py",
        '    return f"{parts.scheme}://{host}{suffix}" in origins',
        "    return True",
        [
            "tests/test_front_door.py::"
            "test_a_redirect_outside_the_publisher_origins_is_422_and_starts_nothing"
        ],
    ),
    (
        "Mollie webhooks routed only to the payment's own workflow",
        "api/mollie_webhooks.py",
        "    owner = payment.metadata.get(WORKFLOW_METADATA_KEY)",
        '    owner = payment.metadata.get(WORKFLOW_METADATA_KEY) or "purchase:1"',
        [
            "tests/test_webhook_routing.py::"
            "test_payment_the_connector_did_not_make_is_ignored_and_remembered"
        ],
    ),
    (
        "a mandate Mollie cannot hold is charged, never asked for manual capture",
        "workflows/recurring_billing.py",
        "        if mandate is not None and not mandate_can_hold(mandate.method):",
        "        if False:",
        [
            "tests/test_renewal_methods.py::"
            "test_an_authorisation_on_a_direct_debit_mandate_is_charged_and_recorded_while_pending"
        ],
    ),
    (
        "a pending charge is recorded `authorized` before it is awaited",
        "workflows/recurring_billing.py",
        "    return status != MOLLIE_OPEN",
        "    return payment_is_final(status)",
        ["tests/test_billing_time_skipping.py::test_pending_direct_debit_is_awaited_for_days"],
    ),
    (
        "money whose order expired is recorded on a new order, never refunded",
        "workflows/recurring_billing.py",
        "                if payment.status == MOLLIE_AUTHORIZED or not workflow.patched(",
        "                if True or not workflow.patched(",
        [
            "tests/test_renewal_methods.py::"
            "test_money_taken_for_an_order_that_expired_is_recorded_on_a_new_order_not_refunded"
        ],
    ),
    (
        "the Mollie payment is pointed at the order that records it",
        "activities/mollie_activities.py",
        '            if str(payment.metadata.get("orderId")) != request.order_id:',
        "            if False:",
        [
            "tests/test_renewal_methods.py::"
            "test_money_taken_for_an_order_that_expired_is_recorded_on_a_new_order_not_refunded"
        ],
    ),
    (
        "0.00 first payment only where the method takes it",
        "domain/methods.py",
        "    if order_amount.minor > 0 or zero_first_payment_allowed(method):",
        "    if True:",
        [
            "tests/test_renewal_methods.py::"
            "test_a_free_trial_paid_with_ideal_pays_the_smallest_amount_and_gets_it_back"
        ],
    ),
    (
        "a free trial's verification amount is refunded",
        "workflows/initial_purchase.py",
        "            await self._refund_trial_verification(payment, workflow_id)",
        "            pass",
        [
            "tests/test_renewal_methods.py::"
            "test_a_free_trial_paid_with_ideal_pays_the_smallest_amount_and_gets_it_back"
        ],
    ),
    (
        "the old-details saga cancels only what Mollie shows released",
        "workflows/payment_details.py",
        "                if released.status != MOLLIE_CANCELED:",
        "                if False:",
        [
            "tests/test_renewal_methods.py::"
            "test_replaced_details_leave_a_pending_direct_debit_to_its_cycle"
        ],
    ),
    (
        "a Cleeng write after money moved is never given up",
        "activities/cleeng_activities.py",
        '        with records_are_never_given_up(f"mark payment {request.payment_id} '
        '{request.status}"):',
        '        with cleeng_refusals_are_final(f"mark payment {request.payment_id} '
        '{request.status}"):',
        ["tests/test_one_writer.py::test_a_refused_capture_record_is_retried_never_given_up"],
    ),
    (
        "a failed look at a charge already made never ends the wait",
        "workflows/payment_watch.py",
        "                if isinstance(error, CancelledError) or not workflow.patched(",
        "                if True or not workflow.patched(",
        ["tests/test_one_writer.py::test_a_failed_look_at_a_pending_debit_does_not_end_the_wait"],
    ),
    (
        "a new run never charges a cycle an earlier run charged",
        "activities/mollie_activities.py",
        "            if live:",
        "            if False:",
        [
            "tests/test_one_writer.py::"
            "test_a_new_run_after_a_run_that_moved_money_never_charges_again"
        ],
    ),
    (
        "an adopted payment is recorded on the order its metadata names",
        "workflows/recurring_billing.py",
        "        if payment.order_id is None or payment.order_id == order.order_id:",
        "        if True:",
        [
            "tests/test_one_writer.py::"
            "test_an_adopted_payment_is_recorded_on_the_order_its_metadata_names"
        ],
    ),
    (
        "a rejection names only its own attempt's payment",
        "workflows/recurring_billing.py",
        "declined.reason, attempt)\n            return",
        "declined.reason, self._payment)\n            return",
        ["tests/test_one_writer.py::test_a_rejection_names_only_its_own_attempts_payment"],
    ),
    (
        "a capture under way is not made again",
        "activities/mollie_activities.py",
        "                status in _CAPTURE_UNDER_WAY\n",
        "                False\n",
        [
            "tests/test_one_writer.py::"
            "test_a_capture_retried_after_mollie_forgot_its_key_is_not_made_twice"
        ],
    ),
    (
        "a deactivation leaves records that are not Mollie payments alone",
        "workflows/payment_details.py",
        '        if not (mollie_id and mollie_id.startswith("tr_")) and workflow.patched(',
        "        if False and workflow.patched(",
        [
            "tests/test_one_writer.py::"
            "test_a_deactivation_without_a_token_leaves_other_gateways_records_alone"
        ],
    ),
    (
        "a queued webhook a later one supersedes charges nothing",
        "workflows/recurring_billing.py",
        "            if superseding is not None and workflow.patched(PATCH_SUPERSEDE_QUEUED):",
        "            if False:",
        [
            "tests/test_renewal_methods.py::"
            "test_a_debit_that_fails_after_cleeng_gave_up_ends_in_the_termination_it_sent"
        ],
    ),
    (
        "reconciliation reads refunds and chargebacks by their own dates",
        "workflows/reconciliation.py",
        "            await self._check_older_payments(window.payments, start, request, report)",
        "            pass",
        [
            "tests/test_reconciliation.py::"
            "test_a_chargeback_and_a_dashboard_refund_weeks_after_the_payment_reach_cleeng_once"
        ],
    ),
    (
        "reconciliation reports an order or cycle paid twice",
        "domain/reconciliation.py",
        "    for what, group in _paid_groups(payments, keep=True):",
        "    for what, group in []:",
        [
            "tests/test_reconciliation_rules.py",
            "tests/test_reconciliation.py::"
            "test_a_cycle_paid_twice_is_reported_and_its_second_payments_refund_is_not_recorded",
        ],
    ),
    (
        "a Dashboard refund of a second charge is not recorded on the cycle's Cleeng payment",
        "workflows/reconciliation.py",
        "            if shared:",
        "            if False:",
        [
            "tests/test_reconciliation.py::"
            "test_a_cycle_paid_twice_is_reported_and_its_second_payments_refund_is_not_recorded"
        ],
    ),
    (
        "a refund PATCH whose reply was lost is not written again",
        "activities/cleeng_activities.py",
        "                if error.kind is not FailureKind.UNKNOWN_OUTCOME:\n",
        "                if True:\n",
        [
            "tests/test_refunds.py::test_lost_replies_to_the_refund_patch_are_held_never_written_twice"
        ],
    ),
    (
        "a refund record in doubt waits for a person",
        "workflows/refund.py",
        "            if await self.ask(question):\n                return",
        "            return",
        [
            "tests/test_refunds.py::test_lost_replies_to_the_refund_patch_are_held_never_written_twice"
        ],
    ),
    (
        "a refund an earlier run made is not taken for recorded",
        "workflows/refund.py",
        "            if workflow.patched(PATCH_INHERITED_REFUND_UNCONFIRMED):",
        "            if False:",
        [
            "tests/test_refunds.py::"
            "test_a_refund_replayed_after_it_was_not_settled_is_recorded_before_reported_refunded"
        ],
    ),
    (
        "a chargeback report that failed is started again",
        "workflows/refund.py",
        "                        WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY\n",
        "                        WorkflowIDReusePolicy.REJECT_DUPLICATE\n",
        [
            "tests/test_refunds.py::"
            "test_a_chargeback_whose_report_failed_is_reported_by_the_next_follow_up"
        ],
    ),
    (
        "a reversed chargeback is not reported by the follow-up",
        "workflows/refund.py",
        "            if chargeback.reversed_at is not None:\n"
        "                await self._note_reversal(chargeback, child_id)",
        "            if False:\n                await self._note_reversal(chargeback, child_id)",
        ["tests/test_refunds.py::test_a_reversed_chargeback_is_never_reported_as_a_refund"],
    ),
    (
        "a reversed chargeback is not reported by its own workflow",
        "workflows/refund.py",
        "        if chargeback.reversed_at is not None:\n            # Only a chargeback listed",
        "        if False:\n            # Only a chargeback listed",
        ["tests/test_refunds.py::test_a_reversed_chargeback_is_never_reported_as_a_refund"],
    ),
    (
        "a chargeback reversed after its report is listed for a person",
        "workflows/refund.py",
        '        if status in ("COMPLETED", "RUNNING"):',
        "        if False:",
        [
            "tests/test_refunds.py::test_a_chargeback_reversed_after_its_report_is_listed_for_a_person"
        ],
    ),
    (
        "a chargeback takes only what the payment's refunds left",
        "domain/refunds.py",
        "    remaining = max(paid.minor - refunded, 0)\n",
        "    remaining = paid.minor\n",
        [
            "tests/test_refunds.py::"
            "test_a_chargeback_takes_what_refunds_and_earlier_chargebacks_left",
            "tests/test_refunds.py::"
            "test_a_chargeback_after_a_partial_refund_records_what_the_refund_left",
        ],
    ),
    (
        "a chargeback takes only what earlier chargebacks left",
        "domain/refunds.py",
        "        remaining -= taken\n",
        "        pass\n",
        [
            "tests/test_refunds.py::"
            "test_a_chargeback_takes_what_refunds_and_earlier_chargebacks_left"
        ],
    ),
    (
        "a chargeback refunds gave back in full writes nothing",
        "workflows/refund.py",
        "            if share.to_record.minor == 0:\n",
        "            if False:\n",
        [
            "tests/test_refunds.py::"
            "test_a_chargeback_after_a_full_refund_writes_nothing_and_says_why"
        ],
    ),
    (
        "a Cleeng list that cannot be read is never taken as empty",
        "clients/cleeng.py",
        "    raise _unreadable(what, body)",
        "    return []",
        [
            "tests/test_clients.py::"
            "test_a_list_answer_cleeng_did_not_shape_as_a_list_is_an_error_naming_the_call",
            "tests/test_payment_details.py::"
            "test_an_unreadable_list_of_authorisations_is_read_again_never_taken_as_none",
        ],
    ),
    (
        "webhook registration never PUTs over a list it did not read",
        "clients/cleeng.py",
        '                raise _unreadable(f"{what} (topic {topic})", endpoints)',
        "                continue",
        ["tests/test_webhook_registration.py::test_an_unreadable_list_is_never_overwritten"],
    ),
    (
        "termination goes by the Termination guide's PATCH by default",
        "settings.py",
        '        default="patch",',
        '        default="terminate",',
        [
            "tests/test_recurring_billing.py::"
            "test_termination_goes_by_the_termination_guide_patch_by_default"
        ],
    ),
    (
        "an activity task scheduled with a bare id before a deploy is still read",
        "activities/mollie_activities.py",
        "    async def fetch_payment(self, request: MolliePaymentRef | str)",
        "    async def fetch_payment(self, request: MolliePaymentRef)",
        [
            "tests/test_activity_inputs.py::test_the_worker_runs_an_activity_task_scheduled_with_a_bare_id"
        ],
    ),
    (
        "a refund refused after a chargeback reports it and ends charged_back",
        "workflows/refund.py",
        "                ) and await self._charged_back_instead(request, cause.message):",
        "                ) and False:",
        [
            "tests/test_refunds.py::test_a_refund_of_money_already_charged_back_reports_the_chargeback_and_refunds_nothing"
        ],
    ),
    (
        "only chargebacks that cover the refund end it charged_back",
        "workflows/refund.py",
        "        if given_back >= request.amount.minor:",
        "        if given_back >= 0:",
        [
            "tests/test_refunds.py::test_a_refund_above_what_a_chargeback_left_is_refused_after_reporting_it"
        ],
    ),
]


def run_one(root: Path, path: str, old: str, new: str, tests: list[str]) -> tuple[str, str]:
    file = root / path
    text = file.read_text()
    if text.count(old) != 1:
        return "NOT APPLIED", f"{text.count(old)} matches for the guarded text"
    file.write_text(text.replace(old, new))
    try:
        started = time.monotonic()
        run = subprocess.run(
            [str(PYTEST), "-q", "-p", "no:cacheprovider", "-x", *tests],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        file.write_text(text)
    summary = [
        line
        for line in (run.stdout + run.stderr).splitlines()
        if re.search(r"\d+ (passed|failed|errors?)\b", line)
    ]
    detail = f"{summary[-1] if summary else 'no summary'} ({time.monotonic() - started:.0f} s)"
    return ("caught" if run.returncode != 0 else "SURVIVED"), detail


def copy_working_tree(root: Path) -> None:
    """The files as they are on disk now (tracked and new, ignoring what git ignores)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source, target = REPO / name, root / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.exists():
            target.unlink()  # deleted in the working tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run the guards whose name contains this")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only in m[0]]
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        root = Path(scratch) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(root), "HEAD"], cwd=REPO, check=True
        )
        try:
            copy_working_tree(root)
            print("| guard | verdict | tests |")
            print("|---|---|---|")
            failed = False
            for name, path, old, new, tests in chosen:
                verdict, detail = run_one(root, path, old, new, tests)
                failed |= verdict != "caught"
                print(f"| {name} | {verdict} | {detail} |", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(root)], cwd=REPO)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
