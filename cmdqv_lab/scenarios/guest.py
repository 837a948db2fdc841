"""Guest scenarios (Q1-Q8): ``guest-trap``, ``guest-vcmdq`` and ``guest-fixup``.

``vms`` VMs each run ``threads`` vCPUs of dma_map_benchmark (think ``guest_map_ns``, then an unmap
of ``granule_kib``: one CMD_TLBI_NH_VA per 4 KiB page, or range TLBIs with ``ril``, then a
CMD_SYNC), from the one unmap generator (:func:`~cmdqv_lab.workloads.synthetic.io.unmap_workload`).
In a fraction ``unsupported_fraction`` of the unmaps the batch also carries a command a guest-owned
VCMDQ rejects (CMD_CFGI_CD for the VM's device, :func:`~cmdqv_lab.workloads.transforms.inject`).
All VMs share the SMMU's command processors and the host main CMDQ (queue 0); the topology is
:func:`~cmdqv_lab.programs.topology.guest_topology`.

``guest-trap``   every batch goes the trapped way: the guest's driver writes its vSMMU's emulated
                 CMDQ; PROD writes and CONS reads exit to the VMM under the VM's BQL, which
                 forwards to the host main CMDQ (``vmm_forward``; :mod:`cmdqv_lab.engine.vmm`).
``guest-vcmdq``  pass-through VCMDQs (``vcmdqs_per_vm`` LVCMDQs in the VM's VINTF; vCPU ``v`` uses
                 ``v % vcmdqs_per_vm`` as tegra241_cmdqv_get_cmdq does with raw_smp_processor_id();
                 the SMMU consumes them with ``smmu_parallel`` processors); ``policy`` routes each
                 batch (:mod:`cmdqv_lab.driver.routing`); an unsupported command that reaches a
                 VCMDQ raises ILL and the error goes to the guest; what it routes trapped exits.
``guest-fixup``  the vSMMU main queue is a hardware VCMDQ: everything goes there; an ILL raises the
                 host's CMDQV interrupt, whose single threaded handler emulates the command on the
                 host main CMDQ, rewrites the entry and resumes the queue: the guest never sees it.

Metrics add ``exits``, ``guest_irqs``, ``illegal_commands``, ``fixups`` and ``fixup_latency_ns``;
``op_latency_ns`` is the unmap latency dma_map_benchmark reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.driver.routing import GUEST_ACCEPTED, POLICIES
from cmdqv_lab.engine.layout import SUBMITS
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.compile import Routing
from cmdqv_lab.programs.topology import Topology, guest_topology
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.workloads.stream import Workload
from cmdqv_lab.workloads.synthetic.common import think_ps, vm_sids
from cmdqv_lab.workloads.synthetic.inval import BATCH_ENTRIES
from cmdqv_lab.workloads.synthetic.io import DmaMapParams, unmap_workload
from cmdqv_lab.workloads.transforms import inject

CFGI_CD = int(Opcode.CMD_CFGI_CD)


@dataclass(frozen=True, kw_only=True)
class GuestParams(Params):
    platform: str = param("grace", provenance="choice", doc="platform preset in data/params")
    vms: int = param(1, unit="VMs", lo=1, hi=63, provenance="choice", doc="guests sharing the SMMU")
    threads: int = param(1, unit="vCPUs", lo=1, hi=256, provenance="choice", doc="benchmark threads per VM")
    granule_kib: int = param(4, unit="KiB", lo=4, hi=2048, provenance="choice", doc="bytes per unmap")
    ril: bool = param(
        False, provenance="choice",
        source="C2's latencies grow linearly with the granule on both paths (one TLBI per page), although QEMU "
        "10.2's emulated vSMMU sets IDR3.RIL; grace keeps one TLBI per page",
        doc="range TLBI (one per unmap) instead of one per 4 KiB page",
    )  # fmt: skip
    vcmdqs_per_vm: int = param(1, unit="queues", lo=1, hi=128, provenance="choice", doc="VCMDQs per VM (Q8)")
    unsupported_fraction: float = param(
        0.0,
        lo=0.0,
        hi=1.0,
        provenance="choice",
        doc="fraction of unmaps whose batch carries a VCMDQ-rejected command",
    )
    policy: str = param("scan", choices=POLICIES, provenance="choice", doc="routing policy (guest-vcmdq)")
    vcmdq_submit: str = param(
        "linux-lockfree",
        choices=SUBMITS,
        provenance="choice",
        doc="the guest driver's algorithm on its VCMDQs",
    )


_POLICY = {"trap": "all-trap", "fixup": "all-vcmdq"}
_ERR = {"trap": "none", "vcmdq": "guest", "fixup": "fixup"}


def _workload(mode: str):  # the scenario's workload: dma_map_benchmark in every guest
    def make(p: GuestParams, plat: Platform, seed: int, n: int) -> Workload:
        wp = DmaMapParams(
            vms=p.vms, threads=p.threads, ops=n, granule_kib=p.granule_kib, ril=p.ril, chunk=1024
        )
        w = unmap_workload(f"guest-{mode}", wp, seed, pages=p.granule_kib // 4, slots=1, open_loop=False,
                           gap=lambda g, m: think_ps(g, m, plat.guest_map_ns))  # fmt: skip
        return inject(w, fraction=p.unsupported_fraction, opcode=CFGI_CD, seed=seed, name=f"guest-{mode}")

    return make


def _routing(mode: str):
    def route(p: GuestParams, _plat: Platform, w: Workload) -> Routing:
        return Routing(_POLICY.get(mode, p.policy), GUEST_ACCEPTED, vm_sids(w.params))

    return route


def _topology(mode: str):
    def topo(p: GuestParams, plat: Platform, w: Workload) -> Topology:
        vq = 0 if mode == "trap" else p.vcmdqs_per_vm
        # a driver batch: at most CMDQ_BATCH_ENTRIES TLBIs (inval.BATCH_ENTRIES), an injected
        # CFGI_CD and the CMD_SYNC
        largest = min(p.granule_kib // 4, BATCH_ENTRIES) + 2
        return guest_topology([vm for vm, _ in w.cpus], [c for _, c in w.cpus], vcmdqs_per_vm=vq,
                              submit=p.vcmdq_submit, err=_ERR[mode], plat=plat, trapped=mode != "fixup",
                              max_batch=largest)  # fmt: skip

    return topo


def _unmap_prefix(_p: GuestParams, plat: Platform) -> float:
    return plat.guest_unmap_ns


for _mode, _doc in (
    ("trap", "guest-trap: trap-and-emulate vSMMU; PROD writes and CONS reads exit to the VMM under its BQL"),
    ("vcmdq", "guest-vcmdq: pass-through VCMDQs; a routing policy sends what they reject the trapped way"),
    ("fixup", "guest-fixup: the vSMMU main queue is a VCMDQ; ILL is fixed up by the host IRQ thread (Q6)"),
):
    register(
        Scenario(
            name=f"guest-{_mode}",
            doc=_doc,
            params=GuestParams,
            workload=_workload(_mode),
            topology=_topology(_mode),
            routing=_routing(_mode),
            prefix_ns=_unmap_prefix,
            default_count=20_000,
        )
    )
