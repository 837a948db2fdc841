"""``guest-wl-<workload>``: any registered workload generator issued by guests.

For every workload in :mod:`cmdqv_lab.workloads.registry` a scenario ``guest-wl-<name>`` runs its
command stream as issued by ``vms`` guests (the workload's own ``vms`` parameter, at least 1): each
VM gets one pass-through VCMDQ (after queue 0, the host main CMDQ, and the VMs' emulated vSMMU CMDQs), ``policy`` routes
every batch (:mod:`cmdqv_lab.driver.routing`) with the VCMDQ accepting ``guest_opcodes`` and the
SIDs the workload declares for the VM, and the paths are those of :mod:`cmdqv_lab.programs.compile`.
``path`` chooses what an illegal entry does: ``vcmdq`` (ILL forwarded to the guest) or ``fixup``
(the host's IRQ thread emulates it; use ``policy=all-vcmdq`` for Robin's design). Each op starts
with ``op_cpu_ns`` of guest CPU work (``-1``: the platform's ``guest_unmap_ns``). ``--ops`` sets the
workload's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from cmdqv_lab.device.cmdqv import GUEST_OPCODE_SETS
from cmdqv_lab.driver.routing import POLICIES
from cmdqv_lab.engine.layout import SUBMITS
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.compile import Routing
from cmdqv_lab.programs.topology import Topology, guest_topology
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.scenarios.workload import camel, combine_params, make_workload
from cmdqv_lab.workloads.registry import get_workload, workload_names
from cmdqv_lab.workloads.stream import Workload, as_frame
from cmdqv_lab.workloads.synthetic.common import vm_sids


@dataclass(frozen=True, kw_only=True)
class GuestTopology(Params):
    platform: str = param("grace", provenance="choice", doc="platform preset in data/params")
    policy: str = param("scan", choices=POLICIES, provenance="choice", doc="routing policy")
    guest_opcodes: str = param(
        "linux",
        choices=tuple(GUEST_OPCODE_SETS),
        provenance="choice",
        doc="opcodes a guest-owned VCMDQ accepts",
    )
    path: str = param(
        "vcmdq", choices=("vcmdq", "fixup"), provenance="choice", doc="what an illegal entry does"
    )
    vcmdq_submit: str = param(
        "linux-lockfree",
        choices=SUBMITS,
        provenance="choice",
        doc="the guest driver's algorithm on its VCMDQ",
    )
    op_cpu_ns: float = param(
        -1.0, unit="ns", lo=-1, hi=1e9, provenance="choice", doc="guest CPU work per op (-1: guest_unmap_ns)"
    )
    as_guest: bool = param(
        False, provenance="choice",
        doc="issue the workload's host stream (vms=0) as guest VM 0: a guest running host driver paths",
    )  # fmt: skip


def _workload(name: str):
    def make(p: Any, _plat: Platform, seed: int, n: int) -> Workload:
        own = get_workload(name).params.field_infos()
        if p.as_guest:
            w = make_workload(name, p, n, seed, vms=0)
            chunks = tuple(
                (as_frame(f).with_columns(pl.lit(0, pl.Int32).alias("vm")) for f in it) for it in w.chunks
            )
            return Workload(
                w.name, tuple((0, c) for _, c in w.cpus), chunks, w.open_loop, w.params, w.ops, w.independent
            )
        if "vms" in own and getattr(p, "vms", 1) < 1:
            raise ParamError(f"guest-wl-{name}: vms={p.vms} must be at least 1 (or set as_guest=true)")
        return make_workload(name, p, n, seed)

    return make


def _routing(p: Any, _plat: Platform, w: Workload) -> Routing:
    sids = {int(vm): list(s) for vm, s in vm_sids(w.params).items()} if "sids_per_vm" in w.params else None
    if p.as_guest and sids is not None:
        sids = {0: sids.get(-1, [])}
    return Routing(p.policy, frozenset(int(o) for o in GUEST_OPCODE_SETS[p.guest_opcodes]), sids)


def guest_wl_topology(p: Any, plat: Platform, w: Workload) -> Topology:
    """One pass-through VCMDQ per VM; ``path`` says what an illegal entry does."""
    vms = sorted({vm for vm, _ in w.cpus})
    return guest_topology([vms.index(vm) for vm, _ in w.cpus], [c for _, c in w.cpus], vcmdqs_per_vm=1,
                          submit=p.vcmdq_submit, err="guest" if p.path == "vcmdq" else "fixup", plat=plat)  # fmt: skip


def guest_wl_prefix(p: Any, plat: Platform) -> float:
    return plat.guest_unmap_ns if p.op_cpu_ns < 0 else float(p.op_cpu_ns)


def register_guest(name: str) -> Scenario:
    """Register (or refresh) ``guest-wl-<name>`` for workload ``name`` (built-in, entry point or file)."""
    spec = get_workload(name)
    return register(
        Scenario(
            name=f"guest-wl-{name}",
            doc=f"guest-wl-{name}: the {spec.name} workload ({spec.doc.split(':')[0]}) issued by guests on VCMDQs",
            params=combine_params(
                f"GuestWl{camel(spec.name)}Params", GuestTopology, spec.params, defaults={"vms": 1}
            ),
            workload=_workload(name),
            topology=guest_wl_topology,
            routing=_routing,
            prefix_ns=guest_wl_prefix,
            default_count=0,
        )
    )


for _name in workload_names():
    register_guest(_name)
