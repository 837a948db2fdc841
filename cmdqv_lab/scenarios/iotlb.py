"""``host-iotlb``: unmaps of ``unmap_pages`` pages, the TLBIs they cost and the IOTLB misses they cause.

Q11 (Robin Murphy, 29 Aug 2023): when should per-page/range TLBIs give way to one whole-ASID
flush? Each CPU runs a closed map + DMA + unmap loop for a device (CPU ``c`` for device ``c mod
devices``, one DMA domain and ASID each): think (``think_ns``: map and unmap CPU work) plus the
buffer's transfer (``unmap_pages`` x 4 KiB at ``dma_link_gbps``), then a strict unmap through
Linux's invalidation path on the host queue (:func:`~cmdqv_lab.workloads.synthetic.inval.unmap_batches`:
one CMD_TLBI_NH_VA per page in batches of 64, the last with CMD_SYNC, or one CMD_TLBI_NH_ASID +
CMD_SYNC once ``unmap_pages >= max_tlbi_ops``: ``CMDQ_MAX_TLBI_OPS``, 512 with 4 KiB pages, as in
the SVA path ``arm_smmu_mm_arch_invalidate_secondary_tlbs``; with ``ril`` range TLBIs and no
fall-back; the Linux 7.0 DMA path ``__arm_smmu_tlb_inv_range``, arm-smmu-v3.c lines 2348-2417, has
no such limit and ``arm_smmu_tlb_inv_context``, lines 2325-2346, is the whole-ASID flush). The
command queue side is the timing engine as in every host scenario (the
``unmap_workload`` generator on ``host_topology``); the engine's per-op records then drive the
IOTLB model (:mod:`cmdqv_lab.iotlb.traffic`): the devices' DMA fills it, the invalidations empty it
when their CMD_SYNC completes, and every miss costs a walk.

Metrics beyond the common set: ``iotlb_misses`` (and hot/buffer split), ``walk_time_ns``,
``dma_throughput_gbps``, ``cmdq_ns_per_unmap`` (mean op latency: CPU time in the invalidation) and
``inval_cost_ns_per_unmap`` = that + walk time per unmap (a ns of device stall weighed as a ns of
CPU time: a choice, see notebook 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cmdqv_lab.engine.layout import SUBMITS
from cmdqv_lab.engine.runner import EngineResult
from cmdqv_lab.errors import ParamError
from cmdqv_lab.iotlb.model import IotlbParams
from cmdqv_lab.iotlb.traffic import PAGE, Unmaps, build_events, iotlb_metrics
from cmdqv_lab.params import param
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.topology import (
    HOST_TOPOLOGIES,
    Topology,
    host_driver_batch,
    host_topology,
)
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.workloads.stream import Workload
from cmdqv_lab.workloads.synthetic.common import draw_times
from cmdqv_lab.workloads.synthetic.inval import flushes_asid, tlbi_count
from cmdqv_lab.workloads.synthetic.io import IOVA_BASE, DmaMapParams, _region, unmap_workload

NAME = "host-iotlb"


@dataclass(frozen=True, kw_only=True)
class HostIotlbParams(IotlbParams):
    platform: str = param("d06", provenance="choice", doc="platform preset in data/params")
    cpus: int = param(16, unit="CPUs", lo=1, hi=4000, provenance="choice", doc="CPUs running the loop")
    submit: str = param("linux-lockfree", choices=SUBMITS, provenance="choice", doc="submission algorithm")
    queues: str = param("main", choices=HOST_TOPOLOGIES, provenance="choice", doc="queue topology")
    vcmdqs: int = param(2, unit="queues", lo=1, hi=128, provenance="choice", doc="VCMDQs (queues=vcmdq)")
    unmap_pages: int = param(
        64, unit="pages", lo=1, hi=4096, provenance="choice", doc="4 KiB pages per unmap (buffer size)"
    )
    max_tlbi_ops: int = param(
        512, unit="pages", lo=1, hi=1 << 30, provenance="derived",
        source="Linux CMDQ_MAX_TLBI_OPS = 1 << (PAGE_SHIFT - 3): 512 with 4 KiB pages",
        doc="threshold: unmaps of this many pages or more flush the whole ASID (CMD_TLBI_NH_ASID)",
    )  # fmt: skip
    ril: bool = param(False, provenance="choice", doc="SMMU has range invalidation (no ASID fall-back)")
    devices: int = param(
        1, unit="devices", lo=1, hi=128, provenance="choice",
        doc="devices (one DMA domain and ASID each); CPU c unmaps for device c mod devices",
    )  # fmt: skip
    footprint_pages: int = param(
        256, unit="pages", lo=0, hi=1 << 20, provenance="assumption",
        source="workload choice: long-lived mappings a device keeps using (rings, pinned buffers); 0 .. 64K pages",
        doc="long-lived pages per device, accessed uniformly at random",
    )  # fmt: skip
    hot_rate_mps: float = param(
        1.0, unit="M page accesses/s per device", lo=0, hi=1000, provenance="assumption",
        source="workload choice: 1 M/s is 4 GB/s of 4 KiB accesses; 0.1 .. 10",
        doc="rate of the device's translations of its long-lived pages (Poisson)",
    )  # fmt: skip
    dma_link_gbps: float = param(
        8.0, unit="GB/s per device", lo=0.01, hi=1000, provenance="assumption",
        source="a PCIe Gen4 x8 to Gen5 x16 device moves about 8-64 GB/s; range 1 .. 64",
        doc="DMA rate of a device while it is not stalled on a walk",
    )  # fmt: skip


def _dma(p: HostIotlbParams, n: int) -> DmaMapParams:
    return DmaMapParams(threads=p.cpus, ops=max(n, 1), max_tlbi_ops=p.max_tlbi_ops, ril=p.ril,
                        sids_per_vm=p.devices, chunk=1024)  # fmt: skip


def transfer_ns(p: HostIotlbParams) -> float:
    """Time a device takes to move one buffer (added to each think gap)."""
    return p.unmap_pages * PAGE / p.dma_link_gbps


def _batch(p: HostIotlbParams, plat: Platform) -> int:
    """Commands of a full driver batch (atomic-add: Garry's v2 max_cmd_per_batch)."""
    return host_driver_batch(p.queues, cpus=p.cpus, vcmdqs=p.vcmdqs, submit=p.submit, plat=plat)


def _workload(p: HostIotlbParams, plat: Platform, seed: int, n: int) -> Workload:
    extra = round(transfer_ns(p) * 1000.0)
    return unmap_workload(NAME, _dma(p, n), seed, pages=p.unmap_pages, slots=1, open_loop=False,
                          gap=lambda g, m: draw_times(g, plat.think_ns, plat.think_dist, m) + extra,
                          batch=_batch(p, plat))  # fmt: skip


def _topology(p: HostIotlbParams, plat: Platform, _w: Workload) -> Topology:
    return host_topology(p.queues, cpus=p.cpus, vcmdqs=p.vcmdqs, submit=p.submit, plat=plat,
                         max_batch=_batch(p, plat) + 1)  # fmt: skip


def _unmaps(p: HostIotlbParams) -> Unmaps:
    dp = _dma(p, 1)
    region = _region(dp, p.unmap_pages, 1)
    first = (IOVA_BASE + np.arange(p.cpus, dtype=np.int64) * region) // PAGE
    whole = flushes_asid(p.unmap_pages, dp)
    return Unmaps(
        pages=p.unmap_pages, whole=whole, devices=p.devices, asid_base=dp.asid_base, buffer_page=first
    )


def _iotlb(p: HostIotlbParams, _plat: Platform | None, res: EngineResult, seed: int) -> dict[str, Any]:
    ops = res.ops
    if ops is None or ops.height < sum(res.config.quotas):  # pragma: no cover - op_records keeps every op
        raise ParamError("host-iotlb needs the per-op records of every unmap")
    u = _unmaps(p)
    ev = build_events(ops, u, footprint=p.footprint_pages, rate_mps=p.hot_rate_mps,
                      seed=seed, name=NAME)  # fmt: skip
    cmdq = float(np.mean(ops["latency_ps"].to_numpy())) / 1000.0 if ops.height else 0.0
    m = iotlb_metrics(ev, entries=p.iotlb_entries, ways=p.iotlb_ways, walk_ns=p.walk_ns,
                      link_gbps=p.dma_link_gbps, devices=p.devices, unmaps=ops.height,
                      cmdq_ns_per_unmap=cmdq)  # fmt: skip
    m["tlbis_per_unmap"] = tlbi_count(p.unmap_pages, _dma(p, 1))
    m["asid_flush"] = u.whole
    return m


SCENARIO = register(
    Scenario(
        name=NAME,
        doc=__doc__.strip().splitlines()[0] if __doc__ else "",
        params=HostIotlbParams,
        workload=_workload,
        topology=_topology,
        extra_metrics=_iotlb,
        op_records=True,
        count="ops",
        default_count=20_000,
    )
)
