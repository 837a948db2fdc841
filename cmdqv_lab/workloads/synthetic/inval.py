"""The invalidations Linux's arm-smmu-v3 driver issues for one unmap or one flush-queue flush.

Strict unmap of ``pages`` 4 KiB pages at ``iova`` (``arm_smmu_iotlb_sync`` ->
``arm_smmu_tlb_inv_range_domain`` -> ``__arm_smmu_tlb_inv_range``), batches of at most 64 commands
(``CMDQ_BATCH_ENTRIES``: a full batch is issued without a SYNC), the last ending with CMD_SYNC:

- without RIL: one CMD_TLBI_NH_VA per 4 KiB page (NUM = SCALE = TG = TTL = 0: Linux sets them only
  when the SMMU has ``ARM_SMMU_FEAT_RANGE_INV``);
- with RIL: ``num_pages`` is consumed 5 bits at a time from its lowest set bit: each command covers
  ``num << scale`` pages with ``scale = __ffs(num_pages)``, ``num = (num_pages >> scale) & 31`` and
  NUM field ``num - 1``; TG = 1 (4 KiB), TTL = 3 (leaf 4 KiB entries), LEAF = 1 (:func:`ril_ranges`);
- without RIL and at least ``max_tlbi_ops`` (CMDQ_MAX_TLBI_OPS = 512 with 4 KiB pages) TLBIs, one
  CMD_TLBI_NH_ASID instead (``size >= CMDQ_MAX_TLBI_OPS * PAGE_SIZE``, as the SVA invalidation path
  ``arm_smmu_mm_arch_invalidate_secondary_tlbs`` does; upstream's DMA unmap path has no such limit,
  set ``max_tlbi_ops`` high to model it). With RIL Linux never falls back.

Stage-2 domains (``stage = "s2"``, host only) use CMD_TLBI_S2_IPA with the domain's VMID and flush
with CMD_TLBI_S12_VMALL (``arm_smmu_tlb_inv_context``).

ATS (``ats``): ``arm_smmu_tlb_inv_range_domain`` first submits the TLBI batch (with its SYNC), then
``arm_smmu_atc_inv_domain`` builds a second batch: one CMD_ATC_INV per stream of each ATS-enabled
master (here one device per domain, so one), SSID 0 with SSV clear (``IOMMU_NO_PASID``), GLOBAL
clear, ADDR/SIZE the smallest aligned power-of-two span of 4 KiB pages covering the range
(``arm_smmu_atc_inv_to_cmd``), and its own CMD_SYNC. A whole-domain invalidation (flush-queue
flush, the max_tlbi_ops fallback) sends SIZE = 52 (``ATC_INV_SIZE_ALL``), ADDR 0.

>>> ril_ranges(33)
[(0, 0, 1), (0, 5, 32)]
>>> [r[2] for r in ril_ranges(0b11111_00001)]
[1, 992]
>>> atc_span(1), atc_span(2), atc_span(512)
(0, 1, 9)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cmdqv_lab.device.commands import ATC_INV_SIZE_ALL, TLBI_RANGE_NUM_MAX, Opcode
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import param
from cmdqv_lab.workloads.synthetic.common import Template, TopologyParams, Var

PAGE = 4096
#: CMDQ_BATCH_ENTRIES: commands a driver batch holds before it is issued (without a SYNC).
BATCH_ENTRIES = 64


@dataclass(frozen=True, kw_only=True)
class InvalParams(TopologyParams):
    """How unmaps are invalidated: strict or lazy, RIL, ATS, stage, flush-queue geometry."""

    mode: str = param(
        "strict", choices=("strict", "lazy"), provenance="choice",
        doc="strict: invalidate at every unmap; lazy: per-CPU flush queue (iommu.strict=0)",
    )  # fmt: skip
    ril: bool = param(False, provenance="choice", doc="SMMU has range invalidation (ARM_SMMU_FEAT_RANGE_INV)")
    ats: bool = param(
        False, provenance="choice", doc="devices have ATS enabled (ATC_INV batch after the TLBIs)"
    )
    stage: str = param(
        "s1", choices=("s1", "s2"), provenance="choice",
        doc="s1: TLBI_NH_VA / TLBI_NH_ASID; s2 (host only): TLBI_S2_IPA / TLBI_S12_VMALL",
    )  # fmt: skip
    max_tlbi_ops: int = param(
        512, unit="TLBIs", lo=1, hi=1 << 30, provenance="derived",
        source="Linux CMDQ_MAX_TLBI_OPS = 1 << (PAGE_SHIFT - 3)",
        doc="without RIL, this many TLBIs or more become one per-ASID/VMID invalidation",
    )  # fmt: skip
    fq_entries: int = param(
        256, unit="unmaps", lo=1, hi=1 << 20, provenance="derived",
        source="Linux dma-iommu IOVA_DEFAULT_FQ_SIZE 256 (a ring holding 255); VT-d historically 250",
        doc="lazy: unmaps per flush queue; the unmap that fills it flushes",
    )  # fmt: skip
    fq_timeout_ms: float = param(
        10.0, unit="ms", lo=0.001, hi=1e4, provenance="derived",
        source="Linux dma-iommu IOVA_DEFAULT_FQ_TIMEOUT 10 ms (VT-d historically 10 ms)",
        doc="lazy: flush timer",
    )  # fmt: skip
    fq_timer: str = param(
        "oldest", choices=("oldest", "linux"), provenance="choice",
        doc="oldest: flush when the oldest queued unmap is fq_timeout old; linux: one timer armed by the "
        "first unmap queued while it is off, which flushes when it fires even if the queue was flushed since",
    )  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage == "s2" and self.vms:
            raise ParamError("stage='s2' needs vms=0: a guest sees S2P=0 and issues no stage-2 invalidations")


def ril_ranges(pages: int) -> list[tuple[int, int, int]]:
    """``(NUM field, SCALE, pages covered)`` of each range TLBI for ``pages`` leaf 4 KiB pages."""
    out = []
    while pages:
        scale = (pages & -pages).bit_length() - 1
        num = (pages >> scale) & TLBI_RANGE_NUM_MAX
        out.append((num - 1, scale, num << scale))
        pages -= num << scale
    return out


def atc_span(pages: int) -> int:
    """ATC_INV SIZE for ``pages`` pages at an IOVA aligned to the next power of two (``fls(start ^ end)``)."""
    return (pages - 1).bit_length()


def iova_stride(pages: int) -> int:
    """IOVA spacing of buffers of ``pages`` pages: the size rounded up to a power of two, as
    ``iommu_dma_alloc_iova`` does (and its size-aligned allocation makes each IOVA aligned to it)."""
    return PAGE << atc_span(pages)


def flushes_asid(pages: int, p: Any) -> bool:
    """Whether Linux replaces the unmap's TLBIs by one per-ASID/VMID invalidation (no RIL and
    ``pages >= max_tlbi_ops``)."""
    return not p.ril and pages >= p.max_tlbi_ops


def tlbi_count(pages: int, p: Any) -> int:
    """Commands (excluding SYNC) of one strict unmap's TLBI batch."""
    if p.ril:
        return len(ril_ranges(pages))
    return 1 if flushes_asid(pages, p) else pages


