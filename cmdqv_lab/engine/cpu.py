"""CPUs in the compiled engine: the op loop and the host submission algorithms.

A CPU runs its stream of operations in order. Each op is a list of batches (one
``arm_smmu_cmdq_issue_cmdlist`` call each: ``n`` entries, the last a CMD_SYNC the CPU waits for if
``sync``), each aimed at one queue. Closed-loop ops start a think gap after the previous op;
open-loop ops start at their arrival or when the CPU frees up. The algorithm is the queue's:

``linux-lockfree`` (Linux >= 5.4, ``arm_smmu_cmdq_issue_cmdlist``)
    read ``llq`` -> [no space: read CONS, refresh ``llq.cons``, retry] -> cmpxchg ``llq.prod``
    (fails if ``llq`` changed since read; retried with the returned value) -> write entries ->
    [sync: shared-lock increment] -> set valid bits -> owner only: wait ``owner_prod == start``,
    fetch_andnot OWNED (gathers everything reserved meanwhile), wait until the gathered range is
    valid, write PROD once, set ``owner_prod`` -> [sync: wait for the SYNC (an ``llq`` read first
    unless MSI), then ``shared_tryunlock`` (read lock; last holder writes ``llq.cons``; decrement)].
``atomic-add`` (John Garry's v2, patch-2020-garry-v2-remove-cmpxchg.txt 2/2; not merged)
    no read and no cmpxchg: one ``atomic64_fetch_add`` of (sync, count=1, prod=n) on the llq word
    reserves (owner = the count it returned was 0) -> read ``llq.cons`` (moved to the llq's second
    line) and, if the reserved slots are not free yet, read CONS and wait until they are -> write
    entries -> set valid bits (no shared lock for a SYNC here) -> owner only: wait ``owner_prod``,
    ``fetch_andnot`` of sync/count/prod's wrap bits (gathers, and returns the gathered SYNC count),
    wait for the valid bits, ``shared_lock(cmdq, sync_count)``: *one* fetch_add on ``cmdq->lock`` for
    every SYNC it gathered, write PROD, set ``owner_prod`` -> [sync: wait, ``shared_tryunlock`` as
    above, the last holder writing ``llq.cons`` on its own line]. A full queue: the CONS read, then
    a wait for CONS (the exclusive-lock refresh of ``llq.cons`` in that poll is not modelled).
``spinlock`` (Linux < 5.4)
    take the queue's spinlock (FIFO hand-off), for each entry write it and write PROD, wait for the
    SYNC with the lock held, release.
``exclusive``
    a queue owned by this CPU: write entries, write PROD once, wait; no atomics.
``direct``
    entries appear in the queue at arrival with no cost and nobody waits (open-queue scenario); the
    op completes when the SMMU completes its last entry.

Which fields share a cache line is ``cmdq_layout``: ``v5.9`` as the v5.9 structs declare them
(``owner_prod``, ``lock`` and the ``valid_map`` pointer on one line, so each set/poll of the valid
bitmap first loads that pointer from the hottest line), or ``per-field`` (each its own line).

On a queue emulated by a VMM (``Q_VMM``: a trapped guest's vSMMU CMDQ) the same algorithm runs, but
the PROD write and the CONS reads of the SYNC wait exit to the VMM (:mod:`.vmm`).
"""

from __future__ import annotations

from numba import njit

