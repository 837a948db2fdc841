"""Named workload generators and :func:`generate`.

A workload generator is a function ``(params, seed) -> Workload`` registered under a name with its
parameter class (a frozen :class:`~cmdqv_lab.params.Params` dataclass). ``generate(name, overrides,
seed)`` validates the overrides and returns the workload: one frame iterator per issuing CPU, each
frame in :data:`~cmdqv_lab.workloads.stream.WORKLOAD_SCHEMA`. Generators are seeded per CPU and per
purpose (:func:`cmdqv_lab.rng.stream`), vectorised, and produce chunks lazily. The synthetic
generators (``dma-map``, ``fio``, ``netperf``, ``config-churn``, ``mixed``) live in
:mod:`cmdqv_lab.workloads.synthetic` and register themselves when it is imported.

>>> w = generate("dma-map", {"threads": 2, "ops": 6, "granule_kib": 8}, seed=1)
>>> import polars as pl
>>> frames = [pl.concat(list(s)) for s in w.streams]
>>> [f["op"].n_unique() for f in frames], frames[0]["opcode"].value_counts().sort("opcode")["count"].to_list()
([3, 3], [6, 3])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params
from cmdqv_lab.workloads.stream import Workload

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
