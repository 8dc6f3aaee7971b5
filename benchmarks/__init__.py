"""Benchmarks and the chaos run; run as scripts (see each module)."""
