"""What the checker checks: a trace file or any scenario (the same names ``simulate`` takes).

:func:`load_source` resolves ``TRACE_FILE|SCENARIO``: an existing path is a QEMU trace, read by the
one trace reader (:func:`cmdqv_lab.workloads.trace_stream.trace_frame`, as ``trace-replay`` reads
it); a scenario name of :func:`cmdqv_lab.scenarios.base.scenario_names` gives that scenario's
workload, the very streams its timing run compiles (:func:`scenario_source`); a bare registry
workload name (``dma-map``, ``mixed``, ...) gives that generator's streams. Every source becomes one
frame in :data:`~cmdqv_lab.workloads.stream.WORKLOAD_SCHEMA`, in issue order (CPU streams
interleaved op by op), plus each guest VM's devices (guest StreamIDs, the capacity planner's input).
An ``ops`` override sets a scenario's size (its ``--ops``); by default the checker replays
:data:`CHECK_OPS` ops of a scenario whose default is larger (the functional model is plain Python).

>>> s = load_source("guest-mixed", {"ops": 40, "vms": 1}, seed=3)
>>> s.kind, s.info["scenario"], s.devices[0][:3], sorted(s.frame["vm"].unique())
('scenario', 'guest-mixed', [8, 16, 24], [0])
>>> load_source("host-map-unmap", {"cpus": 2, "ops": 10}).frame.height  # TLBI + SYNC per unmap
20
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.errors import ParamError
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA, Workload, validate
from cmdqv_lab.workloads.trace_stream import trace_frame

O = Opcode  # noqa: E741
#: Opcodes whose SID names a device (CFGI_STE_RANGE names a range, not a device).
DEVICE_SID_OPCODES = [int(o) for o in (O.CMD_ATC_INV, O.CMD_CFGI_STE, O.CMD_CFGI_CD, O.CMD_CFGI_CD_ALL,
                                       O.CMD_PREFETCH_CONFIG, O.CMD_PREFETCH_ADDR, O.CMD_PRI_RESP,
                                       O.CMD_RESUME, O.CMD_STALL_TERM)]  # fmt: skip
#: Ops the checker replays of a scenario by default (at most; the scenario's own default if smaller).
CHECK_OPS = 4000


@dataclass
class Source:
    """A command stream to check: the frame (issue order), each VM's devices, and a description."""

    name: str
    kind: str  # "trace" or "scenario"
    frame: pl.DataFrame  # WORKLOAD_SCHEMA (+ "line", "seq" for traces)
    devices: dict[int, list[int]]  # vm -> guest StreamIDs of its devices
    info: dict[str, Any] = field(default_factory=dict)


