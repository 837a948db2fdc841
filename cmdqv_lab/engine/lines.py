"""Contended cache lines in the compiled engine: who gets a line next, and what moving it costs.

A queue has five contended lines: the ``llq`` word, ``cmdq->lock``, the valid bitmap, ``owner_prod``
(in the ``v5.9`` layout an alias of ``lock``'s line, see :mod:`.cpu`) and atomic-add's ``llq.cons``. Every
access is exclusive (an atomic, or a read that takes the line) and holds the line for its cost:
``line_local`` if the CPU that touched the line last makes it, else a transfer whose cost depends on
the distance between the two CPUs (``topology``).

``line_arbitration = fifo`` (the model before issue 10)
    a FIFO server: an access requested at ``t`` is granted at ``max(t, free)``; its effect takes
    place at the request (the order of effects is the order of requests).
``line_arbitration = holder-first``
    coherence as the 2019 and 2020 threads describe it ("It definitely lacks fairness": the CPU that
    holds the line wins its next cmpxchg): after an atomic or a store by CPU ``o`` ends at ``e``, ``o``
    keeps priority until ``e + line_hold_ns`` for at most ``line_hold_max`` consecutive accesses; when
    other CPUs are already waiting, its access wins only with chance ``line_hold_p`` (a deterministic
    draw, :func:`holder_wins`), else it waits behind the current round like a remote request (with
    ``load_priority=none`` a plain load, :func:`line_read`, takes the line shared and leaves no
    priority: the cmpxchg after a READ_ONCE competes with the waiting CPUs, which is how it fails
    under contention; ``holder``: a load counts as an atomic); then the
    line goes to the pending requester *nearest* to ``o`` (cluster, die, socket), ties by arrival
    time, then CPU number, in rounds: the requests pending when a round starts are all served before
    any later one (so nearest-first cannot starve a far CPU forever). A waiting CPU's access takes effect when it is served, not when it was
    requested. :func:`line_grant` is called at the start of a program step (before any effect); it
    returns False after blocking the CPU, which re-runs the same step when the line is granted.

The arbitration at the end of a window needs an event: one pending requester (the *carrier*,
``L_ARB``) is scheduled at the window's end and runs the arbitration when it steps.

Topology (``topology = platform``): CPU ``c`` sits in cluster ``c // cluster_cpus``, die
``c // die_cpus`` and socket ``c // socket_cpus`` (Linux numbers Kunpeng 920 cores consecutively
by cluster, die and socket); a transfer costs ``xfer_cluster``, ``xfer_die``, ``xfer_xdie`` or
``xfer_socket`` by the nearest level the two CPUs share. ``flat``: every transfer is ``line_xfer``.
With ``line_home`` other than ``near``, the memory homing the lines sits on another die (``other-die``:
die 1; ``other-socket``: the first die of socket 1) and every transfer goes through it: it costs at
least the requester's distance to that die (Garry's D06 is "memory poor", so two CPUs of die 0 pass
a line through die 1 at C4's cross-die cost).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cmdqv_lab.engine.layout import (
    ARB_FIFO,
    C_CLUSTER,
    C_DIE,
    C_LGRANT,
    C_LNEXT,
    C_LPREV,
    C_LREQ_LINE,
    C_LREQ_T,
    C_PC,
    C_SOCKET,
    G_LINE_BYPASS,
    H_NCPU,
    H_NPROC,
    K_CLUSTER_CPUS,
    K_HOME_DIE,
    K_HOME_SOCKET,
    K_LINE_ARB,
    K_LINE_HOLD,
    K_LINE_HOLD_MAX,
    K_LINE_HOLD_PPM,
    K_LINE_LOCAL,
    K_LINE_XFER,
    K_LOAD_PRIORITY,
    K_SCAN_WAITERS,
    K_TOPOLOGY,
    K_XFER_CLUSTER,
    K_XFER_DIE,
    K_XFER_SOCKET,
    K_XFER_XDIE,
    L_ARB,
    L_FREE,
    L_NREQ,
    L_OWNER,
    L_RESV,
    L_ROUND,
    L_RUN,
    L_WHEAD,
    L_WTAIL,
    LINES_PER_Q,
    LOAD_NONE,
    TIME_NEVER,
)
from cmdqv_lab.engine.mem import cget, cset, gadd, hget, kget, lget, lset
from cmdqv_lab.engine.sched import sched


@njit(cache=True)
def distance(M, a, b):
    """0 same CPU, 1 same cluster, 2 same die, 3 same socket, 4 other socket (flat: 1 for any two)."""
    if a == b:
        return 0
    if kget(M, K_TOPOLOGY) == 0:
        return 1
    if cget(M, a, C_CLUSTER) == cget(M, b, C_CLUSTER):  # a // cluster_cpus == b // cluster_cpus
        return 1
    if cget(M, a, C_DIE) == cget(M, b, C_DIE):
        return 2
    if cget(M, a, C_SOCKET) == cget(M, b, C_SOCKET):
        return 3
    return 4


@njit(cache=True)
def xfer_cost(M, prev, cpu):
    """Cost of ``cpu``'s access to a line ``prev`` touched last (-1: nobody; a transfer). With a
    remote home (``line_home``) the transfer goes through it: it costs by the larger of the two CPUs'
    distance and the requester's distance to the home die (``K_HOME_DIE``, set by :func:`.runner.home_die`)."""
    if prev == cpu:
        return kget(M, K_LINE_LOCAL)
    if kget(M, K_TOPOLOGY) == 0:
        return kget(M, K_LINE_XFER)
    d = 2 if prev < 0 else distance(M, prev, cpu)
    h = 0  # line_home = near: no constraint
    if kget(M, K_HOME_DIE) >= 0:
        if cget(M, cpu, C_DIE) == kget(M, K_HOME_DIE):
            h = 2
        elif cget(M, cpu, C_SOCKET) == kget(M, K_HOME_SOCKET):
            h = 3
        else:
            h = 4
    if h > d:
        d = h
    if d == 1:
        return kget(M, K_XFER_CLUSTER)
    if d == 2:
        return kget(M, K_XFER_DIE)
    if d == 3:
        return kget(M, K_XFER_XDIE)
    return kget(M, K_XFER_SOCKET)