from cmdqv_lab.engine.flow import CONTINUE, NEED_INPUT, YIELD, block, go
from cmdqv_lab.engine.layout import (
    ALG_ATOMIC_ADD,
    ALG_CAS_SLOCK,
    ALG_DIRECT,
    ALG_EXCLUSIVE,
    ALG_LOCKFREE,
    ALG_SPINLOCK,
    ARB_FIFO,
    C_BCTR,
    C_BEND,
    C_CCTR,
    C_CMPV,
    C_DONE_OPS,
    C_END,
    C_IDX,
    C_IRQ,
    C_KIND,
    C_LLQ_Q,
    C_LOCK_Q,
    C_MORE,
    C_N,
    C_NEXT_PC,
    C_OP_BATCHES,
    C_OP_CMDS,
    C_OP_RETRIES,
    C_OP_SYNC_T,
    C_OPEN,
    C_OPHEAD,
    C_OPID,
    C_OPTAIL,
    C_OWNER,
    C_PC,
    C_PH_T,
    C_POLL_T0,
    C_Q,
    C_QUOTA,
    C_RETRIES,
    C_SEEN_CONS,
    C_SEEN_OWNED,
    C_SEEN_PROD,
    C_SEEN_VER,
    C_SLOCKED,
    C_SLW_T0,
    C_SPACE_Q,
    C_START,
    C_STARTED,
    C_SYNC,
    C_SYNC_DONE,
    C_SYNC_SLOT,
    C_SYNC_START,
    C_T_ISSUE,
    C_T_LAST_DONE,
    C_T_READY,
    C_T_RESERVED,
    C_VMM,
    C_WAIT_T0,
    C_WAITING,
    CNT_EXITS,
    CNT_GUEST_IRQS,
    G_CAS,
    G_CAS_FAIL,
    G_EXITS,
    G_FIRST_FINISH,
    G_GUEST_IRQS,
    G_OPS_STARTED,
    G_PH_LOCK,
    G_PH_OWNER,
    G_PH_PUBLISH,
    G_PH_RESERVE,
    G_PH_SYNC,
    G_PH_TO_SYNC,
    G_PH_UNLOCK,
    G_PH_WRITE,
    G_SLW_MAX,
    G_SLW_N,
    G_SLW_SUM,
    G_XLOCKS,
    G_XTRIES,
    H_HSLW,
    H_NCPU,
    H_NPROC,
    K_CMD_WRITE,
    K_CMDQ_LAYOUT,
    K_EXCL_UNLOCK,
    K_FUTEX_WAKE,
    K_LINE_ARB,
    K_MMIO_READ,
    K_MMIO_WRITE,
    K_POLL_SPINS,
    K_SPIN,
    K_UDELAY,
    L_HEAD,
    L_HOLDER,
    L_TAIL,
    LAYOUT_V59,
    LINE_CONS,
    LINE_LLQ,
    LINE_LOCK,
    LINE_OWNER,
    LINE_VALID,
    PC_AA_ADD,
    PC_AA_SHLOCK,
    PC_AA_SPACE,
    PC_BATCH_BEGIN,
    PC_BATCH_END,
    PC_CS_GOT,
    PC_CS_LOCK,
    PC_CS_UNLOCK,
    PC_DI_BEGIN,
    PC_DONE,
    PC_EX_BEGIN,
    PC_EX_LAND,
    PC_EX_SPACE_READ,
    PC_EX_WAIT,
    PC_EX_WRITTEN,
    PC_LF_ANDNOT,
    PC_LF_CHECK,
    PC_LF_DOORBELL,
    PC_LF_DOORBELL_LAND,
    PC_LF_FULL,
    PC_LF_FULL_READ,
    PC_LF_FULL_WRITE,
    PC_LF_OWNER_REL,
    PC_LF_OWNER_WAIT,
    PC_LF_PTR,
    PC_LF_READ,
    PC_LF_RESERVED,
    PC_LF_SETVALID,
    PC_LF_SHLOCK,
    PC_LF_SYNC,
    PC_LF_SYNC_WAIT,
    PC_LF_UNLOCK,
    PC_LF_UNLOCK_CONS,
    PC_LF_UNLOCK_DEC,
    PC_LF_VALID_WAIT,
    PC_LF_WRITTEN,
    PC_LOCK_GOT,
    PC_NEXT_OP,
    PC_OP_BEGIN,
    PC_PF_CHECK,
    PC_PF_READ,
    PC_SH_CAS,
    PC_SH_GOT,
    PC_SH_READ,
    PC_SH_WAIT,
    PC_SL_ACQ,
    PC_SL_GOT,
    PC_SL_INSERT,
    PC_SL_LAND,
    PC_SL_REL,
    PC_SL_WAIT,
    PC_VX_PROD,
    PC_VX_SYNC,
    PC_XL_READ,
    PC_XL_REREAD,
    PC_XL_TRY,
    PC_XL_UNLOCK,
    Q_ALG,
    Q_CONS_SHADOW,
    Q_FIFO_HEAD,
    Q_FIFO_TAIL,
    Q_GSYNC,
    Q_HW_CONS,
    Q_LLQ_WAITERS,
    Q_LOCK,
    Q_LOCK_WAITERS,
    Q_LOG2,
    Q_OWNED,
    Q_OWNER_PROD,
    Q_OWNER_WAITER,
    Q_PROD,
    Q_SLOCK,
    Q_SPACE_WAITERS,
    Q_VALID_UPTO,
    Q_VALID_WAITER,
    Q_VER,
    Q_VMM,
    Q_WAIT,
    Q_XCL,
    SL_VALID,
    STEP_BATCH,
    STEP_DELAY,
    STEP_LOCK,
    STEP_UNLOCK,
    STEP_VMM_PROD,
    WAIT_MSI,
    WAIT_POLL,
    XU_NONE,
    XU_SET_ZERO,
)
from cmdqv_lab.engine.lines import line_access, line_grant, line_read
from cmdqv_lab.engine.mem import (
    cadd,
    cget,
    cset,
    fifo_get,
    fifo_set,
    gadd,
    gget,
    gset,
    hget,
    kget,
    lfifo_get,
    lfifo_set,
    lock_get,
    lock_set,
    qadd,
    qget,
    qset,
    ring_b,
    ring_op,
    sget,
    sset,
)
from cmdqv_lab.engine.sched import next_is, sched, sync_observed, sync_observed_k
from cmdqv_lab.engine.slots import record_fixup_done, record_op_done, slot_row, write_batch
from cmdqv_lab.engine.smmu import publish, resume_queue
from cmdqv_lab.engine.stats import hist_add_at
from cmdqv_lab.engine.vmm import vmm_prod_exit, vmm_step, vmm_vcpu_step

__all__ = ["CONTINUE", "NEED_INPUT", "YIELD", "step_cpu"]


@njit(cache=True)
def _spin_unlock(M, q, field, end):
    """spin_unlock of a FIFO spinlock held in queue field ``field`` (cmdq->slock, or the spinlock
    algorithm's lock): hand it to the oldest waiter at ``end``, or free it (-1)."""
    head = qget(M, q, Q_FIFO_HEAD)
    if head < qget(M, q, Q_FIFO_TAIL):
        w = fifo_get(M, q, head)
        qset(M, q, Q_FIFO_HEAD, head + 1)
        qset(M, q, field, w)
        sched(M, hget(M, H_NPROC) + w, end)
    else:
        qset(M, q, field, -1)


@njit(cache=True)
def space_wait(M, c, q, pc):
    """Block CPU ``c`` until queue ``q``'s CONS advances, then resume at ``pc``."""
    cset(M, c, C_SPACE_Q, q)
    qadd(M, q, Q_SPACE_WAITERS, 1)
    return block(M, c, pc)


@njit(cache=True)
def sync_wait_begin(M, c, q, t0, pc_after):
    """Begin waiting at ``t0`` for the CPU's CMD_SYNC; resume at ``pc_after`` once observed."""
    done = cget(M, c, C_SYNC_DONE)
    if done >= 0:
        return go(M, c, sync_observed(M, qget(M, q, Q_WAIT), t0, done), pc_after)
    cset(M, c, C_WAITING, 1)
    cset(M, c, C_WAIT_T0, t0)
    return block(M, c, pc_after)


@njit(cache=True)
def _op_end(M, c, now):
    q = cget(M, c, C_Q)
    if cget(M, c, C_IRQ) == 1:
        record_fixup_done(M, now - cget(M, c, C_T_READY))
    elif cget(M, c, C_IRQ) == 2:  # a VMM thread's emulation: part of its vCPU's op
        pass
    elif not (
        cget(M, c, C_OP_BATCHES) > 0 and cget(M, c, C_KIND) == STEP_BATCH and qget(M, q, Q_ALG) == ALG_DIRECT
    ):
        record_op_done(
            M, c, cget(M, c, C_OPID), q if cget(M, c, C_OP_BATCHES) > 0 else -1, cget(M, c, C_T_READY),
            cget(M, c, C_OP_SYNC_T), now,
            cget(M, c, C_OP_CMDS), cget(M, c, C_OP_BATCHES), cget(M, c, C_OP_RETRIES),
        )  # fmt: skip
    cadd(M, c, C_DONE_OPS, 1)
    cset(M, c, C_T_LAST_DONE, now)
    cadd(M, c, C_OPHEAD, 1)
    if cget(M, c, C_DONE_OPS) == cget(M, c, C_QUOTA) and gget(M, G_FIRST_FINISH) < 0:
        gset(M, G_FIRST_FINISH, now)
    cset(M, c, C_PC, PC_NEXT_OP)


