"""Benchmarks of the monitor (never timed assertions in tests; see bench/README.md)."""
