"""Integer simulated time and unit conversions.

All simulated time is an integer number of **picoseconds** (``int64``), so that costs of a few
nanoseconds (a 31 ns command fetch, a 35 ns cache-line transfer) add up without rounding drift and
runs are bit-for-bit reproducible. ``2**63`` ps is about 106 days of simulated time.

>>> ns(31.5)
31500
>>> to_ns(31500)
31.5
>>> us(2.306)
2306000
"""

from __future__ import annotations

import numpy as np

PS_PER_NS = 1_000
PS_PER_US = 1_000_000
PS_PER_MS = 1_000_000_000
PS_PER_S = 1_000_000_000_000

#: Largest representable time; used as "never" by the engine.
TIME_NEVER = np.iinfo(np.int64).max


def ns(x: float) -> int:
    """Nanoseconds to integer picoseconds (rounded to nearest)."""
    return round(float(x) * PS_PER_NS)


def us(x: float) -> int:
    """Microseconds to integer picoseconds."""
    return round(float(x) * PS_PER_US)


def to_ns(ps: int | float) -> float:
    """Picoseconds to nanoseconds (float)."""
    return float(ps) / PS_PER_NS


def to_us(ps: int | float) -> float:
    """Picoseconds to microseconds (float)."""
    return float(ps) / PS_PER_US


def to_s(ps: int | float) -> float:
    """Picoseconds to seconds (float)."""
    return float(ps) / PS_PER_S
