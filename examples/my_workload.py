"""A workload function of your own (cmdqv_lab/workloads/custom.py documents the contract).

Run it:  cmdqv-lab simulate host-examples/my_workload.py:asid_flush --set threads=4
"""

import polars as pl


def asid_flush(p, seed):
    """every op flushes a whole ASID: CMD_TLBI_NH_ASID + CMD_SYNC"""
    per_cpu = p.ops // p.threads
    cpu = pl.int_range(p.threads * per_cpu) // per_cpu
    op = pl.int_range(p.threads * per_cpu) % per_cpu
    ops = pl.select(cpu.alias("cpu"), op.alias("op"))
    tlbi = ops.with_columns(
        pl.lit(17).alias("opcode"), pl.lit(p.asid_base).alias("asid"), pl.lit(0).alias("i")
    )
    sync = ops.with_columns(pl.lit(70).alias("opcode"), pl.lit(None).alias("asid"), pl.lit(1).alias("i"))
    return (
        pl.concat([tlbi, sync])
        .sort("cpu", "op", "i")
        .with_columns(pl.col("op").alias("batch"), pl.lit(int(p.think_ns * 1000)).alias("t_ps"))
        .drop("i")
    )
