"""Q14: where per-CPU command queues stop mattering, and why.

Sweep rows of host scenarios (``config`` = queue topology + algorithm, :func:`with_config`) at
several CPU counts and values of an assumption. :func:`gain` is each configuration's throughput (or
latency) relative to the main cmdq with the lock-free algorithm at the same point; :func:`ranges`
spans it over the assumption; :func:`dominant_phase` names the phase of ``op_phase_ns`` that takes
most of an operation's time.

>>> df = pl.DataFrame({"queues": ["main", "ecmdq"] * 2, "submit": ["linux-lockfree", "exclusive"] * 2,
...                    "vcmdqs": 2, "cpus": [16, 16, 64, 64], "line_hold_max": 2, "smmu_parallel": 1,
...                    "ops_per_s_per_cpu": [100.0, 150.0, 10.0, 40.0]})
>>> gain(with_config(df), "ops_per_s_per_cpu", ["cpus", "line_hold_max", "smmu_parallel"]).filter(
...     pl.col("config") == "per-CPU ECMDQs").select("cpus", "gain").rows()
[(16, 1.5), (64, 4.0)]
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

PHASES = ("reserve", "write", "shared_lock", "owner_gather", "publish", "until_smmu_at_sync", "sync_completion",
          "unlock")  # fmt: skip
BASE = "main cmdq, lock-free"


def with_config(df: pl.DataFrame) -> pl.DataFrame:
    """A readable ``config`` per row: the queue topology and the submission algorithm."""
    return df.with_columns(
        pl.when(pl.col("queues") == "ecmdq")
        .then(pl.lit("per-CPU ECMDQs"))
        .when(pl.col("queues") == "vcmdq")
        .then(pl.format("{} VCMDQs, {}", pl.col("vcmdqs"), pl.col("submit")))
        .otherwise(pl.format("main cmdq, {}", pl.col("submit").replace({"linux-lockfree": "lock-free"})))
        .alias("config")
    )


def gain(df: pl.DataFrame, value: str, at: Sequence[str], higher_is_better: bool = True) -> pl.DataFrame:
    """``value`` of each config over the main lock-free cmdq's at the same ``at`` point (> 1: better)."""
    base = df.filter(pl.col("config") == BASE).group_by(at).agg(pl.col(value).mean().alias("_base"))
    out = df.group_by([*at, "config"], maintain_order=True).agg(pl.col(value).mean()).join(base, on=list(at))
    ratio = pl.col(value) / pl.col("_base") if higher_is_better else pl.col("_base") / pl.col(value)
    return out.with_columns(ratio.alias("gain")).drop("_base").sort([*at, "config"])


def ranges(g: pl.DataFrame, over: str, at: Sequence[str]) -> pl.DataFrame:
    """The gain at the assumption's nominal value and its low/high over ``over`` (the assumption)."""
    keys = [k for k in at if k != over]
    return g.group_by([*keys, "config"], maintain_order=True).agg(
        pl.col("gain").min().alias("gain_low"), pl.col("gain").max().alias("gain_high")
    )


def dominant_phase(df: pl.DataFrame) -> pl.DataFrame:
    """Per row: the phase of ``op_phase_ns`` with the largest mean time, and its share of the sum."""
    cols = [f"op_phase_ns_{p}" for p in PHASES if f"op_phase_ns_{p}" in df.columns]
    total = pl.sum_horizontal([pl.col(c).fill_null(0) for c in cols])
    top = pl.concat_list([pl.col(c).fill_null(0) for c in cols])
    return df.with_columns(
        top.list.arg_max().map_elements(lambda i: cols[i].removeprefix("op_phase_ns_"), return_dtype=pl.String)
        .alias("dominant_phase"),
        (top.list.max() / total).alias("dominant_share"),
    )  # fmt: skip
