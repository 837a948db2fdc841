"""Lazy invalidation: a per-CPU flush queue (``iommu.strict=0``, dma-iommu's ``queue_iova``).

An unmap in lazy mode issues no command: its IOVA is queued. The queue is flushed (one per-ASID or
per-VMID invalidation + CMD_SYNC, :func:`~cmdqv_lab.workloads.synthetic.inval.flush_batches`) when

- it holds ``fq_entries`` unmaps: the unmap that fills it flushes (kind ``flush``), or
- its timer fires (kind ``flush-timer``), ``fq_timeout`` after it was armed. ``fq_timer="oldest"``
  arms it at the oldest queued unmap (a flush disarms it); ``"linux"`` is dma-iommu's timer: armed
  by an unmap queued while it is off, not reset by queue-full flushes, and it flushes when it fires
  even if the queue was emptied since.

Times are the stream's own clock: arrival times for open loops, the running sum of think gaps for
closed loops (service times are not known when the stream is generated). Linux keeps one timer per
domain and a flush empties every CPU's queue of the domain; here each CPU has its own queue and timer,
so streams stay independent. The scan is sequential, so it is compiled with numba and resumable:
:class:`FlushQueue` carries its state from chunk to chunk.

>>> import numpy as np
>>> fq = FlushQueue(entries=3, timeout_ps=100, linux=False)
>>> when, covered, timer = fq.feed(np.array([0, 10, 20, 30, 500]), final=True)
>>> when.tolist(), covered.tolist(), timer.tolist()
([20, 130, 600], [3, 1, 1], [False, True, True])
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _scan(t, entries, tau, linux, state, final):  # type: ignore[no-untyped-def,unused-ignore]
    n = t.size
    when = np.empty(2 * n + 1, np.int64)
    cov = np.empty(2 * n + 1, np.int64)
    timer = np.empty(2 * n + 1, np.bool_)
    k = 0
    count, armed, arm = state[0], state[1], state[2]
    for i in range(n):
        if armed and arm + tau <= t[i]:
            when[k] = arm + tau
            cov[k] = count
            timer[k] = True
            k += 1
            count = 0
            armed = 0
        count += 1
        if count == entries:
            when[k] = t[i]
            cov[k] = count
            timer[k] = False
            k += 1
            count = 0
        if linux:
            if armed == 0:
                armed = 1
                arm = t[i]
        elif count == 1:
            armed = 1
            arm = t[i]
        elif count == 0:
            armed = 0
    if final and armed:
        when[k] = arm + tau
        cov[k] = count
        timer[k] = True
        k += 1
        count = 0
        armed = 0
    state[0] = count
    state[1] = armed
    state[2] = arm
    return when[:k], cov[:k], timer[:k]


class FlushQueue:
    """One CPU's flush queue; :meth:`feed` takes unmap times chunk by chunk (non-decreasing)."""

    def __init__(self, *, entries: int, timeout_ps: int, linux: bool) -> None:
        self.entries = int(entries)
        self.timeout_ps = int(timeout_ps)
        self.linux = bool(linux)
        self.state = np.zeros(3, np.int64)  # queued count, timer armed, arm time

    def feed(self, t: np.ndarray, *, final: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flushes caused by unmaps at times ``t``: (time, unmaps covered, timer flush)."""
        t = np.ascontiguousarray(t, dtype=np.int64)
        out = _scan(t, self.entries, self.timeout_ps, self.linux, self.state, final)
        return out  # type: ignore[no-any-return,unused-ignore]
