"""Synthetic workload generators, registered in :mod:`cmdqv_lab.workloads.registry` on import.

================  ===============  ==========================================================
name              module           models
================  ===============  ==========================================================
``dma-map``       :mod:`.io`       ``dma_map_benchmark``: closed-loop map + unmap per thread
``fio``           :mod:`.io`       block I/O: completion-driven unmaps, open (IOPS) or closed
``netperf``       :mod:`.io`       network: Poisson packets per CPU, one unmap each
``config-churn``  :mod:`.churn`    attach/detach: CFGI_CD/STE, PREFETCH_CONFIG, TLBI_NH_ASID
``mixed``         :mod:`.mixed`    Q1/Q2: TLBI batches with commands a guest VCMDQ rejects,
                                   lone SYNC batches, unmatched SIDs
================  ===============  ==========================================================

Common conventions (VMs, CPUs, SIDs, seeds, chunks) are in :mod:`.common`; what an unmap or a
flush issues (strict / lazy, RIL, CMDQ_MAX_TLBI_OPS, ATS) in :mod:`.inval` and :mod:`.flushq`.
Every generator yields frames of :data:`~cmdqv_lab.workloads.stream.WORKLOAD_SCHEMA` lazily, at
most ``chunk`` ops each.
"""

from cmdqv_lab.workloads.synthetic import churn, io, mixed
from cmdqv_lab.workloads.synthetic.common import stream_ids, vm_sids

__all__ = ["churn", "io", "mixed", "stream_ids", "vm_sids"]
