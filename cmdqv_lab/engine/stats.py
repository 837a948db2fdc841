"""Streaming summaries with bounded memory: a log-linear histogram sketch.

Values (non-negative integer picoseconds) below 128 are counted exactly; larger values fall into
buckets of 128 per power of two, so any quantile read from the sketch is within 1/128 (0.8 %) of a
value actually observed. Mean and max are kept exactly by the engine. A run of 10^9 commands thus
needs a few kilobytes for its latency distributions.

>>> import numpy as np
>>> h = new_hist()
>>> for v in [100, 1000, 10_000, 100_000]:
...     hist_add(h, v)
>>> int(h.sum())
4
>>> q = hist_quantiles(h, [0.5, 1.0])
>>> bool(abs(q[1] - 100_000) / 100_000 < 1 / 128)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

SUB_BITS = 7
SUB = 1 << SUB_BITS
N_BUCKETS = SUB + (63 - SUB_BITS) * SUB


def new_hist() -> np.ndarray:
    """An empty histogram."""
    return np.zeros(N_BUCKETS, dtype=np.int64)


@njit(cache=True, inline="always")
def bucket_of(v: int) -> int:
    """Bucket index of a non-negative value."""
    if v < SUB:
        return max(v, 0)
    e = 63 - leading_zeros(np.uint64(v))  # type: ignore[call-arg]  # floor(log2 v)
    m = (v >> (e - SUB_BITS)) & (SUB - 1)
    return SUB + (e - SUB_BITS) * SUB + m


@njit(cache=True)
def hist_add(h: np.ndarray, v: int) -> None:
    """Count value ``v``."""
    h[bucket_of(v)] += 1


@njit(cache=True)
def hist_add_at(M: np.ndarray, base: int, v: int) -> None:
    """Count value ``v`` in the histogram stored in ``M[base : base + N_BUCKETS]``."""
    i = base + bucket_of(v)
    M[i] += 1


def bucket_bounds(i: int) -> tuple[int, int]:
    """``[lo, hi)`` of bucket ``i``."""
    if i < SUB:
        return i, i + 1
    g, m = divmod(i - SUB, SUB)
    e = g + SUB_BITS
    width = 1 << (e - SUB_BITS)
    lo = (1 << e) + m * width
    return lo, lo + width


def hist_quantiles(h: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Quantiles (nearest-rank) read from the sketch: the midpoint of the bucket holding the rank."""
    total = int(h.sum())
    if total == 0:
        return [math.nan for _ in qs]
    cum = np.cumsum(h)
    out = []
    for q in qs:
        rank = max(1, math.ceil(q * total))
        i = int(np.searchsorted(cum, rank))
        lo, hi = bucket_bounds(i)
        out.append(float(lo) if hi - lo == 1 else (lo + hi - 1) / 2.0)
    return out


def hist_merge(hs: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of histograms (merging replicates or chunks)."""
    out = new_hist()
    for h in hs:
        out += h
    return out
