"""How a failure is stored in Temporal's history when payloads are encrypted.

Every failure (a workflow's, an activity's, each cause in its chain) keeps in clear what an
operator acts on: its type (`CleengRefusedPayment`, `ChargebackUnmatched`, ...) and its message
with customer data taken out (`redact`), the message led by the type
(`CleengRefusedPayment: order 123: payment tr_... was refunded because ...`). The whole message
and the stack trace travel in the failure's `encoded_attributes`, which the payload codec
encrypts like any other payload.

So the Temporal Web UI's headline, each event's "Failure Message", `temporal workflow describe`
and `temporal workflow list` show a readable failure with no codec at all, while the connector
itself (a workflow reading its activity's error, a client reading a workflow's failure) reads
the whole message back from the encrypted attributes, as before.

This module runs inside the workflow sandbox: the standard library, `temporalio` and the
logs' redaction (`telemetry.redaction`, itself the standard library only).
"""

from __future__ import annotations

import re
from typing import Final

from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverter, PayloadConverter

from telemetry.redaction import Redactor

# What the logs' redaction (telemetry/redaction.py) does not cover and a failure may quote:
# pydantic's refused value (`input_value='ada@example.com'`, or a whole object of customer
# fields when one is missing: the value goes, the field's name stays), and an IBAN (country,
# check digits and 11-30 letters or digits, maybe grouped by spaces).
_FAILURE_ONLY: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"input_value=.*?(?=, input_type=)", re.DOTALL), "input_value=<redacted>"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), "<iban>"),
)

# Emails, Mollie customer and mandate ids (a mandate id is the card token Cleeng stores), keys
# and tokens, name and email fields: the same redaction the logs get. Payment ids (`tr_...`,
# `re_...`, `chb_...`), order, subscription and Cleeng payment ids and amounts stay.
_CUSTOMER_DATA: Final = Redactor()


def redact(message: str) -> str:
    """`message` without the customer data it may quote: what the logs never show (emails,
    Mollie customer and mandate ids, secrets), IBANs, and the values pydantic quotes in a
    validation error."""
    for pattern, replacement in _FAILURE_ONLY:
        message = pattern.sub(replacement, message)
    return _CUSTOMER_DATA(message)


class ClearTypeAndRedactedMessageFailureConverter(DefaultFailureConverter):
    """Temporal's default converter (type, message and stack trace in clear), then, in each
    failure of the chain: the whole message and the stack trace moved into the encrypted
    `encoded_attributes`, and the clear message replaced by the type and the redacted message.

    Reading is Temporal's default: `encoded_attributes`, when readable, give the whole message
    back, so histories written with `DefaultFailureConverterWithEncodedAttributes` (message
    "Encoded failure") still read and replay."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=False)

    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: Failure,
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        # The whole chain, not only this level: a failure re-raised in a workflow (an
        # activity's error passed on as its cause) is copied as it was read, causes and all.
        node: Failure | None = failure
        while node is not None:
            _seal(node, payload_converter)
            node = node.cause if node.HasField("cause") else None


def _seal(failure: Failure, payload_converter: PayloadConverter) -> None:
    """Whole message and stack trace into `encoded_attributes`, redacted message in clear.
    Idempotent: a failure sealed before (read back, then re-raised) is sealed the same way."""
    message, stack_trace = failure.message, failure.stack_trace
    if failure.HasField("encoded_attributes"):
        try:
            [attributes] = payload_converter.from_payloads([failure.encoded_attributes])
        except Exception:  # a payload this converter cannot read (still encrypted): leave it
            return
        if not isinstance(attributes, dict):
            return
        message = str(attributes.get("message") or message)
        stack_trace = str(attributes.get("stack_trace") or stack_trace)
    failure.encoded_attributes.CopyFrom(
        payload_converter.to_payloads([{"message": message, "stack_trace": stack_trace}])[0]
    )
    failure.message = _headline(failure, redact(message))
    failure.stack_trace = ""


def _headline(failure: Failure, message: str) -> str:
    """The clear message, led by the failure's type: the Web UI's event list and `temporal
    workflow describe` show a failure's message and not its type, and the type is what the
    runbook acts on."""
    kind = (
        failure.application_failure_info.type
        if failure.HasField("application_failure_info")
        else ""
    )
    if not kind or message.startswith(f"{kind}: "):
        return message
    return f"{kind}: {message}" if message else kind
