"""Replicate summaries and percentiles against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from cmdqv_lab.analysis.summary import (
    percentile_label,
    percentiles,
    summarize_percentiles,
    summarize_replicates,
    t_critical,
)
from cmdqv_lab.errors import FrameError


def test_mean_std_ci_by_hand() -> None:
    # values 2, 4, 9: mean 5, deviations -3, -1, 4 -> sum of squares 26, s^2 = 13, s = sqrt(13)
    # t(0.975, 2) = 4.3026527 (tables: 4.303); half width = t * s / sqrt(3)
    df = pl.DataFrame({"g": ["a"] * 3, "v": [2.0, 4.0, 9.0]})
    row = summarize_replicates(df, by="g", value="v").row(0, named=True)
    half = 4.3026527297 * math.sqrt(13) / math.sqrt(3)
    assert row["mean"] == pytest.approx(5.0)
    assert row["std"] == pytest.approx(math.sqrt(13))
    assert row["n"] == 3
    assert row["ci_lo"] == pytest.approx(5.0 - half, rel=1e-9)
    assert row["ci_hi"] == pytest.approx(5.0 + half, rel=1e-9)


def test_confidence_level_changes_width() -> None:
    df = pl.DataFrame({"v": [1.0, 2.0, 3.0, 4.0, 5.0]})
    w95 = summarize_replicates(df, None, "v", 0.95).select(pl.col("ci_hi") - pl.col("ci_lo")).item()
    w99 = summarize_replicates(df, None, "v", 0.99).select(pl.col("ci_hi") - pl.col("ci_lo")).item()
    # s = sqrt(2.5); t(0.995, 4) = 4.604094 ; t(0.975, 4) = 2.776445
    assert w95 == pytest.approx(2 * 2.776445105 * math.sqrt(2.5) / math.sqrt(5), rel=1e-8)
    assert w99 == pytest.approx(2 * 4.604094871 * math.sqrt(2.5) / math.sqrt(5), rel=1e-8)


def test_single_replicate_has_null_interval_and_empty_group_null_mean() -> None:
    df = pl.DataFrame({"g": ["one", "none", "none"], "v": [7.0, None, float("nan")]})
    out = summarize_replicates(df, by="g", value="v")
    none = out.filter(pl.col("g") == "none").row(0, named=True)
    one = out.filter(pl.col("g") == "one").row(0, named=True)
    assert one == {"g": "one", "mean": 7.0, "std": None, "n": 1, "ci_lo": None, "ci_hi": None}
    assert none["n"] == 0 and none["mean"] is None and none["ci_lo"] is None


def test_nan_and_null_are_ignored_not_propagated() -> None:
    df = pl.DataFrame({"v": [1.0, float("nan"), 3.0, None]})
    row = summarize_replicates(df, None, "v").row(0, named=True)
    assert (row["mean"], row["n"]) == (2.0, 2)


def test_groups_sorted_and_several_keys() -> None:
    df = pl.DataFrame({"p": ["b", "a", "b", "a"], "c": [2, 1, 2, 1], "v": [1.0, 2.0, 3.0, 4.0]})
    out = summarize_replicates(df, by=["p", "c"], value="v")
    assert out.columns == ["p", "c", "mean", "std", "n", "ci_lo", "ci_hi"]
    assert out["p"].to_list() == ["a", "b"]
    assert out["mean"].to_list() == [3.0, 2.0]


def test_integer_values_are_accepted() -> None:
    out = summarize_replicates(pl.DataFrame({"v": [1, 2, 3]}), None, "v")
    assert out["mean"].item() == 2.0 and out["std"].item() == 1.0


def test_t_critical_matches_tables() -> None:
    t = t_critical([1, 2, 5, 11], 0.95).to_list()
    assert t[0] is None
    assert t[1:] == pytest.approx([12.7062047, 2.7764451, 2.2281389], rel=1e-7)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 95])
def test_bad_confidence_is_refused(bad: float) -> None:
    with pytest.raises(FrameError, match="confidence"):
        summarize_replicates(pl.DataFrame({"v": [1.0, 2.0]}), None, "v", bad)


def test_missing_column_names_helper_and_column() -> None:
    with pytest.raises(FrameError, match=r"summarize_replicates: missing column 'seed' \(frame has: v\)"):
        summarize_replicates(pl.DataFrame({"v": [1.0]}), "seed", "v")


def test_percentiles_by_hand_linear_interpolation() -> None:
    # sorted 10, 20, 30, 40, 50: position q*(n-1); q=0.9 -> 3.6 -> 40 + 0.6*10 = 46
    df = pl.DataFrame({"latency_ns": [50, 10, 40, 20, 30]})
    out = percentiles(df, "latency_ns", q=(0.5, 0.9, 0.99, 1.0))
    assert out["percentile"].to_list() == ["p50", "p90", "p99", "p100"]
    assert out["value"].to_list() == pytest.approx([30.0, 46.0, 49.6, 50.0])


def test_percentiles_match_numpy_per_group() -> None:
    rng = np.random.default_rng(3)
    v = rng.lognormal(6, 1, 2000)
    g = np.where(np.arange(2000) % 3 == 0, "x", "y")
    out = percentiles(pl.DataFrame({"g": g, "v": v}), "v", by="g", q=(0.5, 0.99, 0.999))
    for grp in ("x", "y"):
        got = out.filter(pl.col("g") == grp)["value"].to_numpy()
        assert got == pytest.approx(np.quantile(v[g == grp], [0.5, 0.99, 0.999]), rel=1e-12)


def test_percentile_labels() -> None:
    assert [percentile_label(q) for q in (0.5, 0.999, 0.9999, 0.25)] == ["p50", "p99.9", "p99.99", "p25"]
    with pytest.raises(FrameError, match="quantile"):
        percentile_label(1.5)


def test_summarize_percentiles_is_per_replicate_first() -> None:
    # seed 1: p50 of (1, 3) = 2; seed 2: p50 of (10, 20) = 15 -> mean 8.5 over two seeds
    # (the pooled median of 1, 3, 10, 20 would be 6.5)
    df = pl.DataFrame({"seed": [1, 1, 2, 2], "p": "a", "v": [1.0, 3.0, 10.0, 20.0]})
    out = summarize_percentiles(df, "v", by="p", q=(0.5,))
    row = out.row(0, named=True)
    assert (row["p"], row["percentile"], row["mean"], row["n"]) == ("a", "p50", 8.5, 2)
    assert row["std"] == pytest.approx(math.sqrt(2 * 6.5**2))
