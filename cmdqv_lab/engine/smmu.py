"""The SMMU command processors in the compiled engine.

A processor serves a fixed list of queues (all of them when the SMMU consumes one queue at a time,
one each when queues are consumed in parallel). It consumes in order: a command costs its own
service time, plus ``fetch_ns`` if it was not read by an earlier burst (the SMMU reads
``fetch_line_cmds`` aligned entries at a time, as many of them as PROD had published), CONS advances when it completes, and a CMD_SYNC completing wakes the CPU
waiting on it (at the time its wait mode lets it observe the completion). Across queues it
arbitrates round robin, staying on a queue for at most ``cmd_batch`` commands and ``clk_batch_ns``
(the CMDQV CONFIG CMD_BATCH / CLK_BATCH fields). With ``hw_sync_insert`` it inserts a CMD_SYNC
(costing ``hw_sync_ns``) whenever it leaves a queue or a queue's turn ends: software cannot observe
those SYNCs, so they only cost time. :func:`publish` is the PROD doorbell landing at the SMMU.
"""

from __future__ import annotations

from numba import njit

from cmdqv_lab.engine.layout import (
    C_BTAIL,
    C_CTAIL,
    C_OPTAIL,
    C_SPACE_Q,
    C_SYNC_DONE,
    C_SYNC_START,
    C_WAIT_T0,
    C_WAITING,
    CMD_ILLEGAL,
    CNT_GUEST_IRQS,
    CNT_NONE,
    ERR_FIXUP,
    ERR_NONE,
    G_BUSY_PS,
    G_CMDS_DONE,
    G_DOORBELLS,
    G_FIXUPS,
    G_HW_SYNCS,
    G_ILLEGAL,
    G_QW_MAX,
    G_QW_SUM,
    G_SYNCS,
    H_HQW,
    H_NCPU,
    H_NPROC,
    K_CLK_BATCH,
    K_CMD_BATCH,
    K_FETCH,
    K_FETCH_LINE,
    K_GUEST_ERROR,
    K_HOST_QUEUE,
    K_HW_SYNC,
    K_HW_SYNC_INSERT,
    K_IRQ_ACK,
    K_IRQ_CPU,
    K_IRQ_HANDLER,
    K_IRQ_LATENCY,
    K_SYNC_SVC,
    OPCODE_SYNC,
    P_BUSY,
    P_BUSY_PS,
    P_CUR,
    P_HWSYNC,
    P_HWSYNCS,
    P_IDLE,
    P_NQ,
    P_RR,
    P_STATE,
    P_T0,
    P_TURN_CNT,
    P_TURN_T0,
    Q_DOORBELLS,
    Q_ERR,
    Q_ERRORS,
    Q_FETCH,
    Q_FETCHED,
    Q_HALTED,
    Q_HW_CONS,
    Q_HW_PROD,
    Q_MAX_OCC,
    Q_PROC,
    Q_SPACE_WAITERS,
    Q_WAIT,
    R_COMPLETE,
    R_CSTART,
    R_ILL,
    R_PUBLISH,
    SL_AOP,
    SL_CPU,
    SL_FLAGS,
    SL_OPC,
    SL_PUB,
    SL_REC,
    SL_SVC,
    STEP_BATCH,
    STEP_DELAY,
    STEP_RESUME,
    TIME_NEVER,
)
from cmdqv_lab.engine.mem import (
    cget,
    cset,
    gadd,
    gget,
    gset,
    hget,
    kget,
    padd,
    pget,
    pq_get,
    pset,
    qadd,
    qget,
    qset,
    ring_b_set,
    ring_c_set,
    ring_op_set,
    rset,
    sget,
    sset,
)
from cmdqv_lab.engine.sched import sched, sync_observed
from cmdqv_lab.engine.slots import async_op_done, slot_row
from cmdqv_lab.engine.stats import hist_add_at


@njit(cache=True)
def has_work(M, q):
    return qget(M, q, Q_HW_PROD) > qget(M, q, Q_FETCH) and qget(M, q, Q_HALTED) == 0


