"""Fuzz the running shim from its own `/openapi.json` with schemathesis: bounded, seeded.

Every documented operation gets schema-valid (positive) and schema-breaking (negative)
requests, authenticated as the publisher's backend with the sandbox key (unauthenticated ones
would all stop at 401). Every answer must be a non-5xx status the OpenAPI documents for that
operation, with the documented content type, headers and body schema; negative requests must
be refused with a 4xx.

Figures (printed with `-s`): operations, cases, answers by status.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckFunction, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from settings import EMULATOR_FRONTEND_API_KEY
from tests.conftest import Connector
from tests.support.shop import seed_order

SEED = 20261126
EXAMPLES = 50  # per operation and generation mode
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Operations left out, with why (none today).
EXCLUDED: dict[str, str] = {}


@dataclass
class Figures:
    operations: list[str] = field(default_factory=list)
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    # One entry per distinct (operation, mode, failure, status), with a curl to reproduce it.
    failures: dict[str, str] = field(default_factory=dict)
    nothing_to_negate: list[str] = field(default_factory=list)


def fuzz(api_url: str, customer_id: str) -> Figures:
    """Runs in a thread: schemathesis calls the server synchronously."""
    key = {"Authorization": f"Bearer {EMULATOR_FRONTEND_API_KEY}"}
    # Twice over: with the customer header as generated (mostly refused at the door), and as
    # a real customer, so generated bodies and paths reach the routes behind it.
    callers = {"any customer": key, "a customer": {**key, "X-Cleeng-Customer-Id": customer_id}}
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    figures = Figures()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        if operation.label in EXCLUDED:
            continue
        figures.operations.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks = [*CHECKS, negative_data_rejection] if mode.is_negative else CHECKS
            for caller, headers in callers.items():
                label = f"{operation.label} [{mode.value}, {caller}]"
                strategy = operation.as_strategy(generation_mode=mode)
                try:
                    run_cases(strategy, label, checks, headers, figures)
                except Unsatisfiable:
                    # Nothing to break: e.g. GET /health has no parameters and no body.
                    figures.nothing_to_negate.append(label)
    return figures


def run_cases(
    strategy: hypothesis.strategies.SearchStrategy[Case[Any]],
    label: str,
    checks: list[CheckFunction],
    headers: dict[str, str],
    figures: Figures,
) -> None:
    @hypothesis.seed(SEED)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,  # no replay of earlier runs' examples: every run is the same run
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=strategy)
    def one(case: Case[Any]) -> None:
        figures.cases += 1
        response = case.call(headers=headers, timeout=60)
        status = response.status_code
        figures.statuses[status] = figures.statuses.get(status, 0) + 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{label} {failure.code} {failure.title} -> {status}"
                curl = case.as_curl_command(headers=headers)
                figures.failures.setdefault(key, f"{failure.message[:800]}\n  {curl[:800]}")

    one()


@pytest.mark.long_running(seconds=15)
async def test_the_shim_survives_fuzzing_and_keeps_to_its_schema(connector: Connector) -> None:
    # The fuzzer's calls block: a thread keeps this loop serving the worker that the
    # purchases and card changes it may start need.
    seeded = await seed_order(connector.emulators.cleeng_url)
    figures = await asyncio.to_thread(fuzz, connector.api_url, str(seeded["customerId"]))
    print(  # noqa: T201 - the figures are the point of running this with -s
        f"\nschemathesis (seed {SEED}, {EXAMPLES} examples per operation and mode): "
        f"{len(figures.operations)} operations, {figures.cases} cases, "
        f"answers {dict(sorted(figures.statuses.items()))}; "
        f"no negative data for: {', '.join(figures.nothing_to_negate) or '-'}"
    )
    assert len(figures.operations) >= 8
    assert not figures.failures, "\n\n".join(f"{k}\n{v}" for k, v in figures.failures.items())
