"""The engine's livelock watchdog (runner.WATCH_EVENTS): the loop runs in slices of events, which
changes no result, and a run whose CPUs spin without the SMMU completing a command is stopped with
a one-line DeadlockError instead of running forever."""

from __future__ import annotations

import pytest

from cmdqv_lab.engine import runner
from cmdqv_lab.errors import DeadlockError
from cmdqv_lab.scenarios import simulate


def _metrics(overrides: dict, count: int) -> dict:  # type: ignore[type-arg]
    r = simulate("host-map-unmap", overrides, seed=2, count=count, record=True)
    assert r.ops is not None and r.commands is not None
    return {"metrics": r.metrics, "ops": r.ops.to_dicts(), "cmds": r.commands.height}


def test_slicing_the_loop_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    over = {"cpus": 16, "tlbis": 4, "cmdq_log2size": 8}
    whole = _metrics(over, 2000)
    monkeypatch.setattr(runner, "WATCH_EVENTS", 997)
    sliced = _metrics(over, 2000)
    assert sliced["metrics"]["events"] > 20 * 997  # it did run in many slices
    for k in ("events", "commands", "ops_per_s", "op_latency_ns", "shared_lock_wait_ns", "op_phase_ns"):
        assert sliced["metrics"][k] == whole["metrics"][k], k
    assert sliced["ops"] == whole["ops"] and sliced["cmds"] == whole["cmds"]


@pytest.mark.slow
def test_a_livelock_is_stopped_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """4 CPUs unmapping 1,024 pages (16 batches of 64) into a 256-entry queue with set-zero: three
    CPUs polling for space take cmdq->lock exclusively back to back while the CPU whose reserved batch
    would free the space waits in shared_lock forever. Whether it starts depends on exact timing: it
    does on the d06 fit before line_home and line_hold_p (pinned here), not on the refit."""
    monkeypatch.setattr(runner, "WATCH_EVENTS", 100_000)
    over = {"platform": "d06", "cpus": 4, "cmdq_log2size": 8, "unmap_pages": 1024, "max_tlbi_ops": 1 << 30,
            "iotlb_ways": 4, "exclusive_unlock": "set-zero",
            "line_home": "near", "line_hold_p": 1.0, "think_ns": 1433.5, "tlbi_service_ns": 237.1}  # fmt: skip
    with pytest.raises(DeadlockError, match=r"^simulation livelocked at t=\d+ ns: no command completed") as e:
        simulate("host-iotlb", over, seed=1, count=200)
    assert "\n" not in str(e.value) and "PC_SH_" in str(e.value)
    over["exclusive_unlock"] = "clear-sign"  # the fix
    r = simulate("host-iotlb", over, seed=1, count=200)
    assert r.metrics["ops"] == 200
