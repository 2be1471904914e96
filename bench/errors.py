"""One exception type for every mistake a user can make, and the one-line option checks that raise it.

The CLI prints ``SteerbenchError`` as a single line (no traceback) and exits non-zero,
so every message must name the bad value and say what is accepted.
"""

from __future__ import annotations

import math
from typing import Any


class SteerbenchError(Exception):
    """A user-facing error: bad input, missing file, unreachable model."""


# --- helpers for Options.validate(): each names the bad value and what is accepted
def at_least(where: str, value: Any, low: float) -> None:
    """``value`` must be a number >= ``low`` (ints stay ints in the message)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise SteerbenchError(f"{where} {value!r} is out of range; accepted: a number >= {low:g}")


def positive(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SteerbenchError(f"{where} {value!r} is out of range; accepted: a number > 0")


def between(where: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise SteerbenchError(f"{where} {value!r} is out of range; accepted: a number in [{low:g}, {high:g}]")


def one_of(where: str, value: Any, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise SteerbenchError(f"{where} {value!r} is not accepted; accepted: {', '.join(accepted)}")


def names_list(where: str, value: str) -> list[str]:
    names = [m.strip() for m in str(value).split(",") if m.strip()]
    if not names:
        raise SteerbenchError(f"{where} {value!r} names no module; give a comma list such as o_proj,down_proj")
    return names