@njit(cache=True, inline="always")
def window_end(M, line):
    """Until when the line's last holder keeps priority (holder-first)."""
    end = lget(M, line, L_FREE)
    if lget(M, line, L_RUN) < kget(M, K_LINE_HOLD_MAX):
        return end + kget(M, K_LINE_HOLD)
    return end


@njit(cache=True, inline="always")
def _sched_cpu(M, c, t):
    sched(M, hget(M, H_NPROC) + c, t)


@njit(cache=True)
def _served(M, line, prev, cpu, read):
    """holder-first bookkeeping after ``cpu``'s access (previous holder ``prev``): its run of accesses
    (a read leaves no priority), the grant used up, and the carrier (re)scheduled at the end of the new
    hold window."""
    if read and kget(M, K_LOAD_PRIORITY) == LOAD_NONE:
        lset(M, line, L_RUN, kget(M, K_LINE_HOLD_MAX))
    else:
        lset(M, line, L_RUN, lget(M, line, L_RUN) + 1 if prev == cpu else 1)
    lset(M, line, L_RESV, -1)
    nreq = lget(M, line, L_NREQ)
    if nreq > 0:
        arb = lget(M, line, L_ARB)
        if arb < 0:  # the lowest-numbered pending CPU carries the arbitration
            # among many waiters a low-numbered one is likely: look CPUs up in order, a bounded
            # number of them, before walking the list (the cost stays in proportion to the waiters)
            lim = min(hget(M, H_NCPU), 2 * nreq)
            v = 0
            while v < lim and cget(M, v, C_LREQ_LINE) != line:
                v += 1
            if v < lim:
                arb = v
            else:
                w = lget(M, line, L_WHEAD)
                arb = w
                while w >= 0:
                    if w < arb:
                        arb = w
                    w = cget(M, w, C_LNEXT)
            lset(M, line, L_ARB, arb)
        _sched_cpu(M, arb, window_end(M, line))


@njit(cache=True)
def _line_access_any(M, line, cpu, now, read):
    """:func:`line_access` / :func:`line_read` with a topology or holder-first arbitration."""
    start = lget(M, line, L_FREE)
    if start < now:
        start = now
    prev = lget(M, line, L_OWNER)
    end = start + xfer_cost(M, prev, cpu)
    lset(M, line, L_FREE, end)
    lset(M, line, L_OWNER, cpu)
    if kget(M, K_LINE_ARB) != ARB_FIFO:
        _served(M, line, prev, cpu, read)
    return end


@njit(cache=True, inline="always")
def line_access(M, q, which, cpu, now):
    """CPU ``cpu`` accesses line ``which`` of queue ``q`` at ``now``; returns when the access ends.

    fifo: it starts when the line is free. holder-first: :func:`line_grant` let it in, so it starts
    now; if requests are pending, the carrier is (re)scheduled at the end of the new hold window.
    Inlined at every access; fifo on a flat topology (the default) stays the few loads and stores
    it always was, everything else is a call.
    """
    return _access(M, q, which, cpu, now, False)


