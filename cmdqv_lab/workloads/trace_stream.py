"""A parsed QEMU trace as a workload command stream: the one trace reader.

The correctness checker (:mod:`cmdqv_lab.checker`) and the timing replay (``trace-replay``,
:mod:`cmdqv_lab.workloads.replay`) read a trace through :func:`trace_frame`, so they see the same
commands, batches, ops and CPUs. The trace is what one guest's Linux driver sent to its
(emulated) SMMUv3 main queue. As a stream:

* the guest is VM ``vm`` (default 0); each distinct QEMU thread id (``pid``, a vCPU thread under
  MTTCG) is one vCPU, numbered in order of first appearance (no ``pid`` prefix: vCPU 0);
* each doorbell (one PROD write, i.e. one consume pass) is one batch; it has ``sync`` when its last
  command is a CMD_SYNC. Linux's lock-free owner may have gathered several CPUs' lists into one
  doorbell: the trace cannot show those boundaries, so the doorbell's thread issues all of them;
* an op ends with a batch that has ``sync`` (per vCPU): a batch without SYNC belongs to the same
  driver operation as the SYNC batch that follows it (``arm_smmu_cmdq_batch_submit``);
* fields come from the trace events: VMID, ASID, SID (first SID of a CFGI_STE_RANGE, whose RANGE is
  recomputed from the range end; 0..0xffffffff is RANGE=31), address (page-aligned), range
  invalidations as NUM/SCALE covering at least the pages QEMU reported, TG, TTL, LEAF. Fields the
  trace does not give are null (encoded as zero). Commands QEMU printed as UNKNOWN/INVALID have no
  opcode value and are left out (counted);
* ``t_ps`` is the op's recorded time: its first doorbell's timestamp since the trace's first
  doorbell, in ps (0 without ``-msg timestamp=on``). Under TCG these are host times of an emulated
  guest: the order and batching are real, the gaps are not hardware timing.

The frame has :data:`~cmdqv_lab.workloads.stream.WORKLOAD_SCHEMA` plus ``line`` (the trace line of
the command's ``smmuv3_cmdq_opcode`` event) and ``seq`` (its position in the trace).

>>> from cmdqv_lab.workloads.qemu_trace import parse_text
>>> log = '''1@5.0:smmuv3_cmdq_consume prod=2 cons=0 prod.wrap=0 cons.wrap=0
... 1@5.1:smmuv3_cmdq_opcode <--- SMMU_CMD_TLBI_NH_ASID
... 1@5.1:smmuv3_cmdq_tlbi_nh_asid asid=3
... 1@5.2:smmuv3_cmdq_consume prod=2 cons=1 prod.wrap=0 cons.wrap=0
... 1@5.2:smmuv3_cmdq_opcode <--- SMMU_CMD_SYNC
... 1@5.3:smmuv3_cmdq_consume_out prod:2, cons:2, prod_wrap:0, cons_wrap:0
... 2@5.4:smmuv3_cmdq_consume prod=3 cons=2 prod.wrap=0 cons.wrap=0
... 2@5.4:smmuv3_cmdq_opcode <--- SMMU_CMD_SYNC
... 2@5.5:smmuv3_cmdq_consume_out prod:3, cons:3, prod_wrap:0, cons_wrap:0
... '''
>>> df, skipped = trace_frame(parse_text(log))
>>> df.select("cpu", "vm", "op", "batch", "sync", "opcode", "asid", "line").rows()
[(0, 0, 0, 0, True, 17, 3, 2), (0, 0, 0, 0, True, 70, None, 5), (1, 0, 0, 1, True, 70, None, 8)]
"""

from __future__ import annotations

import numpy as np
import polars as pl

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA, validate
from cmdqv_lab.workloads.trace_frames import Trace

_SYNC = int(Opcode.CMD_SYNC)
_ADDR_OPS = [int(o) for o in (Opcode.CMD_TLBI_NH_VA, Opcode.CMD_TLBI_NH_VAA, Opcode.CMD_TLBI_EL2_VA,
                              Opcode.CMD_TLBI_EL2_VAA, Opcode.CMD_ATC_INV, Opcode.CMD_PREFETCH_ADDR)]  # fmt: skip