def interleave(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate per-CPU frames, interleaving CPUs op by op (stable within each CPU).

    The result is not passed to :func:`~cmdqv_lab.workloads.stream.validate`, which orders ops and
    batches per ``cpu`` column alone (vCPU 0 of two VMs would look like one CPU going back).
    """
    if not frames:
        return pl.DataFrame(schema=WORKLOAD_SCHEMA)
    df = pl.concat(frames, how="vertical_relaxed")
    return df.with_row_index("_r").sort(["op", "vm", "cpu", "_r"]).drop("_r")


def infer_devices(frame: pl.DataFrame) -> dict[int, list[int]]:
    """Each guest VM's devices: the distinct SIDs its commands name (sorted)."""
    named = frame.filter(
        (pl.col("vm") >= 0) & pl.col("opcode").is_in(DEVICE_SID_OPCODES) & pl.col("sid").is_not_null()
    )
    out: dict[int, list[int]] = {int(v): [] for v in frame.filter(pl.col("vm") >= 0)["vm"].unique().to_list()}
    for vm, sids in named.group_by("vm").agg(pl.col("sid").unique().sort()).iter_rows():
        out[int(vm)] = [int(s) for s in sids]
    return out


def workload_frame(w: Workload, name: str) -> pl.DataFrame:
    """Every stream of ``w`` validated on its own (ops and batches are ordered per CPU), then interleaved."""
    frames = [validate(pl.concat(list(s), how="vertical_relaxed"), name) for s in w.streams]
    return interleave([f for f in frames if f.height])


def scenario_source(name: str, overrides: Mapping[str, Any], seed: int) -> Source:
    """The workload of scenario ``name`` (the streams its timing run compiles) as a :class:`Source`.

    Devices: those the workload lists per VM, else the SIDs its routing matches, else those its
    parameters declare, else the SIDs its commands name.
    """
    from cmdqv_lab.scenarios.base import get_scenario, resolve

    scn = get_scenario(name)
    over = dict(overrides)
    count = over.pop("ops", None) if "ops" not in scn.params.field_infos() else None
    params, preset = resolve(scn, over)
    plat = scn.run_platform(params, preset)
    if count is not None:
        n = int(count)
        if n < 1:
            raise ParamError(f"ops={count!r} must be a positive integer")
    else:
        n = min(scn.default_count, CHECK_OPS) if scn.default_count else 0
    w = scn.workload(params, plat, seed, n)
    frame = workload_frame(w, name)
    routing = scn.routing(params, plat, w)
    declared = w.params.get("devices_by_vm")
    if declared is None and routing is not None and routing.sids is not None:
        declared = {int(vm): [int(x) for x in sids] for vm, sids in routing.sids.items()}
    declared = declared or declared_devices(w.params)
    devices = {vm: sids for vm, sids in (declared or infer_devices(frame)).items() if vm >= 0}
    info = {"scenario": name, "generator": f"scenario:{name}", "params": params.to_dict(), "seed": seed,
            "ops": n or None}  # fmt: skip
    return Source(name, "scenario", frame, devices, info)


def registry_source(name: str, overrides: Mapping[str, Any], seed: int) -> Source:
    """A registry workload (:func:`cmdqv_lab.workloads.registry.generate`) as one frame."""
    from cmdqv_lab.workloads.registry import generate

    w = generate(name, overrides, seed=seed)
    frame = workload_frame(w, name)
    return Source(name, "scenario", frame, declared_devices(w.params) or infer_devices(frame),
                  {"generator": f"registry:{name}", "params": w.params, "seed": seed})  # fmt: skip


def declared_devices(params: Mapping[str, Any]) -> dict[int, list[int]] | None:
    """The devices a synthetic workload declares (``vm_sids`` of its parameters), if it has that
    helper and declares ``sids_per_vm``: commands naming other SIDs are then *foreign* (unmatched)."""
    if "sids_per_vm" not in params:
        return None
    try:
        from cmdqv_lab.workloads.synthetic.common import vm_sids  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover - depends on the workloads package version
        return None
    return {int(vm): list(sids) for vm, sids in vm_sids(params).items()}


def trace_source(path: Path) -> Source:
    from cmdqv_lab.workloads.qemu_trace import parse_trace

    trace = parse_trace(path)
    frame, skipped = trace_frame(trace)
    s = trace.summary()
    info = {"file": str(path), "format": s["format"], "threads": s["threads"], "unknown_skipped": skipped}
    return Source(path.name, "trace", frame, infer_devices(frame), info)


def scenario_names() -> list[str]:
    """Every name the checker takes: the timing scenarios, then the bare registry workloads."""
    from cmdqv_lab.scenarios.base import scenario_names as timing_names
    from cmdqv_lab.workloads.registry import workload_names

    return [*timing_names(), *sorted(set(workload_names()) - set(timing_names()))]


def load_source(source: str, overrides: Mapping[str, Any] | None = None, *, seed: int = 0) -> Source:
    """Resolve ``source`` (a trace path or a scenario name) into a :class:`Source`."""
    from cmdqv_lab.scenarios.base import scenario_names as timing_names

    overrides = dict(overrides or {})
    path = Path(source)
    if path.exists() or path.suffix in (".gz", ".log") or "/" in source:
        if overrides:
            raise ParamError(f"unknown parameter {next(iter(overrides))!r} for a trace file")
        return trace_source(path)
    if source in timing_names():
        return scenario_source(source, overrides, seed)
    if source in scenario_names():
        return registry_source(source, overrides, seed)
    raise ParamError(
        f"{source!r} is neither a trace file nor a scenario: scenarios {', '.join(scenario_names())}"
    )
