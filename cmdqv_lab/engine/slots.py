"""Queue slots and records in the compiled engine: writing a batch into a queue and accounting a
finished operation.

The slot pool holds, for every entry of every queue, what the SMMU needs to consume it (service
time, opcode) and what the statistics need (record index, publish time, the CPU waiting on a
CMD_SYNC). Queue counters are monotonic; counter ``ctr`` lives in slot ``ctr mod 2^LOG2SIZE``.
"""

from __future__ import annotations

from numba import njit

from cmdqv_lab.engine.layout import (
    C_CCTR,
    C_OPID,
    C_RETRIES,
    C_SYNC,
    C_SYNC_DONE,
    C_SYNC_SLOT,
    C_T_ISSUE,
    C_T_READY,
    C_T_RESERVED,
    C_WAITING,
    G_CMDS,
    G_FIRST_FINISH,
    G_FIX_LAT_MAX,
    G_FIX_LAT_SUM,
    G_FIX_OPS,
    G_LAT_MAX,
    G_LAT_SUM,
    G_OPS_DONE,
    G_REC_CMDS,
    G_REC_OPS,
    G_WINDOW_OPS,
    H_HFIX,
    H_HLAT,
    H_RC_CAP,
    H_RO_CAP,
    K_RECORD,
    O_BATCHES,
    O_CMDS,
    O_COMPLETE,
    O_CPU,
    O_ID,
    O_QUEUE,
    O_READY,
    O_RETRIES,
    O_SYNC_COMPLETE,
    Q_LOG2,
    Q_SLOT_BASE,
    R_COMPLETE,
    R_CPU,
    R_CSTART,
    R_ILL,
    R_ISSUE,
    R_OP,
    R_OPCODE,
    R_PUBLISH,
    R_QUEUE,
    R_RESERVED,
    R_RETRIES,
    R_SLOT,
    R_WRITTEN,
    SL_ACPU,
    SL_ANCMD,
    SL_AOP,
    SL_AREADY,
    SL_CPU,
    SL_FLAGS,
    SL_OPC,
    SL_REC,
    SL_SVC,
)
from cmdqv_lab.engine.mem import (
    cget,
    cset,
    gadd,
    gget,
    gset,
    hget,
    kget,
    oset,
    qget,
    ring_c,
    rset,
    sget,
    sset,
)
from cmdqv_lab.engine.stats import hist_add_at


@njit(cache=True, inline="always")
def slot_row(M, q, ctr):
    """Row of the slot pool holding queue ``q``'s entry with counter ``ctr``."""
    return qget(M, q, Q_SLOT_BASE) + (ctr & ((1 << qget(M, q, Q_LOG2)) - 1))


@njit(cache=True)
def write_batch(M, c, q, start, n, now, async_op):
    """CPU ``c`` has written ``n`` entries of its current batch into counters ``start..start+n-1``.

    The entries are the batch's commands from ``C_CCTR`` on. With ``async_op`` the op completes
    when the SMMU completes its last entry (direct submission).
    """
    cctr = cget(M, c, C_CCTR)
    rec = kget(M, K_RECORD) == 1
    sync = cget(M, c, C_SYNC)
    for i in range(n):
        row = slot_row(M, q, start + i)
        sset(M, row, SL_OPC, ring_c(M, c, cctr + i, 0))
        sset(M, row, SL_SVC, ring_c(M, c, cctr + i, 1))
        sset(M, row, SL_FLAGS, ring_c(M, c, cctr + i, 2))
        sset(M, row, SL_CPU, c if (sync == 1 and i == n - 1 and not async_op) else -1)
        sset(M, row, SL_AOP, -1)
        r = gget(M, G_REC_CMDS)
        if rec and r < hget(M, H_RC_CAP):
            gset(M, G_REC_CMDS, r + 1)
            rset(M, r, R_OP, cget(M, c, C_OPID))
            rset(M, r, R_CPU, c)
            rset(M, r, R_QUEUE, q)
            rset(M, r, R_SLOT, start + i)
            rset(M, r, R_OPCODE, ring_c(M, c, cctr + i, 0))
            rset(M, r, R_ISSUE, cget(M, c, C_T_ISSUE))
            rset(M, r, R_RESERVED, cget(M, c, C_T_RESERVED))
            rset(M, r, R_WRITTEN, now)
            rset(M, r, R_PUBLISH, -1)
            rset(M, r, R_CSTART, -1)
            rset(M, r, R_COMPLETE, -1)
            rset(M, r, R_RETRIES, cget(M, c, C_RETRIES))
            rset(M, r, R_ILL, 0)
            sset(M, row, SL_REC, r)
        else:
            sset(M, row, SL_REC, -1)
    if async_op and n > 0:
        row = slot_row(M, q, start + n - 1)
        sset(M, row, SL_AOP, cget(M, c, C_OPID))
        sset(M, row, SL_ACPU, c)
        sset(M, row, SL_AREADY, cget(M, c, C_T_READY))
        sset(M, row, SL_ANCMD, n)
    if sync == 1:
        cset(M, c, C_SYNC_SLOT, start + n - 1)
        cset(M, c, C_SYNC_DONE, -1)
        cset(M, c, C_WAITING, 0)
    gadd(M, G_CMDS, n)


@njit(cache=True)
def record_op_done(M, c, opid, queue, t_ready, t_sync, now, n_cmds, n_batches, retries):
    """Account one finished operation: latency statistics and, if enabled, its record."""
    lat = now - t_ready
    gadd(M, G_LAT_SUM, lat)
    if lat > gget(M, G_LAT_MAX):
        gset(M, G_LAT_MAX, lat)
    hist_add_at(M, hget(M, H_HLAT), lat)
    gadd(M, G_OPS_DONE, 1)
    if gget(M, G_FIRST_FINISH) < 0:
        gadd(M, G_WINDOW_OPS, 1)
    r = gget(M, G_REC_OPS)
    if kget(M, K_RECORD) == 1 and r < hget(M, H_RO_CAP):
        gset(M, G_REC_OPS, r + 1)
        oset(M, r, O_ID, opid)
        oset(M, r, O_CPU, c)
        oset(M, r, O_QUEUE, queue)
        oset(M, r, O_READY, t_ready)
        oset(M, r, O_COMPLETE, now)
        oset(M, r, O_SYNC_COMPLETE, t_sync)
        oset(M, r, O_CMDS, n_cmds)
        oset(M, r, O_BATCHES, n_batches)
        oset(M, r, O_RETRIES, retries)


@njit(cache=True)
def record_fixup_done(M, latency):
    """Account one error handled by the host IRQ thread (error raised -> queue resumed)."""
    gadd(M, G_FIX_LAT_SUM, latency)
    gadd(M, G_FIX_OPS, 1)
    if latency > gget(M, G_FIX_LAT_MAX):
        gset(M, G_FIX_LAT_MAX, latency)
    hist_add_at(M, hget(M, H_HFIX), latency)


@njit(cache=True)
def async_op_done(M, q, row, now):
    """The last command of a direct op (slot ``row`` of queue ``q``) completed."""
    record_op_done(
        M, sget(M, row, SL_ACPU), sget(M, row, SL_AOP), q, sget(M, row, SL_AREADY), now, now,
        sget(M, row, SL_ANCMD), 1, 0,
    )  # fmt: skip