_RANGE_OPS = [*_ADDR_OPS[:4], int(Opcode.CMD_TLBI_S2_IPA)]


def num_scale(pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NUM and SCALE of a range TLBI covering at least ``pages`` pages: ``(NUM + 1) << SCALE``.

    >>> [tuple(int(x[0]) for x in num_scale(np.array([p]))) for p in (1, 32, 33, 64, 100)]
    [(0, 0), (31, 0), (16, 1), (31, 1), (24, 2)]
    """
    p = np.maximum(np.asarray(pages, dtype=np.int64), 1)
    scale = np.maximum(0, np.ceil(np.log2(p / 32.0))).astype(np.int64)
    scale += (-(-p // (1 << scale)) > 32).astype(np.int64)  # float rounding at exact powers
    scale = np.minimum(scale, 31)
    num = np.minimum(-(-p // (1 << scale)) - 1, 31)
    return num.astype(np.int16), scale.astype(np.int16)


def trace_frame(trace: Trace, *, vm: int = 0) -> tuple[pl.DataFrame, int]:
    """The trace as a workload frame (plus ``line``, ``seq``) and the number of commands left out."""
    c = trace.commands
    known = c.filter(pl.col("opcode_value").is_not_null())
    skipped = c.height - known.height
    pids = known["pid"].fill_null(-1)
    order = {p: i for i, p in enumerate(pids.unique(maintain_order=True).to_list())}
    df = known.with_columns(
        pl.Series("cpu", [order[p] for p in pids.to_list()], dtype=pl.Int32),
        pl.col("opcode_value").cast(pl.UInt8).alias("opcode"),
    )
    per = (
        df.group_by("doorbell", maintain_order=True)
        .agg(pl.col("cpu").first(), (pl.col("opcode").last() == _SYNC).alias("sync"))
        .with_columns(
            pl.col("sync")
            .shift(1)
            .over("cpu")
            .fill_null(False)
            .cast(pl.Int64)
            .cum_sum()
            .over("cpu")
            .alias("op")
        )
    )
    df = df.drop("cpu").join(per, on="doorbell", how="left").sort("seq")
    times = trace.doorbells.select("doorbell", pl.col("time_s").alias("_db_time"))
    df = df.join(times, on="doorbell", how="left").sort("seq")
    t0 = df["_db_time"].min()
    rel = (pl.col("_db_time").first().over("cpu", "op") - (t0 if t0 is not None else 0.0)) * 1e12
    df = df.with_columns(rel.round().fill_null(0).cast(pl.Int64).alias("t_ps"))
    op = pl.col("opcode")
    rng = op == int(Opcode.CMD_CFGI_STE_RANGE)
    span = (pl.col("sid_end") - pl.col("sid") + 1).cast(pl.Float64)
    pages = df["num_pages"].fill_null(1).cast(pl.Int64).to_numpy()
    num, scale = num_scale(pages)
    ranged = op.is_in(_RANGE_OPS) & (pl.col("tg").fill_null(0) > 0)
    out = df.with_columns(
        pl.lit(vm, pl.Int32).alias("vm"),
        pl.col("doorbell").alias("batch"),
        pl.lit("trace").alias("kind"),
        pl.col("vmid").cast(pl.Int32),
        pl.col("asid").cast(pl.Int32),
        pl.lit(None, pl.Int32).alias("ssid"),
        pl.when(op.is_in(_ADDR_OPS)).then(pl.col("addr") & ~pl.lit(0xFFF, pl.UInt64)).alias("addr"),
        pl.when(ranged).then(pl.Series(num)).alias("num"),
        pl.when(ranged).then(pl.Series(scale)).alias("scale"),
        pl.col("tg").cast(pl.Int8),
        pl.col("ttl").cast(pl.Int8),
        pl.lit(None, pl.Int16).alias("size"),
        pl.when(rng & pl.col("sid_end").is_not_null())
        .then((span.log(2).ceil() - 1).clip(0, 31).cast(pl.Int16))
        .alias("range"),
    )
    frame = validate(out.select(list(WORKLOAD_SCHEMA)), where=trace.meta.source)
    return frame.with_columns(out["line"], out["seq"]), skipped
