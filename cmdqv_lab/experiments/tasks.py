"""What a sweep point runs: a timing scenario, or a named computation that is not one.

A sweep spec's ``scenario`` names a :class:`Task`. Every timing scenario is one
(:func:`scenario_task`: ``simulate``); besides them, computations whose result a notebook publishes
but which are not a single simulation register here under a name of their own:

``check:<workload>``  the correctness checker (functional model) on a registry workload under one
                      routing ``policy`` (:mod:`cmdqv_lab.checker.sweep_task`; notebooks 01, 02)
``sensitivity``       notebook 09's three conclusions with one assumed platform parameter moved
                      along its range (:mod:`cmdqv_lab.analysis.sensitivity_task`)

A task declares its parameters (``resolve``: overrides -> every resolved value, raising
:class:`~cmdqv_lab.errors.ParamError` naming a bad key), checks a combination without running it
(``prepare``) and runs one point (``run``). The sweep machinery (cache keys, manifests, packing,
``reproduce``) is the same for all tasks, so a published computation has the same provenance and
the same exact re-run check as a published simulation.

>>> t = get_task("open-queue")
>>> t.name, t.count, "rate_mcmd_s" in t.resolve({})
('open-queue', 'commands', True)
>>> get_task("check:mixed").resolve({"policy": "scan"})["policy"]
'scan'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass
class PointResult:
    """One point's outcome: the resolved parameters, the flat metrics and optional records."""

    scenario: str
    seed: int
    params: dict[str, Any]
    metrics: dict[str, Any]  # one flat row (no nesting)
    records: dict[str, pl.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """A named thing a sweep point can run (see the module docstring)."""

    name: str
    count: str  # what a spec's ``count`` counts ("ops", "commands")
    resolve: Callable[[Mapping[str, Any]], dict[str, Any]]
    prepare: Callable[[Mapping[str, Any], int, int], None]
    run: Callable[[Mapping[str, Any], int, int, bool], PointResult]


def scenario_task(name: str) -> Task:
    """The timing scenario ``name`` as a task (``run`` is :func:`~cmdqv_lab.scenarios.base.simulate`)."""
    from cmdqv_lab.limits import check_entities, check_memory
    from cmdqv_lab.scenarios.base import get_scenario, resolve, simulate

    scn = get_scenario(name)

    def resolved(overrides: Mapping[str, Any]) -> dict[str, Any]:
        params, platform = resolve(scn, overrides)
        return {**(platform.to_dict() if platform else {}), **params.to_dict()}

    def prepare(overrides: Mapping[str, Any], seed: int, count: int) -> None:
        params, platform = resolve(scn, overrides)
        check_entities(scn.name, params, platform)
        cfg, _ = scn.build(params, scn.run_platform(params, platform), seed, count)
        check_memory(scn.name, cfg)

    def run(overrides: Mapping[str, Any], seed: int, count: int, record: bool) -> PointResult:
        res = simulate(scn.name, overrides, seed=seed, count=count, record=record)
        records = {}
        if record:
            records = {k: f for k, f in (("ops", res.ops), ("commands", res.commands)) if f is not None}
        return PointResult(res.scenario, res.seed, res.params, res.metrics_row(), records)

    return Task(scn.name, scn.count, resolved, prepare, run)


#: Tasks that are not timing scenarios: name (or ``prefix:``) -> (module, factory taking the name).
_COMPUTATIONS = {
    "check:": ("cmdqv_lab.checker.sweep_task", "check_task"),
    "sensitivity": ("cmdqv_lab.analysis.sensitivity_task", "sensitivity_task"),
}


def get_task(name: str) -> Task:
    """The task ``name``: a registered computation, else a timing scenario (ParamError if neither)."""
    for key, (module, factory) in _COMPUTATIONS.items():
        if name == key or (key.endswith(":") and name.startswith(key)):
            task: Task = getattr(importlib.import_module(module), factory)(name)
            return task
    return scenario_task(name)
