"""Named workload generators and :func:`generate`.

A workload generator is a function ``(params, seed) -> Workload`` registered under a name with its
parameter class (a frozen :class:`~cmdqv_lab.params.Params` dataclass). ``generate(name, overrides,
seed)`` validates the overrides and returns the workload: one frame iterator per issuing CPU, each
frame in :data:`~cmdqv_lab.workloads.stream.WORKLOAD_SCHEMA`. Generators are seeded per CPU and per
purpose (:func:`cmdqv_lab.rng.stream`), vectorised, and produce chunks lazily. The synthetic
generators (``dma-map``, ``fio``, ``netperf``, ``config-churn``, ``mixed``) live in
:mod:`cmdqv_lab.workloads.synthetic` and register themselves when it is imported.

Your own workloads (:mod:`cmdqv_lab.workloads.custom`) need no registration: a name that is a file
reference (``my.toml``, ``my_wl.py:make``, ``my_pkg.wl:make``) is loaded from it, and installed
packages add names through entry points of the :data:`ENTRY_POINT_GROUP` group.

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

from cmdqv_lab.errors import ParamError, suggest
from cmdqv_lab.params import Params
from cmdqv_lab.workloads.stream import Workload

Generator = Callable[[Any, int], Workload]
#: Entry-point group through which installed packages add workloads (name -> function).
ENTRY_POINT_GROUP = "cmdqv_lab.workloads"


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
    """The built-in workloads (entry-point workloads: :func:`plugin_names`)."""
    _load()
    return sorted(WORKLOADS)


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def plugin_names() -> list[str]:
    """Workloads installed packages add through the :data:`ENTRY_POINT_GROUP` entry points."""
    return sorted(set(_entry_points()) - set(WORKLOADS))


def get_workload(name: str) -> WorkloadSpec:
    """The workload ``name``: built-in, an entry point, or a file reference (see module doc)."""
    from cmdqv_lab.workloads import custom

    _load()
    if name in WORKLOADS:
        return WORKLOADS[name]
    if custom.is_reference(name):
        return custom.load_reference(name)
    eps = _entry_points()
    if name in eps:
        return register(custom.load_entry_point(name, eps[name]))
    hint = suggest(name, [*WORKLOADS, *eps])
    raise ParamError(f"unknown workload {name!r}: {hint}, or a file (my.toml, my_wl.py:function)")


def generate(name: str, overrides: Mapping[str, Any] | None = None, *, seed: int = 0) -> Workload:
    """Build workload ``name`` with parameter ``overrides`` (values or strings)."""
    spec = get_workload(name)
    return spec.make(spec.params.from_overrides(overrides or {}), seed)
