"""Custom search attributes that make every payment findable in the Temporal Web UI.

They must be registered on the namespace: the launcher passes them to the dev server
(`--search-attribute Name=Keyword`); on a cluster, register them once with
`temporal operator search-attribute create --name NAME --type Keyword`.
"""

from __future__ import annotations

from typing import Final

from temporalio.common import SearchAttributeKey

CLEENG_ORDER_ID: Final = SearchAttributeKey.for_keyword("CleengOrderId")
CLEENG_SUBSCRIPTION_ID: Final = SearchAttributeKey.for_keyword("CleengSubscriptionId")
CLEENG_PAYMENT_ID: Final = SearchAttributeKey.for_keyword("CleengPaymentId")
MOLLIE_PAYMENT_ID: Final = SearchAttributeKey.for_keyword("MolliePaymentId")

ALL: Final = (CLEENG_ORDER_ID, CLEENG_SUBSCRIPTION_ID, CLEENG_PAYMENT_ID, MOLLIE_PAYMENT_ID)


def dev_server_flags() -> list[str]:
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