@njit(cache=True, inline="always")
def line_read(M, q, which, cpu, now):
    """A plain load of the line (READ_ONCE, atomic_read; a cond_read polls with LDXR and is a
    :func:`line_access`): the same access, but with holder-first and ``load_priority=none`` the reader
    gets no priority for its next access (the load brings the line in shared state; the reader's
    cmpxchg that follows must win it again against waiting requesters)."""
    return _access(M, q, which, cpu, now, True)


@njit(cache=True, inline="always")
def _access(M, q, which, cpu, now, read):
    line = q * LINES_PER_Q + which
    if kget(M, K_LINE_ARB) != ARB_FIFO or kget(M, K_TOPOLOGY) != 0:
        return _line_access_any(M, line, cpu, now, read)
    start = lget(M, line, L_FREE)
    if start < now:
        start = now
    end = start + (kget(M, K_LINE_LOCAL) if lget(M, line, L_OWNER) == cpu else kget(M, K_LINE_XFER))
    lset(M, line, L_FREE, end)
    lset(M, line, L_OWNER, cpu)
    return end


@njit(cache=True, inline="always")
def _relink(M, line, prv, after_prv, nxt, before_nxt):
    """In the line's list of waiters, make ``after_prv`` follow ``prv`` (or head the list, if
    ``prv`` is -1) and ``before_nxt`` precede ``nxt`` (or end the list): an insert between them
    passes the new CPU twice, an unlink passes ``nxt`` and ``prv``."""
    if prv >= 0:
        cset(M, prv, C_LNEXT, after_prv)
    else:
        lset(M, line, L_WHEAD, after_prv)
    if nxt >= 0:
        cset(M, nxt, C_LPREV, before_nxt)
    else:
        lset(M, line, L_WTAIL, before_nxt)


@njit(cache=True)
def _wait(M, c, line, now, pc):
    """Queue CPU ``c``'s request for ``line`` (it re-runs step ``pc`` when granted)."""
    cset(M, c, C_LREQ_LINE, line)
    cset(M, c, C_LREQ_T, now)
    lset(M, line, L_NREQ, lget(M, line, L_NREQ) + 1)
    # onto the line's list of waiters, kept in (request time, CPU) order: requests come in time
    # order, so it goes at the tail, or just before higher-numbered CPUs' requests made at ``now``
    prv = lget(M, line, L_WTAIL)
    while prv >= 0:
        pt = cget(M, prv, C_LREQ_T)
        if pt < now or (pt == now and prv < c):
            break
        prv = cget(M, prv, C_LPREV)
    nxt = lget(M, line, L_WHEAD) if prv < 0 else cget(M, prv, C_LNEXT)
    cset(M, c, C_LPREV, prv)
    cset(M, c, C_LNEXT, nxt)
    _relink(M, line, prv, c, nxt, c)
    cset(M, c, C_PC, pc)
    if lget(M, line, L_ARB) < 0 and lget(M, line, L_RESV) < 0:
        lset(M, line, L_ARB, c)
        _sched_cpu(M, c, window_end(M, line))
    else:
        _sched_cpu(M, c, TIME_NEVER)
    return False


@njit(cache=True)
def holder_wins(M, now, c, line):
    """Does the holder's access at ``now`` beat the waiting requesters (chance ``line_hold_p``)? A
    deterministic draw: a 64-bit mix (splitmix64's finaliser) of the time, the CPU and the line, so a
    run is the same on every machine and with any number of workers."""
    ppm = kget(M, K_LINE_HOLD_PPM)
    if ppm >= 1_000_000:
        return True
    h = np.uint64(now) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(c * 4099 + line)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    h = h ^ (h >> np.uint64(31))
    return np.int64(h % np.uint64(1_000_000)) < ppm


@njit(cache=True, inline="always")
def line_grant(M, c, q, which, now, pc):
    """May CPU ``c`` access line ``which`` of queue ``q`` now (step ``pc``)? False: it was blocked.

    Always True with fifo arbitration (and nothing changes), so fifo runs are as before. Inlined: a
    line nobody waits for, idle or its own holder's, is granted here; everything else is
    :func:`_line_grant`.
    """
    if kget(M, K_LINE_ARB) == ARB_FIFO:
        return True
    line = q * LINES_PER_Q + which
    if (
        cget(M, c, C_LGRANT) != line
        and cget(M, c, C_LREQ_LINE) != line
        and lget(M, line, L_RESV) < 0
        and lget(M, line, L_NREQ) == 0
        and (c == lget(M, line, L_OWNER) or now >= window_end(M, line))
    ):
        return True  # as _line_grant decides it
    return _line_grant(M, c, line, now, pc)


