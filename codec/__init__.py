"""Encryption of the workflow payloads Temporal stores, and the codec server that lets the
Temporal Web UI and CLI read them (`python -m codec`)."""
