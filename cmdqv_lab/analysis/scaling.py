"""Q8 findings: what k VCMDQs per guest (or N per host) save against one.

``gain_table`` compares every k with k = 1 at the same configuration and vCPU count: the
reduction of invalidation time (unmap latency minus the guest's fixed CPU work) and the
throughput ratio. ``best_and_worst`` keeps the extreme per (configuration, k).

>>> iv = pl.DataFrame({"config": ["c"] * 2, "k": ["1", "2"], "threads": [4, 4], "mean": [100.0, 60.0]})
>>> tp = pl.DataFrame({"config": ["c"] * 2, "k": ["1", "2"], "threads": [4, 4], "mean": [1.0, 1.5]})
>>> gain_table(iv, tp).select("k", "inval_reduction", "tput_ratio").row(0)
('2', 0.4, 1.5)
"""

from __future__ import annotations

import polars as pl


def gain_table(inval: pl.DataFrame, tput: pl.DataFrame) -> pl.DataFrame:
    """Reduction of invalidation time and throughput ratio of every k > 1 against k = 1.

    Inputs are :func:`~cmdqv_lab.analysis.summary.summarize_replicates` frames keyed by
    config, k, threads.
    """
    one_q = inval.filter(pl.col("k") == "1").select("config", "threads", pl.col("mean").alias("inval_k1"))
    one_t = tput.filter(pl.col("k") == "1").select("config", "threads", pl.col("mean").alias("tput_k1"))
    return (
        inval.select("config", "k", "threads", pl.col("mean").alias("inval"))
        .join(one_q, on=["config", "threads"])
        .join(
            tput.select("config", "k", "threads", pl.col("mean").alias("tput")), on=["config", "k", "threads"]
        )
        .join(one_t, on=["config", "threads"])
        .with_columns(
            (1 - pl.col("inval") / pl.col("inval_k1")).alias("inval_reduction"),
            (pl.col("tput") / pl.col("tput_k1")).alias("tput_ratio"),
        )
        .filter(pl.col("k") != "1")
    )


def best_and_worst(gain: pl.DataFrame) -> pl.DataFrame:
    """Per (config, k): the vCPU count with the largest reduction, and the worst reduction."""
    best = (
        gain.sort("inval_reduction", descending=True)
        .group_by("config", "k", maintain_order=True)
        .first()
        .sort("config", "k")
        .select("config", "k", "threads", "inval_reduction", "tput_ratio")
    )
    worst = (
        gain.sort("inval_reduction")
        .group_by("config", "k", maintain_order=True)
        .first()
        .sort("config", "k")
        .select(
            "config", "k", pl.col("threads").alias("threads_worst"), pl.col("inval_reduction").alias("worst")
        )
    )
    return best.join(worst, on=["config", "k"])


def top(frame: pl.DataFrame, col: str = "inval_reduction") -> dict:
    """The row with the largest ``col``."""
    return frame.sort(col, descending=True).row(0, named=True)


def reduction_vs_one(lat: pl.DataFrame, key: str, by: list[str]) -> pl.DataFrame:
    """``1 - mean / mean at key == "1"`` per group (host N VCMDQs vs one)."""
    one = lat.filter(pl.col(key) == "1").select(*by, pl.col("mean").alias("lat1"))
    return (
        lat.join(one, on=by)
        .with_columns((1 - pl.col("mean") / pl.col("lat1")).alias("reduction"))
        .filter(pl.col(key) != "1")
    )


def compare_with(value_range: tuple[float, float], stated: float) -> str:
    """Where a model range lies against a stated bound: "above", "within" or "around" it."""
    lo, hi = value_range
    if lo > stated:
        return "above"
    if hi <= stated:
        return "within"
    return "around"
