"""Hypothesis invariants of the timing engine, checked on its per-command records."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cmdqv_lab.engine.runner import run_engine
from tests.test_engine_reference import ALGS, TOPOLOGIES, WAITS, build, random_costs

cases = st.fixed_dictionaries(
    {
        "alg": st.sampled_from(ALGS),
        "topo": st.sampled_from(TOPOLOGIES),
        "wait": st.sampled_from(WAITS),
        "cpus": st.integers(1, 6),
        "procs": st.integers(1, 3),
        "log2": st.sampled_from([3, 4, 6]),
        "hw_sync": st.booleans(),
        "open_loop": st.booleans(),
        "seed": st.integers(0, 2**32 - 1),
    }
)


def run_case(case: dict) -> tuple:  # type: ignore[type-arg]
    rng = np.random.default_rng(case["seed"])
    cfg, streams = build(case["alg"], case["topo"], case["wait"], case["cpus"], case["procs"], case["log2"],
                         random_costs(rng, case["hw_sync"]), case["open_loop"], rng, n_ops=8)  # fmt: skip
    res = run_engine(cfg, [iter(s) for s in streams])
    assert res.commands is not None
    return cfg, res, res.commands


@settings(max_examples=60)
@given(cases)
def test_stage_times_are_ordered(case: dict) -> None:  # type: ignore[type-arg]
    """issue <= reserved <= written <= publish <= consume start <= complete, for every command."""
    _, _, cmds = run_case(case)
    stages = ["issue_ps", "reserved_ps", "written_ps", "publish_ps", "consume_start_ps", "complete_ps"]
    for a, b in itertools.pairwise(stages):
        assert cmds.filter(pl.col(a) > pl.col(b)).height == 0, f"{a} after {b}"
    assert cmds.filter(pl.col("complete_ps") < 0).height == 0  # everything completed


@settings(max_examples=30)
@given(cases)
def test_reported_percentiles_are_ordered_and_bounded(case: dict) -> None:  # type: ignore[type-arg]
    """p50 <= p99 <= max for every latency distribution (the sketch's bucket midpoints are
    clamped to the exact max), and the mean lies within [0, max]."""
    _, res, _ = run_case(case)
    for key, d in res.metrics().items():
        if isinstance(d, dict) and d.get("max") is not None:
            assert d["p50"] <= d["p99"] <= d["max"], key
            assert 0 <= d["mean"] <= d["max"], key


@settings(max_examples=60)
@given(cases)
def test_sync_completes_after_earlier_commands_of_its_queue(case: dict) -> None:  # type: ignore[type-arg]
    _, _, cmds = run_case(case)
    for (_q,), df in cmds.sort("slot").group_by(["queue"]):
        done = df["complete_ps"].to_numpy()
        earlier_max = np.maximum.accumulate(done)
        syncs = (df["opcode"] == 0x46).to_numpy()
        assert (done[syncs] >= earlier_max[syncs]).all()
        assert (np.diff(df["consume_start_ps"].to_numpy()) >= 0).all()  # in order


@settings(max_examples=60)
@given(cases)
def test_occupancy_and_capacity(case: dict) -> None:  # type: ignore[type-arg]
    """A slot is reused only after its previous command completed; a processor runs one command at
    a time, so throughput never exceeds the consumers' capacity."""
    cfg, res, cmds = run_case(case)
    for (q,), df in cmds.sort("slot").group_by(["queue"]):
        size = 1 << cfg.queues[int(q)].log2size
        slot = df["slot"].to_numpy()
        assert (np.diff(slot) == 1).all() and slot[0] == 0
        written = df["written_ps"].to_numpy()
        done = df["complete_ps"].to_numpy()
        if len(slot) > size:
            assert (written[size:] >= done[:-size]).all()
    proc_of = np.array([qq.proc for qq in cfg.queues])
    cmds = cmds.with_columns(pl.Series("proc", proc_of[cmds["queue"].to_numpy()]))
    for (_p,), df in cmds.sort("consume_start_ps").group_by(["proc"]):
        starts = df["consume_start_ps"].to_numpy()
        ends = df["complete_ps"].to_numpy()
        assert (starts[1:] >= ends[:-1]).all()
    busy = int(res.g[20])  # G_BUSY_PS
    assert busy <= cfg.n_procs * int(res.g[11])  # G_NOW


def test_results_do_not_depend_on_ring_sizes() -> None:
    """Chunking and ring sizes change how often the driver refills, never the results."""
    from dataclasses import replace

    rng = np.random.default_rng(11)
    cfg, streams = build(
        "linux-lockfree", "vcmdq", "poll", 4, 2, 4, random_costs(rng, True), False, rng, n_ops=30
    )
    a = run_engine(cfg, [iter(s) for s in streams]).commands
    big = replace(cfg, ring_ops=1024, ring_batches=2048, ring_cmds=8192)
    b = run_engine(big, [iter(s) for s in streams]).commands
    assert a is not None and b is not None and a.equals(b)


