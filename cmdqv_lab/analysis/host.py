"""Q9 findings: host scaling per queue topology and submission algorithm.

Sweep rows get a readable ``config`` (topology + algorithm, :func:`with_config`);
:func:`point` reads one summarised grid point; :func:`bottleneck` calls a point SMMU- or
software-bound from the SMMU's busy fraction; :func:`best_shared_vcmdqs` picks the best of the
N-VCMDQ configurations.

>>> bottleneck(0.97), bottleneck(0.5)
('SMMU-bound', 'software-bound')
>>> fmt_k(157_000.0), fmt_k(1_234.0)
('157K', '1.2K')
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

#: Short names of the submission algorithms in labels.
SUBMIT_SHORT: dict[str, str] = {
    "linux-lockfree": "lock-free",
    "atomic-add": "atomic-add",
    "spinlock": "spinlock",
    "exclusive": "exclusive",
}

#: Busy fraction from which a point is called SMMU-bound.
SMMU_BOUND = 0.95

MAIN_LOCKFREE = "main cmdq, lock-free"
ECMDQ_EXCLUSIVE = "ECMDQ per CPU, exclusive"
VCMDQ8_LOCKFREE = "8 VCMDQs (cpu % N), lock-free"
PERCPU_LOCKFREE, PERCPU_EXCLUSIVE = "VCMDQ per CPU, lock-free", "VCMDQ per CPU, exclusive"


def with_config(df: pl.DataFrame, per_cpu_vcmdq: bool = False) -> pl.DataFrame:
    """Add a readable ``config`` label (topology + algorithm) to sweep rows."""
    sub = pl.col("submit").replace_strict(SUBMIT_SHORT)
    if per_cpu_vcmdq:
        label = pl.lit("VCMDQ per CPU, ") + sub
    else:
        label = (
            pl.when(pl.col("queues") == "main")
            .then(pl.lit("main cmdq, ") + sub)
            .when(pl.col("queues") == "vcmdq")
            .then(pl.col("vcmdqs").cast(pl.String) + pl.lit(" VCMDQs (cpu % N), ") + sub)
            .otherwise(pl.lit("ECMDQ per CPU, ") + sub)
        )
    return df.with_columns(label.alias("config"))


def family(config: pl.Expr) -> pl.Expr:
    """Which panel a configuration belongs to: shared queues or one queue per CPU."""
    return (
        pl.when(config.str.contains("per CPU"))
        .then(pl.lit("one queue per CPU"))
        .otherwise(pl.lit("shared queues"))
    )


def point(summary: pl.DataFrame, metric: str, p: int, config: str, cpus: int) -> dict:
    """One summarised point (mean and CI of ``metric``) of :func:`~cmdqv_lab.analysis.summary.summarize_sweep`."""
    row = summary.filter(
        (pl.col("metric") == metric) & (pl.col("smmu_parallel") == p) & (pl.col("config") == config)
        & (pl.col("cpus") == cpus)
    )  # fmt: skip
    if row.height != 1:
        raise KeyError(f"no single point for {metric} {p} {config} {cpus}")
    return row.row(0, named=True)


def bottleneck(busy: float) -> str:
    """``SMMU-bound`` when the SMMU is busy at least :data:`SMMU_BOUND` of the time."""
    return "SMMU-bound" if busy >= SMMU_BOUND else "software-bound"


def bottleneck_table(summary: pl.DataFrame, cpus: Sequence[int]) -> pl.DataFrame:
    """Throughput, SMMU busy fraction, cmpxchg success and the bottleneck at the given CPU counts."""
    return (
        summary.filter(
            pl.col("metric").is_in(["ops_per_s_per_cpu", "smmu_busy_fraction", "cas_success_ratio"])
        )
        .filter(pl.col("cpus").is_in(list(cpus)))
        .pivot(on="metric", index=["smmu_parallel", "config", "cpus"], values="mean")
        .with_columns(
            pl.when(pl.col("smmu_busy_fraction") >= SMMU_BOUND)
            .then(pl.lit("SMMU-bound"))
            .otherwise(pl.lit("software-bound"))
            .alias("bottleneck"),
            pl.col("ops_per_s_per_cpu").round(0),
            pl.col("smmu_busy_fraction").round(3),
            pl.col("cas_success_ratio").round(4),
        )
        .sort("smmu_parallel", "cpus", "ops_per_s_per_cpu", descending=[False, False, True])
    )


def best_shared_vcmdqs(summary: pl.DataFrame, p: int, cpus: int) -> tuple[str, float]:
    """The N-VCMDQ (cpu % N) configuration with the most ops/s per CPU, and that rate."""
    configs = sorted({c for c in summary["config"].unique().to_list() if "(cpu % N)" in c})
    return max(((c, float(point(summary, "ops_per_s_per_cpu", p, c, cpus)["mean"])) for c in configs),
               key=lambda t: t[1])  # fmt: skip


def line_xfer_table(xmeans: pl.DataFrame) -> pl.DataFrame:
    """Per-CPU exclusive vs shared lock-free across ``line_xfer_xdie_ns`` (ops/s per CPU)."""

    def x(line: float, cpus: int, p: int, config: str) -> float:
        return float(
            xmeans.filter(
                (pl.col("line_xfer_xdie_ns") == line) & (pl.col("cpus") == cpus) & (pl.col("smmu_parallel") == p)
                & (pl.col("config") == config)
            )["ops_per_s_per_cpu"].item()
        )  # fmt: skip

    rows = []
    for c in sorted(xmeans["cpus"].unique().to_list()):
        for p in sorted(xmeans["smmu_parallel"].unique().to_list()):
            for line in sorted(xmeans["line_xfer_xdie_ns"].unique().to_list()):
                lf, v8, ex = (
                    x(line, c, p, MAIN_LOCKFREE),
                    x(line, c, p, VCMDQ8_LOCKFREE),
                    x(line, c, p, ECMDQ_EXCLUSIVE),
                )
                rows.append(
                    {"cpus": c, "smmu_parallel": p, "line_xfer_xdie_ns": line, "main lock-free": round(lf),
                     "8 VCMDQs lock-free": round(v8), "ECMDQ exclusive": round(ex),
                     "exclusive / main lock-free": round(ex / lf, 2), "exclusive / 8 VCMDQs": round(ex / v8, 2)}
                )  # fmt: skip
    return pl.DataFrame(rows)


def fmt_k(x: float) -> str:
    """Thousands with a K: ``157K``, ``1.2K`` below 10K."""
    return f"{x / 1e3:,.0f}K" if x >= 1e4 else f"{x / 1e3:,.1f}K"


#: The CPU counts of C1 (docs/sources.md: the rows the d06 preset is fitted to).
C1_CPUS: tuple[int, ...] = (2, 4, 8, 16)


def c1_kind(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``kind``: ``fitted`` for the main-cmdq lock-free / atomic-add points at C1's CPU counts
    (the d06 preset's calibration rows), ``predicted`` for everything else."""
    fitted = (
        pl.col("cpus").is_in(list(C1_CPUS))
        & pl.col("submit").is_in(["linux-lockfree", "atomic-add"])
        & ((pl.col("queues") == "main") if "queues" in df.columns else pl.lit(True))
    )
    return df.with_columns(
        pl.when(fitted).then(pl.lit("fitted")).otherwise(pl.lit("predicted")).alias("kind")
    )