@njit(cache=True)
def _step_common(M, c, now, pc):
    """Op and batch boundaries. Runs its own program counters through in one call (an op's
    end, the next op's start, a batch's begin), as :func:`step_cpu` would one by one."""
    while True:
        if pc == PC_NEXT_OP:
            if cget(M, c, C_STARTED) >= cget(M, c, C_QUOTA):
                return block(M, c, PC_DONE)
            h = cget(M, c, C_OPHEAD)
            if h == cget(M, c, C_OPTAIL):
                if cget(M, c, C_IRQ) > 0:  # IRQ / VMM threads sleep until the engine appends work
                    cset(M, c, C_WAITING, 2)
                    return block(M, c, PC_NEXT_OP)
                if cget(M, c, C_MORE) == 1:
                    return NEED_INPUT
                return block(M, c, PC_DONE)
            t = ring_op(M, c, h, 0)
            cset(M, c, C_BEND, cget(M, c, C_BCTR) + ring_op(M, c, h, 1))
            if cget(M, c, C_OPEN) == 1:
                cset(M, c, C_T_READY, t)
                return go(M, c, t if t > now else now, PC_OP_BEGIN)
            cset(M, c, C_T_READY, now + t)
            return go(M, c, now + t, PC_OP_BEGIN)
        if pc == PC_OP_BEGIN:
            if cget(M, c, C_IRQ) == 2:  # a VMM thread works for its vCPU's current op
                cset(M, c, C_OPID, cget(M, cget(M, c, C_VMM), C_OPID))
            else:
                cset(M, c, C_OPID, gget(M, G_OPS_STARTED))
                gadd(M, G_OPS_STARTED, 1)
            cadd(M, c, C_STARTED, 1)
            cset(M, c, C_OP_CMDS, 0)
            cset(M, c, C_OP_BATCHES, 0)
            cset(M, c, C_OP_RETRIES, 0)
            cset(M, c, C_OP_SYNC_T, -1)
            cset(M, c, C_PC, PC_BATCH_BEGIN)
            pc = PC_BATCH_BEGIN
            continue
        if pc == PC_BATCH_BEGIN:
            b = cget(M, c, C_BCTR)
            if b == cget(M, c, C_BEND):
                _op_end(M, c, now)  # on to PC_NEXT_OP
                pc = PC_NEXT_OP
                continue
            kind = ring_b(M, c, b, 0)
            cset(M, c, C_KIND, kind)
            if kind != STEP_BATCH:
                cset(M, c, C_N, 0)
                return _step_other(
                    M, c, now, kind, ring_b(M, c, b, 1), ring_b(M, c, b, 2), ring_b(M, c, b, 3)
                )
            q = ring_b(M, c, b, 3)
            cset(M, c, C_N, ring_b(M, c, b, 1))
            cset(M, c, C_SYNC, ring_b(M, c, b, 2))
            cset(M, c, C_Q, q)
            cset(M, c, C_T_ISSUE, now)
            cset(M, c, C_RETRIES, 0)
            alg = qget(M, q, Q_ALG)
            if alg in (ALG_LOCKFREE, ALG_ATOMIC_ADD, ALG_CAS_SLOCK):
                cset(M, c, C_SLOCKED, 0)
                cset(M, c, C_PH_T, now)
                cset(M, c, C_PC, PC_AA_ADD if alg == ALG_ATOMIC_ADD else PC_LF_READ)
            elif alg == ALG_SPINLOCK:
                cset(M, c, C_PC, PC_SL_ACQ)
            elif alg == ALG_EXCLUSIVE:
                cset(M, c, C_PC, PC_EX_BEGIN)
            else:  # direct: written at once (open-queue), then on to the batch's end here
                cset(M, c, C_PC, PC_DI_BEGIN)
                r = _step_direct(M, c, now)
                if r != CONTINUE:
                    return r
                pc = cget(M, c, C_PC)
                continue
            return CONTINUE
        if pc == PC_LOCK_GOT:  # the previous holder handed the lock over
            cset(M, c, C_PC, PC_BATCH_END)
            pc = PC_BATCH_END
            continue
        if pc == PC_BATCH_END:
            if cget(M, c, C_KIND) == STEP_BATCH:
                cadd(M, c, C_OP_CMDS, cget(M, c, C_N))
                cadd(M, c, C_OP_BATCHES, 1)
                cadd(M, c, C_OP_RETRIES, cget(M, c, C_RETRIES))
                if cget(M, c, C_SYNC) == 1:
                    cset(M, c, C_OP_SYNC_T, cget(M, c, C_SYNC_DONE))
            cadd(M, c, C_CCTR, cget(M, c, C_N))
            cadd(M, c, C_BCTR, 1)
            cset(M, c, C_PC, PC_BATCH_BEGIN)
            pc = PC_BATCH_BEGIN
            continue
        return block(M, c, PC_DONE)


@njit(cache=True)
def _step_other(M, c, now, kind, a, b, d):
    """A step that is not a batch: delay, lock, unlock, resume, or a VMM thread's step."""
    if kind == STEP_DELAY:
        if b == CNT_EXITS:
            gadd(M, G_EXITS, 1)
        elif b == CNT_GUEST_IRQS:
            gadd(M, G_GUEST_IRQS, 1)
        return go(M, c, now + a, PC_BATCH_END)
    if kind == STEP_LOCK:
        if lock_get(M, a, L_HOLDER) < 0:
            lock_set(M, a, L_HOLDER, c)
            cset(M, c, C_PC, PC_BATCH_END)
            return CONTINUE
        tail = lock_get(M, a, L_TAIL)
        lfifo_set(M, a, tail, c)
        lock_set(M, a, L_TAIL, tail + 1)
        return block(M, c, PC_LOCK_GOT)
    if kind == STEP_UNLOCK:
        head = lock_get(M, a, L_HEAD)
        if head < lock_get(M, a, L_TAIL):
            w = lfifo_get(M, a, head)
            lock_set(M, a, L_HEAD, head + 1)
            lock_set(M, a, L_HOLDER, w)
            sched(M, hget(M, H_NPROC) + w, now + kget(M, K_FUTEX_WAKE))  # the sleeping waiter's futex wake-up
        else:
            lock_set(M, a, L_HOLDER, -1)
        cset(M, c, C_PC, PC_BATCH_END)
        return CONTINUE
    if kind >= STEP_VMM_PROD:
        return vmm_step(M, c, now, kind, a, b, d)
    resume_queue(M, a, now)  # STEP_RESUME
    cset(M, c, C_PC, PC_BATCH_END)
    return CONTINUE


@njit(cache=True)
def _snapshot_llq(M, c, q):
    cset(M, c, C_SEEN_VER, qget(M, q, Q_VER))
    cset(M, c, C_SEEN_PROD, qget(M, q, Q_PROD))
    cset(M, c, C_SEEN_CONS, qget(M, q, Q_CONS_SHADOW))
    cset(M, c, C_SEEN_OWNED, qget(M, q, Q_OWNED))


