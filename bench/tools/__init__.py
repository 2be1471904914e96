"""Benchmarks of the harness itself: ``make perf``, ``make precision`` and ``make projection``."""
