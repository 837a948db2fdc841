"""Named workload generators and :func:`generate`.

A workload generator is a function ``(params, seed) -> Workload`` registered under a name with its
parameter class (a frozen :class:`~cmdqv_lab.params.Params` dataclass). ``generate(name, overrides,
seed)`` validates the overrides and returns the workload: one frame iterator per issuing CPU, each
frame in :data:`~cmdqv_lab.workloads.stream.WORKLOAD_SCHEMA`. Generators are seeded per CPU and per
purpose (:func:`cmdqv_lab.rng.stream`), vectorised, and produce chunks lazily.

>>> w = generate("dma-map", {"threads": 2, "ops": 6, "granule_kib": 8}, seed=1)
>>> import polars as pl
>>> frames = [pl.concat(list(s)) for s in w.streams]
>>> [f["op"].n_unique() for f in frames], frames[0]["opcode"].value_counts().sort("opcode")["count"].to_list()
([3, 3], [6, 3])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params, param
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.workloads.stream import Workload, unmap_frame

Generator = Callable[[Any, int], Workload]


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    doc: str
    params: type[Params]
    make: Generator


WORKLOADS: dict[str, WorkloadSpec] = {}
#: Modules that register more workloads when imported.
_MODULES: list[str] = ["cmdqv_lab.workloads.synthetic"]


def register(spec: WorkloadSpec) -> WorkloadSpec:
    WORKLOADS[spec.name] = spec
    return spec


def _load() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def workload_names() -> list[str]:
    _load()
    return sorted(WORKLOADS)


def get_workload(name: str) -> WorkloadSpec:
    _load()
    if name not in WORKLOADS:
        raise ParamError(f"unknown workload {name!r}: one of {', '.join(sorted(WORKLOADS))}")
    return WORKLOADS[name]


def generate(name: str, overrides: Mapping[str, Any] | None = None, *, seed: int = 0) -> Workload:
    """Build workload ``name`` with parameter ``overrides`` (values or strings)."""
    spec = get_workload(name)
    return spec.make(spec.params.from_overrides(overrides or {}), seed)


# ----------------------------------------------------------------------------- dma_map_benchmark


@dataclass(frozen=True, kw_only=True)
class DmaMapParams(Params):
    threads: int = param(
        1, unit="threads", lo=1, hi=4096, provenance="choice", doc="benchmark threads (one CPU each)"
    )
    granule_kib: int = param(
        4, unit="KiB", lo=4, hi=2048, provenance="choice", doc="bytes mapped and unmapped per op"
    )
    ops: int = param(
        10_000, unit="ops", lo=1, hi=10**12, provenance="choice", doc="unmaps in total (split over threads)"
    )
    think_ns: float = param(
        1500.0, unit="ns", lo=0, hi=1e9, provenance="assumption", doc="map + unmap CPU work per op"
    )
    ril: bool = param(
        False, provenance="choice", doc="range invalidation (one TLBI per unmap) instead of one per 4 KiB"
    )
    vm: int = param(-1, lo=-1, hi=4095, provenance="choice", doc="VM index (-1: host)")
    asid: int = param(1, lo=0, hi=65535, provenance="choice", doc="ASID of the mapping")
    chunk: int = param(4096, unit="ops", lo=1, hi=1 << 20, provenance="choice", doc="ops per generated frame")


def _dma_map(p: DmaMapParams, seed: int) -> Workload:
    pages = p.granule_kib // 4
    tlbis = 1 if p.ril else pages
    if tlbis > 512:  # CMDQ_MAX_TLBI_OPS: beyond it Linux invalidates the whole ASID
        tlbis = 1
    base, rem = divmod(p.ops, p.threads)
    quotas = [base + (1 if i < rem else 0) for i in range(p.threads)]

    def cpu_stream(cpu: int, n: int) -> Iterator[pl.DataFrame]:
        g = rng_stream(seed, "dma-map", "think", cpu)
        done = 0
        while done < n:
            m = min(p.chunk, n - done)
            t = np.rint((0.5 + g.random(m)) * p.think_ns * 1000).astype(np.int64)
            yield unmap_frame(cpu=cpu, vm=p.vm, n_ops=m, t_ps=t, tlbis=tlbis, asid=p.asid,
                              base_addr=0x1_0000_0000, op0=done, batch0=done)  # fmt: skip
            done += m

    return Workload(
        name="dma-map",
        cpus=tuple((p.vm, c) for c in range(p.threads)),
        streams=tuple(cpu_stream(c, q) for c, q in enumerate(quotas)),
        open_loop=False,
        params=p.to_dict(),
    )


register(
    WorkloadSpec(
        "dma-map",
        "dma_map_benchmark: per thread, map then unmap (strict: TLBIs + CMD_SYNC)",
        DmaMapParams,
        _dma_map,
    )
)