@njit(cache=True)
def raise_error(M, q, row, now):
    """Queue ``q`` stopped on an illegal entry: the CMDQV interrupt queues work for the IRQ thread.

    The thread's op (arriving now) is: IRQ latency, handler, then either emulating the command on
    the host queue (ERR_FIXUP: the command and a CMD_SYNC, waited) or forwarding the error to the
    guest (ERR_GUEST: counted as a guest interrupt; the command is skipped), then the rewrite +
    GERRORN acknowledgement, then resuming the queue.
    """
    ic = kget(M, K_IRQ_CPU)
    r = sget(M, row, SL_REC)
    if r >= 0:
        rset(M, r, R_ILL, 1)
    qset(M, q, Q_HALTED, 1)
    qadd(M, q, Q_ERRORS, 1)
    gadd(M, G_ILLEGAL, 1)
    ot = cget(M, ic, C_OPTAIL)
    st = cget(M, ic, C_BTAIL)
    ct = cget(M, ic, C_CTAIL)
    n = 0
    n = _append_step(M, ic, st, n, STEP_DELAY, kget(M, K_IRQ_LATENCY), CNT_NONE, 0)
    n = _append_step(M, ic, st, n, STEP_DELAY, kget(M, K_IRQ_HANDLER), CNT_NONE, 0)
    ncmd = 0
    if qget(M, q, Q_ERR) == ERR_FIXUP:
        n = _append_step(M, ic, st, n, STEP_BATCH, 2, 1, kget(M, K_HOST_QUEUE))
        ring_c_set(M, ic, ct, 0, sget(M, row, SL_OPC))
        ring_c_set(M, ic, ct, 1, sget(M, row, SL_SVC))
        ring_c_set(M, ic, ct, 2, 0)
        ring_c_set(M, ic, ct + 1, 0, OPCODE_SYNC)
        ring_c_set(M, ic, ct + 1, 1, kget(M, K_SYNC_SVC))
        ring_c_set(M, ic, ct + 1, 2, 0)
        ncmd = 2
    else:
        n = _append_step(M, ic, st, n, STEP_DELAY, kget(M, K_GUEST_ERROR), CNT_GUEST_IRQS, 0)
    n = _append_step(M, ic, st, n, STEP_DELAY, kget(M, K_IRQ_ACK), CNT_NONE, 0)
    n = _append_step(M, ic, st, n, STEP_RESUME, q, 0, 0)
    ring_op_set(M, ic, ot, 0, now)
    ring_op_set(M, ic, ot, 1, n)
    cset(M, ic, C_OPTAIL, ot + 1)
    cset(M, ic, C_BTAIL, st + n)
    cset(M, ic, C_CTAIL, ct + ncmd)
    if cget(M, ic, C_WAITING) == 2:  # the thread was asleep
        cset(M, ic, C_WAITING, 0)
        sched(M, hget(M, H_NPROC) + ic, now)


@njit(cache=True, inline="always")
def _append_step(M, c, base, i, kind, a, b, d):
    ring_b_set(M, c, base + i, 0, kind)
    ring_b_set(M, c, base + i, 1, a)
    ring_b_set(M, c, base + i, 2, b)
    ring_b_set(M, c, base + i, 3, d)
    return i + 1


@njit(cache=True)
def resume_queue(M, q, now):
    """The faulting entry of queue ``q`` was rewritten as a CMD_SYNC and GERRORN acknowledged."""
    row = slot_row(M, q, qget(M, q, Q_FETCH))
    sset(M, row, SL_OPC, OPCODE_SYNC)
    sset(M, row, SL_SVC, kget(M, K_SYNC_SVC))
    sset(M, row, SL_FLAGS, 0)
    qset(M, q, Q_HALTED, 0)
    if qget(M, q, Q_ERR) == ERR_FIXUP:
        gadd(M, G_FIXUPS, 1)
    p = qget(M, q, Q_PROC)
    if pget(M, p, P_STATE) == P_IDLE:
        sched(M, p, now)


@njit(cache=True)
def start_command(M, p, q, now):
    """Processor ``p`` starts queue ``q``'s next published command; False if that entry is
    illegal (the queue then halts and raises its error instead)."""
    ctr = qget(M, q, Q_FETCH)
    row = slot_row(M, q, ctr)
    if sget(M, row, SL_FLAGS) & CMD_ILLEGAL and qget(M, q, Q_ERR) != ERR_NONE:
        raise_error(M, q, row, now)
        return False
    qset(M, q, Q_FETCH, ctr + 1)
    # The SMMU reads the queue in bursts of K_FETCH_LINE entries (aligned): a command already read
    # by the burst that fetched an earlier command costs no further fetch.
    fetch = 0
    if ctr >= qget(M, q, Q_FETCHED):
        fetch = kget(M, K_FETCH)
        line = kget(M, K_FETCH_LINE)
        end = ctr - ctr % line + line
        hw = qget(M, q, Q_HW_PROD)
        qset(M, q, Q_FETCHED, end if end < hw else hw)
    wait = now - sget(M, row, SL_PUB)
    gadd(M, G_QW_SUM, wait)
    if wait > gget(M, G_QW_MAX):
        gset(M, G_QW_MAX, wait)
    hist_add_at(M, hget(M, H_HQW), wait)
    r = sget(M, row, SL_REC)
    if r >= 0:
        rset(M, r, R_CSTART, now)
    w = sget(M, row, SL_CPU)
    if w >= 0:  # a CMD_SYNC a CPU waits for (op_phase_ns)
        cset(M, w, C_SYNC_START, now)
    pset(M, p, P_STATE, P_BUSY)
    pset(M, p, P_CUR, q)
    pset(M, p, P_T0, now)
    sched(M, p, now + fetch + sget(M, row, SL_SVC))
    return True


