"""The VMM side of a trapped guest queue in the compiled engine (QEMU's emulated vSMMU CMDQ).

A guest runs Linux's own submission algorithm (:mod:`.cpu`, ``arm_smmu_cmdq_issue_cmdlist``) on
its emulated CMDQ (a queue with ``Q_VMM = 1``): reservation, valid bits, owner gathering happen in
guest memory at native cost. What differs is every access to the queue's *registers*:

* **PROD write** (the owner's ``queue_write_prod``). It exits to the user-space VMM: QEMU's
  ``kvm_cpu_exec`` returns with ``KVM_EXIT_MMIO`` and dispatches the access *outside* the BQL;
  ``prepare_mmio_access`` then takes the BQL because the SMMUv3 region is not ``lockless_io``
  (qemu-10.2.0-bql-mmio-dispatch-excerpts.c). ``smmu_writel`` case ``A_CMDQ_PROD`` sets PROD and
  calls ``smmuv3_cmdq_consume`` synchronously (qemu-10.2.0-hw-arm-smmuv3.c), which walks CONS to
  PROD and, with ``accel=on``, forwards each invalidation (qemu-master-2026-smmuv3-accel-excerpts.c
  ``smmuv3_accel_issue_inv_cmd``: one ``IOMMU_HWPT_INVALIDATE`` ioctl with ``entry_num = 1``). The
  ioctl blocks until the host's ``arm_vsmmu_cache_invalidate`` (linux-7.0-arm-smmu-v3-iommufd.c)
  has issued the commands on the host main CMDQ in chunks of ``CMDQ_BATCH_ENTRIES - 1`` with
  ``arm_smmu_cmdq_issue_cmdlist(..., sync = true)``. CMD_SYNC is emulated locally (not forwarded).
  CONS reaches PROD before the write returns, then the BQL is released and the vCPU re-enters.
* **CONS read** (``readl(cmdq->q.cons_reg)`` in ``__arm_smmu_cmdq_poll_until_consumed``). Also an
  exit that takes the BQL (``smmu_readl``), so a polling vCPU waits behind another vCPU's whole PROD
  emulation, ioctls included. QEMU's vSMMU has neither IDR0.SEV nor IDR0.MSI
  (``smmuv3_init_regs``), so the guest's ``queue_poll`` spins ``poll_spins`` times, then udelays
  with doubling delays, between reads.

The emulation runs on the vCPU's thread. The engine gives each vCPU a *VMM thread* entity that is
only ever runnable while its vCPU is blocked in an exit: the vCPU appends the emulation as an op
(steps: BQL lock, register effect, VMM work, forwarded host batches on the host main CMDQ with the
host's own algorithm and cache lines, BQL unlock, wake the vCPU after the return half of the trap)
and blocks; the thread runs it and wakes the vCPU. Its host batches carry the vCPU's op id.

Simplifications: CONS becomes PROD at the end of the emulation (QEMU advances it per command, but
under the BQL nobody can read it in between); the CONS read of ``poll_until_not_full`` on an
emulated queue costs ``mmio_read`` without an exit (topologies size emulated queues so that it does
not happen); every non-SYNC command is forwarded (the guest paths only carry invalidations).
"""

from __future__ import annotations

from numba import njit

