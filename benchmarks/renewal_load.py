"""Seeding subscribers, firing Cleeng renewal webhooks, and reading back what happened.

Used by benchmarks/renewals.py. Seeding goes through the emulators' documented APIs only:
Mollie `POST /v2/customers`, a zero-amount `first` card payment (`POST /v2/payments`) marked
paid through the emulator's operator route, which gives a `creditcard` mandate (the only
recurring method Mollie authorises with manual capture; `POST /v2/customers/{id}/mandates`
creates only directdebit and paypal ones); Cleeng `POST /_emulator/customers`,
`POST /3.1/payment_details` (token `mollie:{cst}:{mdt}`) and `POST /_emulator/subscriptions`
due weeks ahead, so the emulator's own billing engine sends nothing during the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx

from benchmarks.renewal_report import Correctness, ProcessUsage
from settings import (
    EMULATOR_MOLLIE_API_KEY,
    EMULATOR_PAYMENT_METHOD_ID,
    EMULATOR_PUBLISHER_TOKEN,
    EMULATOR_WEBHOOK_SECRET,
)

TOPIC_AUTHORISATION = "subscriptionReadyForPaymentAuthorisation"
TOPIC_CAPTURE = "subscriptionReadyForPaymentCapture"
RECURRING_OPERATION = "recurring-payment"
OFFER_PRICE_MINOR = 999
OFFER_CURRENCY = "EUR"
CURRENCY_EXPONENT = {"JPY": 0}
AUTHORISE_HOURS_BEFORE_DUE = 72
T = TypeVar("T")


@dataclass(frozen=True)
class Endpoints:
    api: str
    cleeng: str
    mollie: str
    temporal: str  # host:port


@dataclass(frozen=True)
class Subscriber:
    """One seeded subscription with a valid card mandate, due at `due`."""

    customer_id: int
    subscription_id: int
    offer_id: str
    payment_details_id: int
    mollie_customer_id: str
    mandate_id: str
    due: datetime

    @property
    def expiration_date(self) -> str:
        return iso_utc(self.due)

    @property
    def workflow_id(self) -> str:
        return f"billing:{self.subscription_id}:{self.expiration_date}"


@dataclass
class SendLog:
    """What a load sent: ack latencies (ms), errors, and when the first and last left."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    first_sent: float | None = None
    last_sent: float | None = None
    count: int = 0

    def sent_at(self, moment: float) -> None:
        self.count += 1
        self.first_sent = moment if self.first_sent is None else min(self.first_sent, moment)
        self.last_sent = moment if self.last_sent is None else max(self.last_sent, moment)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def bounded(
    items: Iterable[T], concurrency: int, work: Callable[[T], Awaitable[None]]
) -> None:
    """Run `work` on every item, at most `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: T) -> None:
        async with gate:
            await work(item)

    await asyncio.gather(*(one(item) for item in items))


# -------------------------------------------------------------------------------- seeding


def _ok(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 300:
        raise RuntimeError(f"{what} answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


async def seed_offer(http: httpx.AsyncClient, endpoints: Endpoints) -> str:
    offer = _ok(
        await http.post(
            f"{endpoints.cleeng}/_emulator/offers",
            json={
                "title": "Benchmark monthly",
                "priceMinor": OFFER_PRICE_MINOR,
                "currency": OFFER_CURRENCY,
                "period": "month",
            },
        ),
        "Cleeng emulator POST /_emulator/offers",
    )
    return str(offer["offerId"])


async def _mollie_card_mandate(http: httpx.AsyncClient, mollie: str, label: str) -> tuple[str, str]:
    """A Mollie customer with a valid creditcard mandate, as a paid first payment leaves it."""
    bearer = {"Authorization": f"Bearer {EMULATOR_MOLLIE_API_KEY}"}
    customer = _ok(
        await http.post(
            f"{mollie}/v2/customers",
            json={"name": f"Bench {label}", "email": f"{label}@example.com"},
            headers=bearer,
        ),
        "Mollie POST /v2/customers",
    )
    first = _ok(
        await http.post(
            f"{mollie}/v2/payments",
            json={
                "amount": {"currency": OFFER_CURRENCY, "value": "0.00"},
                "description": f"Card check {label}",
                "sequenceType": "first",
                "customerId": customer["id"],
                "method": "creditcard",
                "redirectUrl": "https://example.com/return",
            },
            headers=bearer,
        ),
        "Mollie POST /v2/payments (first)",
    )
    paid = _ok(
        await http.post(
            f"{mollie}/_emulator/payments/{first['id']}/status", json={"status": "paid"}
        ),
        "Mollie emulator POST /_emulator/payments/{id}/status",
    )
    return str(customer["id"]), str(paid["mandateId"])


async def seed_subscriber(
    http: httpx.AsyncClient, endpoints: Endpoints, offer_id: str, due: datetime
) -> Subscriber:
    label = f"bench-{uuid.uuid4().hex[:12]}"
    mollie_customer, mandate = await _mollie_card_mandate(http, endpoints.mollie, label)
    customer = _ok(
        await http.post(
            f"{endpoints.cleeng}/_emulator/customers", json={"email": f"{label}@example.com"}
        ),
        "Cleeng emulator POST /_emulator/customers",
    )
    details = _ok(
        await http.post(
            f"{endpoints.cleeng}/3.1/payment_details",
            json={
                "customerId": customer["id"],
                "token": f"mollie:{mollie_customer}:{mandate}",
                "paymentMethodId": EMULATOR_PAYMENT_METHOD_ID,
                "paymentMethodSpecificParams": {"variant": "creditcard"},
            },
            headers={"X-Publisher-Token": EMULATOR_PUBLISHER_TOKEN},
        ),
        "Cleeng POST /3.1/payment_details",
    )["data"]
    subscription = _ok(
        await http.post(
            f"{endpoints.cleeng}/_emulator/subscriptions",
            json={
                "customerId": customer["id"],
                "offerId": offer_id,
                "paymentDetailsId": details["id"],
                "dateTo": int(due.timestamp()),
            },
        ),
        "Cleeng emulator POST /_emulator/subscriptions",
    )
    return Subscriber(
        customer_id=int(customer["id"]),
        subscription_id=int(subscription["subscriptionId"]),
        offer_id=offer_id,
        payment_details_id=int(details["id"]),
        mollie_customer_id=mollie_customer,
        mandate_id=mandate,
        due=due,
    )


SEED_ATTEMPTS = 3


async def seed_with_retries(
    http: httpx.AsyncClient, endpoints: Endpoints, offer_id: str, due: datetime
) -> Subscriber:
    """A lost connection while seeding leaves at worst an unused customer: start over."""
    for attempt in range(1, SEED_ATTEMPTS + 1):
        try:
            return await seed_subscriber(http, endpoints, offer_id, due)
        except httpx.TransportError:
            if attempt == SEED_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def seed_subscribers(
    http: httpx.AsyncClient,
    endpoints: Endpoints,
    offer_id: str,
    count: int,
    due: datetime,
    concurrency: int,
) -> list[Subscriber]:
    seeded: list[Subscriber] = []

    async def one(_: int) -> None:
        seeded.append(await seed_with_retries(http, endpoints, offer_id, due))

    await bounded(range(count), concurrency, one)
    return seeded


# ------------------------------------------------------------------------------- webhooks


def webhook_body(subscriber: Subscriber, topic: str) -> bytes:
    """The dunning webhook Cleeng sends for the subscriber's cycle (see DunningData)."""
    attempt = subscriber.due
    if topic == TOPIC_AUTHORISATION:
        attempt = datetime.fromtimestamp(
            subscriber.due.timestamp() - AUTHORISE_HOURS_BEFORE_DUE * 3600, UTC
        )
    envelope = {
        "broadcasterId": 1,
        "topic": topic,
        "data": {
            "subscriptionId": subscriber.subscription_id,
            "offerId": subscriber.offer_id,
            "customerId": subscriber.customer_id,
            "expirationDate": subscriber.expiration_date,
            "dunningAttemptDate": iso_utc(attempt),
            "paymentDetailsId": subscriber.payment_details_id,
            "paymentMethodId": EMULATOR_PAYMENT_METHOD_ID,
            "token": f"mollie:{subscriber.mollie_customer_id}:{subscriber.mandate_id}",
            "currency": OFFER_CURRENCY,
            "paymentCountry": "NL",
        },
    }
    return json.dumps(envelope).encode()