@njit(cache=True)
def _step_lockfree(M, c, now, pc):
    q = cget(M, c, C_Q)
    n = cget(M, c, C_N)
    size = 1 << qget(M, q, Q_LOG2)
    if pc == PC_LF_READ:  # llq.val = READ_ONCE(cmdq->q.llq.val)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LLQ, now, pc):
            return YIELD
        end = line_read(M, q, LINE_LLQ, c, now)
        _snapshot_llq(M, c, q)
        return go(M, c, end, PC_LF_CHECK)
    if pc == PC_LF_CHECK:
        if size - (cget(M, c, C_SEEN_PROD) - cget(M, c, C_SEEN_CONS)) < n:
            alg = qget(M, q, Q_ALG)
            if kget(M, K_EXCL_UNLOCK) != XU_NONE and alg != ALG_ATOMIC_ADD:
                nxt = PC_XL_TRY  # arm_smmu_cmdq_poll_until_not_full
            else:
                nxt = PC_LF_FULL
            if cget(M, c, C_SLOCKED) == 1:  # if (locked) spin_unlock(&cmdq->slock) before polling
                cset(M, c, C_NEXT_PC, nxt)
                nxt = PC_CS_UNLOCK
            cset(M, c, C_PC, nxt)
            return CONTINUE
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LLQ, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LLQ, c, now)  # cmpxchg_relaxed
        gadd(M, G_CAS, 1)
        if qget(M, q, Q_VER) == cget(M, c, C_SEEN_VER):
            cset(M, c, C_START, qget(M, q, Q_PROD))
            cset(M, c, C_OWNER, 1 - qget(M, q, Q_OWNED))
            qadd(M, q, Q_PROD, n)
            qset(M, q, Q_OWNED, 1)
            qadd(M, q, Q_VER, 1)
            cset(M, c, C_T_RESERVED, end)
            phase(M, c, G_PH_RESERVE, end)
            if cget(M, c, C_SLOCKED) == 1:  # if (locked) spin_unlock(&cmdq->slock); break
                cset(M, c, C_NEXT_PC, PC_LF_RESERVED)
                return go(M, c, end, PC_CS_UNLOCK)
            return go(M, c, end, PC_LF_RESERVED)
        gadd(M, G_CAS_FAIL, 1)
        cadd(M, c, C_RETRIES, 1)
        if qget(M, q, Q_ALG) == ALG_CAS_SLOCK:  # take cmdq->slock (once), then re-read llq
            return go(M, c, end, PC_LF_READ if cget(M, c, C_SLOCKED) == 1 else PC_CS_LOCK)
        _snapshot_llq(M, c, q)  # a failed cmpxchg returns the current value
        return go(M, c, end, PC_LF_CHECK)
    if pc == PC_LF_FULL:  # arm_smmu_cmdq_poll_until_not_full: read the CONS register
        return go(M, c, now + kget(M, K_MMIO_READ), PC_LF_FULL_READ)
    if pc == PC_LF_FULL_READ:
        hw = qget(M, q, Q_HW_CONS)
        if hw > qget(M, q, Q_CONS_SHADOW):
            cset(M, c, C_CMPV, hw)
            cset(M, c, C_PC, PC_LF_FULL_WRITE)
            return CONTINUE
        if size - (qget(M, q, Q_PROD) - hw) >= n:  # our snapshot was stale: re-read llq
            cset(M, c, C_PC, PC_LF_READ)
            return CONTINUE
        return space_wait(M, c, q, PC_LF_FULL)
    if pc == PC_LF_RESERVED:
        if cget(M, c, C_START) + n - qget(M, q, Q_HW_CONS) > size:  # atomic-add ran ahead of CONS
            return space_wait(M, c, q, PC_LF_RESERVED)
        return go(M, c, now + n * kget(M, K_CMD_WRITE), PC_LF_WRITTEN)
    if pc == PC_LF_WRITTEN:
        write_batch(M, c, q, cget(M, c, C_START), n, now, False)
        phase(M, c, G_PH_WRITE, now)
        cset(M, c, C_SLW_T0, now)
        if cget(M, c, C_SYNC) == 1 and qget(M, q, Q_ALG) != ALG_ATOMIC_ADD:  # v2: the owner locks
            cset(M, c, C_PC, PC_LF_SHLOCK)
        else:
            cset(M, c, C_PC, via_valid_map(M, c, PC_LF_SETVALID))
        return CONTINUE
    if pc == PC_LF_SETVALID:  # arm_smmu_cmdq_set_valid_map
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_VALID, now, pc):
            return YIELD
        end = line_access(M, q, LINE_VALID, c, now)
        start = cget(M, c, C_START)
        for ctr in range(start, start + n):
            sset(M, slot_row(M, q, ctr), SL_VALID, ctr + 1)
        v = qget(M, q, Q_VALID_UPTO)
        while v < qget(M, q, Q_PROD) and sget(M, slot_row(M, q, v), SL_VALID) == v + 1:
            v += 1
        qset(M, q, Q_VALID_UPTO, v)
        w = qget(M, q, Q_VALID_WAITER)
        if w >= 0 and v >= cget(M, w, C_END):
            qset(M, q, Q_VALID_WAITER, -1)
            sched(M, hget(M, H_NPROC) + w, end)
        if cget(M, c, C_OWNER) == 1:
            return go(M, c, end, PC_LF_OWNER_WAIT)
        phase(M, c, G_PH_OWNER, end)
        return go(M, c, end, PC_LF_SYNC if cget(M, c, C_SYNC) == 1 else PC_BATCH_END)
    if pc == PC_LF_OWNER_WAIT:  # atomic_cond_read_relaxed(&cmdq->owner_prod, VAL == llq.prod)
        ln = owner_line(M)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, ln, now, pc):
            return YIELD
        end = line_access(M, q, ln, c, now)  # cond_read: LDXR + WFE
        if qget(M, q, Q_OWNER_PROD) == cget(M, c, C_START):
            return go(M, c, end, PC_LF_ANDNOT)
        qset(M, q, Q_OWNER_WAITER, c)
        return block(M, c, PC_LF_OWNER_WAIT)
    if pc == PC_LF_ANDNOT:  # atomic_fetch_andnot_relaxed(OWNED, &llq.prod): gather
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LLQ, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LLQ, c, now)
        cset(M, c, C_END, qget(M, q, Q_PROD))
        qset(M, q, Q_OWNED, 0)  # (atomic-add: count = 0; sync_count = tmp.sync, sync = 0)
        cset(M, c, C_CMPV, qget(M, q, Q_GSYNC))
        qset(M, q, Q_GSYNC, 0)
        qadd(M, q, Q_VER, 1)
        return go(M, c, end, via_valid_map(M, c, PC_LF_VALID_WAIT))
    if pc == PC_LF_VALID_WAIT:  # arm_smmu_cmdq_poll_valid_map
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_VALID, now, pc):
            return YIELD
        end = line_access(M, q, LINE_VALID, c, now)  # cond_read: LDXR + WFE
        if qget(M, q, Q_VALID_UPTO) >= cget(M, c, C_END):
            if qget(M, q, Q_ALG) == ALG_ATOMIC_ADD:
                cset(M, c, C_SLW_T0, end)
                return go(M, c, end, PC_AA_SHLOCK)
            return go(M, c, end, PC_LF_DOORBELL)
        qset(M, q, Q_VALID_WAITER, c)
        return block(M, c, PC_LF_VALID_WAIT)
    if pc == PC_LF_DOORBELL:  # queue_write_prod
        phase(M, c, G_PH_OWNER, now)
        if qget(M, q, Q_VMM) == 1:  # an emulated queue: the write exits to the VMM (engine/vmm.py)
            return vmm_prod_exit(M, c, now)
        return go(M, c, now + kget(M, K_MMIO_WRITE), PC_LF_DOORBELL_LAND)
    if pc == PC_LF_DOORBELL_LAND:
        if qget(M, q, Q_VMM) == 0:  # (an emulated queue's VMM published and consumed it)
            publish(M, q, cget(M, c, C_END), now)
        cset(M, c, C_PC, PC_LF_OWNER_REL)
        return CONTINUE
    if pc == PC_LF_SYNC:
        if qget(M, q, Q_WAIT) == WAIT_MSI:
            return sync_wait_begin(M, c, q, now, PC_LF_UNLOCK)
        ln = cons_line(M, q)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, ln, now, pc):
            return YIELD
        end = line_read(M, q, ln, c, now)  # poll_until_consumed reads llq (v2: llq.cons) first
        cset(M, c, C_SEEN_CONS, qget(M, q, Q_CONS_SHADOW))
        return go(M, c, end, PC_LF_SYNC_WAIT)
    if pc == PC_LF_SYNC_WAIT:
        if cget(M, c, C_SEEN_CONS) > cget(M, c, C_SYNC_SLOT):
            cset(M, c, C_PC, PC_LF_UNLOCK)
            return CONTINUE
        if qget(M, q, Q_VMM) == 1:  # CONS reads of an emulated queue exit (engine/vmm.py)
            cset(M, c, C_PC, PC_VX_SYNC)
            return CONTINUE
        return sync_wait_begin(M, c, q, now, PC_LF_UNLOCK)
    if pc == PC_LF_UNLOCK:  # arm_smmu_cmdq_shared_tryunlock: atomic_read(&cmdq->lock)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        t0 = cget(M, c, C_PH_T)
        ts = cget(M, c, C_SYNC_START)
        ts = t0 if ts < t0 else (now if ts > now else ts)
        gadd(M, G_PH_TO_SYNC, ts - t0)
        gadd(M, G_PH_SYNC, now - ts)
        cset(M, c, C_PH_T, now)
        end = line_read(M, q, LINE_LOCK, c, now)
        return go(M, c, end, PC_LF_UNLOCK_CONS if qget(M, q, Q_LOCK) == 1 else PC_LF_UNLOCK_DEC)
    if pc == PC_LF_UNLOCK_CONS:  # last holder: WRITE_ONCE(cmdq->q.llq.cons, llq.cons)
        ln = cons_line(M, q)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, ln, now, pc):
            return YIELD
        end = line_access(M, q, ln, c, now)
        old = qget(M, q, Q_CONS_SHADOW)
        qset(M, q, Q_CONS_SHADOW, cget(M, c, C_SYNC_SLOT) + 1)
        qadd(M, q, Q_VER, 1)
        if old != cget(M, c, C_SYNC_SLOT) + 1:
            wake_llq_pollers(M, q, end)
        return go(M, c, end, PC_LF_UNLOCK_DEC)
    # PC_LF_UNLOCK_DEC: atomic_dec_return_release(&cmdq->lock)
    if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
        return YIELD
    end = line_access(M, q, LINE_LOCK, c, now)
    qadd(M, q, Q_LOCK, -1)
    phase(M, c, G_PH_UNLOCK, end)
    return go(M, c, end, PC_BATCH_END)


