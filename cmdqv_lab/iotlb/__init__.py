"""The device side of invalidation: an SMMU IOTLB that DMA fills and invalidations empty.

:mod:`.model` is the TLB (per-ASID tagged entries, set-associative or fully associative LRU,
removal by address range or whole ASID); :mod:`.traffic` turns a timed unmap run of the timing
engine into DMA translations and invalidations and counts the misses, walk time and DMA throughput
they cost. The ``host-iotlb`` scenario (:mod:`cmdqv_lab.scenarios.iotlb`) joins the two: Q11, the
threshold (Linux ``CMDQ_MAX_TLBI_OPS``) beyond which one CMD_TLBI_NH_ASID replaces per-page
CMD_TLBI_NH_VA.
"""

from cmdqv_lab.iotlb.model import ACCESS, INV_ASID, INV_RANGE, Iotlb, IotlbParams, run_events

__all__ = ["ACCESS", "INV_ASID", "INV_RANGE", "Iotlb", "IotlbParams", "run_events"]