def signed_headers(body: bytes) -> dict[str, str]:
    digest = hmac.new(EMULATOR_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "X-Cleeng-Signature": digest}


async def post_webhook(
    http: httpx.AsyncClient, url: str, body: bytes, log: SendLog, started: float | None = None
) -> None:
    """POST one signed webhook; the ack time counts from `started` (its scheduled time, for
    paced loads) or from now. Anything but 200 `accepted` is an error."""
    sent = time.time()
    log.sent_at(sent)
    begin = started if started is not None else sent
    try:
        response = await http.post(url, content=body, headers=signed_headers(body))
    except httpx.HTTPError as error:
        log.errors.append(f"{type(error).__name__}: {error}")
        return
    log.latencies_ms.append((time.time() - begin) * 1000)
    if response.status_code != 200:
        log.errors.append(f"{response.status_code}: {response.text[:200]}")
    elif response.json().get("status") != "accepted":
        log.errors.append(f"200 but not accepted: {response.text[:200]}")


async def burst(
    bodies: Sequence[T], concurrency: int, send: Callable[[T, float | None], Awaitable[None]]
) -> None:
    """Everything at once, at most `concurrency` in flight."""

    async def one(body: T) -> None:
        await send(body, None)

    await bounded(bodies, concurrency, one)


async def paced(
    bodies: Sequence[T],
    rate: float,
    send: Callable[[T, float | None], Coroutine[Any, Any, None]],
) -> None:
    """Open loop: item i leaves at start + i/rate whether or not earlier ones were answered."""
    start = time.time()
    tasks: list[asyncio.Task[None]] = []
    for index, body in enumerate(bodies):
        scheduled = start + index / rate
        delay = scheduled - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(body, scheduled)))
    await asyncio.gather(*tasks)