@njit(cache=True)
def _step_lockfree_more(M, c, now, pc):
    """Lock-free steps of issue 10 (kept apart so the hot function stays small): the CONS write of
    the space check, shared_lock's atomic, owner_prod's release, cmdq->slock (cas-spinlock-fallback)."""
    q = cget(M, c, C_Q)
    if pc == PC_CS_LOCK:  # spin_lock(&cmdq->slock): a queued spinlock, FIFO hand-off
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)  # slock shares cmdq->lock's line (adjacent fields)
        if qget(M, q, Q_SLOCK) < 0:
            qset(M, q, Q_SLOCK, c)
            cset(M, c, C_SLOCKED, 1)
            return go(M, c, end, PC_LF_READ)
        fifo_set(M, q, qget(M, q, Q_FIFO_TAIL), c)
        qadd(M, q, Q_FIFO_TAIL, 1)
        return block(M, c, PC_CS_GOT)
    if pc == PC_CS_GOT:  # the releaser handed it over; our spinning read sees it
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)  # cond_read: LDXR + WFE
        cset(M, c, C_SLOCKED, 1)
        return go(M, c, end, PC_LF_READ)
    if pc == PC_CS_UNLOCK:  # spin_unlock(&cmdq->slock): hand it to the next waiter
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)
        _spin_unlock(M, q, Q_SLOCK, end)
        cset(M, c, C_SLOCKED, 0)
        return go(M, c, end, cget(M, c, C_NEXT_PC))
    if pc == PC_LF_FULL_WRITE:  # WRITE_ONCE(cmdq->q.llq.cons, CONS) with the CONS read
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LLQ, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LLQ, c, now)
        qset(M, q, Q_CONS_SHADOW, cget(M, c, C_CMPV))
        qadd(M, q, Q_VER, 1)
        return go(M, c, end, PC_LF_READ)
    if pc == PC_LF_SHLOCK:  # arm_smmu_cmdq_shared_lock: atomic_fetch_inc_relaxed(&lock)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)
        qadd(M, q, Q_LOCK, 1)
        if kget(M, K_EXCL_UNLOCK) == XU_NONE or qget(M, q, Q_XCL) == 0:  # returned >= 0
            shared_lock_waited(M, end - cget(M, c, C_SLW_T0))
            phase(M, c, G_PH_LOCK, end)
            return go(M, c, end, via_valid_map(M, c, PC_LF_SETVALID))
        return go(M, c, end, PC_SH_WAIT)
    if pc == PC_LF_OWNER_REL:  # atomic_set_release(&cmdq->owner_prod, prod)
        ln = owner_line(M)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, ln, now, pc):
            return YIELD
        end = line_access(M, q, ln, c, now)
        qset(M, q, Q_OWNER_PROD, cget(M, c, C_END))
        w = qget(M, q, Q_OWNER_WAITER)
        if w >= 0:
            qset(M, q, Q_OWNER_WAITER, -1)
            sched(M, hget(M, H_NPROC) + w, end)
        phase(M, c, G_PH_PUBLISH, end)
        return go(M, c, end, PC_LF_SYNC if cget(M, c, C_SYNC) == 1 else PC_BATCH_END)
    if pc == PC_LF_PTR:  # v5.9 layout: load cmdq->valid_map, on the line of owner_prod and lock
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_read(M, q, LINE_LOCK, c, now)
        return go(M, c, end, cget(M, c, C_NEXT_PC))
    n = cget(M, c, C_N)
    if pc == PC_AA_ADD:  # llq.val = atomic64_fetch_add(space.val, &cmdq->q.llq.atomic)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LLQ, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LLQ, c, now)
        gadd(M, G_CAS, 1)  # an atomic on the llq word that cannot fail
        cset(M, c, C_START, qget(M, q, Q_PROD))
        cset(M, c, C_OWNER, 1 - qget(M, q, Q_OWNED))  # owner = !llq.count
        qadd(M, q, Q_PROD, n)
        qset(M, q, Q_OWNED, 1)  # count += 1
        qadd(M, q, Q_GSYNC, cget(M, c, C_SYNC))  # sync += sync
        qadd(M, q, Q_VER, 1)
        cset(M, c, C_T_RESERVED, end)
        phase(M, c, G_PH_RESERVE, end)
        return go(M, c, end, PC_AA_SPACE)
    if pc == PC_AA_SPACE:  # space.cons = READ_ONCE(cmdq->q.llq.cons); queue_has_space(&space, n + sync)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_CONS, now, pc):
            return YIELD
        end = line_read(M, q, LINE_CONS, c, now)
        if cget(M, c, C_START) + n - qget(M, q, Q_CONS_SHADOW) <= 1 << qget(M, q, Q_LOG2):
            return go(M, c, end, PC_LF_RESERVED)
        # arm_smmu_cmdq_poll_until_not_full: readl(CONS); then the entries wait until CONS passes them
        # (the exclusive lock and the llq.cons write of that poll are not modelled for atomic-add)
        return go(M, c, end + kget(M, K_MMIO_READ), PC_LF_RESERVED)
    if pc == PC_AA_SHLOCK:  # owner: arm_smmu_cmdq_shared_lock(cmdq, sync_count), one fetch_add
        phase(M, c, G_PH_OWNER, now)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)
        qadd(M, q, Q_LOCK, cget(M, c, C_CMPV))  # never negative: atomic-add takes no exclusive lock
        shared_lock_waited(M, end - cget(M, c, C_SLW_T0))
        phase(M, c, G_PH_LOCK, end)
        return go(M, c, end, PC_LF_DOORBELL)
    return block(M, c, PC_DONE)


