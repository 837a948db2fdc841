"""The trapped guest path (cmdqv_lab/engine/vmm.py): hand-computed timelines of tiny cases.

Every time below is in ns and follows the engine's rules step by step; cache lines cost nothing so
that only the mechanisms under test show. Queue 0 is the host main CMDQ (MSI-polled CMD_SYNC),
queue 1 the VM's emulated vSMMU CMDQ; CPUs 0..V-1 are vCPUs, V.. their VMM threads.
"""

from __future__ import annotations

import numpy as np
import pytest

from cmdqv_lab.engine.costs import Costs
from cmdqv_lab.engine.runner import EngineConfig, QueueSpec, run_engine
from cmdqv_lab.engine.stream import OpBlock
from cmdqv_lab.errors import ParamError
from tests.reference.simpy_model import run_reference

TLBI, SYNC = 0x12, 0x46
NS = 1000  # ps


def costs(**over: int) -> Costs:
    base = dict(
        line_local=0, line_xfer=0, cmd_write=10 * NS, mmio_write=100 * NS, mmio_read=200 * NS, spin=0,
        msi=50 * NS, fetch=20 * NS, fetch_line=1, sync_svc=40 * NS, udelay=1000 * NS, poll_spins=10,
        trap=2000 * NS, vmm_trap=5000 * NS, vmm_read=300 * NS, vmm_per_cmd=1000 * NS, vmm_ioctl=700 * NS,
        vmm_chunk=63, futex_wake=4000 * NS, virq=2000 * NS,
    )  # fmt: skip
    return Costs(**{**base, **over})


def run(
    vcpus: int, tlbis: int, *, lock: bool = True, wait: str = "poll", **over: int
) -> tuple[list[float], dict]:  # type: ignore[type-arg]
    """Each vCPU issues one unmap (``tlbis`` CMD_TLBI_NH_VA (300 ns each) + CMD_SYNC) at t = 0 on the
    emulated queue; returns each vCPU's op latency (ns) and the metrics, after checking the SimPy
    reference gives the same op times."""
    queues = (QueueSpec(16, "linux-lockfree", "msi", 0), QueueSpec(10, "linux-lockfree", wait, 0, vmm=True,
                                                                  bql=0 if lock else -1))  # fmt: skip
    blocks = [[OpBlock.uniform(n_ops=1, t=np.zeros(1), opcodes=[TLBI] * tlbis + [SYNC],
                               svc=[300 * NS] * tlbis + [40 * NS], sync=True, queue=1)] for _ in range(vcpus)]  # fmt: skip
    blocks += [[] for _ in range(vcpus)]
    cfg = EngineConfig(queues=queues, n_cpus=2 * vcpus, quotas=tuple([1] * vcpus + [0] * vcpus),
                       costs=costs(**over), record=True, n_locks=1,
                       vmm_threads=tuple((v, vcpus + v) for v in range(vcpus)))  # fmt: skip
    res = run_engine(cfg, [iter(b) for b in blocks])
    ref = run_reference(cfg, blocks)
    assert res.ops is not None
    lat = res.ops.sort("cpu")["latency_ps"].to_list()
    assert lat == [r["complete_ps"] - r["ready_ps"] for r in sorted(ref.op_records, key=lambda r: r["cpu"])]
    return [x / NS for x in lat], res.metrics()


def test_one_vcpu_prod_exit_forwards_then_a_cons_read_exit() -> None:
    # write 2 entries 20; PROD write exits (1000) -> 1020; VMM thread: BQL free, vmm_trap 5000 -> 6020;
    # forward the TLBI: ioctl 700 + per-command 1000 -> 7720, host batch TLBI+SYNC (write 20, doorbell
    # 100, fetch+TLBI 320, fetch+SYNC 60, MSI 50 = 550) -> 8270; CONS = PROD, unlock, back 1000 -> 9270.
    # poll_until_consumed: llq.cons is stale; queue_poll (cpu_relax, 0), CONS read exits 1000 -> 10270,
    # smmu_readl 300 -> 10570, back 1000 -> 11570: CONS passed the SYNC.
    lat, m = run(1, 1)
    assert lat == [11570]
    assert m["exits"] == 2 and m["guest_irqs"] == 0


