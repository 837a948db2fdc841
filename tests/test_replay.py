"""Trace replay and the host-<workload> scenarios."""

from __future__ import annotations

import polars as pl
import pytest

from cmdqv_lab.errors import ParamError
from cmdqv_lab.scenarios import simulate
from cmdqv_lab.workloads.qemu_trace import parse_trace
from cmdqv_lab.workloads.replay import replay_policies, trace_frame, trace_path
from cmdqv_lab.workloads.stream import validate
from cmdqv_lab.workloads.trace_stream import trace_frame as read_trace

TRACE = "linux6.1-smp4-strict"


def _ops(df: pl.DataFrame) -> int:
    return int(df.select(pl.struct("cpu", "op").n_unique()).item())


def test_trace_frame_keeps_order_and_batches() -> None:
    path = trace_path(TRACE)
    tr = parse_trace(path)
    df = validate(trace_frame(path, pacing="recorded"))
    published = tr.commands.filter(pl.col("doorbell").is_not_null())
    assert df.height == published.height
    assert (
        df.select(pl.struct("cpu", "batch").n_unique()).item() == tr.doorbells.height
    )  # a batch per doorbell
    # the one trace reader's ops (an op ends with a SYNC batch), as the checker reads them
    read, _ = read_trace(tr, vm=-1)
    assert _ops(df) == _ops(read)
    # opcode sequence per doorbell is the trace's
    assert df.sort("batch", maintain_order=True)["opcode"].to_list() == published["opcode_value"].to_list()
    ends_sync = tr.batches["ends_with_sync"].sum()
    assert df.group_by("cpu", "batch").agg(pl.col("sync").first())["sync"].sum() == ends_sync
    assert df["cpu"].n_unique() == tr.doorbells["pid"].n_unique()
    # recorded pacing: arrivals never decrease within a CPU
    for (_,), g in df.group_by("cpu"):
        t = g.group_by("op", maintain_order=True).agg(pl.col("t_ps").first())["t_ps"]
        assert (t.diff().drop_nulls() >= 0).all()


@pytest.mark.parametrize("pacing", ["recorded", "scaled", "closed"])
def test_replay_runs_every_doorbell(pacing: str) -> None:
    tr = parse_trace(trace_path(TRACE))
    r = simulate("trace-replay", {"trace": TRACE, "pacing": pacing, "speed": 1e-3}, seed=2)
    assert r.metrics["ops"] == _ops(read_trace(tr)[0])
    assert r.metrics["doorbells"] <= tr.doorbells.height  # the owner may gather several CPUs' batches
    assert r.metrics["commands"] == tr.commands.filter(pl.col("doorbell").is_not_null()).height
    assert r.metrics["syncs"] == tr.commands.filter(pl.col("opcode") == "CMD_SYNC").height


def test_replay_repeat_and_limit() -> None:
    tr = parse_trace(trace_path(TRACE))
    r = simulate("trace-replay", {"trace": TRACE, "repeat": 3, "cpus": 8}, seed=1)
    assert r.metrics["ops"] == 3 * _ops(read_trace(tr)[0])
    small = simulate("trace-replay", {"trace": TRACE}, seed=1, count=500)
    assert 450 <= small.metrics["ops"] <= 550


def test_replay_policies_frame() -> None:
    configs = [
        {"submit": "linux-lockfree"},
        {"submit": "spinlock"},
        {"queues": "ecmdq", "submit": "exclusive"},
    ]
    df = replay_policies(TRACE, configs, base={"pacing": "closed", "cpus": 8})
    assert df["policy"].to_list() == [
        "submit=linux-lockfree",
        "submit=spinlock",
        "queues=ecmdq, submit=exclusive",
    ]
    assert (df["ops"] == df["ops"][0]).all() and (df["ops_per_s"] > 0).all()
    # lock-based submission holds the lock across the SYNC wait: slower than lock-free here
    assert df["ops_per_s"][1] < df["ops_per_s"][0]


def test_unknown_trace_is_a_one_line_error() -> None:
    with pytest.raises(ParamError, match="no such file"):
        simulate("trace-replay", {"trace": "nope"})


@pytest.mark.parametrize(
    "name", ["host-dma-map", "host-fio", "host-netperf", "host-config-churn", "host-mixed"]
)
def test_workload_scenarios(name: str) -> None:
    from cmdqv_lab.workloads.registry import generate

    wl = name.removeprefix("host-")
    r = simulate(name, {"threads": 2}, seed=3, count=300)
    key = "cycles" if wl == "config-churn" else "ops"
    frames = [f for s in generate(wl, {"threads": 2, "vms": 0, key: 300}, seed=3).streams for f in s]
    assert r.metrics["commands"] == sum(f.height for f in frames)
    assert r.metrics["ops"] == sum(f["op"].n_unique() for f in frames)


def test_workload_scenario_sweep_rows() -> None:
    """The workload's size is the run's count, not a parameter: it would clash with the ops metric."""
    from cmdqv_lab.experiments.spec import parse_spec
    from cmdqv_lab.experiments.sweep import make_tasks, run_point

    text = 'scenario = "host-dma-map"\ncount = 64\nseeds = [0]\n[grid]\nmode = ["strict", "lazy"]'
    rows = [run_point(t)["row"] for t in make_tasks(parse_spec(text, "d.toml"))]
    assert [(r["mode"], r["count"]) for r in rows] == [("strict", 64), ("lazy", 64)]
    assert rows[0]["ops"] == 64 and rows[1]["ops"] < 64  # lazy: flush ops
    with pytest.raises(ParamError, match="unknown parameter 'ops'"):
        simulate("host-fio", {"ops": 5})
