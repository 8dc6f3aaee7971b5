"""Heartbeats from inside the clients: one before every request an activity makes.

The worker hands `heartbeat_before_request` to the Cleeng and Mollie clients, so an activity of
several requests (a list walked page by page, a capture read back) reports that it is alive
between them, and its kind's `heartbeat_timeout` (workflows/policies.py) notices a lost worker
within one request. Outside an activity (the shim's own look-ups) it does nothing, and so it
does in a local activity: the server never hears of one, so there is nothing to heartbeat to
(its start-to-close timeout notices a lost worker instead).
"""

from __future__ import annotations

from temporalio import activity


def heartbeat_before_request() -> None:
    if activity.in_activity() and not activity.info().is_local:
        activity.heartbeat()
