"""``guest-wl-<workload>``: any registered workload generator issued by guests.

For every workload in :mod:`cmdqv_lab.workloads.registry` a scenario ``guest-wl-<name>`` runs its
command stream as issued by ``vms`` guests (the workload's own ``vms`` parameter, at least 1): each
VM gets one pass-through VCMDQ (queues ``1..vms``; queue 0 is the host main CMDQ), ``policy`` routes
every batch (:mod:`cmdqv_lab.driver.routing`) with the VCMDQ accepting ``guest_opcodes`` and the
SIDs the workload declares for the VM, and the paths are those of :mod:`cmdqv_lab.virt.paths`.
``path`` chooses what an illegal entry does: ``vcmdq`` (ILL forwarded to the guest) or ``fixup``
(the host's IRQ thread emulates it; use ``policy=all-vcmdq`` for Robin's design). Each op starts
with ``op_cpu_ns`` of guest CPU work (``-1``: the platform's ``guest_unmap_ns``). ``--ops`` sets the
workload's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from cmdqv_lab.device.cmdqv import GUEST_OPCODE_SETS
from cmdqv_lab.driver.routing import POLICIES, route_frame
from cmdqv_lab.engine.runner import EngineConfig, QueueSpec
from cmdqv_lab.engine.stream import OpBlock
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.scenarios.guest import SUBMITS
from cmdqv_lab.scenarios.workload import SIZE_KEYS, camel, combine_params
from cmdqv_lab.units import ns
from cmdqv_lab.virt.paths import VcpuRoute, stream_blocks
from cmdqv_lab.workloads.registry import get_workload, workload_names

UNBOUNDED = 1 << 62


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


def _builder(name: str):  # returns the scenario's builder
    spec = get_workload(name)
    own = set(spec.params.field_infos())

    def build(
        p: Any, plat: Platform | None, seed: int, n: int
    ) -> tuple[EngineConfig, list[Iterator[OpBlock]]]:
        from cmdqv_lab.workloads.synthetic.common import vm_sids

        assert plat is not None
        values = {k: v for k, v in p.to_dict().items() if k in own}
        if p.as_guest:
            values["vms"] = 0
        elif "vms" in own and values.get("vms", 1) < 1:
            raise ParamError(
                f"guest-wl-{name}: vms={values['vms']} must be at least 1 (or set as_guest=true)"
            )
        for key in SIZE_KEYS:
            if key in own and n:
                values[key] = n
        w = spec.make(spec.params.from_overrides({}, **values), seed)
        ids = [(0 if p.as_guest else vm, cpu) for vm, cpu in w.cpus]
        vms = sorted({vm for vm, _ in ids})
        n_cpu = len(ids)
        procs = min(plat.smmu_parallel, 1 + len(vms))
        err = "guest" if p.path == "vcmdq" else "fixup"
        queues = (
            QueueSpec(plat.cmdq_log2size, "linux-lockfree", plat.sync_wait, 0),
            *(
                QueueSpec(plat.vcmdq_log2size, p.vcmdq_submit, plat.vcmdq_sync_wait, (1 + i) % procs, err)
                for i in range(len(vms))
            ),
        )
        sids = (
            {int(vm): list(s) for vm, s in vm_sids(w.params).items()} if "sids_per_vm" in w.params else None
        )
        if p.as_guest and sids is not None:
            sids = {0: sids.get(-1, [])}
        accepted = GUEST_OPCODE_SETS[p.guest_opcodes]
        prefix = None if p.op_cpu_ns < 0 else ns(p.op_cpu_ns)
        streams: list[Iterator[OpBlock]] = []
        for (vm, cpu), frames in zip(ids, w.streams):
            i = vms.index(vm)
            route = VcpuRoute(vcmdq=1 + i, host_queue=0, lock=i if plat.vmm_lock else -1)
            if p.as_guest:
                frames = (f.with_columns(pl.lit(0, pl.Int32).alias("vm")) for f in frames)
            routed = (route_frame(f, p.policy, accepted=accepted, sids=sids) for f in frames)
            streams.append(
                stream_blocks(
                    routed, route, plat, rng_stream(seed, f"guest-wl-{name}", "service", vm, cpu), prefix
                )
            )
        streams.append(iter(()))  # the host's CMDQV IRQ thread
        cfg = EngineConfig(
            queues=queues,
            n_cpus=n_cpu + 1,
            quotas=(UNBOUNDED,) * n_cpu + (0,),
            costs=plat.costs(),
            n_procs=procs,
            open_loop=w.open_loop,
            n_locks=len(vms) if plat.vmm_lock else 0,
            irq_cpu=n_cpu,
            fixup_queue=0,
            ring_batches=8192,
            ring_cmds=32768,
        )
        return cfg, streams

    return build


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
            build=_builder(name),
            default_count=0,
        )
    )


for _name in workload_names():
    register_guest(_name)
