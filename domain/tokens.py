"""The recurring token the connector stores in Cleeng payment details.

Cleeng hands the payment details' `token` back in every renewal webhook, so it carries what
Mollie needs to charge again: the Mollie customer and mandate. Tokens of other gateways'
connectors do not parse, which is how the connector recognises details that are not its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN_PATTERN = re.compile(r"^mollie:(cst_[A-Za-z0-9]+):(mdt_[A-Za-z0-9]+)$")


@dataclass(frozen=True, kw_only=True)
class MollieToken:
    customer_id: str
    mandate_id: str

    def encode(self) -> str:
        return f"mollie:{self.customer_id}:{self.mandate_id}"

    @classmethod
    def parse(cls, token: str) -> MollieToken | None:
        """The token's parts, or None when the token is not one of ours."""
        match = _TOKEN_PATTERN.match(token.strip())
        if match is None:
            return None
        return cls(customer_id=match.group(1), mandate_id=match.group(2))


def no_mandate_token(payment_id: str) -> str:
    """The token of inactive payment details recorded with a payment that made no mandate:
    Cleeng requires details on every payment; these name the payment and charge nothing."""
    return f"mollie-payment:{payment_id}"
