"""``trace-replay``: a real Linux command stream (QEMU trace) through a host topology and algorithm.

See :mod:`cmdqv_lab.workloads.replay` for how doorbells become ops and how ops are paced. The
replayed ops run on ``queues`` (main CMDQ, VCMDQs, ECMDQs) with ``submit``; each op starts with
``op_cpu_ns`` of CPU work. ``--ops`` (count) stops after that many ops in total; by default every
doorbell of the trace, ``repeat`` times.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cmdqv_lab.engine.layout import SUBMITS
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.topology import HOST_TOPOLOGIES, Topology, host_topology
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.workloads.replay import PACINGS, cpu_frames, trace_frame, trace_path
from cmdqv_lab.workloads.stream import Workload

DEFAULT_TRACE = "linux6.1-smp4-strict"


@dataclass(frozen=True, kw_only=True)
class TraceReplayParams(Params):
    trace: str = param(DEFAULT_TRACE, provenance="choice", doc="trace file, or a name in data/traces")
    platform: str = param("d06", provenance="choice", doc="platform preset in data/params")
    pacing: str = param("closed", choices=PACINGS, provenance="choice", doc="recorded, scaled or closed-loop")
    speed: float = param(1e-3, lo=1e-9, hi=1e3, provenance="choice", doc="time scale of pacing=scaled")
    think_ns: float = param(1500.0, unit="ns", lo=0, hi=1e9, provenance="choice", doc="gap of pacing=closed")
    op_cpu_ns: float = param(
        0.0, unit="ns", lo=0, hi=1e9, provenance="choice", doc="CPU work at the start of each op"
    )
    cpus: int = param(
        0, unit="CPUs", lo=0, hi=4000, provenance="choice", doc="0: one CPU per traced vCPU thread"
    )
    repeat: int = param(1, lo=1, hi=100_000, provenance="choice", doc="replay the trace this many times")
    submit: str = param("linux-lockfree", choices=SUBMITS, provenance="choice", doc="submission algorithm")
    queues: str = param("main", choices=HOST_TOPOLOGIES, provenance="choice", doc="queue topology")
    vcmdqs: int = param(2, unit="queues", lo=1, hi=128, provenance="choice", doc="VCMDQs (queues=vcmdq)")


def _workload(p: TraceReplayParams, _plat: Platform, seed: int, n: int) -> Workload:
    df = trace_frame(trace_path(p.trace), cpus=p.cpus, pacing=p.pacing, speed=p.speed, think_ns=p.think_ns,
                     repeat=p.repeat, seed=seed)  # fmt: skip
    per_cpu = cpu_frames(df)
    ops_of = df.group_by("cpu").agg(pl.col("op").n_unique()).sort("cpu")["op"].to_list()
    total = sum(ops_of)
    limit = min(n, total) if n else total
    # the first `limit` ops in (approximate) issue order: each CPU its share
    quotas = tuple(min(o, max(1, round(limit * o / total))) for o in ops_of)
    cpus = tuple((-1, c) for c in range(len(ops_of)))
    max_batch = int(df.group_by("cpu", "batch").len().select(pl.col("len").max()).item() or 1)
    return Workload("trace-replay", cpus, tuple(per_cpu[c] for c in range(len(ops_of))),
                    open_loop=p.pacing != "closed", params={**p.to_dict(), "max_batch": max_batch},
                    ops=quotas)  # fmt: skip


def _topology(p: TraceReplayParams, plat: Platform, w: Workload) -> Topology:
    return host_topology(p.queues, cpus=len(w.cpus), vcmdqs=p.vcmdqs, submit=p.submit, plat=plat,
                         max_batch=int(w.params["max_batch"]))  # fmt: skip


def _op_cpu(p: TraceReplayParams, _plat: Platform) -> float:
    return p.op_cpu_ns


register(
    Scenario(
        name="trace-replay",
        doc=__doc__.strip().splitlines()[0] if __doc__ else "",
        params=TraceReplayParams,
        workload=_workload,
        topology=_topology,
        prefix_ns=_op_cpu,
        default_count=0,
    )
)