@njit(cache=True)
def complete_command(M, q, now):
    """The command at CONS of queue ``q`` completes; CONS advances past it."""
    ctr = qget(M, q, Q_HW_CONS)
    row = slot_row(M, q, ctr)
    r = sget(M, row, SL_REC)
    if r >= 0:
        rset(M, r, R_COMPLETE, now)
    gadd(M, G_CMDS_DONE, 1)
    if sget(M, row, SL_OPC) == OPCODE_SYNC:
        gadd(M, G_SYNCS, 1)
        c = sget(M, row, SL_CPU)
        if c >= 0:
            cset(M, c, C_SYNC_DONE, now)
            if cget(M, c, C_WAITING) == 1:
                cset(M, c, C_WAITING, 0)
                sched(
                    M, hget(M, H_NPROC) + c, sync_observed(M, qget(M, q, Q_WAIT), cget(M, c, C_WAIT_T0), now)
                )
    if sget(M, row, SL_AOP) >= 0:
        async_op_done(M, q, row, now)
    qset(M, q, Q_HW_CONS, ctr + 1)
    if qget(M, q, Q_SPACE_WAITERS) > 0:
        qset(M, q, Q_SPACE_WAITERS, 0)
        for c in range(hget(M, H_NCPU)):
            if cget(M, c, C_SPACE_Q) == q:
                cset(M, c, C_SPACE_Q, -1)
                sched(M, hget(M, H_NPROC) + c, now)


@njit(cache=True)
def publish(M, q, new_prod, now):
    """A PROD write lands: entries below ``new_prod`` become visible to the SMMU."""
    old = qget(M, q, Q_HW_PROD)
    if new_prod <= old:
        return
    for ctr in range(old, new_prod):
        row = slot_row(M, q, ctr)
        sset(M, row, SL_PUB, now)
        r = sget(M, row, SL_REC)
        if r >= 0:
            rset(M, r, R_PUBLISH, now)
    qset(M, q, Q_HW_PROD, new_prod)
    qadd(M, q, Q_DOORBELLS, 1)
    gadd(M, G_DOORBELLS, 1)
    occ = new_prod - qget(M, q, Q_HW_CONS)
    if occ > qget(M, q, Q_MAX_OCC):
        qset(M, q, Q_MAX_OCC, occ)
    p = qget(M, q, Q_PROC)
    if pget(M, p, P_STATE) == P_IDLE:
        if pget(M, p, P_NQ) == 1:
            # A processor serving one queue would pick it at its next step, at this same time:
            # start at once (same timing, one event fewer per command).
            if qget(M, q, Q_HALTED) == 0:
                pset(M, p, P_RR, 0)
                pset(M, p, P_TURN_CNT, 0)
                pset(M, p, P_TURN_T0, now)
                start_command(M, p, q, now)
        else:
            sched(M, p, now)


@njit(cache=True)
def step_proc(M, p, now):
    """One step of command processor ``p``: finish what it was doing, then pick the next command."""
    state = pget(M, p, P_STATE)
    if state == P_BUSY:
        complete_command(M, pget(M, p, P_CUR), now)
        padd(M, p, P_TURN_CNT, 1)
    if state != P_IDLE:
        padd(M, p, P_BUSY_PS, now - pget(M, p, P_T0))
        gadd(M, G_BUSY_PS, now - pget(M, p, P_T0))
    cur = pget(M, p, P_CUR)
    if cur >= 0 and has_work(M, cur):
        more = True
        if kget(M, K_CMD_BATCH) > 0 and pget(M, p, P_TURN_CNT) >= kget(M, K_CMD_BATCH):
            more = False
        if kget(M, K_CLK_BATCH) > 0 and now - pget(M, p, P_TURN_T0) >= kget(M, K_CLK_BATCH):
            more = False
        if more and start_command(M, p, cur, now):
            return
    # The turn on `cur` is over (limit reached, queue drained or halted): round robin to the next
    # queue with work after the current position; that may be `cur` again if it alone has work.
    nxt, pos = _next_with_work(M, p, pget(M, p, P_RR))
    if kget(M, K_HW_SYNC_INSERT) == 1 and cur >= 0 and pget(M, p, P_TURN_CNT) > 0:
        pset(M, p, P_STATE, P_HWSYNC)
        pset(M, p, P_CUR, -1)
        pset(M, p, P_TURN_CNT, 0)
        pset(M, p, P_T0, now)
        padd(M, p, P_HWSYNCS, 1)
        gadd(M, G_HW_SYNCS, 1)
        sched(M, p, now + kget(M, K_HW_SYNC))
        return
    while nxt >= 0:
        pset(M, p, P_RR, pos)
        pset(M, p, P_TURN_CNT, 0)
        pset(M, p, P_TURN_T0, now)
        if start_command(M, p, nxt, now):
            return
        nxt, pos = _next_with_work(M, p, pos)  # its head entry is illegal: the queue halted
    pset(M, p, P_STATE, P_IDLE)
    pset(M, p, P_CUR, -1)
    pset(M, p, P_TURN_CNT, 0)
    sched(M, p, TIME_NEVER)


@njit(cache=True)
def _next_with_work(M, p, rr):
    """The first of processor ``p``'s queues with work after list position ``rr`` (round robin,
    ``rr`` itself last): ``(queue, position)``, or ``(-1, rr)`` if none has work."""
    nq = pget(M, p, P_NQ)
    for j in range(1, nq + 1):
        pos = (rr + j) % nq
        if has_work(M, pq_get(M, p, pos)):
            return pq_get(M, p, pos), pos
    return -1, rr
