"""Reading one value a board wrote (its bench JSON's clocks, profile, ...): a text bounded and on
one line, or a finite number in range; anything else is None, never an exception in the report."""

from __future__ import annotations

import math


def text(value, limit: int) -> str | None:
    """A non-empty string on one line, cut to `limit` characters with "..."; else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 3] + "..."


def number(value, low: float = -math.inf, high: float = math.inf) -> float | None:
    """A finite number in [low, high], else None (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and low <= value <= high else None
