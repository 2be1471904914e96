"""Which coefficients an Effect compares: a leaf module, shared by the sweep (scoring) and the statistics."""

from __future__ import annotations


def endpoints(coeffs: list[float]) -> tuple[float, float]:
    """The coefficients Effect compares: +1 and -1 when present, else the extremes."""
    hi = 1.0 if 1.0 in coeffs else max(coeffs)
    lo = -1.0 if -1.0 in coeffs else min(coeffs)
    return lo, hi
