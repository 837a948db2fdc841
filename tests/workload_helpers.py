"""Helpers shared by the synthetic-workload tests."""

from __future__ import annotations

from typing import Any

import polars as pl

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.workloads.registry import generate
from cmdqv_lab.workloads.stream import Workload

SYNC = int(Opcode.CMD_SYNC)
NH_VA = int(Opcode.CMD_TLBI_NH_VA)
NH_ASID = int(Opcode.CMD_TLBI_NH_ASID)
ATC = int(Opcode.CMD_ATC_INV)


def frames(w: Workload) -> list[list[pl.DataFrame]]:
    """Every stream's frames, in order."""
    return [list(s) for s in w.streams]


def collect(w: Workload) -> pl.DataFrame:
    """All streams of ``w`` concatenated (stream order)."""
    parts = [f for fs in frames(w) for f in fs]
    return pl.concat(parts) if parts else pl.DataFrame()


def gen(name: str, seed: int = 0, **overrides: Any) -> pl.DataFrame:
    return collect(generate(name, overrides, seed=seed))


def per_op(df: pl.DataFrame) -> pl.DataFrame:
    """One row per op: vm, cpu, op, t_ps, kind, opcodes (list), batches (count)."""
    return df.group_by("vm", "cpu", "op", maintain_order=True).agg(
        pl.col("t_ps").first(),
        pl.col("kind").first(),
        pl.col("opcode").alias("opcodes"),
        pl.col("batch").n_unique().alias("batches"),
    )
