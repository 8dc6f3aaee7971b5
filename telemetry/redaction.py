"""Remove secrets and clear-text customer data from text bound for logs or span attributes.

What counts as sensitive here:
- API keys, tokens and secrets: Mollie keys (`test_...`, `live_...`, `access_...`), bearer
  credentials, JWTs (a Cleeng customer token), any `token=`/`secret:`/`api_key=`/
  `password=`/`authorization:` value, and the configured secrets themselves by value (the
  publisher token and the webhook secret have no recognisable shape).
- The recurring token stored in Cleeng payment details (`mollie:cst_...:mdt_...`) and its two
  halves: with the Mollie key, a customer and mandate id are what charges the customer again,
  and a Mollie customer holds the shopper's name and email.
- Emails (also URL-encoded), and the values of name and email fields.

Ids that identify a payment but cannot move money (orders, subscriptions, Cleeng payments,
Mollie payments `tr_`, refunds `re_`, chargebacks) stay: operators find a payment by them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "<redacted>"

# Configured secrets shorter than this are not redacted by value: a short one would also blank
# out ordinary words (settings refuse such short secrets anyway).
MIN_SECRET_CHARS = 8

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # The whole recurring token first, so neither half survives on its own.
    (re.compile(r"mollie:cst_[A-Za-z0-9]+:mdt_[A-Za-z0-9]+"), f"mollie:{REDACTED}"),
    (re.compile(r"\bmdt_[A-Za-z0-9]+"), f"mdt_{REDACTED}"),
    (re.compile(r"\bcst_[A-Za-z0-9]+"), f"cst_{REDACTED}"),
    (re.compile(r"\b(?:test|live|access)_[A-Za-z0-9]{16,}"), f"<mollie-key:{REDACTED}>"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), f"Bearer {REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), f"<jwt:{REDACTED}>"),
    (
        re.compile(
            r"(?i)\b((?:[a-z_-]*token|[a-z_-]*secret|api[_-]?key|password|authorization|"
            r"first_?name|last_?name|full_?name|consumer_?name|card_?holder|e_?mail)"
            r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&})\]]+)"
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), "<email>"),
)


class Redactor:
    """Applies the patterns above, and blanks out the configured secrets by value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first: a secret that contains another is removed whole.
        self._secrets = sorted(
            {secret for secret in secrets if len(secret) >= MIN_SECRET_CHARS},
            key=len,
            reverse=True,
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text
