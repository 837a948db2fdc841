"""Loading op programs into a CPU's input rings, compiled: the driver's per-refill work.

:class:`~cmdqv_lab.engine.runner._Rings` hands each :class:`~cmdqv_lab.engine.stream.OpBlock` to
:func:`check_block` once (is it a valid program for this run?) and then to :func:`feed` as often as it
takes: each call copies as many whole ops as the three rings (ops, steps, commands) have room for,
from the block's current position on, and returns the new position. Doing this here instead of with
numpy slices (split the block, find the fit with cumulative sums, copy nine columns into strided
rings) removed most of the Python work per refill: the rings of a run are refilled every few
thousand ops. A block whose ops all repeat one program, once the rings hold that program in every
slot, goes to :func:`feed_times` instead, which writes the ops' times alone (open-queue: one of nine
columns).
"""

from __future__ import annotations

from numba import njit

from cmdqv_lab.engine.layout import (
    C_BCTR,
    C_BTAIL,
    C_CCTR,
    C_CTAIL,
    C_OPHEAD,
    C_OPTAIL,
    H_RB,
    H_RB_N,
    H_RCM,
    H_RCM_N,
    H_ROP,
    H_ROP_N,
    STEP_BATCH,
    STEP_DELAY,
    STEP_LOCK,
    STEP_RESUME,
    STEP_UNLOCK,
)
from cmdqv_lab.engine.mem import cget, cset, hget, store

#: :func:`check_block` results (the first problem found, in this order of precedence).
OK, BAD_QUEUE, BAD_TIME, BAD_BATCH, BAD_LOCK, BAD_KIND = 0, 1, 2, 3, 4, 5


@njit(cache=True)
def check_block(nq, nl, t, s_kind, s_a, s_c, c_svc):
    """The first problem of a block for a run with ``nq`` queues and ``nl`` locks (``OK`` if none): a
    step's queue out of range, a negative time (arrival or gap, service time, delay), an empty batch,
    a lock id out of range, an unknown step kind."""
    queue = time = batch = lock = kind = False
    for i in range(t.size):
        if t[i] < 0:
            time = True
    for i in range(c_svc.size):
        if c_svc[i] < 0:
            time = True
    for j in range(s_kind.size):
        k = s_kind[j]
        if k == STEP_BATCH:
            if s_c[j] < 0 or s_c[j] >= nq:
                queue = True
            if s_a[j] < 1:
                batch = True
        elif k == STEP_RESUME:
            if s_a[j] < 0 or s_a[j] >= nq:
                queue = True
        elif k == STEP_DELAY:
            if s_a[j] < 0:
                time = True
        elif k in (STEP_LOCK, STEP_UNLOCK):
            if s_a[j] < 0 or s_a[j] >= nl:
                lock = True
        elif k < 0 or k > STEP_RESUME:
            kind = True
    if queue:
        return BAD_QUEUE
    if time:
        return BAD_TIME
    if batch:
        return BAD_BATCH
    if lock:
        return BAD_LOCK
    if kind:
        return BAD_KIND
    return OK


@njit(cache=True)
def feed(M, c, t, nb, s_kind, s_a, s_b, s_c, c_opc, c_svc, c_flags, op0, st0, cm0):
    """Copy the block's ops from op ``op0`` (its steps from ``st0``, commands from ``cm0``) into CPU
    ``c``'s rings while whole ops fit; returns ``(op, step, command)`` positions after the last op
    copied (``op == op0``: none fitted)."""
    r_op = hget(M, H_ROP_N)
    r_b = hget(M, H_RB_N)
    r_c = hget(M, H_RCM_N)
    # this CPU's rings in M (as mem.ring_*_set, with the header read once)
    base_op = hget(M, H_ROP) + c * r_op * 2
    base_b = hget(M, H_RB) + c * r_b * 4
    base_c = hget(M, H_RCM) + c * r_c * 3
    ot = cget(M, c, C_OPTAIL)
    bt = cget(M, c, C_BTAIL)
    ct = cget(M, c, C_CTAIL)
    room_op = r_op - (ot - cget(M, c, C_OPHEAD))
    room_b = r_b - (bt - cget(M, c, C_BCTR))
    room_c = r_c - (ct - cget(M, c, C_CCTR))
    i, j, k = op0, st0, cm0
    n_ops = t.size
    while i < n_ops and room_op > 0:
        ns = nb[i]
        if ns > room_b:
            break
        nc = 0
        for s in range(j, j + ns):
            if s_kind[s] == STEP_BATCH:
                nc += s_a[s]
        if nc > room_c:
            break
        x = base_op + (ot & (r_op - 1)) * 2
        store(M, x, t[i])
        store(M, x + 1, ns)
        ot += 1
        for s in range(j, j + ns):
            x = base_b + (bt & (r_b - 1)) * 4
            store(M, x, s_kind[s])
            store(M, x + 1, s_a[s])
            store(M, x + 2, s_b[s])
            store(M, x + 3, s_c[s])
            bt += 1
        for y in range(k, k + nc):
            x = base_c + (ct & (r_c - 1)) * 3
            store(M, x, c_opc[y])
            store(M, x + 1, c_svc[y])
            store(M, x + 2, c_flags[y])
            ct += 1
        room_op -= 1
        room_b -= ns
        room_c -= nc
        i += 1
        j += ns
        k += nc
    cset(M, c, C_OPTAIL, ot)
    cset(M, c, C_BTAIL, bt)
    cset(M, c, C_CTAIL, ct)
    return i, j, k


@njit(cache=True)
def feed_times(M, c, t, op0, ns, nc):
    """:func:`feed` for a uniform block (:attr:`~cmdqv_lab.engine.stream.OpBlock.repeats_op0`: every op
    has ``ns`` steps and ``nc`` commands, the same as op 0) whose program the rings already hold in
    every slot: only the ops' times are written, the tails advance as :func:`feed` would advance them.
    Returns the same ``(op, step, command)`` positions."""
    r_op = hget(M, H_ROP_N)
    ot = cget(M, c, C_OPTAIL)
    m = t.size - op0
    room = r_op - (ot - cget(M, c, C_OPHEAD))
    if room < m:
        m = room
    if ns > 0:
        room = (hget(M, H_RB_N) - (cget(M, c, C_BTAIL) - cget(M, c, C_BCTR))) // ns
        if room < m:
            m = room
    if nc > 0:
        room = (hget(M, H_RCM_N) - (cget(M, c, C_CTAIL) - cget(M, c, C_CCTR))) // nc
        if room < m:
            m = room
    if m <= 0:
        return op0, op0 * ns, op0 * nc
    base_op = hget(M, H_ROP) + c * r_op * 2
    mask = r_op - 1
    for i in range(op0, op0 + m):
        store(M, base_op + (ot & mask) * 2, t[i])
        ot += 1
    cset(M, c, C_OPTAIL, ot)
    cset(M, c, C_BTAIL, cget(M, c, C_BTAIL) + m * ns)
    cset(M, c, C_CTAIL, cget(M, c, C_CTAIL) + m * nc)
    return op0 + m, (op0 + m) * ns, (op0 + m) * nc
