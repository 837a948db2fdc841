"""I/O workloads that unmap DMA buffers: ``dma-map``, ``fio`` and ``netperf``.

Each op is one ``dma_unmap_*`` of a buffer (``iommu_dma_unmap_page`` / ``iommu_dma_unmap_sg`` ->
``__iommu_dma_unmap``): strict mode invalidates it at once, lazy mode queues it in the CPU's flush
queue (:mod:`~cmdqv_lab.workloads.synthetic.flushq`); the commands are those of
:mod:`~cmdqv_lab.workloads.synthetic.inval`. Mapping issues no command (SMMUv3 caches no invalid
entries), so only its CPU time appears, inside the think gap.

Lazy mode emits only the flush ops. Closed loop: a flush op's ``t_ps`` is the stream clock since
the previous flush op, so it holds the CPU time of the unmaps that queued without flushing (the
stream's total time is unchanged). Open loop: flush ops carry their own times (the arrival of the
unmap that filled the queue, or the timer's expiry).

Buffers: stream ``(vm, cpu)`` cycles through ``slots`` IOVAs spaced by the buffer size rounded up
to a power of two (size-aligned IOVA allocation), from ``IOVA_BASE + cpu * region``; it unmaps for
device ``cpu % sids_per_vm`` (its SID, and its domain's ASID; stage 2: VMID ``vmid_base + k``).

``dma-map``  ``dma_map_benchmark`` (kernel/dma/map_benchmark.c): each thread maps and unmaps
             ``granule_kib`` in a closed loop; ``think_ns`` is the map + unmap CPU work.
``fio``      block I/O with ``threads`` jobs (alias ``jobs``), ``iodepth`` buffers in flight per job
             and ``bs_kib`` blocks; each completion unmaps its buffer. Open loop: completions arrive
             as a Poisson process at ``iops / threads`` per job (the device's IOPS shared by the
             VM's jobs); closed loop: a CPU-bound job spends ``cpu_ns`` per I/O.
``netperf``  ``pps`` packets per second per CPU (Poisson), each buffer of ``pkt_bytes`` unmapped once
             (a ``ring`` of buffers per CPU).

>>> from cmdqv_lab.workloads.registry import generate
>>> import polars as pl
>>> w = generate("fio", {"jobs": 2, "ops": 4, "bs_kib": 8}, seed=0)
>>> df = pl.concat([pl.concat(list(s)) for s in w.streams])
>>> w.open_loop, df.height, df["opcode"].value_counts().sort("opcode")["count"].to_list()
(True, 12, [8, 4])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np

from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import param
from cmdqv_lab.workloads.registry import WorkloadSpec, register
from cmdqv_lab.workloads.stream import Chunk, Workload
from cmdqv_lab.workloads.synthetic.common import exp_ps, quotas, rng, sid_of, stream_ids, think_ps, vmid_of
from cmdqv_lab.workloads.synthetic.flushq import FlushQueue
from cmdqv_lab.workloads.synthetic.inval import (
    BATCH_ENTRIES,
    PAGE,
    InvalParams,
    flush_template,
    iova_stride,
    unmap_template,
)

IOVA_BASE = 1 << 32
#: Unmaps scanned per step in lazy mode (frames still hold at most ``chunk`` ops).
LAZY_BLOCK = 1 << 16

GapFn = Callable[[np.random.Generator, int], np.ndarray]


def _region(p: Any, pages: int, slots: int) -> int:
    need = slots * iova_stride(pages)
    region = max(1 << 32, 1 << (need - 1).bit_length())
    if IOVA_BASE + p.threads * region > 1 << 48:
        raise ParamError(
            f"threads={p.threads} x {slots} buffers of {pages * 4} KiB do not fit a 48-bit IOVA space"
        )
    return region


def unmap_workload(
    name: str,
    p: Any,
    seed: int,
    *,
    pages: int,
    slots: int,
    open_loop: bool,
    gap: GapFn,
    batch: int = BATCH_ENTRIES,
) -> Workload:
    """The unmap streams of ``p.ops`` unmaps of ``pages`` pages (see module docstring); ``batch``:
    commands in a full driver batch (see :func:`~cmdqv_lab.workloads.synthetic.inval.unmap_batches`)."""
    ids = stream_ids(p)
    region = _region(p, pages, slots)
    stride = iova_stride(pages)
    tmpl = unmap_template(pages, p, batch=batch) if p.mode == "strict" else flush_template(p)

    def ids_of(vm: int, cpu: int) -> dict[str, int]:
        k = cpu % p.sids_per_vm
        vmid = p.vmid_base + k if p.stage == "s2" else vmid_of(p, vm)
        return {"vmid": vmid, "asid": p.asid_base + k, "sid": int(sid_of(p, vm, k))}

    def strict(vm: int, cpu: int, n: int) -> Iterator[Chunk]:
        g, var = rng(seed, name, "gap", vm, cpu), ids_of(vm, cpu)
        done, clock = 0, 0
        while done < n:
            m = min(p.chunk, n - done)
            gaps = gap(g, m)
            if open_loop:
                t = clock + np.cumsum(gaps)
                clock = int(t[-1])
            else:
                t = gaps
            iova = IOVA_BASE + cpu * region + ((done + np.arange(m, dtype=np.int64)) % slots) * stride
            rows = tmpl.expand(m, {**var, "iova": iova.astype(np.uint64)})
            yield Chunk(rows, cpu, vm, done * tmpl.n_ops, done * tmpl.n_batches, t)
            done += m

    def lazy(vm: int, cpu: int, n: int) -> Iterator[Chunk]:
        g, var = rng(seed, name, "gap", vm, cpu), ids_of(vm, cpu)
        fq = FlushQueue(
            entries=p.fq_entries, timeout_ps=round(p.fq_timeout_ms * 1e9), linux=p.fq_timer == "linux"
        )
        done = clock = last = emitted = 0
        while done < n:
            m = min(LAZY_BLOCK, n - done)
            t = clock + np.cumsum(gap(g, m))
            clock = int(t[-1])
            done += m
            when, _, timer = fq.feed(t, final=done == n)
            t_ps = when if open_loop else np.diff(when, prepend=last)
            if when.size:
                last = int(when[-1])
            for a in range(0, when.size, p.chunk):
                b = min(a + p.chunk, when.size)
                rows = tmpl.expand(b - a, var)
                rows = dataclasses.replace(
                    rows, kind=timer[a:b].astype(np.int8)[rows.op], kinds=("flush", "flush-timer")
                )
                yield Chunk(rows, cpu, vm, emitted, emitted * tmpl.n_batches, t_ps[a:b])
                emitted += b - a

    make = strict if p.mode == "strict" else lazy
    per = quotas(p.ops, len(ids))
    return Workload(
        name=name,
        cpus=tuple(ids),
        chunks=tuple(make(vm, c, q) for (vm, c), q in zip(ids, per)),
        open_loop=open_loop,
        params=p.to_dict(),
        ops=tuple(q * tmpl.n_ops for q in per) if p.mode == "strict" else None,
        independent=True,  # each CPU's own gap generator and FlushQueue
    )


# ----------------------------------------------------------------------------- dma-map


@dataclass(frozen=True, kw_only=True)
class DmaMapParams(InvalParams):
    """dma_map_benchmark: closed-loop map + unmap of ``granule_kib`` per thread."""

    granule_kib: int = param(
        4, unit="KiB", lo=4, hi=1 << 20, provenance="choice", doc="bytes mapped and unmapped per op (x 4 KiB)"
    )
    ops: int = param(
        10_000, unit="ops", lo=1, hi=10**12, provenance="choice", doc="unmaps in total (split over streams)"
    )
    think_ns: float = param(
        1500.0, unit="ns", lo=0, hi=1e9, provenance="assumption", doc="map + unmap CPU work per op"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.granule_kib % 4:
            raise ParamError(f"granule_kib={self.granule_kib} is not a multiple of 4 KiB pages")


def _dma_map(p: DmaMapParams, seed: int) -> Workload:
    return unmap_workload("dma-map", p, seed, pages=p.granule_kib // 4, slots=1, open_loop=False,
                          gap=lambda g, m: think_ps(g, m, p.think_ns))  # fmt: skip


# ----------------------------------------------------------------------------- fio


@dataclass(frozen=True, kw_only=True)
class FioParams(InvalParams):
    """fio-like block I/O: jobs x iodepth buffers of bs_kib, one unmap per completion."""

    EXTRA_KEYS: ClassVar[tuple[str, ...]] = ("jobs",)

    bs_kib: int = param(4, unit="KiB", lo=4, hi=1 << 20, provenance="choice", doc="block size (x 4 KiB)")
    iodepth: int = param(
        32, unit="I/Os", lo=1, hi=65536, provenance="choice", doc="I/Os in flight per job (IOVA buffers)"
    )
    loop: str = param(
        "open", choices=("open", "closed"), provenance="choice",
        doc="open: Poisson completions at iops/threads per job; closed: CPU-bound, cpu_ns per I/O",
    )  # fmt: skip
    iops: float = param(
        1e6, unit="IOPS", lo=1, hi=1e10, provenance="assumption",
        doc="device completions per second, shared by the VM's (or host's) jobs",
    )  # fmt: skip
    cpu_ns: float = param(
        2000.0, unit="ns", lo=0, hi=1e9, provenance="assumption", doc="closed loop: CPU per I/O"
    )
    ops: int = param(10_000, unit="I/Os", lo=1, hi=10**12, provenance="choice", doc="completions in total")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bs_kib % 4:
            raise ParamError(f"bs_kib={self.bs_kib} is not a multiple of 4 KiB pages")

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None = None, **base: Any) -> Self:
        o = dict(overrides or {})
        if "jobs" in o:
            if "threads" in o:
                raise ParamError("give jobs or threads, not both (jobs is fio's name for threads)")
            o["threads"] = o.pop("jobs")
        return super().from_overrides(o, **base)


def _fio(p: FioParams, seed: int) -> Workload:
    if p.loop == "open":
        mean = 1e12 * p.threads / p.iops
        gap: GapFn = lambda g, m: exp_ps(g, m, mean)  # noqa: E731
    else:
        gap = lambda g, m: think_ps(g, m, p.cpu_ns)  # noqa: E731
    return unmap_workload(
        "fio", p, seed, pages=p.bs_kib // 4, slots=p.iodepth, open_loop=p.loop == "open", gap=gap
    )


# ----------------------------------------------------------------------------- netperf


@dataclass(frozen=True, kw_only=True)
class NetperfParams(InvalParams):
    """netperf-like: Poisson packets per CPU, one unmap per packet buffer."""

    pps: float = param(
        5e5, unit="packets/s", lo=1, hi=1e9, provenance="assumption", doc="packets per second per CPU"
    )
    pkt_bytes: int = param(1500, unit="B", lo=1, hi=1 << 20, provenance="choice", doc="packet buffer size")
    ring: int = param(
        1024, unit="buffers", lo=1, hi=65536, provenance="choice", doc="buffers per CPU (IOVA reuse)"
    )
    ops: int = param(10_000, unit="packets", lo=1, hi=10**12, provenance="choice", doc="packets in total")


def _netperf(p: NetperfParams, seed: int) -> Workload:
    pages = -(-p.pkt_bytes // PAGE)
    mean = 1e12 / p.pps
    return unmap_workload("netperf", p, seed, pages=pages, slots=p.ring, open_loop=True,
                          gap=lambda g, m: exp_ps(g, m, mean))  # fmt: skip


register(
    WorkloadSpec(
        "dma-map", "dma_map_benchmark: per thread, map then unmap (closed loop)", DmaMapParams, _dma_map
    )
)
register(
    WorkloadSpec("fio", "block I/O: completions unmap their buffers (open or closed loop)", FioParams, _fio)
)
register(
    WorkloadSpec(
        "netperf", "network: Poisson packets per CPU, one unmap each (open loop)", NetperfParams, _netperf
    )
)