@njit(cache=True)
def _line_grant(M, c, line, now, pc):
    """:func:`line_grant` for holder-first arbitration."""
    if cget(M, c, C_LGRANT) == line:  # the arbiter gave it to us
        cset(M, c, C_LGRANT, -1)
        return True
    resv = lget(M, line, L_RESV)
    wend = window_end(M, line)
    owner = lget(M, line, L_OWNER)
    if cget(M, c, C_LREQ_LINE) != line:  # a new request
        if resv < 0:
            if lget(M, line, L_NREQ) == 0 and (now >= wend or c == owner):
                return True  # the line is idle (or its own holder's)
            if c == owner and now < wend and holder_wins(M, now, c, line):
                gadd(M, G_LINE_BYPASS, 1)
                return True  # holder first: its next access within the window
        return _wait(M, c, line, now, pc)
    # c is pending and stepping: it carries the arbitration
    cset(M, c, C_PC, pc)
    if resv >= 0:  # a grant is outstanding: its access reschedules the carrier
        _sched_cpu(M, c, TIME_NEVER)
        return False
    if now < wend:
        _sched_cpu(M, c, wend)
        return False
    run_out = lget(M, line, L_RUN) >= kget(M, K_LINE_HOLD_MAX)
    # The best request of the current round (made by L_ROUND), or, if every request of the last round
    # was served, of a new round of all pending requests. Best: nearest to the owner, then the
    # earliest, then the lowest CPU number. The waiters are listed in (time, CPU) order, so the
    # round is a prefix of the list and its first request is the earliest. The owner's own request
    # (distance 0, or last if its window is used up) and its cluster's (distance 1: a few CPUs) are
    # looked up directly; the walk then ends at the first request as near as any can still be.
    w = lget(M, line, L_WHEAD)
    first_t = cget(M, w, C_LREQ_T)
    rnd = lget(M, line, L_ROUND)
    if first_t > rnd:  # a new round, of every pending request
        rnd = TIME_NEVER
        lset(M, line, L_ROUND, now)
    best = -1
    near = 1  # no request can be nearer than this
    if owner >= 0 and not run_out and cget(M, owner, C_LREQ_LINE) == line and cget(M, owner, C_LREQ_T) <= rnd:
        best = owner
    elif owner >= 0 and kget(M, K_TOPOLOGY) != 0 and lget(M, line, L_NREQ) >= kget(M, K_SCAN_WAITERS):
        cc = max(1, kget(M, K_CLUSTER_CPUS))
        lo = cget(M, owner, C_CLUSTER) * cc
        hi = min(lo + cc, hget(M, H_NCPU))
        b_t = TIME_NEVER
        for v in range(lo, hi):  # in CPU order: the earliest, ties to the lowest number
            if v != owner and cget(M, v, C_LREQ_LINE) == line:
                t = cget(M, v, C_LREQ_T)
                if t <= rnd and t < b_t:
                    best, b_t = v, t
        near = 2
    if best < 0:
        b_d = 6
        while w >= 0:
            t = cget(M, w, C_LREQ_T)
            if t > rnd:
                break
            if w == owner:
                d = 5  # its window is used up: everyone else first
            elif owner >= 0:
                d = distance(M, owner, w)
            else:
                d = 1
            if d < b_d:
                best, b_d = w, d
                if d <= near:
                    break
            w = cget(M, w, C_LNEXT)
    if cget(M, best, C_LREQ_T) > first_t:
        gadd(M, G_LINE_BYPASS, 1)  # nearest first, not the earliest
    cset(M, best, C_LREQ_LINE, -1)
    prv, nxt = cget(M, best, C_LPREV), cget(M, best, C_LNEXT)
    _relink(M, line, prv, nxt, nxt, prv)  # off the list of waiters
    lset(M, line, L_NREQ, lget(M, line, L_NREQ) - 1)
    lset(M, line, L_RESV, best)
    if best == c:
        lset(M, line, L_ARB, -1)
        return True
    cset(M, best, C_LGRANT, line)
    _sched_cpu(M, best, now)
    _sched_cpu(M, c, TIME_NEVER)
    return False
