"""``config-churn``: devices attached to and detached from DMA domains in a loop (VFIO-style).

What Linux 6.10+ issues (``arm_smmu_attach_dev``, ``arm_smmu_attach_dev_ste``, the hitless entry
writer ``arm_smmu_write_entry``, whose every step is followed by a sync of the entry):

attach (kind ``attach``)
    stage 1: ``cd_writes`` x [CMD_CFGI_CD (SID, SSID 0, LEAF) + SYNC] (``arm_smmu_write_cd_entry`` ->
    ``arm_smmu_sync_cd``); then ``ste_writes`` x [CMD_CFGI_STE (SID, LEAF) + SYNC]
    (``arm_smmu_write_ste`` -> ``arm_smmu_sync_ste_for_sid``); then [CMD_PREFETCH_CONFIG (SID)]
    without SYNC (``arm_smmu_write_ste`` unless ``ARM_SMMU_OPT_SKIP_PREFETCH``); with ATS,
    [CMD_ATC_INV (SID, SIZE=52) + SYNC] (``arm_smmu_enable_ats`` flushes the ATC before enabling).
detach (kind ``detach``)
    ``ste_writes`` x [CMD_CFGI_STE + SYNC] and [CMD_PREFETCH_CONFIG] (the STE becomes abort/bypass);
    with ATS [CMD_ATC_INV SIZE=52 + SYNC] (``arm_smmu_disable_ats``); stage 1: [CMD_CFGI_CD + SYNC]
    (``arm_smmu_clear_cd``; CMD_CFGI_CD_ALL if ``cd_all``, as a guest may send through the vSMMU);
    with ``free_domain``, the domain is freed: ``free_io_pgtable_ops`` -> ``arm_smmu_tlb_inv_context``
    -> [CMD_TLBI_NH_ASID (VMID, ASID) + SYNC] (stage 2: CMD_TLBI_S12_VMALL).

The number of entry-writer steps depends on which qwords change (1 to 3); from an abort STE to a
stage-1 STE, or from an invalid CD to a valid one, it is 2 (unused bits, then the critical qword):
``ste_writes`` / ``cd_writes``. One device per domain; stream ``(vm, cpu)``'s cycle ``c`` uses device
``(cpu + c * threads) % sids_per_vm``. Closed loop: an attach follows ``Exp(idle)`` after the
previous detach, a detach ``Exp(hold_us)`` after its attach, ``idle = 1 / rate_hz - hold_us``.

>>> from cmdqv_lab.workloads.registry import generate
>>> import polars as pl
>>> df = pl.concat(list(generate("config-churn", {"cycles": 1}).streams[0]))
>>> df.group_by("kind", maintain_order=True).agg(pl.col("batch").n_unique(), pl.len()).rows()
[('attach', 5, 9), ('detach', 5, 9)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cmdqv_lab.device.commands import ATC_INV_SIZE_ALL, Opcode
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import param
from cmdqv_lab.workloads.registry import WorkloadSpec, register
from cmdqv_lab.workloads.stream import Chunk, Workload
from cmdqv_lab.workloads.synthetic.common import (
    Template,
    TopologyParams,
    Var,
    exp_ps,
    quotas,
    rng,
    sid_of,
    stream_ids,
    vmid_of,
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ChurnParams(TopologyParams):
    """Attach/detach cycles per thread."""

    cycles: int = param(
        1000, unit="cycles", lo=1, hi=10**11, provenance="choice", doc="attach+detach cycles in total"
    )
    rate_hz: float = param(
        1000.0, unit="cycles/s", lo=1e-3, hi=1e8, provenance="assumption", doc="cycles per second per thread"
    )
    hold_us: float = param(200.0, unit="us", lo=0, hi=1e9, provenance="assumption", doc="mean time attached")
    ste_writes: int = param(
        2, unit="syncs", lo=1, hi=3, provenance="derived", source="Linux arm_smmu_write_entry (1 to 3 steps)",
        doc="CFGI_STE + SYNC rounds per STE update",
    )  # fmt: skip
    cd_writes: int = param(
        2, unit="syncs", lo=1, hi=3, provenance="derived", source="Linux arm_smmu_write_entry (1 to 3 steps)",
        doc="CFGI_CD + SYNC rounds when a CD is installed",
    )  # fmt: skip
    stage: str = param(
        "s1", choices=("s1", "s2"), provenance="choice", doc="s2 (host only): no CD, S12_VMALL"
    )
    ats: bool = param(False, provenance="choice", doc="ATS enabled on attach, disabled on detach")
    prefetch: bool = param(
        True, provenance="choice", doc="PREFETCH_CONFIG after STE writes (no SKIP_PREFETCH)"
    )
    cd_all: bool = param(False, provenance="choice", doc="detach clears the CD with CFGI_CD_ALL")
    free_domain: bool = param(True, provenance="choice", doc="the domain is freed after detach (TLBI)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hold_us >= 1e6 / self.rate_hz:
            raise ParamError(
                f"hold_us={self.hold_us:g} must be below the cycle period 1/rate_hz"
                f" = {1e6 / self.rate_hz:g} us"
            )
        if self.stage == "s2" and self.vms:
            raise ParamError("stage='s2' needs vms=0: a guest sees S2P=0 and has no stage-2 domains")


def churn_template(p: ChurnParams) -> Template:
    """The attach op and the detach op of one cycle (variables ``sid``, ``asid``, ``vmid``)."""
    sid: dict[str, Any] = {"sid": Var("sid")}
    s1 = p.stage == "s1"
    cd = [([(int(Opcode.CMD_CFGI_CD), {**sid, "ssid": 0, "leaf": 1})], True)] * p.cd_writes
    ste = [([(int(Opcode.CMD_CFGI_STE), {**sid, "leaf": 1})], True)] * p.ste_writes
    pre = [([(int(Opcode.CMD_PREFETCH_CONFIG), sid)], False)] if p.prefetch else []
    atc = (
        [([(int(Opcode.CMD_ATC_INV), {**sid, "ssid": 0, "addr": 0, "size": ATC_INV_SIZE_ALL})], True)]
        if p.ats
        else []
    )
    if p.cd_all:
        clear = [([(int(Opcode.CMD_CFGI_CD_ALL), sid)], True)]
    else:
        clear = [([(int(Opcode.CMD_CFGI_CD), {**sid, "ssid": 0, "leaf": 1})], True)]
    if s1:
        free = [([(int(Opcode.CMD_TLBI_NH_ASID), {"vmid": Var("vmid"), "asid": Var("asid")})], True)]
    else:
        free = [([(int(Opcode.CMD_TLBI_S12_VMALL), {"vmid": Var("vmid")})], True)]
    attach = (cd if s1 else []) + ste + pre + atc
    detach = ste + pre + atc + (clear if s1 else []) + (free if p.free_domain else [])
    return Template.build([("attach", attach), ("detach", detach)])


def _churn(p: ChurnParams, seed: int) -> Workload:
    ids = stream_ids(p)
    tmpl = churn_template(p)
    idle_ps = (1e6 / p.rate_hz - p.hold_us) * 1e6

    def cpu_stream(vm: int, cpu: int, n: int) -> Iterator[Chunk]:
        g_idle, g_hold = (
            rng(seed, "config-churn", "idle", vm, cpu),
            rng(seed, "config-churn", "hold", vm, cpu),
        )
        done = 0
        per = max(1, p.chunk // 2)
        while done < n:
            m = min(per, n - done)
            k = (cpu + (done + np.arange(m, dtype=np.int64)) * p.threads) % p.sids_per_vm
            vmid: Any = p.vmid_base + k if p.stage == "s2" else vmid_of(p, vm)
            rows = tmpl.expand(m, {"sid": sid_of(p, vm, k), "asid": p.asid_base + k, "vmid": vmid})
            t = np.column_stack([exp_ps(g_idle, m, idle_ps), exp_ps(g_hold, m, p.hold_us * 1e6)]).reshape(-1)
            yield Chunk(rows, cpu, vm, 2 * done, done * tmpl.n_batches, t)
            done += m

    return Workload(
        name="config-churn",
        cpus=tuple(ids),
        chunks=tuple(cpu_stream(vm, c, q) for (vm, c), q in zip(ids, quotas(p.cycles, len(ids)))),
        open_loop=False,
        params=p.to_dict(),
        independent=True,  # each CPU's own generators
    )


register(
    WorkloadSpec(
        "config-churn",
        "attach/detach cycles: CFGI_CD/STE + SYNC, PREFETCH_CONFIG, TLBI on free",
        ChurnParams,
        _churn,
    )
)