@njit(cache=True)
def owner_line(M):
    """The line of ``cmdq->owner_prod``: ``lock``'s in the v5.9 layout, its own in ``per-field``."""
    return LINE_LOCK if kget(M, K_CMDQ_LAYOUT) == LAYOUT_V59 else LINE_OWNER


@njit(cache=True)
def cons_line(M, q):
    """The line holding ``llq.cons``: the llq word's, or for atomic-add (Garry's v2) the next one."""
    return LINE_CONS if qget(M, q, Q_ALG) == ALG_ATOMIC_ADD else LINE_LLQ


@njit(cache=True)
def via_valid_map(M, c, pc):
    """Step ``pc`` (set or poll the valid bitmap), after loading ``cmdq->valid_map`` in the v5.9 layout."""
    if kget(M, K_CMDQ_LAYOUT) != LAYOUT_V59:
        return pc
    cset(M, c, C_NEXT_PC, pc)
    return PC_LF_PTR


@njit(cache=True, inline="always")
def phase(M, c, g, t):
    """CPU ``c``'s current phase of a lock-free batch ends at ``t``: add it to counter ``g``."""
    gadd(M, g, t - cget(M, c, C_PH_T))
    cset(M, c, C_PH_T, t)


@njit(cache=True)
def shared_lock_waited(M, w):
    """Count one ``arm_smmu_cmdq_shared_lock`` that took ``w`` ps (its atomic included)."""
    gadd(M, G_SLW_SUM, w)
    gadd(M, G_SLW_N, 1)
    if w > gget(M, G_SLW_MAX):
        gset(M, G_SLW_MAX, w)
    hist_add_at(M, hget(M, H_HSLW), w)


@njit(cache=True)
def wake_lock_waiters(M, q, t):
    """The exclusive holder released ``q``'s cmdq->lock (the write ends at ``t``): every CPU spinning
    in ``arm_smmu_cmdq_shared_lock`` re-reads it."""
    if qget(M, q, Q_LOCK_WAITERS) == 0:
        return
    qset(M, q, Q_LOCK_WAITERS, 0)
    for w in range(hget(M, H_NCPU)):
        if cget(M, w, C_LOCK_Q) == q:
            cset(M, w, C_LOCK_Q, -1)
            cset(M, w, C_PC, PC_SH_READ)
            sched(M, hget(M, H_NPROC) + w, t)


@njit(cache=True)
def poll_seen(M, t0, tw):
    """First ``queue_poll`` read at or after ``tw`` of a loop that began at ``t0``: ``cpu_relax``
    (``spin``) between reads, ``udelay`` doubling every ``poll_spins`` polls (qp.wfe false). Reads of an
    unchanged line hit the CPU's cache and cost nothing; the read that sees the change is a line access."""
    return sync_observed_k(
        WAIT_POLL, t0, tw, 0, 0, 0, kget(M, K_SPIN), kget(M, K_UDELAY), kget(M, K_POLL_SPINS)
    )


