"""Benchmarks: figures measured side by side, each beside its baseline (`python -m benchmarks`)."""