# ------------------------------------------------------------------------------- ledgers


def minor_units(amount: dict[str, str]) -> int:
    exponent = CURRENCY_EXPONENT.get(amount["currency"], 2)
    return int(Decimal(amount["value"]).scaleb(exponent))


async def fetch_ledgers(
    http: httpx.AsyncClient, endpoints: Endpoints
) -> tuple[dict[str, Any], dict[str, Any]]:
    mollie = _ok(await http.get(f"{endpoints.mollie}/_emulator/ledger"), "Mollie ledger")
    return mollie, await fetch_cleeng_ledger(http, endpoints)


async def fetch_cleeng_ledger(http: httpx.AsyncClient, endpoints: Endpoints) -> dict[str, Any]:
    return _ok(await http.get(f"{endpoints.cleeng}/_emulator/ledger"), "Cleeng ledger")


def authorised_count(cleeng_ledger: dict[str, Any], subscription_ids: set[int]) -> int:
    """Subscribers whose cycle Cleeng shows authorised (or already captured)."""
    return len(
        {
            item["subscriptionId"]
            for item in cleeng_ledger["items"]
            if item["subscriptionId"] in subscription_ids
            and item["paymentOperation"] == RECURRING_OPERATION
            and item["status"] in ("authorized", "captured")
        }
    )


