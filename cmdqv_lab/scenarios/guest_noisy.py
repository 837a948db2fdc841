"""``guest-noisy``: noisy neighbours (Q12): victim VMs' unmap latency next to VMs flooding invalidations.

Jason Gunthorpe (iommu list, 23 May 2024, <20240523124806.GK20229@nvidia.com>): "the primary issue
with the queues is DOS, as having any shared queue across VMs is dangerous". Two groups of guests
share one SMMU:

* ``victim_vms`` victims, one vCPU each, running ``dma_map_benchmark`` (the stream of
  ``guest-trap`` / ``guest-vcmdq``, :mod:`cmdqv_lab.scenarios.guest`): think ``victim_think_ns``
  (default: the platform's ``guest_map_ns``), then a strict unmap of ``victim_granule_kib`` (one
  CMD_TLBI_NH_VA per 4 KiB page and a CMD_SYNC) after ``guest_unmap_ns`` of guest CPU work;
* ``aggressor_vms`` aggressors, ``aggressor_threads`` vCPUs each, unmapping
  ``aggressor_granule_kib`` (up to 511 TLBIs per unmap below Linux's CMDQ_MAX_TLBI_OPS, in driver
  batches of CMDQ_BATCH_ENTRIES = 64) with ``aggressor_think_ns`` between unmaps (default 0: a flood).

``queue_sharing`` is the arrangement (both built by
:func:`~cmdqv_lab.programs.topology.guest_topology` and :mod:`cmdqv_lab.programs.compile`, so
changes to the guest paths apply here too):

``shared``   every VM has the trapped (emulated) vSMMU: each PROD write (and CONS read) exits to
             its VMM, which under the VM's big lock (``vmm_lock``) forwards the commands to the
             host's one main CMDQ: one ioctl per command or per PROD range (``vmm_forward``), issued
             by the host kernel in chunks of ``vmm_batch`` with a CMD_SYNC it waits for (QEMU accel
             SMMUv3 + ``arm_vsmmu_cache_invalidate``, domain.md 7; :mod:`cmdqv_lab.engine.vmm`).
             Every VM's commands meet in that queue, in FIFO order.
``private``  every VM has its own VINTF with one pass-through VCMDQ (``policy = all-vcmdq``: the
             victims' and aggressors' TLBI_NH_VA and CMD_SYNC are all accepted, domain.md 5); the
             SMMU's ``smmu_parallel`` command processors arbitrate round robin between the queues
             with turns of at most ``cmd_batch`` commands and ``clk_batch_ns`` (CMDQV CONFIG
             CMD_BATCH / CLK_BATCH, :mod:`cmdqv_lab.engine.smmu`).

Run length and the measurement window. ``--ops`` counts the victims' unmaps (split over the
victims). Every aggressor vCPU gets a quota of unmaps sized to outlast the victims
(:func:`aggressor_quota`: ``AGGRESSOR_MARGIN`` times the victims' nominal run time over the
aggressor's nominal unmap time); the victim and aggressor metrics are taken over the window from
the start until the first issuing vCPU finishes its quota (the window the engine's closed-loop
``ops_per_s`` uses), so no victim op is counted after the aggressors stopped. How many victim ops
fell in the window is reported (``victim_ops_measured``).

Metrics, besides the common set (pooled over every VM): ``victim_op_latency_ns`` (mean, p50, p99,
max of the victims' unmaps in the window; exact order statistics of the per-op records: the
smallest latency with at least that fraction of ops at or below it), ``victim_ops_per_s``,
``aggressor_ops_per_s`` and ``aggressor_commands_per_s`` (all aggressors together, in the window),
``victim_ops_measured`` and ``window_ns``. They come from the engine's per-op records, kept for
every run of this scenario: the record buffer is sized to the run's total op count (176 bytes per
op: :data:`RECORD_BYTES_PER_OP`) and a run needing more than :data:`MAX_RECORDED_OPS` ops is
refused before it starts, so memory stays bounded (at most ~180 MB).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cmdqv_lab.driver.routing import GUEST_ACCEPTED
from cmdqv_lab.engine.layout import WAIT_NAMES
from cmdqv_lab.engine.runner import EngineConfig, EngineResult
from cmdqv_lab.engine.sched import sync_observed_k
from cmdqv_lab.engine.stream import CpuStream
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.compile import Routing
from cmdqv_lab.programs.topology import Topology, guest_topology
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.scenarios.guest import _unmap_prefix
from cmdqv_lab.workloads.stream import Workload
from cmdqv_lab.workloads.synthetic.common import quotas, think_ps, vm_sids
from cmdqv_lab.workloads.synthetic.inval import BATCH_ENTRIES
from cmdqv_lab.workloads.synthetic.io import DmaMapParams, unmap_workload

SHARINGS = ("shared", "private")
#: Aggressor quota over the nominal ratio of run times: contention slows victims more than the
#: nominal estimate; a shortfall only shortens the window (``victim_ops_measured`` says by how much).
AGGRESSOR_MARGIN = 2.0
#: Largest number of ops a run may record (victims + aggressors); memory is ``RECORD_BYTES_PER_OP`` each.
MAX_RECORDED_OPS = 1_000_000
#: Engine record bytes per op: one op row (9 int64) and one command row (13 int64) per record slot.
RECORD_BYTES_PER_OP = (9 + 13) * 8
#: VMs that can each own a VINTF: Tegra241 CMDQV has at most 64 VINTFs and the host keeps VINTF0
#: (domain.md 5); both arrangements take the same limit so that they run the same VMs.
MAX_GUEST_VMS = 63
#: CMDQ_MAX_TLBI_OPS with 4 KiB pages (Linux): at 512 pages or more the driver sends one
#: CMD_TLBI_NH_ASID instead of per-page TLBIs, which would not be a flood.
_MAX_FLOOD_KIB = 4 * 511


@dataclass(frozen=True, kw_only=True)
class NoisyParams(Params):
    platform: str = param("grace", provenance="choice", doc="platform preset in data/params")
    queue_sharing: str = param(
        "shared", choices=SHARINGS, provenance="choice",
        source="Gunthorpe 2024 <20240523124806.GK20229@nvidia.com>; domain.md 5 and 7",
        doc="shared: every VM trapped into the host's one main CMDQ; private: a VCMDQ per VM in its own VINTF",
    )  # fmt: skip
    victim_vms: int = param(
        1, unit="VMs", lo=1, hi=32, provenance="choice", doc="victim guests (one vCPU each)"
    )
    aggressor_vms: int = param(
        1, unit="VMs", lo=0, hi=62, provenance="choice", doc="aggressor guests flooding invalidations"
    )
    aggressor_threads: int = param(
        1, unit="vCPUs", lo=1, hi=64, provenance="choice", doc="unmapping vCPUs per aggressor VM"
    )
    victim_granule_kib: int = param(
        4, unit="KiB", lo=4, hi=_MAX_FLOOD_KIB, provenance="choice",
        source="C2: dma_map_benchmark 4 KiB (the latency-sensitive small unmap)",
        doc="bytes per victim unmap (one TLBI per 4 KiB page)",
    )  # fmt: skip
    victim_think_ns: float = param(
        -1.0, unit="ns", lo=-1, hi=1e8, provenance="assumption",
        doc="victim CPU time between unmaps (-1: the platform's guest_map_ns)",
    )  # fmt: skip
    aggressor_granule_kib: int = param(
        1024, unit="KiB", lo=4, hi=_MAX_FLOOD_KIB, provenance="choice",
        source="Linux CMDQ_MAX_TLBI_OPS: below 2 MiB a strict unmap is one TLBI per 4 KiB page",
        doc="bytes per aggressor unmap (1024 KiB: 256 TLBIs + CMD_SYNC)",
    )  # fmt: skip
    aggressor_think_ns: float = param(
        0.0,
        unit="ns",
        lo=0,
        hi=1e8,
        provenance="choice",
        doc="aggressor CPU time between unmaps (0: a flood)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("victim_granule_kib", "aggressor_granule_kib"):
            if getattr(self, name) % 4:
                raise ParamError(f"{name}={getattr(self, name)} is not a multiple of 4 KiB pages")
        if self.victim_vms + self.aggressor_vms > MAX_GUEST_VMS:
            raise ParamError(
                f"victim_vms={self.victim_vms} + aggressor_vms={self.aggressor_vms} exceed "
                f"{MAX_GUEST_VMS} VMs (one VINTF each; the host keeps VINTF0)"
            )


def _private(p: NoisyParams) -> bool:
    return p.queue_sharing == "private"


def victim_think_ns(p: NoisyParams, plat: Platform) -> float:
    return plat.guest_map_ns if p.victim_think_ns < 0 else p.victim_think_ns


def nominal_op_ns(private: bool, pages: int, think: float, plat: Platform) -> tuple[float, float]:
    """One unmap of ``pages`` pages without contention: (whole op incl. think, SMMU busy time).

    A rough sum of the path's costs (:mod:`cmdqv_lab.programs.compile`); only the aggressor quota
    uses it, never a metric.
    """
    fetches = math.ceil((pages + 1) / plat.fetch_line_cmds) * plat.fetch_ns
    smmu = pages * plat.tlbi_service_ns + plat.sync_service_ns + fetches
    cpu = plat.guest_unmap_ns + think
    if private:
        return cpu + plat.mmio_write_ns + smmu, smmu
    batches = max(1, math.ceil(pages / BATCH_ENTRIES))
    chunks = math.ceil(pages / forward_chunk(plat.to_dict()))
    per_chunk = plat.mmio_write_ns + plat.sync_service_ns + plat.fetch_ns + plat.msi_ns
    vmm = batches * (2 * plat.trap_user_ns + plat.vmm_trap_ns) + pages * plat.vmm_per_cmd_ns
    return cpu + vmm + pages * plat.tlbi_service_ns + chunks * per_chunk, smmu + chunks * plat.sync_service_ns


def aggressor_quota(p: NoisyParams, plat: Platform, victim_ops: int) -> int:
    """Unmaps per aggressor vCPU: enough to outlast the victims' ``victim_ops`` each (see module doc).

    Nominal times, with the aggressors' SMMU work shared by their vCPUs (the SMMU processors
    serving them) and, trapped under the VMM lock, a VM's vCPUs forwarding one at a time; the
    victim's unmap lengthened by the queueing estimate :func:`bound_ns` (at most every aggressor
    vCPU's unmap when no arbitration limit bounds it).
    """
    private = _private(p)
    v_pages, a_pages = p.victim_granule_kib // 4, p.aggressor_granule_kib // 4
    t_v, _ = nominal_op_ns(private, v_pages, victim_think_ns(p, plat), plat)
    t_a, smmu_a = nominal_op_ns(private, a_pages, p.aggressor_think_ns, plat)
    streams = p.aggressor_vms * p.aggressor_threads
    t_v += min(bound_ns({**plat.to_dict(), **p.to_dict()}), streams * smmu_a)
    procs = min(plat.smmu_parallel, p.aggressor_vms) if private else 1
    t_a = max(t_a, streams * smmu_a / procs)
    if not private and plat.vmm_lock:
        t_a = max(t_a, p.aggressor_threads * (t_a - plat.guest_unmap_ns - p.aggressor_think_ns))
    return max(1, math.ceil(AGGRESSOR_MARGIN * victim_ops * t_v / t_a))


# ----------------------------------------------------------------------------- queueing estimates
# (see cmdqv_lab.analysis.noisy for their derivation from the engine's rules)


def turn_ns(
    *, cmd_batch: int, clk_batch_ns: float, tlbi_ns: float, fetch_ns: float, fetch_line: int
) -> float:
    """Longest arbitration turn of a queue full of TLBIs (ns); ``inf`` when neither limit is set.

    ``k`` commands run: the fewest that reach ``cmd_batch`` or (each taking at least ``tlbi_ns``)
    ``clk_batch_ns``; they cost their service plus one fetch per ``fetch_line`` commands and one
    more for a turn that starts inside a burst.
    """
    limits = []
    if cmd_batch > 0:
        limits.append(cmd_batch)
    if clk_batch_ns > 0:
        limits.append(max(1, math.ceil(clk_batch_ns / tlbi_ns)) if tlbi_ns > 0 else 1)
    if not limits:
        return math.inf
    k = min(limits)
    return k * tlbi_ns + (math.ceil(k / fetch_line) + 1) * fetch_ns


def shared_chunk_ns(
    *, vmm_batch: int, tlbi_ns: float, sync_ns: float, fetch_ns: float, fetch_line: int
) -> float:
    """SMMU time of one forwarded chunk in the host main CMDQ: ``vmm_batch`` TLBIs and a CMD_SYNC."""
    return vmm_batch * tlbi_ns + sync_ns + (math.ceil((vmm_batch + 1) / fetch_line) + 1) * fetch_ns


def private_bound_ns(row: dict[str, Any]) -> float:
    """Estimated extra victim latency per unmap, private queues (one victim batch; see module doc).

    Queue ``q`` is served by processor ``q % smmu_parallel`` (queue 0 is the host's main CMDQ,
    VM ``i`` has VCMDQ ``1 + i``); only aggressor queues on the victim's processor delay it, each
    by at most one turn. The victim sees its CMD_SYNC when its wait (``guest_sync_wait``: Linux's
    ``queue_poll`` back-off on a guest VCMDQ) next reads CONS: the estimate is the observed delay
    (:func:`cmdqv_lab.engine.sched.sync_observed_k`, the engine's own rule) of a completion that
    many turns later than the victim's own SMMU time.
    """
    procs = min(int(row["smmu_parallel"]), 1 + int(row["victim_vms"]) + int(row["aggressor_vms"]))
    v = int(row["victim_vms"])
    victim_proc = 1 % procs  # the first victim's VCMDQ
    sharing = sum(1 for i in range(v, v + int(row["aggressor_vms"])) if (1 + i) % procs == victim_proc)
    if sharing == 0:
        return 0.0
    t = turn_ns(cmd_batch=int(row["cmd_batch"]), clk_batch_ns=float(row["clk_batch_ns"]),
                tlbi_ns=float(row["tlbi_service_ns"]), fetch_ns=float(row["fetch_ns"]),
                fetch_line=int(row["fetch_line_cmds"]))  # fmt: skip
    if math.isinf(t):
        return math.inf
    pages = int(row["victim_granule_kib"]) // 4
    own = pages * float(row["tlbi_service_ns"]) + float(row["sync_service_ns"])
    own += math.ceil((pages + 1) / int(row["fetch_line_cmds"])) * float(row["fetch_ns"])
    return observed_ns(row, own + sharing * t) - observed_ns(row, own)


def observed_ns(row: dict[str, Any], done_ns: float) -> float:
    """When a guest waiting on its VCMDQ from time 0 sees a CMD_SYNC completed at ``done_ns``."""
    ps = round(
        sync_observed_k(
            WAIT_NAMES[str(row["guest_sync_wait"])], 0, round(done_ns * 1000), round(float(row["msi_ns"]) * 1000),
            round(float(row["sev_ns"]) * 1000), round(float(row["mmio_read_ns"]) * 1000),
            round(float(row["spin_ns"]) * 1000), round(float(row["udelay_us"]) * 1e6), int(row["poll_spins"]),
        )
    )  # fmt: skip
    return ps / 1000


def forward_chunk(row: dict[str, Any]) -> int:
    """Commands per host batch (+ CMD_SYNC) of a forwarded invalidation: 1 with one ioctl per guest
    command (``vmm_forward = per-command``, QEMU accel today), else ``vmm_batch``."""
    return 1 if row["vmm_forward"] == "per-command" else int(row["vmm_batch"])


def shared_bound_ns(row: dict[str, Any]) -> float:
    """Estimated extra victim latency per unmap, shared main CMDQ: per forwarded host batch of the
    victim, one forwarded batch of every aggressor VM ahead of it (the VMM waits for its CMD_SYNC
    before the next, holding the VM's big lock), of every aggressor vCPU without the lock."""
    ahead = int(row["aggressor_vms"]) * (1 if bool(row["vmm_lock"]) else int(row["aggressor_threads"]))
    k = forward_chunk(row)
    chunks = math.ceil(int(row["victim_granule_kib"]) // 4 / k)
    c = shared_chunk_ns(vmm_batch=k, tlbi_ns=float(row["tlbi_service_ns"]),
                        sync_ns=float(row["sync_service_ns"]), fetch_ns=float(row["fetch_ns"]),
                        fetch_line=int(row["fetch_line_cmds"]))  # fmt: skip
    return chunks * ahead * c


def bound_ns(row: dict[str, Any]) -> float:
    """The estimate of the row's arrangement."""
    return private_bound_ns(row) if row["queue_sharing"] == "private" else shared_bound_ns(row)


def _workload(p: NoisyParams, plat: Platform, seed: int, n: int) -> Workload:
    """Victim streams (VMs ``0 .. V-1``, vCPU 0), then aggressor streams (VMs ``V .. V+A-1``)."""
    v, a = p.victim_vms, p.aggressor_vms
    mode = "vcmdq" if _private(p) else "trap"
    think_v = victim_think_ns(p, plat)
    # the victims' stream is guest-trap's / guest-vcmdq's (same generator and RNG keys, so a run
    # without aggressors reproduces those scenarios' ops exactly)
    vp = DmaMapParams(vms=v, threads=1, ops=n, granule_kib=p.victim_granule_kib, chunk=1024)
    victims = unmap_workload(f"guest-{mode}", vp, seed, pages=p.victim_granule_kib // 4, slots=1,
                             open_loop=False, gap=lambda g, m: think_ps(g, m, think_v))  # fmt: skip
    cpus, chunks = list(victims.cpus), list(victims.chunks)
    ops = list(victims.ops or ())
    if a:
        q = aggressor_quota(p, plat, max(quotas(n, v)))
        per_vm = p.aggressor_threads
        ap = DmaMapParams(vms=v + a, threads=per_vm, ops=q * (v + a) * per_vm,
                          granule_kib=p.aggressor_granule_kib, chunk=256)  # fmt: skip
        aggr = unmap_workload("guest-noisy", ap, seed, pages=p.aggressor_granule_kib // 4, slots=1,
                              open_loop=False, gap=lambda g, m: think_ps(g, m, p.aggressor_think_ns))  # fmt: skip
        keep = [i for i, (vm, _) in enumerate(aggr.cpus) if vm >= v]
        cpus += [aggr.cpus[i] for i in keep]
        chunks += [aggr.chunks[i] for i in keep]
        ops += [q] * len(keep)
    total = sum(ops)
    if total > MAX_RECORDED_OPS:
        raise ParamError(
            f"guest-noisy: {total} ops (victims {n}, aggressors {total - n}) exceed the {MAX_RECORDED_OPS} "
            "whose records the metrics keep: use fewer ops, a shorter victim_think_ns or a larger aggressor_think_ns"
        )
    return Workload(
        "guest-noisy", tuple(cpus), tuple(chunks), False, {**vp.to_dict(), "vms": v + a}, tuple(ops)
    )


def _routing(p: NoisyParams, _plat: Platform, w: Workload) -> Routing:
    return Routing("all-vcmdq" if _private(p) else "all-trap", GUEST_ACCEPTED, vm_sids(w.params))


def _topology(p: NoisyParams, plat: Platform, w: Workload) -> Topology:
    """Shared: emulated vSMMU queues and VMM threads only; private: one VCMDQ per VM and no trapped path."""
    private = _private(p)
    largest = min(max(p.victim_granule_kib, p.aggressor_granule_kib) // 4, BATCH_ENTRIES) + 1  # + CMD_SYNC
    return guest_topology([vm for vm, _ in w.cpus], [c for _, c in w.cpus], vcmdqs_per_vm=int(private),
                          submit="linux-lockfree", err="guest" if private else "none", plat=plat,
                          trapped=not private, max_batch=largest)  # fmt: skip


def latency_stats(lat_ps: np.ndarray) -> dict[str, float | None]:
    """Mean, p50, p99 and max (ns) of latencies in ps; quantiles are order statistics (the smallest
    value with at least that fraction of values at or below it)."""
    if lat_ps.size == 0:
        return {"mean": None, "p50": None, "p99": None, "max": None}
    s = np.sort(lat_ps)
    qs = [float(s[max(0, math.ceil(q * s.size) - 1)]) / 1e3 for q in (0.5, 0.99)]
    return {"mean": float(lat_ps.mean()) / 1e3, "p50": qs[0], "p99": qs[1], "max": float(s[-1]) / 1e3}


def group_metrics(ops: pl.DataFrame, victim_cpus: int) -> dict[str, Any]:
    """Victim and aggressor metrics from per-op records (``cpu < victim_cpus``: victims).

    The window ends when the first issuing CPU finished its last op (IRQ-thread ops excluded: its
    CPU comes after every issuing CPU and runs no workload ops here).
    """
    last = ops.group_by("cpu").agg(pl.col("complete_ps").max())
    end = int(last["complete_ps"].to_numpy().min()) if last.height else 0
    win = ops.filter(pl.col("complete_ps") <= end)
    vic = win.filter(pl.col("cpu") < victim_cpus)
    agg = win.filter(pl.col("cpu") >= victim_cpus)
    per_s = 1e12 / end if end > 0 else 0.0
    return {
        "victim_op_latency_ns": latency_stats(vic["latency_ps"].to_numpy()),
        "victim_ops_per_s": vic.height * per_s,
        "victim_ops_measured": vic.height,
        "aggressor_ops_per_s": agg.height * per_s,
        "aggressor_commands_per_s": int(agg["cmds"].sum()) * per_s,
        "window_ns": end / 1e3,
    }


def _extra(p: NoisyParams, _plat: Platform | None, res: EngineResult, _seed: int) -> dict[str, Any]:
    ops = res.ops
    expected = sum(res.config.quotas)  # issuing vCPUs only: the IRQ and VMM threads have quota 0 here
    if ops is None or ops.height < expected:
        got = 0 if ops is None else ops.height
        raise ParamError(
            f"guest-noisy: per-op records hold {got} of {expected} ops: raise record_limit to at least {expected}"
        )
    # engine CPUs 0 .. V + A*T - 1 are the vCPUs (victims first); the IRQ and VMM threads follow and
    # record no op of their own
    issuing = ops.filter(pl.col("cpu") < p.victim_vms + p.aggressor_vms * p.aggressor_threads)
    return group_metrics(issuing, p.victim_vms)


@dataclass(frozen=True)
class RecordingScenario(Scenario):
    """A scenario whose metrics need the per-op records: every run keeps them, sized to its op count."""

    def build(self, p: Any, plat: Platform, seed: int, n: int) -> tuple[EngineConfig, list[CpuStream]]:
        cfg, streams = super().build(p, plat, seed, n)
        # the issuing CPUs' quotas (the IRQ and VMM threads are configured with 0)
        cfg = dataclasses.replace(cfg, record=True, record_limit=max(2, sum(cfg.quotas)))
        return cfg, list(streams)


register(
    RecordingScenario(
        name="guest-noisy",
        doc="guest-noisy: victim VMs' small unmaps next to aggressor VMs flooding invalidations, shared or private queues (Q12)",
        params=NoisyParams,
        workload=_workload,
        topology=_topology,
        routing=_routing,
        prefix_ns=_unmap_prefix,
        count="ops",
        default_count=3000,
        extra_metrics=_extra,
    )
)
