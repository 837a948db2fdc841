"""Guest scenarios (Q1-Q8): ``guest-trap``, ``guest-vcmdq`` and ``guest-fixup``.

``vms`` VMs each run ``threads`` vCPUs of dma_map_benchmark (think ``guest_map_ns``, then an unmap
of ``granule_kib``: one CMD_TLBI_NH_VA per 4 KiB page, or one range TLBI with ``ril``, then a
CMD_SYNC). In a fraction ``unsupported_fraction`` of the unmaps the batch also carries a command a
guest-owned VCMDQ rejects (CMD_CFGI_CD for the VM's device). All VMs share the SMMU's command
processors and the host main CMDQ (queue 0).

``guest-trap``   every batch goes the trapped way (the emulated vSMMU; :mod:`cmdqv_lab.virt.paths`).
``guest-vcmdq``  pass-through VCMDQs (``vcmdqs_per_vm`` per VM, vCPU ``v`` uses ``v % vcmdqs_per_vm``);
                 ``policy`` routes each batch (:mod:`cmdqv_lab.driver.routing`); an unsupported
                 command that reaches a VCMDQ raises ILL and the error goes to the guest.
``guest-fixup``  the vSMMU main queue is a hardware VCMDQ: everything goes there; an ILL raises the
                 host's CMDQV interrupt, whose single threaded handler emulates the command on the
                 host main CMDQ, rewrites the entry and resumes the queue: the guest never sees it.

Metrics add ``exits``, ``guest_irqs``, ``illegal_commands``, ``fixups`` and ``fixup_latency_ns``;
``op_latency_ns`` is the unmap latency dma_map_benchmark reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.driver.routing import GUEST_ACCEPTED, POLICIES, route_frame
from cmdqv_lab.engine.runner import EngineConfig, QueueSpec
from cmdqv_lab.engine.stream import OpBlock
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.scenarios.streams import split_quota
from cmdqv_lab.virt.paths import VcpuRoute, stream_blocks
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA

TLBI = int(Opcode.CMD_TLBI_NH_VA)
SYNC = int(Opcode.CMD_SYNC)
CFGI_CD = int(Opcode.CMD_CFGI_CD)
SUBMITS = ("linux-lockfree", "atomic-add", "spinlock", "exclusive")
BATCH_ENTRIES = 64  # CMDQ_BATCH_ENTRIES


@dataclass(frozen=True, kw_only=True)
class GuestParams(Params):
    platform: str = param("grace", provenance="choice", doc="platform preset in data/params")
    vms: int = param(1, unit="VMs", lo=1, hi=63, provenance="choice", doc="guests sharing the SMMU")
    threads: int = param(1, unit="vCPUs", lo=1, hi=256, provenance="choice", doc="benchmark threads per VM")
    granule_kib: int = param(4, unit="KiB", lo=4, hi=2048, provenance="choice", doc="bytes per unmap")
    ril: bool = param(
        False, provenance="choice", doc="range TLBI (one per unmap) instead of one per 4 KiB page"
    )
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


def _unmap_frames(seed: int, vm: int, cpu: int, n_ops: int, p: GuestParams, plat: Platform,
                  chunk: int = 1024) -> Iterator[pl.DataFrame]:  # fmt: skip
    """One vCPU's unmaps as workload frames (vectorised)."""
    pages = max(1, p.granule_kib // 4)
    k = 1 if p.ril or pages > 512 else pages
    g_gap = rng_stream(seed, "guest", "think", vm, cpu)
    g_mix = rng_stream(seed, "guest", "mix", vm, cpu)
    done = 0
    while done < n_ops:
        m = min(chunk, n_ops - done)
        think = np.rint((0.5 + g_gap.random(m)) * plat.guest_map_ns * 1000).astype(np.int64)
        mixed = g_mix.random(m) < p.unsupported_fraction
        per = k + 1 + mixed.astype(np.int64)
        starts = np.r_[0, np.cumsum(per)[:-1]]
        op = np.repeat(np.arange(done, done + m, dtype=np.int64), per)
        pos = np.arange(int(per.sum())) - np.repeat(starts, per)
        n_of = np.repeat(per, per)
        mix_row = np.repeat(mixed, per) & (pos == min(1, k))
        opcode = np.where(pos == n_of - 1, SYNC, np.where(mix_row, CFGI_CD, TLBI)).astype(np.uint8)
        is_tlbi = opcode == TLBI
        page = pos - (np.repeat(mixed, per) & (pos > min(1, k))).astype(
            np.int64
        )  # the TLBI's page within the unmap
        # arm_smmu_cmdq_batch_add: every CMDQ_BATCH_ENTRIES (64) commands are issued without a SYNC;
        # the last batch carries it
        sub = np.minimum(page, k - 1) // BATCH_ENTRIES
        last_sub = np.repeat((k - 1) // BATCH_ENTRIES, op.size)
        df = pl.DataFrame(
            {
                "cpu": np.full(op.size, cpu, np.int32),
                "vm": np.full(op.size, vm, np.int32),
                "op": op,
                "batch": op * 16 + sub,
                "t_ps": np.repeat(think, per),
                "sync": sub == last_sub,
                "kind": np.where(np.repeat(mixed, per), "mixed", "unmap"),
                "opcode": opcode,
                "tlbi": is_tlbi,
                "cfgi": opcode == CFGI_CD,
                "page": page,
            }
        )
        yield df.select(
            "cpu", "vm", "op", "batch", "t_ps", "sync", "kind", "opcode",
            pl.when("tlbi").then(pl.lit(vm + 1)).alias("vmid"),
            pl.when("tlbi").then(pl.lit(1)).alias("asid"),
            pl.when("cfgi").then(pl.lit(0x100 * (vm + 1))).alias("sid"),
            pl.when("cfgi").then(pl.lit(0)).alias("ssid"),
            pl.when("tlbi").then(pl.lit(0x4000_0000, pl.UInt64) + pl.col("page").cast(pl.UInt64) * 4096).alias("addr"),
            pl.when("tlbi").then(pl.lit(0)).alias("num"),
            pl.when("tlbi").then(pl.lit(0)).alias("scale"),
            pl.when("tlbi").then(pl.lit(1)).alias("tg"),
            pl.when("tlbi").then(pl.lit(3)).alias("ttl"),
            pl.when("tlbi").then(pl.lit(True)).otherwise(pl.when("cfgi").then(pl.lit(True))).alias("leaf"),
            pl.lit(None).alias("size"),
            pl.lit(None).alias("range"),
        ).cast(WORKLOAD_SCHEMA)  # type: ignore[arg-type]  # fmt: skip
        done += m


def _build_guest(mode: str):  # returns the scenario's builder
    def build(
        p: GuestParams, plat: Platform | None, seed: int, n_ops: int
    ) -> tuple[EngineConfig, list[Iterator[OpBlock]]]:
        assert plat is not None
        policy = {"trap": "all-trap", "vcmdq": p.policy, "fixup": "all-vcmdq"}[mode]
        err = {"trap": "none", "vcmdq": "guest", "fixup": "fixup"}[mode]
        vq = 0 if mode == "trap" else p.vcmdqs_per_vm
        procs = min(plat.smmu_parallel, 1 + p.vms * vq)
        queues = [QueueSpec(plat.cmdq_log2size, "linux-lockfree", plat.sync_wait, 0)] + [
            QueueSpec(plat.vcmdq_log2size, p.vcmdq_submit, plat.vcmdq_sync_wait, i % procs, err)
            for i in range(1, 1 + p.vms * vq)
        ]
        n_vcpu = p.vms * p.threads
        quotas = split_quota(n_ops, n_vcpu)
        streams: list[Iterator[OpBlock]] = []
        for vm in range(p.vms):
            for t in range(p.threads):
                c = vm * p.threads + t
                route = VcpuRoute(
                    vcmdq=1 + vm * vq + t % vq if vq else -1, host_queue=0, lock=vm if plat.vmm_lock else -1
                )
                frames = (
                    route_frame(f, policy, accepted=GUEST_ACCEPTED, sids={vm: [0x100 * (vm + 1)]})
                    for f in _unmap_frames(seed, vm, t, quotas[c], p, plat)
                )
                streams.append(
                    stream_blocks(frames, route, plat, rng_stream(seed, "guest", "service", vm, t))
                )
        irq = err != "none"
        if irq:
            streams.append(iter(()))
        cfg = EngineConfig(
            queues=tuple(queues),
            n_cpus=n_vcpu + int(irq),
            quotas=tuple(quotas + ([0] if irq else [])),
            costs=plat.costs(),
            n_procs=procs,
            n_locks=p.vms if plat.vmm_lock else 0,
            irq_cpu=n_vcpu if irq else -1,
            fixup_queue=0,
            ring_batches=8192,
            ring_cmds=32768,
        )
        return cfg, streams

    return build


for _mode, _doc in (
    ("trap", "guest-trap: trap-and-emulate vSMMU, every PROD write and CONS poll exits to the VMM"),
    ("vcmdq", "guest-vcmdq: pass-through VCMDQs; a routing policy sends what they reject the trapped way"),
    ("fixup", "guest-fixup: the vSMMU main queue is a VCMDQ; ILL is fixed up by the host IRQ thread (Q6)"),
):
    register(
        Scenario(
            name=f"guest-{_mode}",
            doc=_doc,
            params=GuestParams,
            build=_build_guest(_mode),
            default_count=20_000,
        )
    )
