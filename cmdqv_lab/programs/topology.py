"""Topologies: the command queues of a run, which queue each issuing CPU uses, and the engine
configuration they make.

Host topologies (:func:`host_topology`), as Linux builds them:

``main``   one main CMDQ shared by every CPU;
``vcmdq``  Tegra241 VCMDQs of the host's VINTF0, chosen by ``cpu % vcmdqs`` (``tegra241_cmdqv_get_cmdq``),
           each a full ``arm_smmu_cmdq`` with its own lock-free state;
``ecmdq``  one ECMDQ per CPU.

Guest topologies (:func:`guest_topology`): queue 0 is the host's main CMDQ (where the VMM forwards
trapped commands and the host IRQ thread emulates fixed-up ones); each VM has its vSMMU's emulated
CMDQ (queues ``1..V``: the guest's driver writes it, the VMM consumes it inside the trapped PROD
write, :mod:`cmdqv_lab.engine.vmm`) and ``vcmdqs_per_vm`` pass-through VCMDQs, vCPU ``v`` using
``v % vcmdqs_per_vm`` (the guest's tegra241-cmdqv driver: ``lidx = raw_smp_processor_id() %
num_lvcmdqs_per_vintf`` in ``tegra241_cmdqv_get_cmdq``, the VINTF having ``vcmdqs_per_vm``
LVCMDQs). VCMDQs are consumed by ``min(smmu_parallel, queues)`` command processors, queue ``i`` by
processor ``i % P``. Each VM has one VMM lock (QEMU's BQL) when the platform says so; each vCPU
that can trap has a VMM thread (an engine CPU that runs its exits' emulation); an extra engine CPU
is the host's CMDQV IRQ thread when the VCMDQs raise errors (``err``).

>>> from cmdqv_lab.platform import load_platform
>>> t = host_topology("vcmdq", cpus=4, vcmdqs=2, submit="linux-lockfree", plat=load_platform("d06"), max_batch=2)
>>> [r.host_queue for r in t.routes], len(t.queues)
([0, 1, 0, 1], 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cmdqv_lab.engine.costs import Costs
from cmdqv_lab.engine.layout import SUBMITS
from cmdqv_lab.engine.runner import EngineConfig, QueueSpec
from cmdqv_lab.errors import ParamError
from cmdqv_lab.platform import Platform
from cmdqv_lab.workloads.synthetic.inval import BATCH_ENTRIES

HOST_TOPOLOGIES = ("main", "vcmdq", "ecmdq")
#: Ops per CPU when its stream decides where it ends.
UNBOUNDED = 1 << 62


@dataclass(frozen=True)
class Route:
    """Where one issuing CPU's parts go (queue indices of its topology; -1: none)."""

    host_queue: int  # host path
    vcmdq: int = -1  # pass-through path
    lock: int = -1  # its VM's VMM lock
    trap_queue: int = -1  # trapped path: its VM's emulated vSMMU CMDQ


@dataclass(frozen=True)
class Topology:
    """Queues, one :class:`Route` per issuing CPU (stream order), VMM locks and the IRQ thread."""

    queues: tuple[QueueSpec, ...]
    routes: tuple[Route, ...]
    n_procs: int = 1
    n_locks: int = 0
    irq_thread: bool = False  # an extra CPU: the host's CMDQV IRQ thread (handles ILL on VCMDQs)
    fixup_queue: int = 0  # the host queue the IRQ thread emulates commands on
    vmm_threads: bool = False  # one extra CPU per issuing CPU: its VMM thread (engine/vmm.py)
    rings: dict[str, Any] = field(default_factory=dict)  # ring sizes (EngineConfig fields)

    @property
    def n_cpus(self) -> int:
        """Engine CPUs: the issuing CPUs, plus the IRQ thread, plus the VMM threads."""
        return len(self.routes) * (1 + int(self.vmm_threads)) + int(self.irq_thread)

    def engine_config(
        self, costs: Costs, quotas: Sequence[int] | None, *, open_loop: bool = False
    ) -> EngineConfig:
        """The engine configuration (``quotas``: ops per issuing CPU; None: each stream decides)."""
        q = list(quotas) if quotas is not None else [UNBOUNDED] * len(self.routes)
        if len(q) != len(self.routes):
            raise ParamError(f"{len(q)} op quotas for {len(self.routes)} issuing CPUs")
        irq = [0] if self.irq_thread else []
        n = len(self.routes)
        first = n + int(self.irq_thread)  # VMM thread of issuing CPU i: CPU first + i
        vmm = tuple((i, first + i) for i in range(n)) if self.vmm_threads else ()
        return EngineConfig(
            queues=self.queues,
            n_cpus=self.n_cpus,
            quotas=tuple(q + irq + [0] * len(vmm)),
            vmm_threads=vmm,
            costs=costs,
            n_procs=self.n_procs,
            open_loop=open_loop,
            n_locks=self.n_locks,
            irq_cpu=len(self.routes) if self.irq_thread else -1,
            fixup_queue=self.fixup_queue,
            **self.rings,
        )


