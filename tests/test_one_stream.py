"""One stream form, one scenario namespace: the checker (functional model) and the timing engine
read the same streams, through the same trace reader and the same scenario declarations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cmdqv_lab.checker.check import CheckOptions, plan_for, route
from cmdqv_lab.checker.check import check as run_check
from cmdqv_lab.checker.replay import replay
from cmdqv_lab.checker.scenarios import Source, load_source
from cmdqv_lab.device.cmdqv import CmdqvParams
from cmdqv_lab.device.commands import INVALIDATION_OPCODES, Opcode
from cmdqv_lab.engine.runner import EngineConfig, run_engine
from cmdqv_lab.platform import load_platform
from cmdqv_lab.programs.compile import Columns, compile_columns
from cmdqv_lab.programs.topology import guest_topology
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.scenarios import simulate
from cmdqv_lab.scenarios.base import scenario_names
from cmdqv_lab.workloads.qemu_trace import parse_trace

TRACES = sorted((Path(__file__).resolve().parents[1] / "data" / "traces").glob("*.log.gz"))
SYNC = int(Opcode.CMD_SYNC)
INV = {int(o) for o in INVALIDATION_OPCODES}


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name.removesuffix(".log.gz"))
def test_trace_summary_check_and_replay_count_the_same(path: Path) -> None:
    summary = parse_trace(path).summary()
    src = load_source(str(path))
    checked = run_check(src, "scan")
    replayed = simulate("trace-replay", {"trace": str(path)}, seed=1)
    assert summary["commands"] == checked.stream["commands"] == replayed.metrics["commands"]
    assert checked.stream["ops"] == replayed.metrics["ops"]
    assert checked.stream["batches"] == summary["doorbells"]


@pytest.mark.parametrize("name", scenario_names())
def test_check_accepts_every_simulate_scenario(name: str) -> None:
    src = load_source(name, {"ops": 60}, seed=2)
    result = run_check(src, "scan")
    assert src.frame.height > 0 and result.stream["commands"] == src.frame.height
    assert result.disagreements == []
    if name.startswith("host-") or name == "trace-replay":
        assert result.routed["paths"]["host"] == src.frame.height


def _engine_records(routed: pl.DataFrame, vm_ids: list[int]) -> pl.DataFrame:
    """Run ``routed`` (no trapped parts) on the timing engine: one CPU per (vm, cpu) stream, one
    pass-through VCMDQ per VM forwarding ILL to the guest; returns the command records with the
    routed row each one is."""
    plat = load_platform("generic", {"hw_sync_insert": "false"})
    streams = routed.select("vm", "cpu").unique(maintain_order=True).rows()
    topo = guest_topology([vm_ids.index(vm) for vm, _ in streams], [c for _, c in streams], vcmdqs_per_vm=1,
                          submit="linux-lockfree", err="guest", plat=plat, trapped=False)  # fmt: skip
    blocks, rows_of = [], []
    for i, (vm, cpu) in enumerate(streams):
        part = routed.with_row_index("_row").filter((pl.col("vm") == vm) & (pl.col("cpu") == cpu))
        rows_of.append(part["_row"].to_numpy())
        blk = compile_columns(Columns.routed(part), topo.routes[i], plat, rng_stream(0, "x", i))
        blocks.append([blk])
    if topo.irq_thread:
        blocks.append([])
    cfg = topo.engine_config(plat.costs(), [b[0].n_ops for b in blocks[: len(streams)]])
    res = run_engine(EngineConfig(**{**cfg.__dict__, "record": True}), [iter(b) for b in blocks])
    assert res.commands is not None
    recs = res.commands.sort("cmd_id")
    row = np.empty(recs.height, np.int64)
    for i, rows in enumerate(rows_of):  # a CPU writes its commands in program order
        sel = (recs["cpu"] == i).to_numpy()
        assert int(sel.sum()) == rows.size
        row[sel] = rows
    return recs.with_columns(pl.Series("row", row))


def _covering_sync(queue: list, pos: np.ndarray, opcode: np.ndarray, ok: np.ndarray) -> dict[int, int]:
    """Routed row -> the routed row of the first later executed CMD_SYNC in its queue."""
    out: dict[int, int] = {}
    order = sorted(range(len(queue)), key=lambda i: (str(queue[i]), int(pos[i])))
    pending: list[int] = []
    current = None
    for i in order:
        if queue[i] != current:
            pending, current = [], queue[i]
        if opcode[i] == SYNC and ok[i]:
            out.update({j: i for j in pending})
            pending = []
        elif opcode[i] in INV and ok[i]:
            pending.append(i)
    return out


def _source(kind: str) -> Source:
    if kind == "trace":  # a real trace, issued by guest VM 0's one vCPU
        return load_source(str(next(p for p in TRACES if "smp1-strict" in p.name)))
    return load_source("guest-mixed", {"ops": 300, "vms": 2, "vcpus": 1}, seed=4)


@pytest.mark.parametrize("kind", ["trace", "mixed"])
def test_one_routed_stream_through_both_models(kind: str) -> None:
    """The same routed stream (everything to the VMs' VCMDQs, ILL forwarded to the guest) through the
    functional model and the timing engine: the same commands in the same order on each queue, the
    same commands raise ILL, and the same CMD_SYNC covers each invalidation."""
    src = _source(kind)
    params, options = CmdqvParams(hw_sync=False), CheckOptions(vcmdqs_per_vm=1)
    cap, vms = plan_for(src, params, options)
    routed = route(src, "all-vcmdq", params, vms)
    fm = replay(routed, cap, params, vms)
    recs = _engine_records(routed, sorted(vms))
    by_row = recs.sort("row")
    assert by_row["row"].to_list() == list(range(routed.height))
    # queues: a one-to-one map between the models' queues, and the same order on each
    e_queue, e_slot = by_row["queue"].to_list(), by_row["slot"].to_numpy()
    pairs = set(zip(e_queue, fm.queue))
    assert len(pairs) == len({q for q, _ in pairs}) == len({f for _, f in pairs})
    for q in set(e_queue):
        mine = np.flatnonzero(np.array(e_queue) == q)
        assert mine[np.argsort(e_slot[mine], kind="stable")].tolist() == sorted(
            mine.tolist(), key=lambda i: fm.pos[i]
        )
    # ILL: the commands the engine's VCMDQs stopped on are those the functional model raised ILL on
    fm_ill = {(e.queue, e.pos) for e in fm.smmu.log if e.kind == "error" and e.detail["cerror"] == "ILL"}
    f_ill = np.array([(fm.queue[i], int(fm.pos[i])) in fm_ill for i in range(routed.height)])
    e_ill = by_row["ill"].to_numpy()
    assert e_ill.tolist() == f_ill.tolist()
    assert (kind == "trace") or e_ill.any()  # the mixed stream has unsupported commands
    # SYNC coverage
    opcode = routed["opcode"].to_numpy().astype(np.int64)
    ok = ~f_ill
    assert _covering_sync(e_queue, e_slot, opcode, ok) == _covering_sync(fm.queue, fm.pos, opcode, ok)
