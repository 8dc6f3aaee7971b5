"""Cleeng emulator: an HTTP server speaking the Cleeng Core API 3.1 wire format.

It serves exactly the endpoints of Cleeng's published Core API 3.1 reference a payment
connector touches (orders, payments, payment details, subscriptions, webhook subscriptions),
typed strictly, with its own wire constants (:mod:`emulators.cleeng.reference`) and nothing
imported from the connector. Operator endpoints under ``/_emulator`` seed, inspect, move a
controllable clock and inject faults; a billing engine sends the dunning webhooks. Start it with
``python -m emulators.cleeng`` or build it with :func:`emulators.cleeng.app.create_app`.
"""