def test_two_vcpus_contend_on_the_bql_and_a_cons_read_waits_behind_a_prod_emulation() -> None:
    # t=0: vCPU0 reserves slots 0-1 (owner), vCPU1 loses one cmpxchg then reserves 2-3; both write by 20.
    # vCPU0 gathers up to 4, waits for vCPU1's valid bits (set at 20), PROD write exits -> 1020.
    # vCPU1 (not owner) polls: CONS read exits -> 1020. At 1020 vCPU0's VMM thread takes the BQL;
    # vCPU1's thread sleeps on it. PROD emulation: 5000 -> 6020, two forwards of 1700 + 550 -> 10520,
    # unlock: handed to vCPU1's thread with a futex wake-up 4000 -> 14520; vCPU0 back at 11520.
    # vCPU1's read: 300 -> 14820 (CONS = 4), unlock handed to vCPU0's thread (it queued at 12520:
    # vCPU0's own CONS read, exit 11520 -> 12520) at 14820 + 4000 = 18820; vCPU1 back at 15820.
    # vCPU0's read: 300 -> 19120, back 1000 -> 20120.
    lat, m = run(2, 1)
    assert lat == [20120, 15820]
    assert m["exits"] == 3
    # without the BQL the reader does not wait: it polls with CONS reads of 1000 + 400 + 1000 from 20;
    # the reads see CONS at 1420, 3820, 6220, 8620 (0) and 11020 (4, set at 10520): back at 12020
    lat_nolock, m_nolock = run(2, 1, lock=False, vmm_read=400 * NS)
    assert lat_nolock[1] == 12020 and m_nolock["exits"] == 2 + 5


def test_futex_wake_is_paid_only_by_a_contended_acquisition() -> None:
    one, _ = run(1, 1, futex_wake=50_000 * NS)
    assert one == [11570]  # never contended
    # without it vCPU1's read gets the BQL at 10520 (-> 10820, back 11820) and vCPU0's read, trapped
    # at 12520, finds the BQL free (-> 12820, back 13820)
    two, _ = run(2, 1, futex_wake=0)
    assert two == [13820, 11820]


def test_per_command_vs_batched_forwarding() -> None:
    # 4 TLBIs + SYNC: write 50, PROD exit -> 1050, vmm_trap -> 6050.
    # per-command: 4 x (ioctl 700 + 1000 + host 550) = 9000 -> 15050; back 16050; CONS read exit 17050,
    #   300 -> 17350, back -> 18350.
    per_cmd, _ = run(1, 4)
    assert per_cmd == [18350]
    # batched: one ioctl 700 + 4 x 1000 -> 10750; one host batch of 4 TLBIs + SYNC (write 50, doorbell
    #   100, 4 x 320, 60, MSI 50 = 1540) -> 12290; back 13290; CONS read 14290 + 300, back -> 15590.
    batched, _ = run(1, 4, vmm_batched=1)
    assert batched == [15590]
    # in chunks of 2 (+ SYNC each, as arm_vsmmu_cache_invalidate issues CMDQ_BATCH_ENTRIES - 1):
    #   two host batches of write 30 + 100 + 640 + 60 + 50 = 880 -> 10750 + 1760 = 12510 -> 15810.
    chunked, _ = run(1, 4, vmm_batched=1, vmm_chunk=2)
    assert chunked == [15810]


def test_virtual_irq_variant_replaces_the_cons_reads() -> None:
    # guest_poll=irq: the PROD emulation completes the SYNC at 8270; back at 9270; the vIRQ is observed
    # at max(9270, 8270) + 2000 = 11270 with no CONS read exit
    lat, m = run(1, 1, wait="virq")
    assert lat == [11270]
    assert m["exits"] == 1 and m["guest_irqs"] == 1


def test_emulated_queue_needs_vmm_threads_and_a_lock_free_driver() -> None:
    with pytest.raises(ParamError, match="VMM threads"):
        EngineConfig(queues=(QueueSpec(7), QueueSpec(7, vmm=True, wait="poll")), n_cpus=1, quotas=(1,))
    with pytest.raises(ParamError, match="lock-free"):
        EngineConfig(queues=(QueueSpec(7), QueueSpec(7, "spinlock", "poll", vmm=True)), n_cpus=2, quotas=(1, 0),
                     vmm_threads=((0, 1),))  # fmt: skip