def host_log2size(kind: str, plat: Platform) -> int:
    """log2 of the entries of a host topology's queues."""
    if kind not in HOST_TOPOLOGIES:
        raise ParamError(f"queues={kind!r} is not allowed: one of {', '.join(HOST_TOPOLOGIES)}")
    return {"main": plat.cmdq_log2size, "vcmdq": plat.vcmdq_log2size, "ecmdq": plat.ecmdq_log2size}[kind]


def host_sharers(kind: str, cpus: int, vcmdqs: int) -> int:
    """The most CPUs sharing one queue of a host topology."""
    return cpus if kind == "main" else (-(-cpus // vcmdqs) if kind == "vcmdq" else 1)


def driver_batch(submit: str, *, log2size: int, sharers: int) -> int:
    """Commands a full driver batch holds before it is issued without a CMD_SYNC.

    ``CMDQ_BATCH_ENTRIES`` (64), except with atomic-add, which has no way to wait for space after
    reserving it: Garry's v2 (patch-2020-garry-v2-remove-cmpxchg.txt 1/2, ``arm_smmu_init_cmd_queue``)
    caps a batch at ``max_cmd_per_batch = min(entries / cpus - 1, CMDQ_BATCH_ENTRIES)`` (one entry
    per CPU left for its CMD_SYNC) and refuses a queue of fewer than ``2 * cpus`` entries. v2 divides
    by ``num_possible_cpus()``; the model by the CPUs sharing the queue (it has no idle CPUs).

    >>> driver_batch("atomic-add", log2size=8, sharers=64), driver_batch("linux-lockfree", log2size=8, sharers=64)
    (3, 64)
    """
    if submit != "atomic-add":
        return BATCH_ENTRIES
    entries = 1 << log2size
    if entries < 2 * sharers:
        raise ParamError(
            f"submit=atomic-add: a 2^{log2size}-entry queue is too small for {sharers} CPUs (Garry's v2 needs at "
            f"least 2 entries per CPU: 'command queue size too small, suggest reduce #CPUs')"
        )
    return min(entries // sharers - 1, BATCH_ENTRIES)


def host_driver_batch(kind: str, *, cpus: int, vcmdqs: int, submit: str, plat: Platform) -> int:
    """:func:`driver_batch` for a host topology (its queue size and the most CPUs sharing a queue)."""
    return driver_batch(submit, log2size=host_log2size(kind, plat), sharers=host_sharers(kind, cpus, vcmdqs))


def host_topology(
    kind: str, *, cpus: int, vcmdqs: int, submit: str, plat: Platform, max_batch: int
) -> Topology:
    """A host topology (see the module docstring); ``max_batch`` is the largest batch (atomic-add check)."""
    if kind not in HOST_TOPOLOGIES:
        raise ParamError(f"queues={kind!r} is not allowed: one of {', '.join(HOST_TOPOLOGIES)}")
    if submit not in SUBMITS:
        raise ParamError(f"submit={submit!r} is not allowed: one of {', '.join(SUBMITS)}")
    if kind == "main":
        n_q, owners = 1, [0] * cpus
    elif kind == "vcmdq":
        n_q, owners = vcmdqs, [c % vcmdqs for c in range(cpus)]
    else:
        n_q, owners = cpus, list(range(cpus))
    if submit == "exclusive" and len(set(owners)) != cpus:
        raise ParamError(
            f"submit=exclusive needs one queue per CPU: use queues=ecmdq or vcmdqs>={cpus} (got queues={kind}"
            + (f", vcmdqs={vcmdqs})" if kind == "vcmdq" else ")")
        )
    log2 = host_log2size(kind, plat)
    if submit == "atomic-add":
        sharers = host_sharers(kind, cpus, vcmdqs)
        if sharers * max_batch > (1 << log2):
            raise ParamError(
                f"submit=atomic-add cannot wait for space after reserving: {sharers} CPUs x {max_batch} entries "
                f"exceed a 2^{log2}-entry queue (the reservation would deadlock); use a larger queue"
            )
    procs = min(plat.smmu_parallel, n_q)
    wait = plat.vcmdq_sync_wait if kind == "vcmdq" else plat.sync_wait
    queues = tuple(QueueSpec(log2, submit, wait, i % procs) for i in range(n_q))
    return Topology(queues, tuple(Route(host_queue=o) for o in owners), n_procs=procs)


def guest_topology(
    vm_of: Sequence[int],
    vcpu_of: Sequence[int],
    *,
    vcmdqs_per_vm: int,
    submit: str,
    err: str,
    plat: Platform,
    trapped: bool = True,
    max_batch: int = 128,
) -> Topology:
    """A guest topology for issuing vCPUs ``(vm_of[i], vcpu_of[i])`` (VMs numbered 0..V-1).

    ``vcmdqs_per_vm = 0``: no pass-through queue (trap-and-emulate only). ``err``: what an illegal
    entry on a VCMDQ does (``guest``: forwarded to the guest; ``fixup``: the host emulates it).
    ``trapped``: batches may take the trapped path (emulated queues and VMM threads exist).
    ``max_batch``: the largest batch a vCPU issues (sizes the emulated queues and the VMM threads'
    rings: one PROD emulation carries at most every vCPU's batch of its VM).
    """
    if submit not in SUBMITS:
        raise ParamError(f"vcmdq_submit={submit!r} is not allowed: one of {', '.join(SUBMITS)}")
    vms = max(vm_of, default=-1) + 1
    vq = vcmdqs_per_vm
    nemu = vms if trapped else 0
    procs = min(plat.smmu_parallel, 1 + vms * vq)
    main = QueueSpec(plat.cmdq_log2size, "linux-lockfree", plat.sync_wait, 0)
    per_vm = max((list(vm_of).count(vm) for vm in range(vms)), default=1)
    in_flight = per_vm * max(1, max_batch)  # entries one PROD emulation can carry
    # The emulated CMDQ: the guest sizes it from QEMU's IDR1.CMDQS (2^19, capped by Linux's
    # CMDQ_MAX_SZ_SHIFT); the model uses cmdq_log2size, raised so that every vCPU's batch fits twice
    # (llq.cons lags by the batches in flight, and a full emulated queue would need a trapped CONS read).
    emu_log2 = max(plat.cmdq_log2size, (2 * in_flight - 1).bit_length())
    if emu_log2 > 19:
        raise ParamError(
            f"{per_vm} vCPUs x {max_batch} entries per batch exceed an emulated CMDQ of 2^19 entries"
        )
    wait = "poll" if plat.guest_poll == "poll" else "virq"
    emulated = tuple(QueueSpec(emu_log2, "linux-lockfree", wait, 0, vmm=True, bql=vm if plat.vmm_lock else -1)
                     for vm in range(nemu))  # fmt: skip
    first_vq = 1 + nemu
    vcmdqs = (
        QueueSpec(plat.vcmdq_log2size, submit, plat.guest_sync_wait, i % procs, err)
        for i in range(1, 1 + vms * vq)
    )
    queues = (main, *emulated, *vcmdqs)
    routes = tuple(
        Route(host_queue=0, vcmdq=first_vq + vm * vq + v % vq if vq else -1, lock=vm if plat.vmm_lock else -1,
              trap_queue=1 + vm if trapped else -1)
        for vm, v in zip(vm_of, vcpu_of)
    )  # fmt: skip
    irq = vq > 0 and err != "none"
    # a VMM thread's rings hold its one op: per forwarded command a delay and a 2-entry batch
    # (per-command), or one delay and a batch per vmm_batch commands (batched), plus 6 steps
    if plat.vmm_forward == "batched":
        steps, cmds = in_flight // plat.vmm_batch + 9, in_flight + in_flight // plat.vmm_batch + 1
    else:
        steps, cmds = 2 * in_flight + 8, 2 * in_flight
    return Topology(
        queues,
        routes,
        n_procs=procs,
        n_locks=vms if plat.vmm_lock else 0,
        irq_thread=irq,
        fixup_queue=0,
        vmm_threads=trapped,
        rings={
            "ring_batches": 1 << max(13, steps.bit_length()),
            "ring_cmds": 1 << max(15, cmds.bit_length()),
        },
    )
