"""What encrypting workflow payloads costs per renewal: the codec against the JSON converter.

.venv/bin/python benchmarks/payload_codec.py [--rounds 300]

It takes every payload of each saved RecurringBilling history (tests/histories/: a renewal's
inputs, signals, activity arguments and results, as the worker and the API write them) and
times, side by side in one run, per renewal:
- the default JSON converter turning those values into payloads and back (what every renewal
  pays with or without encryption), and
- the payload codec encrypting them and decrypting them again (AES-256-GCM; what
  PAYLOAD_ENCRYPTION_KEYS adds: each payload is encrypted once where it is written and
  decrypted where it is read).
It prints medians over the rounds. Nothing in it asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from codec.keys import new_key_entry, parse_key_ring
from codec.payload_codec import EncryptionCodec

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "histories"


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere inside a history event."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            items = [value]
        elif hasattr(value, "values"):  # a map field
            items = list(value.values())
        else:  # a repeated field
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                yield item
            elif isinstance(item, Message):
                yield from payloads_in(item)


def renewal_payloads() -> list[list[Payload]]:
    renewals = []
    for path in sorted(HISTORIES.glob("RecurringBilling-*.json")):
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        renewals.append([p for event in history.events for p in payloads_in(event)])
    return renewals


def median_microseconds(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def measure(rounds: int) -> None:
    renewals = renewal_payloads()
    codec = EncryptionCodec(parse_key_ring(new_key_entry("bench1")))
    converter = DataConverter.default.payload_converter
    json_us, encrypt_us, decrypt_us = [], [], []
    for _ in range(rounds):
        for payloads in renewals:
            # Interleaved, so machine noise falls on both alike.
            started = time.perf_counter()
            values = converter.from_payloads(payloads)
            converter.to_payloads(values)
            json_us.append(time.perf_counter() - started)
            started = time.perf_counter()
            sealed = await codec.encode(payloads)
            encrypt_us.append(time.perf_counter() - started)
            started = time.perf_counter()
            await codec.decode(sealed)
            decrypt_us.append(time.perf_counter() - started)
    counts = [len(p) for p in renewals]
    sizes = [sum(len(x.data) for x in p) for p in renewals]
    codec_us = median_microseconds(encrypt_us) + median_microseconds(decrypt_us)
    print(f"saved renewal histories: {len(renewals)}")
    print(
        f"payloads per renewal: median {statistics.median(counts):.0f} "
        f"(min {min(counts)}, max {max(counts)}), "
        f"{statistics.median(sizes) / 1024:.1f} KiB of data"
    )
    print(f"medians over {rounds} rounds, per renewal:")
    print(f"  JSON converter, values -> payloads -> values: {median_microseconds(json_us):8.1f} µs")
    print(
        f"  codec encrypt:                                {median_microseconds(encrypt_us):8.1f} µs"
    )
    print(
        f"  codec decrypt:                                {median_microseconds(decrypt_us):8.1f} µs"
    )
    print(f"  {'codec total / JSON converter':46} {codec_us / median_microseconds(json_us):8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    asyncio.run(measure(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
