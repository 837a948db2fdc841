"""Q10 findings: is the command queue a bottleneck? Strict vs lazy, open and closed loops.

:func:`derive` adds per-unmap measures to a workload sweep (``count`` is the number of unmaps;
``ops`` counts flush ops in lazy mode); :func:`open_loop` flags saturated open-loop runs;
:func:`verdict` classifies one point.

>>> verdict({"saturated": False, "cpu_in_cmdq_pct": 1.0, "smmu_busy_fraction": 0.2})
'not a bottleneck'
>>> verdict({"saturated": True, "cpu_in_cmdq_pct": 100.0, "smmu_busy_fraction": 0.99})
'saturated: SMMU'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

#: (queues, submit, smmu_parallel) -> label of the topologies Q10 compares.
TOPOLOGIES: dict[tuple[str, str, int], str] = {
    ("main", "linux-lockfree", 1): "main cmdq, lock-free",
    ("ecmdq", "exclusive", 1): "ECMDQ/CPU, exclusive, P=1",
    ("ecmdq", "exclusive", 128): "ECMDQ/CPU, exclusive, P=128",
    ("main", "spinlock", 1): "main cmdq, spinlock",
    ("vcmdq", "linux-lockfree", 1): "2 VCMDQs, lock-free",
}


def topology(df: pl.DataFrame) -> pl.DataFrame:
    """Add the ``config`` label of :data:`TOPOLOGIES`."""
    keys = list(zip(df["queues"], df["submit"], df["smmu_parallel"]))
    return df.with_columns(pl.Series("config", [TOPOLOGIES[k] for k in keys]))


def derive(df: pl.DataFrame) -> pl.DataFrame:
    """Per-unmap measures: unmaps/s per CPU, cmdq time per unmap, share of CPU time in the cmdq."""
    return df.with_columns(
        (pl.col("count") / pl.col("threads") / (pl.col("sim_time_ns") * 1e-9)).alias("unmaps_per_s_per_cpu"),
        (pl.col("ops") * pl.col("op_latency_ns_mean") / pl.col("count")).alias("cmdq_ns_per_unmap"),
        (pl.col("ops") * pl.col("op_latency_ns_mean") / (pl.col("threads") * pl.col("sim_time_ns"))).alias(
            "cmdq_cpu_share"
        ),
        (pl.col("mode") + pl.lit(", ") + pl.col("config")).alias("case"),
    )


def lazy_speedup(dsum: pl.DataFrame) -> pl.DataFrame:
    """Lazy over strict per (config, threads) from means of unmaps/s per CPU and cmdq CPU share."""
    return (
        dsum.pivot(on="mode", index=["config", "threads"], values=["unmaps_per_s_per_cpu", "cmdq_cpu_share"])
        .with_columns(
            (pl.col("unmaps_per_s_per_cpu_lazy") / pl.col("unmaps_per_s_per_cpu_strict")).round(2).alias("lazy speed-up"),
            (pl.col("cmdq_cpu_share_strict") * 100).round(1).alias("strict: % CPU in cmdq"),
            (pl.col("cmdq_cpu_share_lazy") * 100).round(2).alias("lazy: % CPU in cmdq"),
            pl.col("unmaps_per_s_per_cpu_strict").round(0).alias("strict unmaps/s/CPU"),
            pl.col("unmaps_per_s_per_cpu_lazy").round(0).alias("lazy unmaps/s/CPU"),
        )
        .select("config", "threads", "strict unmaps/s/CPU", "lazy unmaps/s/CPU", "lazy speed-up",
                "strict: % CPU in cmdq", "lazy: % CPU in cmdq")
        .sort("config", "threads")
    )  # fmt: skip


def open_loop(df: pl.DataFrame, workload: str, offered_total: pl.Expr) -> pl.DataFrame:
    """An open-loop sweep with the offered rate, a ``saturated`` flag and ``cpu_in_cmdq_pct``.

    A run is saturated when it lasts longer than its arrivals explain: the mean arrival span of a
    CPU's n unmaps times ``1 + 4/sqrt(n)``, plus the last flush timer (lazy), plus 0.1 ms.
    """
    d = derive(topology(df)).with_columns(
        offered_total.alias("offered_unmaps_per_s"), pl.lit(workload).alias("workload")
    )
    span = pl.col("count") / pl.col("offered_unmaps_per_s") * 1e9
    per_cpu = pl.col("count") / pl.col("threads")
    timer = pl.when(pl.col("mode") == "lazy").then(pl.col("fq_timeout_ms") * 1e6).otherwise(0.0)
    sat = pl.col("sim_time_ns") > span * (1 + 4 / per_cpu.sqrt()) + timer + 1e5
    return d.with_columns(
        sat.alias("saturated"),
        (pl.when(sat).then(1.0).otherwise(pl.col("cmdq_cpu_share")) * 100).alias("cpu_in_cmdq_pct"),
    )


def verdict(row: Mapping[str, Any]) -> str:
    """Saturated (by the SMMU or software), not a bottleneck (< 5 % CPU, SMMU < 50 % busy), or a CPU cost."""
    if row["saturated"]:
        return "saturated: SMMU" if row["smmu_busy_fraction"] >= 0.95 else "saturated: software"
    if row["cpu_in_cmdq_pct"] < 5 and row["smmu_busy_fraction"] < 0.5:
        return "not a bottleneck"
    return "costs CPU time"


def verdict_table(omean: pl.DataFrame) -> pl.DataFrame:
    """Open-loop means with a ``verdict`` per point (rounded for display)."""
    return omean.with_columns(
        pl.Series("verdict", [verdict(r) for r in omean.iter_rows(named=True)], dtype=pl.String),
        pl.col("cpu_in_cmdq_pct").round(2),
        pl.col("cmdq_ns_per_unmap").round(0),
        pl.col("smmu_busy_fraction").round(3),
        pl.col("op_latency_ns_p99").round(0),
    )


def first_saturated(verdicts: pl.DataFrame, workload: str, config: str) -> float | None:
    """The lowest offered rate at which a strict-mode point saturates, or None."""
    r = verdicts.filter(
        (pl.col("workload") == workload) & (pl.col("mode") == "strict") & (pl.col("config") == config)
        & pl.col("saturated")
    )  # fmt: skip
    return float(r["offered_unmaps_per_s"].min()) if r.height else None  # type: ignore[arg-type]


def rate_text(x: float | None, cpus: int = 16) -> str:
    """An offered rate in words (total and per CPU)."""
    return (
        "none of the rates swept"
        if x is None
        else f"{x / 1e6:.1f} M unmaps/s ({x / cpus / 1e3:.0f}K per CPU)"
    )
