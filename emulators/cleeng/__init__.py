"""Cleeng emulator: an HTTP server speaking the Cleeng Core API 3.1 wire format.

It serves the endpoints a payment connector touches (orders, payments, payment details,
subscriptions, webhook subscriptions), operator endpoints under ``/_emulator`` for seeding,
inspection, a controllable clock and fault injection, and a billing engine that sends the
dunning webhooks. Start it with ``python -m emulators.cleeng`` or build it with
:func:`emulators.cleeng.app.create_app`.
"""