@njit(cache=True)
def wake_llq_pollers(M, q, t):
    """``llq.cons`` of ``q`` was written (the write ends at ``t``): CPUs in the ``queue_poll`` loop of
    ``arm_smmu_cmdq_poll_until_not_full`` read ``llq`` again at their next poll."""
    if qget(M, q, Q_LLQ_WAITERS) == 0:
        return
    qset(M, q, Q_LLQ_WAITERS, 0)
    for w in range(hget(M, H_NCPU)):
        if cget(M, w, C_LLQ_Q) == q:
            cset(M, w, C_LLQ_Q, -1)
            cset(M, w, C_PC, PC_PF_READ)
            sched(M, hget(M, H_NPROC) + w, poll_seen(M, cget(M, w, C_POLL_T0), t))


@njit(cache=True)
def _lock_ok(M, q, clear_sign):
    """The condition ``arm_smmu_cmdq_shared_lock`` waits for: VAL > 0 (clear-sign), VAL >= 0 (set-zero)."""
    if qget(M, q, Q_XCL) == 1:
        return False
    return qget(M, q, Q_LOCK) > 0 if clear_sign else True


@njit(cache=True)
def _step_cmdq_lock(M, c, now, pc):
    """cmdq->lock as Linux's counter: exclusive trylock on a full queue, shared lock for a CMD_SYNC.

    The lock word is ``Q_LOCK`` (the shared count) plus ``INT_MIN`` while ``Q_XCL`` is set. Sources:
    linux-current-arm-smmu-v3.c arm_smmu_cmdq_shared_lock / exclusive_trylock_irqsave /
    exclusive_unlock_irqrestore and arm_smmu_cmdq_poll_until_not_full; the set-zero variant is the
    pre-image of patch-2026-cmdq-lock-fairness.txt (df180b1a4cc5).
    """
    q = cget(M, c, C_Q)
    mode = kget(M, K_EXCL_UNLOCK)
    if pc == PC_XL_TRY:  # atomic_cmpxchg_relaxed(&cmdq->lock, 0, INT_MIN)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)
        gadd(M, G_XTRIES, 1)
        if qget(M, q, Q_XCL) == 0 and qget(M, q, Q_LOCK) == 0:
            qset(M, q, Q_XCL, 1)
            gadd(M, G_XLOCKS, 1)
            return go(M, c, end + kget(M, K_MMIO_READ), PC_XL_READ)  # readl_relaxed(cons_reg)
        cset(M, c, C_POLL_T0, -1)  # queue_poll_init
        return go(M, c, end, PC_PF_READ)
    if pc == PC_XL_READ:  # WRITE_ONCE(cmdq->q.llq.cons, CONS)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LLQ, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LLQ, c, now)
        hw = qget(M, q, Q_HW_CONS)
        if hw != qget(M, q, Q_CONS_SHADOW):
            qset(M, q, Q_CONS_SHADOW, hw)
            qadd(M, q, Q_VER, 1)
            wake_llq_pollers(M, q, end)
        return go(M, c, end, PC_XL_UNLOCK)
    if pc == PC_XL_UNLOCK:  # set-zero: atomic_set_release(0); clear-sign: fetch_andnot_release(INT_MIN)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)
        qset(M, q, Q_XCL, 0)
        if mode == XU_SET_ZERO:
            qset(M, q, Q_LOCK, 0)  # the increments of waiting shared lockers are lost
        wake_lock_waiters(M, q, end)
        return go(M, c, end, PC_XL_REREAD)
    if pc in (PC_XL_REREAD, PC_PF_READ):  # llq->val = READ_ONCE(cmdq->q.llq.val)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LLQ, now, pc):
            return YIELD
        end = line_read(M, q, LINE_LLQ, c, now)
        _snapshot_llq(M, c, q)
        return go(M, c, end, PC_LF_CHECK if pc == PC_XL_REREAD else PC_PF_CHECK)
    if pc == PC_PF_CHECK:  # if (!queue_full(llq)) break; ret = queue_poll(&qp);
        size = 1 << qget(M, q, Q_LOG2)
        if cget(M, c, C_SEEN_PROD) - cget(M, c, C_SEEN_CONS) < size:
            cset(M, c, C_PC, PC_LF_CHECK)  # back to while (!queue_has_space(&llq, n + sync))
            return CONTINUE
        if cget(M, c, C_POLL_T0) < 0:
            cset(M, c, C_POLL_T0, now)
        if qget(M, q, Q_VER) != cget(M, c, C_SEEN_VER):  # llq changed since the read: next poll sees it
            return go(M, c, poll_seen(M, cget(M, c, C_POLL_T0), now), PC_PF_READ)
        cset(M, c, C_LLQ_Q, q)
        qadd(M, q, Q_LLQ_WAITERS, 1)
        return block(M, c, PC_PF_READ)
    clear_sign = mode != XU_SET_ZERO
    if pc == PC_SH_WAIT:  # atomic_cond_read_relaxed(&cmdq->lock, VAL > 0 | VAL >= 0): spin
        if _lock_ok(M, q, clear_sign):  # it changed since our last access: the next read sees it
            cset(M, c, C_PC, PC_SH_READ)
            return CONTINUE
        cset(M, c, C_LOCK_Q, q)
        qadd(M, q, Q_LOCK_WAITERS, 1)
        return block(M, c, PC_SH_READ)
    if pc == PC_SH_READ:
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)  # cond_read: LDXR + WFE
        if not _lock_ok(M, q, clear_sign):
            return go(M, c, end, PC_SH_WAIT)
        if clear_sign:
            return go(M, c, end, PC_SH_GOT)
        cset(M, c, C_CMPV, qget(M, q, Q_LOCK))  # val
        return go(M, c, end, PC_SH_CAS)
    if pc == PC_SH_CAS:  # atomic_cmpxchg_relaxed(&cmdq->lock, val, val + 1) != val: loop
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)
        if qget(M, q, Q_XCL) == 0 and qget(M, q, Q_LOCK) == cget(M, c, C_CMPV):
            qadd(M, q, Q_LOCK, 1)
            return go(M, c, end, PC_SH_GOT)
        return go(M, c, end, PC_SH_WAIT)
    # PC_SH_GOT
    shared_lock_waited(M, now - cget(M, c, C_SLW_T0))
    phase(M, c, G_PH_LOCK, now)
    cset(M, c, C_PC, via_valid_map(M, c, PC_LF_SETVALID))
    return CONTINUE


@njit(cache=True)
def _write_one(M, c, q, ctr, i, n, now):
    """Write entry ``i`` of the current batch into queue counter ``ctr`` (per-entry insertion)."""
    sync = cget(M, c, C_SYNC)
    cctr = cget(M, c, C_CCTR)
    cset(M, c, C_CCTR, cctr + i)
    cset(M, c, C_SYNC, sync if i == n - 1 else 0)
    write_batch(M, c, q, ctr, 1, now, False)
    cset(M, c, C_CCTR, cctr)
    cset(M, c, C_SYNC, sync)