from cmdqv_lab.engine.flow import CONTINUE, block, go
from cmdqv_lab.engine.layout import (
    C_BTAIL,
    C_CTAIL,
    C_END,
    C_OPTAIL,
    C_PC,
    C_POLL_CNT,
    C_POLL_DELAY,
    C_SEEN_CONS,
    C_SPACE_Q,
    C_SYNC_DONE,
    C_SYNC_SLOT,
    C_VAL,
    C_VMM,
    C_WAIT_T0,
    C_WAITING,
    CNT_NONE,
    G_CMDS_DONE,
    G_DOORBELLS,
    G_EXITS,
    G_GUEST_IRQS,
    G_SYNCS,
    H_NCPU,
    H_NPROC,
    H_RB_N,
    H_RCM_N,
    K_POLL_SPINS,
    K_SPIN,
    K_SYNC_SVC,
    K_TRAP,
    K_UDELAY,
    K_VIRQ,
    K_VMM_BATCHED,
    K_VMM_CHUNK,
    K_VMM_IOCTL,
    K_VMM_PER_CMD,
    K_VMM_READ,
    K_VMM_TRAP,
    OPCODE_SYNC,
    PC_BATCH_END,
    PC_LF_DOORBELL_LAND,
    PC_LF_UNLOCK,
    PC_VX_CHECK,
    PC_VX_POLL,
    PC_VX_PROD,
    PC_VX_READ,
    PC_VX_READ_EXIT,
    PC_VX_SYNC,
    Q_BQL,
    Q_DOORBELLS,
    Q_HW_CONS,
    Q_HW_PROD,
    Q_MAX_OCC,
    Q_SPACE_WAITERS,
    Q_WAIT,
    R_COMPLETE,
    R_CSTART,
    R_PUBLISH,
    SL_CPU,
    SL_OPC,
    SL_PUB,
    SL_REC,
    SL_SVC,
    STEP_BATCH,
    STEP_DELAY,
    STEP_LOCK,
    STEP_UNLOCK,
    STEP_VMM_DONE,
    STEP_VMM_PROD,
    STEP_VMM_READ,
    STEP_WAKE,
    WAIT_VIRQ,
)
from cmdqv_lab.engine.mem import (
    cget,
    cset,
    gadd,
    hget,
    kget,
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
from cmdqv_lab.engine.sched import sched
from cmdqv_lab.engine.slots import slot_row


@njit(cache=True, inline="always")
def _put(M, t, base, i, kind, a, b, d):
    ring_b_set(M, t, base + i, 0, kind)
    ring_b_set(M, t, base + i, 1, a)
    ring_b_set(M, t, base + i, 2, b)
    ring_b_set(M, t, base + i, 3, d)
    return i + 1


@njit(cache=True)
def _submit(M, t, n_steps, n_cmds, now):
    """Close the op just written to VMM thread ``t``'s rings (arriving ``now``) and wake the thread."""
    ot = cget(M, t, C_OPTAIL)
    ring_op_set(M, t, ot, 0, now)
    ring_op_set(M, t, ot, 1, n_steps)
    cset(M, t, C_OPTAIL, ot + 1)
    cset(M, t, C_BTAIL, cget(M, t, C_BTAIL) + n_steps)
    cset(M, t, C_CTAIL, cget(M, t, C_CTAIL) + n_cmds)
    if cget(M, t, C_WAITING) == 2:  # asleep with nothing to do
        cset(M, t, C_WAITING, 0)
        sched(M, hget(M, H_NPROC) + t, now)


@njit(cache=True)
def vmm_prod_exit(M, c, now):
    """The owner's PROD write on an emulated queue traps (counted); the exit takes half a trap."""
    gadd(M, G_EXITS, 1)
    return go(M, c, now + kget(M, K_TRAP) // 2, PC_VX_PROD)


@njit(cache=True)
def _emit_prod(M, c, q, now):
    """vCPU ``c`` is out in the VMM with a PROD write of ``C_END`` to emulated queue ``q``: append
    the emulation (see the module docstring) to its VMM thread and block until it wakes us."""
    t = cget(M, c, C_VMM)
    start = qget(M, q, Q_HW_CONS)  # == the owner's first slot: earlier owners returned already
    end = cget(M, c, C_END)
    r = end - start
    if kget(M, K_VMM_BATCHED) == 0:
        steps, cmds = 2 * r + 8, 2 * r
    else:
        steps, cmds = r // kget(M, K_VMM_CHUNK) + 9, r + r // kget(M, K_VMM_CHUNK) + 1
    if steps > hget(M, H_RB_N) or cmds > hget(M, H_RCM_N):
        raise ValueError("a trapped PROD range exceeds the VMM thread's rings (guest_topology max_batch)")
    st = cget(M, t, C_BTAIL)
    ct = cget(M, t, C_CTAIL)
    bql = qget(M, q, Q_BQL)
    n = 0
    if bql >= 0:
        n = _put(M, t, st, n, STEP_LOCK, bql, 0, 0)
    n = _put(M, t, st, n, STEP_VMM_PROD, q, end, 0)
    n = _put(M, t, st, n, STEP_DELAY, kget(M, K_VMM_TRAP), CNT_NONE, 0)
    per_cmd = kget(M, K_VMM_PER_CMD)
    ioctl = kget(M, K_VMM_IOCTL)
    chunk = kget(M, K_VMM_CHUNK)
    sync_svc = kget(M, K_SYNC_SVC)
    ncmd = 0
    if kget(M, K_VMM_BATCHED) == 0:
        # smmuv3_cmdq_consume: one IOMMU_HWPT_INVALIDATE (entry_num = 1) per command, each issued by
        # the host as the command + CMD_SYNC and waited for
        for ctr in range(start, end):
            row = slot_row(M, q, ctr)
            if sget(M, row, SL_OPC) == OPCODE_SYNC:
                continue
            n = _put(M, t, st, n, STEP_DELAY, ioctl + per_cmd, CNT_NONE, 0)
            n = _put(M, t, st, n, STEP_BATCH, 2, 1, 0)
            ring_c_set(M, t, ct + ncmd, 0, sget(M, row, SL_OPC))
            ring_c_set(M, t, ct + ncmd, 1, sget(M, row, SL_SVC))
            ring_c_set(M, t, ct + ncmd, 2, 0)
            ring_c_set(M, t, ct + ncmd + 1, 0, OPCODE_SYNC)
            ring_c_set(M, t, ct + ncmd + 1, 1, sync_svc)
            ring_c_set(M, t, ct + ncmd + 1, 2, 0)
            ncmd += 2
    else:
        # one ioctl for the consumed range; arm_vsmmu_cache_invalidate issues it in chunks of
        # CMDQ_BATCH_ENTRIES - 1 commands, each with a CMD_SYNC it waits for
        f = 0
        for ctr in range(start, end):
            if sget(M, slot_row(M, q, ctr), SL_OPC) != OPCODE_SYNC:
                f += 1
        if f > 0:
            n = _put(M, t, st, n, STEP_DELAY, ioctl + per_cmd * f, CNT_NONE, 0)
            k = 0
            for ctr in range(start, end):
                row = slot_row(M, q, ctr)
                if sget(M, row, SL_OPC) == OPCODE_SYNC:
                    continue
                ring_c_set(M, t, ct + ncmd, 0, sget(M, row, SL_OPC))
                ring_c_set(M, t, ct + ncmd, 1, sget(M, row, SL_SVC))
                ring_c_set(M, t, ct + ncmd, 2, 0)
                ncmd += 1
                k += 1
                f -= 1
                if k == chunk or f == 0:
                    ring_c_set(M, t, ct + ncmd, 0, OPCODE_SYNC)
                    ring_c_set(M, t, ct + ncmd, 1, sync_svc)
                    ring_c_set(M, t, ct + ncmd, 2, 0)
                    ncmd += 1
                    n = _put(M, t, st, n, STEP_BATCH, k + 1, 1, 0)
                    k = 0
    n = _put(M, t, st, n, STEP_VMM_DONE, q, end, 0)
    if bql >= 0:
        n = _put(M, t, st, n, STEP_UNLOCK, bql, 0, 0)
    back = kget(M, K_TRAP) - kget(M, K_TRAP) // 2
    n = _put(M, t, st, n, STEP_WAKE, c, back, PC_LF_DOORBELL_LAND)
    _submit(M, t, n, ncmd, now)
    return block(M, c, PC_LF_DOORBELL_LAND)


@njit(cache=True)
def _emit_read(M, c, q, now):
    """vCPU ``c`` is out in the VMM reading CONS of emulated queue ``q``."""
    t = cget(M, c, C_VMM)
    st = cget(M, t, C_BTAIL)
    bql = qget(M, q, Q_BQL)
    n = 0
    if bql >= 0:
        n = _put(M, t, st, n, STEP_LOCK, bql, 0, 0)
    n = _put(M, t, st, n, STEP_DELAY, kget(M, K_VMM_READ), CNT_NONE, 0)
    n = _put(M, t, st, n, STEP_VMM_READ, q, 0, c)
    if bql >= 0:
        n = _put(M, t, st, n, STEP_UNLOCK, bql, 0, 0)
    back = kget(M, K_TRAP) - kget(M, K_TRAP) // 2
    n = _put(M, t, st, n, STEP_WAKE, c, back, PC_VX_CHECK)
    _submit(M, t, n, 0, now)
    return block(M, c, PC_VX_CHECK)


@njit(cache=True)
def vmm_vcpu_step(M, c, now, pc, q):
    """A vCPU's steps on emulated queue ``q`` (program counters ``PC_VX_*``)."""
    if pc == PC_VX_PROD:
        return _emit_prod(M, c, q, now)
    if pc == PC_VX_SYNC:  # our CMD_SYNC was not seen consumed in llq
        if qget(M, q, Q_WAIT) == WAIT_VIRQ:  # completion signalled by a virtual interrupt
            done = cget(M, c, C_SYNC_DONE)
            if done >= 0:
                gadd(M, G_GUEST_IRQS, 1)
                return go(M, c, (now if now > done else done) + kget(M, K_VIRQ), PC_LF_UNLOCK)
            cset(M, c, C_WAITING, 1)
            cset(M, c, C_WAIT_T0, now)
            return block(M, c, PC_LF_UNLOCK)
        cset(M, c, C_POLL_CNT, 0)  # queue_poll_init: no SEV on QEMU's vSMMU, so no WFE
        cset(M, c, C_POLL_DELAY, kget(M, K_UDELAY))
        cset(M, c, C_PC, PC_VX_POLL)
        return CONTINUE
    if pc == PC_VX_POLL:  # queue_poll, then readl(CONS)
        cnt = cget(M, c, C_POLL_CNT) + 1
        if cnt < kget(M, K_POLL_SPINS):
            cset(M, c, C_POLL_CNT, cnt)
            return go(M, c, now + kget(M, K_SPIN), PC_VX_READ_EXIT)
        d = cget(M, c, C_POLL_DELAY)
        cset(M, c, C_POLL_DELAY, 2 * d)
        cset(M, c, C_POLL_CNT, 0)
        return go(M, c, now + d, PC_VX_READ_EXIT)
    if pc == PC_VX_READ_EXIT:
        gadd(M, G_EXITS, 1)
        return go(M, c, now + kget(M, K_TRAP) // 2, PC_VX_READ)
    if pc == PC_VX_READ:
        return _emit_read(M, c, q, now)
    # PC_VX_CHECK: llq->cons = readl(CONS); queue_consumed(llq, prod)?
    cset(M, c, C_SEEN_CONS, cget(M, c, C_VAL))
    if cget(M, c, C_SEEN_CONS) > cget(M, c, C_SYNC_SLOT):
        cset(M, c, C_PC, PC_LF_UNLOCK)
        return CONTINUE
    cset(M, c, C_PC, PC_VX_POLL)
    return CONTINUE


@njit(cache=True)
def vmm_step(M, t, now, kind, a, b, d):
    """A VMM-thread step appended by :func:`_emit_prod` / :func:`_emit_read` (``STEP_VMM_*``, wake)."""
    if kind == STEP_VMM_PROD:  # smmu_writel(A_CMDQ_PROD): the register takes the value
        q = a
        for ctr in range(qget(M, q, Q_HW_PROD), b):
            row = slot_row(M, q, ctr)
            sset(M, row, SL_PUB, now)
            r = sget(M, row, SL_REC)
            if r >= 0:
                rset(M, r, R_PUBLISH, now)
                rset(M, r, R_CSTART, now)
        if b > qget(M, q, Q_HW_PROD):
            qset(M, q, Q_HW_PROD, b)
            qadd(M, q, Q_DOORBELLS, 1)
            gadd(M, G_DOORBELLS, 1)
        occ = b - qget(M, q, Q_HW_CONS)
        if occ > qget(M, q, Q_MAX_OCC):
            qset(M, q, Q_MAX_OCC, occ)
    elif kind == STEP_VMM_DONE:  # smmuv3_cmdq_consume reached PROD: CONS = PROD
        q = a
        for ctr in range(qget(M, q, Q_HW_CONS), b):
            row = slot_row(M, q, ctr)
            r = sget(M, row, SL_REC)
            if r >= 0:
                rset(M, r, R_COMPLETE, now)
            gadd(M, G_CMDS_DONE, 1)
            if sget(M, row, SL_OPC) == OPCODE_SYNC:
                gadd(M, G_SYNCS, 1)
                w = sget(M, row, SL_CPU)
                if w >= 0:
                    cset(M, w, C_SYNC_DONE, now)
                    if cget(M, w, C_WAITING) == 1:  # WAIT_VIRQ: the interrupt reaches the waiter
                        cset(M, w, C_WAITING, 0)
                        gadd(M, G_GUEST_IRQS, 1)
                        t0 = cget(M, w, C_WAIT_T0)
                        sched(M, hget(M, H_NPROC) + w, (t0 if t0 > now else now) + kget(M, K_VIRQ))
        qset(M, q, Q_HW_CONS, b)
        if qget(M, q, Q_SPACE_WAITERS) > 0:
            qset(M, q, Q_SPACE_WAITERS, 0)
            for w in range(hget(M, H_NCPU)):
                if cget(M, w, C_SPACE_Q) == q:
                    cset(M, w, C_SPACE_Q, -1)
                    sched(M, hget(M, H_NPROC) + w, now)
    elif kind == STEP_VMM_READ:  # smmu_readl(A_CMDQ_CONS)
        cset(M, d, C_VAL, qget(M, a, Q_HW_CONS))
    else:  # STEP_WAKE: the vCPU re-enters the guest after the return half of the trap
        cset(M, a, C_PC, d)
        sched(M, hget(M, H_NPROC) + a, now + b)
    cset(M, t, C_PC, PC_BATCH_END)
    return CONTINUE
