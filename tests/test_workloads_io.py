"""dma-map / fio / netperf statistics, and the lazy flush queue (against a literal reference)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from workload_helpers import NH_ASID, NH_VA, gen, per_op

from cmdqv_lab.workloads.synthetic.flushq import FlushQueue


def _mean_gap(df: pl.DataFrame, open_loop: bool) -> float:
    ops = per_op(df)
    if not open_loop:
        return float(ops["t_ps"].mean())  # type: ignore[arg-type]
    gaps = ops.with_columns(pl.col("t_ps").diff().over("vm", "cpu").alias("g"))["g"].drop_nulls()
    assert (gaps >= 0).all(), "arrivals never go back in time"
    return float(gaps.mean())  # type: ignore[arg-type]


def test_dma_map_mean_think_gap_and_ops() -> None:
    df = gen("dma-map", threads=2, ops=40_000, think_ns=1500, granule_kib=8)
    assert per_op(df).height == 40_000
    assert _mean_gap(df, False) == pytest.approx(1.5e6, rel=0.01)
    ops = per_op(df)
    assert ops["t_ps"].min() >= 0.75e6 and ops["t_ps"].max() <= 2.25e6  # type: ignore[operator]


@pytest.mark.parametrize(("jobs", "iops", "vms"), [(1, 1e6, 0), (4, 2e6, 0), (2, 5e5, 2)])
def test_fio_open_loop_completion_rate_follows_iops(jobs: int, iops: float, vms: int) -> None:
    df = gen("fio", jobs=jobs, iops=iops, vms=vms, ops=20_000 * jobs * max(1, vms))
    assert _mean_gap(df, True) == pytest.approx(1e12 * jobs / iops, rel=0.03)
    # Poisson arrivals: exponential gaps have a coefficient of variation near 1
    g = per_op(df).with_columns(pl.col("t_ps").diff().over("vm", "cpu").alias("g"))["g"].drop_nulls()
    cv = float(g.std()) / float(g.mean())  # type: ignore[arg-type]
    assert cv == pytest.approx(1.0, abs=0.05)


def test_fio_closed_loop_and_iodepth_buffers() -> None:
    df = gen("fio", loop="closed", cpu_ns=3000, ops=20_000, iodepth=8, bs_kib=16)
    assert _mean_gap(df, False) == pytest.approx(3e6, rel=0.01)
    first = df.filter(pl.col("opcode") == NH_VA).group_by("op").agg(pl.col("addr").min()).sort("op")["addr"]
    assert first.n_unique() == 8  # iodepth buffers, reused in turn
    assert first[8] == first[0] and (first.head(8).diff().drop_nulls() == 16384).all()
    assert per_op(df)["opcodes"].list.len().unique().to_list() == [5]  # 4 pages + SYNC


def test_netperf_rate_packet_pages_and_ring() -> None:
    df = gen("netperf", pps=2e5, threads=2, ops=40_000, pkt_bytes=9000, ring=64)
    assert _mean_gap(df, True) == pytest.approx(5e6, rel=0.03)
    assert per_op(df)["opcodes"].list.len().unique().to_list() == [4]  # ceil(9000 / 4096) = 3 TLBIs + SYNC
    assert df.filter(pl.col("opcode") == NH_VA, pl.col("cpu") == 1)["addr"].n_unique() == 64 * 3


# ----------------------------------------------------------------------------- lazy mode


def test_lazy_high_rate_flushes_every_fq_entries_unmaps() -> None:
    """1 us between unmaps: a 256-entry queue fills in 256 us, long before the 10 ms timer."""
    df = gen("netperf", mode="lazy", pps=1e6, ops=10_000, threads=2)
    kinds = per_op(df).group_by("cpu", "kind").len().sort("cpu", "kind")
    # 5000 unmaps per CPU: 19 full queues, then the last 136 are flushed by the timer
    assert kinds.rows() == [(0, "flush", 19), (0, "flush-timer", 1), (1, "flush", 19), (1, "flush-timer", 1)]
    assert set(per_op(df)["opcodes"].list.first()) == {NH_ASID}
    # a full-queue flush happens at the arrival of the unmap that fills the queue
    strict = per_op(gen("netperf", pps=1e6, ops=10_000, threads=2)).filter(pl.col("cpu") == 0)["t_ps"]
    flushes = per_op(df).filter(pl.col("cpu") == 0, pl.col("kind") == "flush")["t_ps"]
    assert flushes.to_list() == strict.gather(np.arange(255, 5000, 256)).to_list()
    timer = per_op(df).filter(pl.col("cpu") == 0, pl.col("kind") == "flush-timer")["t_ps"][0]
    assert timer == strict[19 * 256] + 10_000_000_000  # oldest queued unmap + 10 ms


def test_lazy_low_rate_timer_flushes_cover_one_timeout_of_unmaps() -> None:
    """1 ms between unmaps (Poisson) and a 10 ms timeout: a flush covers 1 + Poisson(10) unmaps."""
    n = 30_000
    df = gen("netperf", mode="lazy", pps=1e3, ops=n)
    ops = per_op(df)
    assert set(ops["kind"]) == {"flush-timer"}
    assert ops.height == pytest.approx(n / 11, rel=0.03)
    strict = set(per_op(gen("netperf", pps=1e3, ops=n))["t_ps"].to_list())
    assert all(t - 10_000_000_000 in strict for t in ops["t_ps"].to_list())  # timer = oldest unmap + 10 ms


def test_lazy_flush_frequency_scales_with_capacity_and_timeout() -> None:
    base = {"mode": "lazy", "pps": 1e5, "ops": 20_000}  # 10 us between unmaps
    count = per_op(gen("netperf", **base, fq_entries=64, fq_timeout_ms=100)).height
    assert count == math.ceil(20_000 / 64)
    timer = per_op(gen("netperf", **base, fq_entries=4096, fq_timeout_ms=0.5)).height
    assert timer == pytest.approx(20_000 / 51, rel=0.05)  # 1 + Poisson(50) unmaps per flush


def test_lazy_closed_loop_keeps_the_stream_clock() -> None:
    """Closed loop: a flush's think gap holds the CPU time of the unmaps queued since the last flush."""
    strict = per_op(gen("dma-map", ops=1000, think_ns=1000))["t_ps"].cum_sum()
    lazy = per_op(gen("dma-map", ops=1000, think_ns=1000, mode="lazy", fq_entries=100))
    assert lazy["kind"].to_list() == ["flush"] * 10
    assert lazy["t_ps"].cum_sum().to_list() == strict.gather(np.arange(99, 1000, 100)).to_list()
    lin = per_op(gen("dma-map", ops=1000, think_ns=1000, mode="lazy", fq_timer="linux", fq_timeout_ms=0.03))
    assert lin["t_ps"].sum() >= strict[-1]  # type: ignore[operator]