@njit(cache=True)
def _step_spinlock(M, c, now, pc):
    q = cget(M, c, C_Q)
    n = cget(M, c, C_N)
    if pc == PC_SL_ACQ:  # spin_lock_irqsave: FIFO hand-off (ticket / queued spinlock)
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)
        if qget(M, q, Q_LOCK) < 0:
            qset(M, q, Q_LOCK, c)
            cset(M, c, C_IDX, 0)
            cset(M, c, C_T_RESERVED, end)
            return go(M, c, end, PC_SL_INSERT)
        fifo_set(M, q, qget(M, q, Q_FIFO_TAIL), c)
        qadd(M, q, Q_FIFO_TAIL, 1)
        return block(M, c, PC_SL_GOT)
    if pc == PC_SL_GOT:  # the releaser handed the lock over; our spinning read sees it
        if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
            return YIELD
        end = line_access(M, q, LINE_LOCK, c, now)  # cond_read: LDXR + WFE
        cset(M, c, C_IDX, 0)
        cset(M, c, C_T_RESERVED, end)
        return go(M, c, end, PC_SL_INSERT)
    if pc == PC_SL_INSERT:  # arm_smmu_cmdq_insert_cmd per entry: write it, then write PROD
        if cget(M, c, C_IDX) == n:
            cset(M, c, C_PC, PC_SL_WAIT if cget(M, c, C_SYNC) == 1 else PC_SL_REL)
            return CONTINUE
        if qget(M, q, Q_PROD) + 1 - qget(M, q, Q_HW_CONS) > (1 << qget(M, q, Q_LOG2)):
            return space_wait(M, c, q, PC_SL_INSERT)
        return go(M, c, now + kget(M, K_CMD_WRITE) + kget(M, K_MMIO_WRITE), PC_SL_LAND)
    if pc == PC_SL_LAND:
        i = cget(M, c, C_IDX)
        ctr = qget(M, q, Q_PROD)
        qset(M, q, Q_PROD, ctr + 1)
        _write_one(M, c, q, ctr, i, n, now)
        publish(M, q, ctr + 1, now)
        cset(M, c, C_IDX, i + 1)
        cset(M, c, C_PC, PC_SL_INSERT)
        return CONTINUE
    if pc == PC_SL_WAIT:
        return sync_wait_begin(M, c, q, now, PC_SL_REL)
    # PC_SL_REL: spin_unlock hands the lock to the next waiter
    if kget(M, K_LINE_ARB) != ARB_FIFO and not line_grant(M, c, q, LINE_LOCK, now, pc):
        return YIELD
    end = line_access(M, q, LINE_LOCK, c, now)
    _spin_unlock(M, q, Q_LOCK, end)
    return go(M, c, end, PC_BATCH_END)


@njit(cache=True)
def _step_exclusive(M, c, now, pc):
    q = cget(M, c, C_Q)
    n = cget(M, c, C_N)
    if pc == PC_EX_BEGIN:
        if qget(M, q, Q_PROD) + n - qget(M, q, Q_HW_CONS) > (1 << qget(M, q, Q_LOG2)):
            return space_wait(M, c, q, PC_EX_SPACE_READ)
        cset(M, c, C_START, qget(M, q, Q_PROD))
        qadd(M, q, Q_PROD, n)
        cset(M, c, C_T_RESERVED, now)
        return go(M, c, now + n * kget(M, K_CMD_WRITE), PC_EX_WRITTEN)
    if pc == PC_EX_SPACE_READ:  # woken by CONS moving: read it
        return go(M, c, now + kget(M, K_MMIO_READ), PC_EX_BEGIN)
    if pc == PC_EX_WRITTEN:
        write_batch(M, c, q, cget(M, c, C_START), n, now, False)
        return go(M, c, now + kget(M, K_MMIO_WRITE), PC_EX_LAND)
    if pc == PC_EX_LAND:
        publish(M, q, cget(M, c, C_START) + n, now)
        cset(M, c, C_PC, PC_EX_WAIT if cget(M, c, C_SYNC) == 1 else PC_BATCH_END)
        return CONTINUE
    return sync_wait_begin(M, c, q, now, PC_BATCH_END)  # PC_EX_WAIT


@njit(cache=True)
def _step_direct(M, c, now):
    q = cget(M, c, C_Q)
    n = cget(M, c, C_N)
    if qget(M, q, Q_PROD) + n - qget(M, q, Q_HW_CONS) > (1 << qget(M, q, Q_LOG2)):
        return space_wait(M, c, q, PC_DI_BEGIN)
    start = qget(M, q, Q_PROD)
    qset(M, q, Q_PROD, start + n)
    cset(M, c, C_T_RESERVED, now)
    cset(M, c, C_SYNC, 0)  # nobody waits
    write_batch(M, c, q, start, n, now, cget(M, c, C_BCTR) + 1 == cget(M, c, C_BEND))
    publish(M, q, start + n, now)
    cset(M, c, C_PC, PC_BATCH_END)
    return CONTINUE


@njit(cache=True)
def step_cpu(M, c, now):
    """Run CPU ``c`` at time ``now`` until another entity's step is next, it blocks, or it needs input."""
    while True:
        pc = cget(M, c, C_PC)
        if pc < 10 or pc in (PC_BATCH_END, PC_LOCK_GOT):
            r = _step_common(M, c, now, pc)
        elif pc < 30:
            r = _step_lockfree(M, c, now, pc)
        elif pc >= PC_LF_FULL_WRITE:  # 90-99: lock-free steps split for holder-first
            r = _step_lockfree_more(M, c, now, pc)
        elif pc >= PC_VX_PROD:  # 80-89: a vCPU on a VMM-emulated queue
            r = vmm_vcpu_step(M, c, now, pc, cget(M, c, C_Q))
        elif pc >= PC_XL_TRY:  # 70-79: cmdq->lock's exclusive path
            r = _step_cmdq_lock(M, c, now, pc)
        elif pc < 40:
            r = _step_spinlock(M, c, now, pc)
        elif pc < 50:
            r = _step_exclusive(M, c, now, pc)
        else:
            r = _step_direct(M, c, now)
        if r == YIELD:
            t = next_is(M, hget(M, H_NPROC) + c)  # its next step is the loop's next anyway: take it here
            if t < 0:
                return r
            now = t
        elif r != CONTINUE:
            return r
