"""``host-map-unmap``: host CPUs invalidating on unmap, as John Garry's map+unmap benchmark does.

Each CPU loops: think (``think_ns``: the dma_map and unmap page-table work) -> unmap: one
``arm_smmu_cmdq_issue_cmdlist`` of ``tlbis`` CMD_TLBI_NH_VA plus a CMD_SYNC (strict mode) -> wait
for the SYNC. The workload is the one unmap generator (:func:`~cmdqv_lab.workloads.synthetic.io.unmap_workload`,
``tlbis`` pages without range invalidation or an ASID fallback); the submission algorithm
(``submit``) runs on the chosen host topology (``queues``, :func:`~cmdqv_lab.programs.topology.host_topology`).
With ``arrival=poisson`` each CPU instead gets open Poisson arrivals at ``rate_kops_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cmdqv_lab.engine.layout import SUBMITS
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.topology import (
    HOST_TOPOLOGIES,
    Topology,
    host_driver_batch,
    host_topology,
)
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.workloads.stream import Workload
from cmdqv_lab.workloads.synthetic.common import draw_times, exp_ps
from cmdqv_lab.workloads.synthetic.io import DmaMapParams, unmap_workload


@dataclass(frozen=True, kw_only=True)
class HostMapUnmapParams(Params):
    platform: str = param("d06", provenance="choice", doc="platform preset in data/params")
    cpus: int = param(16, unit="CPUs", lo=1, hi=4000, provenance="choice", doc="CPUs running the loop")
    submit: str = param("linux-lockfree", choices=SUBMITS, provenance="choice", doc="submission algorithm")
    queues: str = param("main", choices=HOST_TOPOLOGIES, provenance="choice", doc="queue topology")
    vcmdqs: int = param(2, unit="queues", lo=1, hi=128, provenance="choice", doc="VCMDQs (queues=vcmdq)")
    tlbis: int = param(1, unit="commands", lo=0, hi=63, provenance="choice", doc="CMD_TLBI_NH_VA per unmap")
    arrival: str = param(
        "closed", choices=("closed", "poisson"), provenance="choice", doc="closed loop or open"
    )
    rate_kops_s: float = param(
        100.0,
        unit="kops/s per CPU",
        lo=1e-3,
        hi=1e6,
        provenance="choice",
        doc="arrival rate (arrival=poisson)",
    )


def _batch(p: HostMapUnmapParams, plat: Platform) -> int:
    """Commands of a full driver batch (atomic-add: Garry's v2 max_cmd_per_batch)."""
    return host_driver_batch(p.queues, cpus=p.cpus, vcmdqs=p.vcmdqs, submit=p.submit, plat=plat)


def _workload(p: HostMapUnmapParams, plat: Platform, seed: int, n: int) -> Workload:
    wp = DmaMapParams(threads=p.cpus, ops=n, max_tlbi_ops=1 << 30)
    batch = _batch(p, plat)
    if p.arrival == "poisson":
        mean_ps = 1e9 / p.rate_kops_s
        return unmap_workload("host-map-unmap", wp, seed, pages=p.tlbis, slots=1, open_loop=True,
                              gap=lambda g, m: exp_ps(g, m, mean_ps), batch=batch)  # fmt: skip
    return unmap_workload("host-map-unmap", wp, seed, pages=p.tlbis, slots=1, open_loop=False,
                          gap=lambda g, m: draw_times(g, plat.think_ns, plat.think_dist, m), batch=batch)  # fmt: skip


def _topology(p: HostMapUnmapParams, plat: Platform, _w: Workload) -> Topology:
    largest = min(p.tlbis, _batch(p, plat)) + 1  # + the CMD_SYNC
    return host_topology(
        p.queues, cpus=p.cpus, vcmdqs=p.vcmdqs, submit=p.submit, plat=plat, max_batch=largest
    )


SCENARIO = register(
    Scenario(
        name="host-map-unmap",
        doc=__doc__.strip().splitlines()[0] if __doc__ else "",
        params=HostMapUnmapParams,
        workload=_workload,
        topology=_topology,
        count="ops",
        default_count=100_000,
    )
)
