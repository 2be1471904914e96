"""Timing helpers for ``make perf``: medians of repeats, interleaved ratios, and a measure with its target.

Ratios alternate the two sides (whole runs, or batch by batch) so that a noisy machine's slow and fast
moments fall on both; a ``Measure`` with a target is a benchmark's verdict, never a test's assertion.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speedup(reference, candidate, repeats: int) -> float:
    """Median over interleaved pairs of time(reference) / time(candidate) (> 1: candidate is faster).
    Interleaving makes both sides share the machine's slow and fast moments."""
    ratios = []
    for _ in range(repeats):
        t_ref = median_time(reference, 1)
        ratios.append(t_ref / median_time(candidate, 1))
    return statistics.median(ratios)


def per_batch_speedup(reference, candidate, n_batches: int, repeats: int) -> float:
    """Like ``speedup``, but alternating the two sides batch by batch (``reference(i)``,
    ``candidate(i)`` on batch i): sub-second interleaving, for ratios close to 1 on a noisy machine."""
    ratios = []
    for _ in range(repeats):
        t_ref = t_cand = 0.0
        for i in range(n_batches):
            t_ref += median_time(lambda: reference(i), 1)
            t_cand += median_time(lambda: candidate(i), 1)
        ratios.append(t_ref / t_cand)
    return statistics.median(ratios)


@dataclass
class Measure:
    label: str
    value: float
    target: str = ""
    passed: bool | None = None  # None: informational, no target

    def row(self) -> tuple:
        verdict = "" if self.passed is None else ("PASS" if self.passed else "FAIL")
        return self.label, f"{self.value:.4g}" if isinstance(self.value, float) else self.value, self.target, verdict


def at_least(label: str, value: float, target: float) -> Measure:
    return Measure(label, value, f">= {target:g}", value >= target)


def at_most(label: str, value: float, target: float) -> Measure:
    return Measure(label, value, f"<= {target:g}", value <= target)