def _reference(times: list[int], entries: int, tau: int, linux: bool) -> list[tuple[int, int, bool]]:
    """dma-iommu's queue_iova + fq_flush_timeout, one event at a time (per CPU, times in order)."""
    out: list[tuple[int, int, bool]] = []
    queue: list[int] = []
    deadline: int | None = None  # when the timer fires
    for a in times:
        if deadline is not None and deadline <= a:
            out.append((deadline, len(queue), True))
            queue, deadline = [], None
        queue.append(a)
        if len(queue) == entries:
            out.append((a, len(queue), False))
            queue = []
            if not linux:
                deadline = None
        if (linux and deadline is None) or (not linux and len(queue) == 1):
            deadline = a + tau
    if deadline is not None:
        out.append((deadline, len(queue), True))
    return out


@given(
    gaps=st.lists(st.integers(0, 50), min_size=1, max_size=200),
    entries=st.integers(1, 12),
    tau=st.integers(1, 120),
    linux=st.booleans(),
    cuts=st.lists(st.integers(0, 200), max_size=4),
)
def test_flush_queue_matches_the_reference_in_any_chunking(
    gaps: list[int], entries: int, tau: int, linux: bool, cuts: list[int]
) -> None:
    times = np.cumsum(gaps).astype(np.int64)
    fq = FlushQueue(entries=entries, timeout_ps=tau, linux=linux)
    bounds = sorted({0, times.size, *(min(c, times.size) for c in cuts)})
    got: list[tuple[int, int, bool]] = []
    for lo, hi in itertools.pairwise(bounds):
        w, c, t = fq.feed(times[lo:hi], final=hi == times.size)
        got += list(zip(w.tolist(), c.tolist(), t.tolist()))
    assert got == _reference(times.tolist(), entries, tau, linux)
    assert sum(c for _, c, _ in got) == times.size
    assert [w for w, _, _ in got] == sorted(w for w, _, _ in got)
