"""Platform parameters: every cost of the timing model, with units, ranges and provenance.

A *platform preset* (``data/params/<name>.toml``) gives values for some fields and says where each
comes from (measured, derived, fitted, assumption); fields it does not set keep the defaults below.
Sources are the rows of ``calibration.md`` (C1-C4) and the Linux driver. Every default without a
public number is marked ``assumption`` and has a range; the calibration notebook shows how much each
conclusion depends on it.

>>> p = load_platform("generic")
>>> p.fetch_ns
31.0
>>> p.costs().fetch
31000
>>> load_platform("generic", {"line_xfer_ns": "80"}).line_xfer_ns
80.0
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cmdqv_lab.device.commands import CFGI_OPCODES, TLBI_OPCODES, Opcode
from cmdqv_lab.engine.costs import Costs, to_engine
from cmdqv_lab.engine.layout import ARB_NAMES, HOME_NAMES, LAYOUT_NAMES, LOAD_NAMES, TOPO_NAMES, XU_NAMES
from cmdqv_lab.errors import ParamError, suggest
from cmdqv_lab.params import PROVENANCES, ParamInfo, Params, param
from cmdqv_lab.project import builtin_data

#: Built-in presets: ``data/params`` of the checkout, or the copy a wheel ships (cmdqv_lab.project).
PARAMS_DIR = builtin_data("params")
#: The two threads on the reservation cmpxchg under contention, cited by the holder-first parameters.
_CMPXCHG_2019 = (
    "discussion-2019-cmdq-cmpxchg-fairness.txt (John Garry: the reservation cmpxchg 'was failing' on his "
    "D06; Will Deacon: 'It definitely lacks fairness')"
)
_CMPXCHG_2020 = "discussion-2020-cmdq-cmpxchg-and-spinlock-fallback.txt (success rate at 64 CPUs 'poor, but not totally awful')"


@dataclass(frozen=True, kw_only=True)
class Platform(Params):
    """Costs of the host CPUs, the interconnect and the SMMU (times in ns)."""

    # ---- CPU and interconnect
    line_xfer_ns: float = param(
        35.0, engine="line_xfer", unit="ns", lo=0, hi=1000, provenance="measured",
        source="C4: core-to-core CAS one way, Kunpeng 920 30-38 ns in a die, 72-87 across; Graviton ~47",
        doc="a contended cache line moving to another core (one atomic or read of it)",
    )  # fmt: skip
    line_local_ns: float = param(
        5.0, engine="line_local", unit="ns", lo=0, hi=100, provenance="assumption",
        doc="an atomic on a line the core already owns",
    )  # fmt: skip
    line_arbitration: str = param(
        "fifo", choices=ARB_NAMES, engine="line_arb", provenance="choice",
        source="discussion-2019-cmdq-cmpxchg-fairness.txt (Will Deacon: 'It definitely lacks fairness'); "
        "discussion-2020-cmdq-cmpxchg-and-spinlock-fallback.txt",
        doc="who gets a contended cache line next: fifo (every requester in arrival order), holder-first "
        "(the holder's next access first within line_hold_max / line_hold_ns, then the nearest requester)",
    )  # fmt: skip
    line_hold_max: int = param(
        2, engine="line_hold_max", unit="accesses", lo=1, hi=16, provenance="assumption",
        source="no public number; 2019/2020 threads: the CPU holding the line wins its retry",
        doc="holder-first: accesses in a row the holding CPU may make ahead of waiting CPUs (1: none)",
    )  # fmt: skip
    line_hold_ns: float = param(
        10.0, engine="line_hold", unit="ns", lo=0, hi=200, provenance="assumption",
        source="no public number; a core keeps a line for a few cycles after an atomic",
        doc="holder-first: how long after its access the holder keeps that priority",
    )  # fmt: skip
    line_hold_p: float = param(
        1.0, engine="line_hold_ppm", unit="fraction", lo=0, hi=1, provenance="assumption",
        source=f"no public number; {_CMPXCHG_2019}; {_CMPXCHG_2020}: not a collapse, so the holder's retry "
        "often wins",
        doc="holder-first: chance that the holder's next access within its window beats requesters already "
        "waiting (1: always, the holder-first of before; else it waits for the current round of requests)",
    )  # fmt: skip
    line_home: str = param(
        "near", choices=HOME_NAMES, engine="line_home", provenance="choice",
        source="patch thread of 13 Nov 2020 (John Garry): 'My D06 is memory poor ... my D05 has memory on all "
        "nodes and performs better'",
        doc="where the memory homing the cmdq's lines sits: near (every transfer costs by the two CPUs' "
        "distance), other-die (die 1, the other die of CPU 0's socket) or other-socket; a transfer goes "
        "through the home, so it costs at least the requester's distance to it (topology=platform)",
    )  # fmt: skip
    load_priority: str = param(
        "holder", choices=LOAD_NAMES, engine="load_priority", provenance="choice",
        source=f"{_CMPXCHG_2019}; {_CMPXCHG_2020}",
        doc="holder-first: whether a plain load (READ_ONCE, atomic_read; a cond_read polls with LDXR, exclusively) gives its CPU the "
        "holder's priority like an atomic (holder) or takes the line shared and leaves none, so that the "
        "cmpxchg after a READ_ONCE competes with the waiting CPUs and can fail (none)",
    )  # fmt: skip
    cmdq_layout: str = param(
        "per-field", choices=LAYOUT_NAMES, engine="cmdq_layout", provenance="choice",
        source="linux-v5.9-arm-smmu-v3.c struct arm_smmu_ll_queue / arm_smmu_queue / arm_smmu_cmdq "
        "(valid_map, owner_prod and lock at offsets 192-207: one 64-byte line)",
        doc="which cmdq fields share a cache line: v5.9 (owner_prod, lock and the valid_map pointer on one "
        "line, as the v5.9 structs declare them) or per-field (llq, lock, valid bitmap, owner_prod each a line)",
    )  # fmt: skip
    topology: str = param(
        "flat", choices=TOPO_NAMES, engine="topology", provenance="choice",
        doc="line transfer cost: flat (line_xfer_ns for any two CPUs) or platform (by cluster, die, socket)",
    )  # fmt: skip
    cluster_cpus: int = param(
        4, engine="cluster_cpus", unit="CPUs", lo=1, hi=4096, provenance="assumption",
        source="issue 10: Hi1620 (Kunpeng 920) clusters of 4 cores; Linux CPU numbers assumed consecutive by cluster",
        doc="topology=platform: CPUs per cluster (CPU c is in cluster c // cluster_cpus)",
    )  # fmt: skip
    die_cpus: int = param(
        32, engine="die_cpus", unit="CPUs", lo=1, hi=4096, provenance="assumption",
        source="issue 10: Hi1620 (Kunpeng 920) 2 dies (SCCL) of 32 cores per socket (no public measurement here)",
        doc="topology=platform: CPUs per die",
    )  # fmt: skip
    socket_cpus: int = param(
        64, engine="socket_cpus", unit="CPUs", lo=1, hi=4096, provenance="assumption",
        source="issue 10: Hi1620 (Kunpeng 920) 64 cores per socket; D06 boards have 2 sockets",
        doc="topology=platform: CPUs per socket",
    )  # fmt: skip
    line_xfer_cluster_ns: float = param(
        25.0, engine="xfer_cluster", unit="ns", lo=10, hi=38, provenance="assumption",
        source="no public number; at most C4's in-die 30-38 ns",
        doc="topology=platform: a line moving between cores of one cluster",
    )  # fmt: skip
    line_xfer_die_ns: float = param(
        34.0, engine="xfer_die", unit="ns", lo=0, hi=1000, provenance="measured",
        source="C4: core-to-core CAS one way, Kunpeng 920 30-38 ns within a 32-core die",
        doc="topology=platform: a line moving between clusters of one die",
    )  # fmt: skip
    line_xfer_xdie_ns: float = param(
        80.0, engine="xfer_xdie", unit="ns", lo=0, hi=1000, provenance="measured",
        source="C4: core-to-core CAS one way, Kunpeng 920 72-87 ns across dies",
        doc="topology=platform: a line moving to the other die of the socket",
    )  # fmt: skip
    line_xfer_socket_ns: float = param(
        150.0, engine="xfer_socket", unit="ns", lo=100, hi=300, provenance="assumption",
        source="no public number here (cross-socket exceeds cross-die)",
        doc="topology=platform: a line moving to the other socket",
    )  # fmt: skip
    cmd_write_ns: float = param(
        2.0, engine="cmd_write", unit="ns", lo=0, hi=100, provenance="assumption",
        doc="writing one 16-byte command into queue memory",
    )  # fmt: skip
    mmio_write_ns: float = param(
        50.0, engine="mmio_write", unit="ns", lo=0, hi=2000, provenance="assumption",
        doc="a PROD register write until the SMMU sees it (the CPU waits for it: dma_wmb + writel)",
    )  # fmt: skip
    mmio_read_ns: float = param(
        300.0, engine="mmio_read", unit="ns", lo=0, hi=5000, provenance="assumption",
        doc="reading an SMMU register (CONS) from a CPU",
    )  # fmt: skip
    spin_ns: float = param(
        10.0, engine="spin", unit="ns", lo=0, hi=1000, provenance="assumption", doc="one cpu_relax() in a poll loop",
    )  # fmt: skip
    msi_ns: float = param(
        100.0, engine="msi", unit="ns", lo=0, hi=5000, provenance="assumption",
        doc="CMD_SYNC MSI write reaching the CPU spinning on the SYNC slot",
    )  # fmt: skip
    sev_ns: float = param(
        100.0, engine="sev", unit="ns", lo=0, hi=5000, provenance="assumption", doc="SEV from the SMMU waking a WFE",
    )  # fmt: skip
    udelay_us: float = param(
        1.0, engine="udelay", unit="us", lo=0, hi=1000, provenance="measured",
        source="C4: arm-smmu-v3.c queue_poll, udelay(1) doubling", doc="first back-off delay of CONS polling",
    )  # fmt: skip
    poll_spins: int = param(
        10, engine="poll_spins", unit="polls", lo=1, hi=1000, provenance="measured",
        source="ARM_SMMU_POLL_SPIN_COUNT in arm-smmu-v3.c", doc="polls before each udelay",
    )  # fmt: skip
    # ---- SMMU command processor
    fetch_ns: float = param(
        31.0, engine="fetch", unit="ns", lo=0, hi=1000, provenance="measured",
        source="C4: gem5 smmu_v3_proc.cc, 1 cycle + one 16-byte read at 1 GHz (a lower bound)",
        doc="reading one burst of commands from queue memory (snooping CPU caches)",
    )  # fmt: skip
    fetch_line_cmds: int = param(
        4, engine="fetch_line", unit="commands", lo=1, hi=64, provenance="assumption",
        source="a 64-byte cache line holds 4 commands; SMMUs read the queue in bursts",
        doc="commands one fetch burst reads (as many as PROD has published)",
    )  # fmt: skip
    tlbi_service_ns: float = param(
        250.0, unit="ns", lo=0, hi=100_000, provenance="derived",
        source="C4: at most ~320 ns on Hi1620 (3.1 M map+unmap/s at 16 CPUs, C1)",
        doc="executing one TLBI (any CMD_TLBI_*), after the fetch",
    )  # fmt: skip
    sync_service_ns: float = param(
        50.0, engine="sync_svc", unit="ns", lo=0, hi=100_000, provenance="assumption", doc="executing one CMD_SYNC",
    )  # fmt: skip
    cfgi_service_ns: float = param(
        200.0, unit="ns", lo=0, hi=100_000, provenance="assumption", doc="executing one CMD_CFGI_*",
    )  # fmt: skip
    atc_inv_service_ns: float = param(
        1000.0, unit="ns", lo=0, hi=1_000_000, provenance="assumption",
        source="C4: VT-d IOTLB invalidate+wait 0.1-10 us (order of magnitude)",
        doc="an ATC invalidation round trip to the device (CMD_ATC_INV)",
    )  # fmt: skip
    other_service_ns: float = param(
        50.0, unit="ns", lo=0, hi=100_000, provenance="assumption", doc="any other command",
    )  # fmt: skip
    service_dist: str = param(
        "deterministic", choices=("deterministic", "uniform", "exponential"), provenance="choice",
        doc="distribution of command service times (mean as above)",
    )  # fmt: skip
    smmu_parallel: int = param(
        1, unit="processors", lo=1, hi=256, provenance="assumption",
        source="implementation defined (domain.md section 4); C2's 'up to 20 %' multi-VCMDQ gain fits serial "
        "consumption of SMMU-bound unmaps, 4 parallel processors give 26-80 % (tests/test_guest_statements.py)",
        doc="queues the SMMU consumes concurrently (1: one command processor for all queues)",
    )  # fmt: skip
    cmd_batch: int = param(
        32, engine="cmd_batch", unit="commands", lo=0, hi=1 << 16, provenance="measured",
        source="QEMU tegra241-cmdqv reset value of CMDQV CONFIG CMD_BATCH", doc="commands per arbitration turn (0: no limit)",
    )  # fmt: skip
    clk_batch_ns: float = param(
        256.0, engine="clk_batch", unit="ns", lo=0, hi=1e9, provenance="assumption",
        source="QEMU reset CLK_BATCH=256 (cycles; 1 GHz assumed)", doc="time slice per arbitration turn (0: none)",
    )  # fmt: skip
    hw_sync_insert: bool = param(
        False, engine="hw_sync_insert", provenance="choice", source="2021 thread: CMDQV scheduler inserts SYNCs",
        doc="insert a hardware CMD_SYNC when leaving a queue or ending its turn",
    )  # fmt: skip
    hw_sync_ns: float = param(
        50.0, engine="hw_sync", unit="ns", lo=0, hi=100_000, provenance="assumption", doc="cost of a hardware-inserted CMD_SYNC",
    )  # fmt: skip
    # ---- queues and driver
    sync_wait: str = param(
        "msi", choices=("msi", "sev", "poll", "busy"), provenance="choice",
        source="arm-smmu-v3.c: MSI polling if coherent with MSI, else SEV/WFE or CONS polling",
        doc="how the host waits for a CMD_SYNC on its main CMDQ",
    )  # fmt: skip
    vcmdq_sync_wait: str = param(
        "busy", choices=("msi", "sev", "poll", "busy"), provenance="choice",
        source="domain.md 2: Tegra VCMDQs use CS=SIG_NONE and busy polling of CONS",
        doc="how a CPU waits for a CMD_SYNC on a VCMDQ",
    )  # fmt: skip
    exclusive_unlock: str = param(
        "none", choices=XU_NAMES, engine="excl_unlock", provenance="choice",
        source="patch-2026-cmdq-lock-fairness.txt (df180b1a4cc5); arm-smmu-v3.c arm_smmu_cmdq_poll_until_not_full",
        doc="cmdq->lock on a full queue: none (CONS refreshed without the lock, the model before issue 10), "
        "set-zero (exclusive trylock, atomic_set_release(0) and shared_lock's cmpxchg loop: Linux before 2026), "
        "clear-sign (atomic_fetch_andnot_release(INT_MIN), shared_lock waits VAL > 0: Linux >= 6.19)",
    )  # fmt: skip
    cmdq_log2size: int = param(
        16, unit="log2 entries", lo=7, hi=19, provenance="measured", source="C4: D06 cmdq 65536 entries",
        doc="main CMDQ size (Linux refuses <= 64 entries)",
    )  # fmt: skip
    vcmdq_log2size: int = param(
        12, unit="log2 entries", lo=7, hi=19, provenance="assumption", doc="each VCMDQ's size (up to 2^19)",
    )  # fmt: skip
    ecmdq_log2size: int = param(
        12, unit="log2 entries", lo=7, hi=19, provenance="assumption", doc="each ECMDQ's size",
    )  # fmt: skip
    think_ns: float = param(
        1500.0, unit="ns", lo=0, hi=1e9, provenance="assumption",
        doc="CPU time between invalidations (dma_map + unmap page-table work)",
    )  # fmt: skip
    think_dist: str = param(
        "uniform", choices=("deterministic", "uniform", "exponential"), provenance="choice",
        doc="distribution of think times (uniform: mean x U[0.5,1.5); deterministic loops can phase-lock)",
    )  # fmt: skip

    # ---- virtualisation (calibration.md C3, Kunpeng 920; Phytium S2500 is about 3x slower)
    trap_user_ns: float = param(
        2306.0, engine="trap", unit="ns", lo=0, hi=1e6, provenance="measured",
        source="C3: MMIO trap to the user-space VMM and back, Kunpeng 920 (kvm-unit-tests micro-bench)",
        doc="a guest MMIO access handled by the VMM (PROD write or CONS read of the emulated vSMMU)",
    )  # fmt: skip
    trap_kernel_ns: float = param(
        638.0, unit="ns", lo=0, hi=1e6, provenance="measured", source="C3: MMIO trap handled in the kernel",
        doc="a guest MMIO access handled in the host kernel",
    )  # fmt: skip
    hvc_ns: float = param(
        408.0, unit="ns", lo=0, hi=1e6, provenance="measured", source="C3: hypercall round trip"
    )
    virq_inject_ns: float = param(
        2168.0, engine="virq", unit="ns", lo=0, hi=1e6, provenance="measured", source="C3: MSI (LPI) injected into the guest",
        doc="delivering a virtual interrupt (MSI/LPI) to a guest",
    )  # fmt: skip
    virq_eoi_ns: float = param(
        26.0, unit="ns", lo=0, hi=1e5, provenance="measured", source="C3: virtual IRQ completion"
    )
    vmm_trap_ns: float = param(
        5000.0, engine="vmm_trap", unit="ns", lo=0, hi=1e7, provenance="assumption",
        doc="VMM work per trapped PROD write besides the forwarded commands (dispatch, walking the emulated queue)",
    )  # fmt: skip
    vmm_read_ns: float = param(
        200.0, engine="vmm_read", unit="ns", lo=0, hi=1e5, provenance="assumption",
        source="no public number (0-2 us): C3's user-space MMIO round trip already includes a trivial handler",
        doc="VMM emulation of a vSMMU register read (smmu_readl of CONS) under the BQL, beyond the trap itself",
    )  # fmt: skip
    vmm_per_cmd_ns: float = param(
        1500.0, engine="vmm_per_cmd", unit="ns", lo=0, hi=1e7, provenance="assumption",
        doc="VMM parsing one forwarded command plus the host kernel converting it (arm_vsmmu_convert_user_cmd)",
    )  # fmt: skip
    vmm_ioctl_ns: float = param(
        1000.0, engine="vmm_ioctl", unit="ns", lo=200, hi=20_000, provenance="assumption",
        source="no public number: a syscall round trip, iommufd object lookup and array copy (range 0.2-20 us)",
        doc="one IOMMU_HWPT_INVALIDATE ioctl from the VMM, besides the commands it carries and their host waits",
    )  # fmt: skip
    vmm_forward: str = param(
        "per-command", choices=("per-command", "batched"), provenance="choice",
        source="QEMU accel smmuv3_accel_issue_inv_cmd: entry_num = 1 (per-command); "
        "iommufd_hwpt_invalidate / arm_vsmmu_cache_invalidate accept arrays (batched)",
        doc="VMM invalidation forwarding: one ioctl per guest command, or one per consumed PROD range",
    )  # fmt: skip
    vmm_batch: int = param(
        63, engine="vmm_chunk", unit="commands", lo=1, hi=63, provenance="measured",
        source="linux-7.0 arm_vsmmu_cache_invalidate: chunks of CMDQ_BATCH_ENTRIES - 1 = 63 + CMD_SYNC on the main cmdq",
        doc="commands per host batch (each + a CMD_SYNC, waited for) when the host issues a forwarded array",
    )  # fmt: skip
    vmm_lock: bool = param(
        True, provenance="measured",
        source="qemu-10.2.0 prepare_mmio_access takes the BQL for every MMIO access to a region without lockless_io "
        "(the SMMUv3 is not one)",
        doc="every exit to the vSMMU (PROD write with its ioctls, CONS read) holds the VM's big lock (QEMU's BQL)",
    )  # fmt: skip
    futex_wake_ns: float = param(
        5000.0, engine="futex_wake", unit="ns", lo=500, hi=50_000, provenance="assumption",
        source="no public number: futex wake-up of a sleeping thread on another core (glibc mutexes do not spin)",
        doc="a contended VMM lock handed over: the waiter's futex sleep ends this long after the release",
    )  # fmt: skip
    guest_poll: str = param(
        "poll", choices=("poll", "irq"), provenance="choice",
        source="qemu-10.2.0 smmuv3_init_regs sets neither IDR0.MSI nor IDR0.SEV: Linux's "
        "__arm_smmu_cmdq_poll_until_consumed, queue_poll spins then udelays, every CONS read traps",
        doc="how a trapped guest learns its CMD_SYNC completed: CONS polling (each read an exit) or a virtual interrupt",
    )  # fmt: skip
    guest_sync_wait: str = param(
        "poll", choices=("msi", "sev", "poll", "busy"), provenance="choice",
        source="tegra241-cmdqv.c + arm_smmu_cmdq_needs_busy_polling: CS=SIG_NONE on VCMDQs, so no MSI; the guest's "
        "vSMMU (qemu smmuv3_init_regs) has no IDR0.SEV, so queue_poll spins then udelays",
        doc="how a guest waits for a CMD_SYNC on its pass-through VCMDQ (CONS reads of the mapped page, no exit)",
    )  # fmt: skip
    guest_unmap_ns: float = param(
        2000.0, unit="ns", lo=0, hi=1e7, provenance="assumption",
        doc="guest CPU work of one dma_unmap outside the command queue (page tables, IOVA free)",
    )  # fmt: skip
    guest_map_ns: float = param(
        2000.0, unit="ns", lo=0, hi=1e7, provenance="assumption", doc="guest CPU work between unmaps (the dma_map)",
    )  # fmt: skip
    irq_latency_ns: float = param(
        5000.0, engine="irq_latency", unit="ns", lo=0, hi=1e7, provenance="assumption",
        doc="CMDQV error interrupt until its threaded handler runs (host)",
    )  # fmt: skip
    irq_handler_ns: float = param(
        2000.0, engine="irq_handler", unit="ns", lo=0, hi=1e7, provenance="assumption",
        doc="handler reading the VINTF/LVCMDQ error maps and the faulting entry",
    )  # fmt: skip
    irq_ack_ns: float = param(
        500.0, engine="irq_ack", unit="ns", lo=0, hi=1e7, provenance="assumption", doc="rewriting the entry and writing GERRORN",
    )  # fmt: skip
    guest_error_ns: float = param(
        10000.0, engine="guest_error", unit="ns", lo=0, hi=1e8, provenance="assumption",
        doc="forwarding a VCMDQ error to the guest: event to the VMM, virtual IRQ, guest ISR and recovery",
    )  # fmt: skip

    # ------------------------------------------------------------------ derived
    def costs(self) -> Costs:
        """The engine's cost vector: every field declared with ``engine=`` converted by its unit
        (and ``vmm_forward``, a choice, as the flag ``vmm_batched``)."""
        return Costs(
            **{
                info.engine: (
                    info.choices.index(getattr(self, name))  # a choice: its index (the engine's code)
                    if info.choices is not None
                    else to_engine(getattr(self, name), info.unit)
                )
                for name, (_, info) in self.field_infos().items()
                if info.engine is not None
            },
            vmm_batched=int(self.vmm_forward == "batched"),
        )

    def service_ns(self, opcode: int) -> float:
        """Mean service time of a command with ``opcode`` (after its fetch)."""
        op = Opcode(opcode)
        if op in TLBI_OPCODES:
            return self.tlbi_service_ns
        if op == Opcode.CMD_SYNC:
            return self.sync_service_ns
        if op in CFGI_OPCODES:
            return self.cfgi_service_ns
        if op == Opcode.CMD_ATC_INV:
            return self.atc_inv_service_ns
        return self.other_service_ns


@dataclass(frozen=True)
class Preset:
    """A platform preset file: values, their provenance, and calibration records."""

    name: str
    description: str
    values: dict[str, Any]
    provenance: dict[str, str]
    sources: dict[str, str]
    meta: dict[str, Any]


def preset_names() -> list[str]:
    """Names of the presets in ``data/params``."""
    return sorted(p.stem for p in PARAMS_DIR.glob("*.toml"))


#: Tables a preset file may have (others are calibration records, kept in ``Preset.meta``).
_TABLES = ("preset", "values", "provenance", "sources")


def is_preset_file(name: str) -> bool:
    """A ``platform`` value naming a file (ends in ``.toml`` or has a path separator), not a preset."""
    return name.endswith(".toml") or "/" in name or (os.sep != "/" and os.sep in name)


@lru_cache(maxsize=32)
def _read_preset(path: Path, mtime: float, label: str) -> Preset:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ParamError(f"{label}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ParamError(f"{label}: cannot read a preset: {e}") from None
    infos = Platform.field_infos()
    for table in _TABLES:
        if not isinstance(data.get(table, {}), dict):
            raise ParamError(f"{label}:{table}: must be a table ([{table}])")
    head = data.get("preset", {})
    values = data.get("values", {})
    for table in ("values", "provenance", "sources"):
        for key in data.get(table, {}):
            if key not in infos:
                hint = suggest(key, infos, see="cmdqv-lab params generic lists them")
                raise ParamError(f"{label}:{table}.{key}: unknown platform parameter; {hint}")
    for key, prov in data.get("provenance", {}).items():
        if prov not in PROVENANCES:
            raise ParamError(f"{label}:provenance.{key}: {prov!r} is not one of {', '.join(PROVENANCES)}")
    try:
        Platform.from_overrides({}, **values)
    except ParamError as e:
        key = str(e).split("=", 1)[0]
        where = f"values.{key}" if key in values else "values"
        raise ParamError(f"{label}:{where}: {e}") from None
    except TypeError as e:  # a value of a type TOML allows but the field does not
        raise ParamError(f"{label}:values: {e}") from None
    return Preset(
        name=head.get("name", path.stem),
        description=head.get("description", ""),
        values=values,
        provenance=data.get("provenance", {}),
        sources=data.get("sources", {}),
        meta={k: v for k, v in data.items() if k not in _TABLES},
    )


def read_preset(name: str) -> Preset:
    """Load preset ``name`` (built-in: ``data/params/<name>.toml``) or, if ``name`` ends in ``.toml``
    or has a path separator, the preset file at that path (relative to the current directory).

    A built-in name is a preset's bare name, never a path looked up relative to the presets
    directory: ``platform=../calibration/d06`` is a file path, refused unless that file exists and
    ends in ``.toml``. A preset file has the format of ``data/params/*.toml``: ``[preset]`` (name,
    description), ``[values]`` (platform parameters; the others keep their defaults), optional
    ``[provenance]`` and ``[sources]`` per parameter. Mistakes name the file and the key.
    """
    if is_preset_file(name):
        path = Path(name)
        if path.suffix != ".toml":  # not a preset name, and not a preset file: never a lookup in data/
            raise ParamError(f"platform={name!r} is not allowed: one of {', '.join(preset_names())}, "
                             "or a preset file FILE.toml")  # fmt: skip
        if not path.is_file():
            raise ParamError(f"platform={name!r}: no such preset file")
    else:
        if name not in preset_names():
            hint = suggest(name, preset_names())
            raise ParamError(f"platform={name!r} is not allowed: {hint}, or a preset file (.toml)")
        path = PARAMS_DIR / f"{name}.toml"
    label = name if is_preset_file(name) else str(path)
    path = path.resolve()
    return _read_preset(path, path.stat().st_mtime, label)


def load_platform(name: str, overrides: Mapping[str, Any] | None = None) -> Platform:
    """The platform preset ``name`` with ``overrides`` applied (strings are parsed)."""
    preset = read_preset(name)
    return Platform.from_overrides(overrides or {}, **preset.values)


def platform_table(name: str, platform: Platform | None = None) -> Any:
    """Parameter table of a preset: value, unit, allowed range, provenance and source of each field."""
    import polars as pl

    preset = read_preset(name)
    plat = platform or load_platform(name)
    base = plat.table()
    prov = [preset.provenance.get(n, p) for n, p in zip(base["name"], base["provenance"])]
    src = [preset.sources.get(n, s) for n, s in zip(base["name"], base["source"])]
    return base.with_columns(pl.Series("provenance", prov), pl.Series("source", src))


def field_info(name: str) -> ParamInfo:
    return Platform.field_infos()[name][1]
