"""``open-queue``: one queue, open arrivals of single commands, no software costs.

The queueing-theory check of the engine: Poisson arrivals at ``rate_mcmd_s`` into one command
queue whose processor takes ``service_ns`` per command (deterministic: M/D/1; exponential: M/M/1).
With ``burst`` > 1, commands arrive in bursts of geometric size (mean ``burst``) at Poisson
instants, at the same overall rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.engine.runner import QueueSpec
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.topology import Route, Topology
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.workloads.stream import Chunk, Workload
from cmdqv_lab.workloads.synthetic.common import Template

CHUNK = 65536
_ARRIVAL = Template.build([("arrival", [([(int(Opcode.CMD_TLBI_NH_VA), {})], False)])])


@dataclass(frozen=True, kw_only=True)
class OpenQueueParams(Params):
    rate_mcmd_s: float = param(
        8.0, unit="Mcmd/s", lo=1e-6, hi=1e5, provenance="choice", doc="arrival rate (simulated time)"
    )
    service_ns: float = param(
        100.0, unit="ns", lo=0.001, hi=100_000, provenance="choice", doc="mean service time"
    )
    service_dist: str = param(
        "deterministic",
        choices=("deterministic", "exponential"),
        provenance="choice",
        doc="service distribution",
    )
    burst: float = param(
        1.0, unit="commands", lo=1, hi=1e6, provenance="choice", doc="mean burst size (1: Poisson arrivals)"
    )
    log2size: int = param(19, unit="log2 entries", lo=7, hi=19, provenance="choice", doc="queue size")


def _arrivals(p: OpenQueueParams, seed: int, n: int) -> Iterator[Chunk]:
    """Single-command ops at absolute arrival times (bursts of geometric size at Poisson instants)."""
    g_u = rng_stream(seed, "open-queue", "burst")
    g_gap = rng_stream(seed, "open-queue", "gap")
    mean_gap_ps = p.burst * 1e6 / p.rate_mcmd_s  # between bursts
    clock = 0
    starts_next = True
    done = 0
    while done < n:
        m = min(CHUNK, n - done)
        if p.burst > 1:
            last = g_u.random(m) < 1.0 / p.burst  # command ends its burst
            start = np.empty(m, dtype=bool)
            start[0] = starts_next
            start[1:] = last[:-1]
            starts_next = bool(last[-1])
            gaps = np.zeros(m, dtype=np.int64)
            gaps[start] = np.rint(g_gap.standard_exponential(int(start.sum())) * mean_gap_ps).astype(np.int64)
        else:  # every command starts a burst of one
            x = g_gap.standard_exponential(m)
            x *= mean_gap_ps
            gaps = np.rint(x, out=x).astype(np.int64)
        t = np.cumsum(gaps)
        t += clock
        clock = int(t[-1])
        yield Chunk(_ARRIVAL.expand(m, {}), 0, -1, done, done, t)
        done += m


def _workload(p: OpenQueueParams, _plat: Platform, seed: int, n: int) -> Workload:
    return Workload("open-queue", ((-1, 0),), (_arrivals(p, seed, n),), open_loop=True, ops=(n,))


def _topology(p: OpenQueueParams, _plat: Platform, _w: Workload) -> Topology:
    rings = {"ring_ops": 1 << 17, "ring_batches": 1 << 17, "ring_cmds": 1 << 17}
    return Topology((QueueSpec(p.log2size, "direct", "msi"),), (Route(host_queue=0),), rings=rings)


def _platform(p: OpenQueueParams) -> Platform:
    """No software costs, no fetch cost: every command costs its service time only."""
    return Platform(fetch_ns=0.0, cmd_batch=0, clk_batch_ns=0.0, tlbi_service_ns=p.service_ns,
                    service_dist=p.service_dist)  # fmt: skip


def _extra(p: OpenQueueParams, _platform: object, _res: object, _seed: int) -> dict[str, float]:
    return {"offered_load": p.rate_mcmd_s * p.service_ns / 1000.0}


SCENARIO = register(
    Scenario(
        name="open-queue",
        doc=__doc__.strip().splitlines()[0] if __doc__ else "",
        params=OpenQueueParams,
        workload=_workload,
        topology=_topology,
        count="commands",
        default_count=1_000_000,
        uses_platform=False,
        platform=_platform,
        extra_metrics=_extra,
        driver_metrics=False,  # single commands from nowhere: no driver runs
    )
)
