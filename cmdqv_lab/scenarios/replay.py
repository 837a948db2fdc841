"""``trace-replay``: a real Linux command stream (QEMU trace) through a host topology and algorithm.

See :mod:`cmdqv_lab.workloads.replay` for how doorbells become ops and how ops are paced. The
replayed ops run on ``queues`` (main CMDQ, VCMDQs, ECMDQs) with ``submit``; each op starts with
``op_cpu_ns`` of CPU work. ``--ops`` (count) stops after that many ops in total; by default every
doorbell of the trace, ``repeat`` times.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from cmdqv_lab.driver.routing import route_frame
from cmdqv_lab.engine.runner import EngineConfig
from cmdqv_lab.engine.stream import OpBlock
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.scenarios.host import SUBMITS, host_queues
from cmdqv_lab.units import ns
from cmdqv_lab.virt.paths import VcpuRoute, stream_blocks
from cmdqv_lab.workloads.replay import PACINGS, cpu_frames, trace_frame, trace_path

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
    queues: str = param("main", choices=("main", "vcmdq", "ecmdq"), provenance="choice", doc="queue topology")
    vcmdqs: int = param(2, unit="queues", lo=1, hi=128, provenance="choice", doc="VCMDQs (queues=vcmdq)")


def _build(
    p: TraceReplayParams, plat: Platform | None, seed: int, n: int
) -> tuple[EngineConfig, list[Iterator[OpBlock]]]:
    assert plat is not None
    df = trace_frame(trace_path(p.trace), cpus=p.cpus, pacing=p.pacing, speed=p.speed, think_ns=p.think_ns,
                     repeat=p.repeat, seed=seed)  # fmt: skip
    n_cpus = int(df.select(pl.col("cpu").max()).item()) + 1
    max_batch = int(df.group_by("cpu", "batch").len().select(pl.col("len").max()).item())
    qs, owners = host_queues(p.queues, n_cpus, p.vcmdqs, p.submit, plat, max_batch)
    per_cpu = cpu_frames(df)
    total_ops = df.select(pl.struct("cpu", "op").n_unique()).item()
    limit = min(n, total_ops) if n else total_ops
    ops_of = df.group_by("cpu").agg(pl.col("op").n_unique()).sort("cpu")["op"].to_list()
    # the first `limit` ops in (approximate) issue order: each CPU its share
    quotas = [min(o, max(1, round(limit * o / total_ops))) for o in ops_of]
    streams = [
        stream_blocks(
            (route_frame(f, "scan") for f in per_cpu[c]),
            VcpuRoute(-1, owners[c], -1),
            plat,
            rng_stream(seed, "trace-replay", "service", c),
            prefix_ps=ns(p.op_cpu_ns),
        )
        for c in range(n_cpus)
    ]
    cfg = EngineConfig(
        queues=qs,
        n_cpus=n_cpus,
        quotas=tuple(quotas),
        costs=plat.costs(),
        n_procs=min(plat.smmu_parallel, len(qs)),
        open_loop=p.pacing != "closed",
    )
    return cfg, streams


register(Scenario(name="trace-replay", doc=__doc__.strip().splitlines()[0] if __doc__ else "", params=TraceReplayParams,
                  build=_build, default_count=0))  # fmt: skip