def check_ledgers(
    subscribers: Sequence[Subscriber], mollie: dict[str, Any], cleeng: dict[str, Any]
) -> Correctness:
    """Exactly one paid recurring Mollie payment and one captured Cleeng record per
    subscriber, naming the same payment with the same amount."""
    by_customer = {s.mollie_customer_id: s for s in subscribers}
    by_subscription = {s.subscription_id: s for s in subscribers}
    paid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for payment in mollie["payments"]:
        if (
            payment["customerId"] in by_customer
            and payment["sequenceType"] == "recurring"
            and payment["status"] == "paid"
        ):
            paid[payment["customerId"]].append(payment)
    captured: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item in cleeng["items"]:
        if (
            item["subscriptionId"] in by_subscription
            and item["paymentOperation"] == RECURRING_OPERATION
            and item["status"] == "captured"
        ):
            captured[item["subscriptionId"]].append(item)
    result = Correctness(subscribers=len(subscribers))
    agree = True
    for subscriber in subscribers:
        charges = paid.get(subscriber.mollie_customer_id, [])
        records = captured.get(subscriber.subscription_id, [])
        result.mollie_paid_exactly_once += len(charges) == 1
        result.cleeng_captured_exactly_once += len(records) == 1
        if not charges or not records:
            result.missing += 1
            agree = False
            _evidence(result, f"{subscriber.workflow_id}: {len(charges)} paid, {len(records)} rec")
            continue
        if len(charges) > 1 or len(records) > 1:
            result.duplicates += 1
            _evidence(result, f"{subscriber.workflow_id}: {len(charges)} paid, {len(records)} rec")
        if records[0]["externalPaymentId"] != charges[0]["id"] or records[0][
            "amountMinor"
        ] != minor_units(charges[0]["amount"]):
            agree = False
            _evidence(result, f"{subscriber.workflow_id}: Cleeng and Mollie disagree")
    order_subscription = {item["orderId"]: item["subscriptionId"] for item in cleeng["items"]}
    result.cleeng_duplicate_records = sum(
        1
        for d in cleeng.get("duplicates", [])
        if order_subscription.get(d.get("orderId")) in by_subscription
    )
    result.ledgers_agree = agree and result.duplicates == 0
    return result


def _evidence(result: Correctness, line: str) -> None:
    if len(result.evidence) < 20:
        result.evidence.append(line)


# ------------------------------------------------------------------------ process figures


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (and of its children it waited for), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime..cstime are fields 14..17.
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK_TICKS


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux `clear_refs` 5), so it is the load's peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def read_pid_files(data_dir: Path) -> dict[str, int]:
    pids: dict[str, int] = {}
    for path in sorted((data_dir / "run").glob("*.pid")):
        try:
            pids[path.stem] = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return pids


def temporal_db_mb(data_dir: Path) -> float:
    return sum(p.stat().st_size for p in data_dir.glob("temporal.db*")) / 1024 / 1024


@dataclass
class _Probe:
    name: str
    pid: int
    cpu_start: float
    hwm_reset: bool
    peak_rss_kb: int = 0


class UsageMeter:
    """CPU seconds and peak RSS of named processes over one load.

    Peak RSS is VmHWM after a reset at the start when the kernel allows it, and in any case
    the highest VmRSS sampled every `interval` seconds."""

    def __init__(self, processes: dict[str, int], interval: float = 0.5) -> None:
        self._interval = interval
        self._probes = [
            _Probe(name, pid, cpu_seconds(pid) or 0.0, reset_peak_rss(pid))
            for name, pid in processes.items()
        ]
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample_forever())

    def sample(self) -> None:
        for probe in self._probes:
            rss = status_kb(probe.pid, "VmRSS") or 0
            probe.peak_rss_kb = max(probe.peak_rss_kb, rss)

    async def _sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._interval)

    async def stop(self, current: dict[str, int]) -> list[ProcessUsage]:
        """The figures; `current` (name → pid now) tells which processes were restarted."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()
        usage: list[ProcessUsage] = []
        for probe in self._probes:
            end = cpu_seconds(probe.pid)
            hwm = status_kb(probe.pid, "VmHWM") if probe.hwm_reset else None
            peak = max(probe.peak_rss_kb, hwm or 0)
            usage.append(
                ProcessUsage(
                    name=probe.name,
                    pid=probe.pid,
                    cpu_seconds=round(max(0.0, (end or probe.cpu_start) - probe.cpu_start), 2),
                    peak_rss_mb=round(peak / 1024, 1),
                    restarted=current.get(probe.name, probe.pid) != probe.pid or end is None,
                )
            )
        return usage
