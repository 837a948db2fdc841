"""Scheduling primitives of the compiled engine: the entity tournament tree, cache-line FIFO
servers and the CMD_SYNC wait-time rules.

Every entity (command processor or CPU) has at most one pending step, so the event set is a
tournament tree over entities keyed by ``time << ID_BITS | entity``: the root is the next step,
ties go to the lower entity id, and an update costs ``log2(entities)`` comparisons.
"""

from __future__ import annotations

from numba import njit

from cmdqv_lab.engine.layout import (
    G_EV_LEFT,
    G_NOW,
    G_T_LIMIT,
    H_LEAVES,
    H_TREE,
    ID_BITS,
    K_LINE_LOCAL,
    K_LINE_XFER,
    K_MMIO_READ,
    K_MSI,
    K_POLL_SPINS,
    K_SEV,
    K_SPIN,
    K_UDELAY,
    L_FREE,
    L_OWNER,
    LINES_PER_Q,
    TIME_NEVER,
    WAIT_BUSY,
    WAIT_MSI,
    WAIT_SEV,
)
from cmdqv_lab.engine.mem import gget, gset, hget, kget, lget, load, lset, store


@njit(cache=True)
def sched(M, e, t):
    """Set entity ``e``'s next step to time ``t`` (``TIME_NEVER``: blocked).

    Walks every level to the root (each node the minimum of the value coming up and its sibling),
    with no early exit where a node is unchanged: that exit's branch went either way with many
    CPUs and mispredicted; d06 at 16 CPUs ran 1.35 -> 1.59 M commands/s engine-only without it.

    Not inlined: every ``go`` and ``block`` calls it, and a copy of this loop at each of them made
    the engine's first compile 50 % longer (64 s of CPU instead of 42) for 5-8 % of loop speed."""
    base = hget(M, H_TREE)
    pos = hget(M, H_LEAVES) + e
    v = TIME_NEVER if t == TIME_NEVER else (t << ID_BITS) | e
    store(M, base + pos, v)
    while pos > 1:
        s = load(M, base + (pos ^ 1))
        v = v if v < s else s
        pos >>= 1
        store(M, base + pos, v)


@njit(cache=True, inline="always")
def next_is(M, e):
    """If the loop's next step is entity ``e``'s (stepping now) and within the loop's time limit and
    event budget: take it here, as the loop would (the clock moves to its time, which is returned,
    and it is counted as an event); else -1. A CPU whose next step is its own anyway continues
    without returning to the loop (:func:`.cpu.step_cpu`); results and events are those of the loop."""
    key = load(M, hget(M, H_TREE) + 1)
    if key == TIME_NEVER or (key & ((1 << ID_BITS) - 1)) != e:
        return -1
    t = key >> ID_BITS
    left = gget(M, G_EV_LEFT)
    if t > gget(M, G_T_LIMIT) or left <= 0:
        return -1
    gset(M, G_EV_LEFT, left - 1)
    gset(M, G_NOW, t)
    return t


@njit(cache=True)
def next_key(M):
    """Key of the next step (``TIME_NEVER`` if every entity is blocked)."""
    return load(M, hget(M, H_TREE) + 1)


@njit(cache=True)
def line_access(M, q, which, cpu, now):
    """CPU ``cpu`` accesses cache line ``which`` of queue ``q`` at ``now`` (a FIFO server).

    Returns the time the access ends: it starts when the line is free and costs ``line_local``
    if ``cpu`` touched the line last, else ``line_xfer``.
    """
    line = q * LINES_PER_Q + which
    start = lget(M, line, L_FREE)
    if start < now:
        start = now
    cost = kget(M, K_LINE_LOCAL) if lget(M, line, L_OWNER) == cpu else kget(M, K_LINE_XFER)
    end = start + cost
    lset(M, line, L_FREE, end)
    lset(M, line, L_OWNER, cpu)
    return end


@njit(cache=True)
def sync_observed_k(mode, t0, tc, msi, sev, mmio_read, spin, udelay, poll_spins):
    """Time a CPU that began waiting at ``t0`` observes a CMD_SYNC completed at ``tc``.

    * ``msi``: the SMMU's MSI write lands in the SYNC slot the waiter spins on: ``max(t0, tc) + msi``.
    * ``sev``: WFE until the SMMU's SEV, then a CONS read: ``max(t0, tc + sev) + mmio_read``.
    * ``busy``: back-to-back CONS reads, each ``spin + mmio_read``; the first read ending at or
      after ``tc`` sees the completion.
    * ``poll``: Linux ``queue_poll`` without SEV: before each CONS read, ``cpu_relax`` (``spin``)
      while ``++spin_cnt < poll_spins``, else ``udelay(delay)``, ``delay *= 2``, ``spin_cnt = 0``.
    """
    if mode == WAIT_MSI:
        return (t0 if t0 > tc else tc) + msi
    if mode == WAIT_SEV:
        w = tc + sev
        return (t0 if t0 > w else w) + mmio_read
    if mode == WAIT_BUSY:
        period = spin + mmio_read
        if period <= 0:
            return t0 if t0 > tc else tc
        if tc <= t0 + period:
            return t0 + period
        return t0 + ((tc - t0 + period - 1) // period) * period
    if spin + mmio_read + udelay == 0:  # a zero-cost poll loop observes at once
        return t0 if t0 > tc else tc
    t = t0
    spins = 0
    delay = udelay
    while True:
        spins += 1
        if spins < poll_spins:
            t += spin
        else:
            t += delay
            delay *= 2
            spins = 0
        t += mmio_read
        if tc <= t:
            return t


@njit(cache=True)
def sync_observed(M, mode, t0, tc):
    """:func:`sync_observed_k` with the costs of run ``M``."""
    return sync_observed_k(
        mode, t0, tc, kget(M, K_MSI), kget(M, K_SEV), kget(M, K_MMIO_READ), kget(M, K_SPIN),
        kget(M, K_UDELAY), kget(M, K_POLL_SPINS),
    )  # fmt: skip