def _domain_ids(p: Any) -> dict[str, Any]:
    return {"vmid": Var("vmid")} if p.stage == "s2" else {"vmid": Var("vmid"), "asid": Var("asid")}


def _whole(p: Any) -> tuple[int, dict[str, Any]]:
    if p.stage == "s2":
        return int(Opcode.CMD_TLBI_S12_VMALL), {"vmid": Var("vmid")}
    return int(Opcode.CMD_TLBI_NH_ASID), {"vmid": Var("vmid"), "asid": Var("asid")}


def _atc(span: int | None) -> tuple[int, dict[str, Any]]:
    if span is None:
        return int(Opcode.CMD_ATC_INV), {"sid": Var("sid"), "ssid": 0, "addr": 0, "size": ATC_INV_SIZE_ALL}
    return int(Opcode.CMD_ATC_INV), {"sid": Var("sid"), "ssid": 0, "addr": Var("iova"), "size": span}


def unmap_batches(
    pages: int, p: Any, batch: int = BATCH_ENTRIES
) -> list[tuple[list[tuple[int, dict[str, Any]]], bool]]:
    """Batches of one strict unmap of ``pages`` pages at variable ``iova`` (see module docstring);
    ``batch`` commands make a full batch (CMDQ_BATCH_ENTRIES, or atomic-add's ``max_cmd_per_batch``)."""
    ids = _domain_ids(p)
    va = int(Opcode.CMD_TLBI_S2_IPA if p.stage == "s2" else Opcode.CMD_TLBI_NH_VA)
    cmds: list[tuple[int, dict[str, Any]]]
    whole = flushes_asid(pages, p)
    if whole:
        cmds = [_whole(p)]
    elif p.ril:
        cmds, off = [], 0
        for num, scale, n in ril_ranges(pages):
            cmds.append((va, {**ids, "addr": Var("iova", off), "num": num, "scale": scale, "tg": 1, "ttl": 3,
                              "leaf": 1}))  # fmt: skip
            off += n * PAGE
    else:
        z = {"num": 0, "scale": 0, "tg": 0, "ttl": 0, "leaf": 1}
        cmds = [(va, {**ids, "addr": Var("iova", k * PAGE), **z}) for k in range(pages)]
    # arm_smmu_cmdq_batch_add: a full batch of CMDQ_BATCH_ENTRIES is issued without a SYNC; the
    # last one is submitted with it
    parts = [cmds[i : i + batch] for i in range(0, len(cmds), batch)] or [[]]
    batches = [(part, False) for part in parts[:-1]] + [(parts[-1], True)]
    if p.ats:
        batches.append(([_atc(None if whole else atc_span(pages))], True))
    return batches


def flush_batches(p: Any) -> list[tuple[list[tuple[int, dict[str, Any]]], bool]]:
    """Batches of one flush-queue flush (``arm_smmu_tlb_inv_context``).

    Per-ASID (stage 1) or per-VMID (stage 2) invalidation + SYNC; with ATS, ATC_INV of everything + SYNC.
    """
    batches = [([_whole(p)], True)]
    if p.ats:
        batches.append(([_atc(None)], True))
    return batches


def unmap_template(pages: int, p: Any, kind: str = "unmap", batch: int = BATCH_ENTRIES) -> Template:
    """One strict unmap as a :class:`Template` (variables ``iova``, ``vmid``, ``asid``, ``sid``)."""
    return Template.build([(kind, unmap_batches(pages, p, batch))])


def flush_template(p: Any) -> Template:
    """One flush op (kind ``flush``; the lazy driver marks timer flushes ``flush-timer``)."""
    return Template.build([("flush", flush_batches(p))])