def test_atomic_add_deadlock_is_reported() -> None:
    """Two CPUs atomically add 5-entry reservations to an 8-entry queue at the same instant: the
    second reservation runs past CONS, its owner waits for valid bits that can never be written.
    The engine says so instead of finishing."""
    from cmdqv_lab.engine.runner import Costs, EngineConfig, QueueSpec
    from cmdqv_lab.engine.stream import OpBlock
    from cmdqv_lab.errors import DeadlockError

    blk = OpBlock.uniform(
        n_ops=1, t=np.array([0]), opcodes=[0x12] * 4 + [0x46], svc=[100_000] * 5, sync=True, queue=0
    )
    costs = Costs(
        line_local=5_000, line_xfer=35_000, cmd_write=5_000, mmio_write=50_000, msi=100_000, fetch=31_000
    )
    cfg = EngineConfig(queues=(QueueSpec(3, "atomic-add", "msi"),), n_cpus=2, quotas=(1, 1), costs=costs)
    with pytest.raises(DeadlockError, match="deadlocked"):
        run_engine(cfg, [iter([blk]), iter([blk])])
    ok = EngineConfig(queues=(QueueSpec(4, "atomic-add", "msi"),), n_cpus=2, quotas=(1, 1), costs=costs)
    assert run_engine(ok, [iter([blk]), iter([blk])]).metrics()["commands"] == 10


contention = st.fixed_dictionaries(
    {
        "excl_unlock": st.integers(0, 2),
        "line_arb": st.integers(0, 1),
        "line_hold_max": st.integers(1, 3),
        "line_hold": st.integers(0, 30_000),
        "topology": st.integers(0, 1),
        "cluster_cpus": st.integers(1, 2),
        "die_cpus": st.integers(2, 4),
        "socket_cpus": st.integers(4, 8),
        "line_hold_ppm": st.sampled_from([0, 100_000, 1_000_000]),
        "line_home": st.integers(0, 2),
    }
)


@settings(max_examples=40, deadline=None)
@given(cases, contention)
def test_no_two_cpus_own_overlapping_slots(case: dict, extra: dict) -> None:  # type: ignore[type-arg]
    """Whatever the algorithm, lock release, line arbitration (holder's chance too), topology and
    home of the lines: every queue slot counter
    is reserved by one batch only, a batch's slots are contiguous, and a slot's memory is not written
    again (one lap later) before the SMMU completed the command in it. Runs stop at 200 us (set-zero
    can starve a CPU forever in a deterministic configuration)."""
    from cmdqv_lab.engine.runner import Costs

    assume(case["alg"] != "direct")  # the open-queue source: no CPU owns its slots
    rng = np.random.default_rng(case["seed"])
    costs = random_costs(rng, case["hw_sync"])
    costs = Costs(**{**dict(costs.items()), **extra, "xfer_cluster": 7000, "xfer_die": 11_000, "xfer_xdie": 23_000,
                     "xfer_socket": 41_000, "line_local": max(costs.line_local, 2000),
                     "line_xfer": max(costs.line_xfer, 3000)})  # fmt: skip
    cfg, streams = build(case["alg"], case["topo"], case["wait"], case["cpus"], case["procs"], case["log2"],
                         costs, case["open_loop"], rng, n_ops=8)  # fmt: skip
    res = run_engine(cfg, [iter(s) for s in streams], until_ps=200_000_000)
    cmds = res.commands
    assert cmds is not None
    assert cmds.select("queue", "slot").is_duplicated().sum() == 0  # one owner per slot counter
    batches = cmds.group_by("queue", "op_id", "cpu", "issue_ps").agg(
        pl.col("slot").min().alias("lo"), pl.col("slot").max().alias("hi"), pl.len().alias("n")
    )
    assert batches.filter(pl.col("hi") - pl.col("lo") + 1 != pl.col("n")).height == 0  # contiguous
    sizes = {i: 1 << q.log2size for i, q in enumerate(cfg.queues)}
    lap = cmds.with_columns(
        (pl.col("slot") + pl.col("queue").replace_strict(sizes, return_dtype=pl.Int64)).alias("next")
    )
    reuse = lap.join(cmds, left_on=["queue", "next"], right_on=["queue", "slot"], suffix="_next")
    assert reuse.filter(pl.col("complete_ps") > pl.col("written_ps_next")).height == 0
    assert reuse.filter(pl.col("complete_ps") < 0).height == 0  # never overwritten before it completed
