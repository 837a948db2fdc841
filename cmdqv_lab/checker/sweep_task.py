"""The sweep task ``check:<source>``: one checker run (functional model) as a sweep point.

A point builds the stream of ``<source>`` (a registry workload such as ``mixed``, or a timing
scenario such as ``guest-mixed``: the streams its timing run compiles,
:func:`~cmdqv_lab.checker.scenarios.load_source`) of the spec's ``count`` ops with the point's
seed, routes it under ``policy`` and replays it through the functional CMDQV model
(:func:`cmdqv_lab.checker.check.check`). Parameters: ``policy``, the source's own (for a scenario:
its fields, not its platform's: the checker has no costs), the checker's options (:class:`~cmdqv_lab.checker.check.CheckOptions`) and the CMDQV geometry
(:class:`~cmdqv_lab.device.cmdqv.CmdqvParams`). Metrics: the hazard counts (``ill``, ``q2``,
``q3``, ``unsynced``), ``q2_unmaps`` (ops holding a Q2 hazard), commands taking each path,
``q2_on_vcmdq`` / ``q2_trapped`` (Q2 hazards by where the invalidation went), commands taking each
path (``vcmdq_commands``, ...), ``commands``, ``inserted_syncs``, ``dropped_syncs``,
``vcmdq_invalidations`` (legal invalidations routed to a VCMDQ), ``hw_syncs`` (inserted by the
model's scheduler), ``disagreements`` between routing and the model (must be 0), and the first
hazard of each kind in words (``example_ill``, ``example_q2``, ``example_q3``; "" if none).

>>> t = check_task("check:mixed")
>>> r = t.run({"policy": "first-opcode", "vms": 1, "unsupported_fraction": 0.2}, 0, 60, False)
>>> r.metrics["ill"] > 0, r.metrics["disagreements"], r.params["policy"]
(True, 0, 'first-opcode')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cmdqv_lab.params import Params, param


def check_task(name: str) -> Any:
    """The :class:`~cmdqv_lab.experiments.tasks.Task` for ``check:<workload>``."""
    from cmdqv_lab.checker.check import CheckOptions, check
    from cmdqv_lab.checker.scenarios import load_source
    from cmdqv_lab.device.cmdqv import CmdqvParams
    from cmdqv_lab.driver.routing import POLICIES
    from cmdqv_lab.experiments.tasks import PointResult, Task
    from cmdqv_lab.scenarios.base import get_scenario, scenario_names
    from cmdqv_lab.scenarios.workload import SIZE_KEYS, camel, combine_params
    from cmdqv_lab.workloads.registry import get_workload

    src_name = name.removeprefix("check:")
    # ParamError naming close workloads when neither
    own = get_scenario(src_name).params if src_name in scenario_names() else get_workload(src_name).params
    size = next((k for k in SIZE_KEYS if k in own.field_infos()), "ops")

    @dataclass(frozen=True, kw_only=True)
    class _Policy(Params):
        policy: str = param("scan", choices=POLICIES, provenance="choice", doc="routing policy checked")

    P = combine_params(f"Check{camel(src_name)}Params", _Policy, own, CheckOptions, CmdqvParams)
    # the checker's fields a source field of the same name does not shadow (first one of a name wins)
    split = tuple(set(c.field_infos()) - set(own.field_infos()) for c in (CheckOptions, CmdqvParams))

    def build(overrides: Mapping[str, Any]) -> Any:
        return P.from_overrides(dict(overrides))

    def resolve(overrides: Mapping[str, Any]) -> dict[str, Any]:
        return dict(build(overrides).to_dict())

    def prepare(overrides: Mapping[str, Any], seed: int, count: int) -> None:
        build(overrides)

    def run(overrides: Mapping[str, Any], seed: int, count: int, record: bool) -> PointResult:
        p = build(overrides)
        values = p.to_dict()
        mine = {k: v for k, v in values.items() if k in own.field_infos()}
        src = load_source(src_name, {**mine, size: count}, seed=seed)
        opts = CheckOptions(**{k: v for k, v in values.items() if k in split[0]})
        geo = CmdqvParams(**{k: v for k, v in values.items() if k in split[1]})
        r = check(src, p.policy, geo, opts)
        q2 = [h for h in r.hazards if h.kind == "q2"]
        metrics = {
            **r.counts,
            "q2_unmaps": len({(h.vm, h.cpu, h.op) for h in q2}),
            "q2_on_vcmdq": sum(h.queue.startswith("vcmdq") for h in q2),
            "q2_trapped": sum(not h.queue.startswith("vcmdq") for h in q2),
            **{f"{path}_commands": n for path, n in r.routed["paths"].items()},
            "commands": src.frame.height,
            **{k: r.routed[k] for k in ("inserted_syncs", "dropped_syncs", "vcmdq_invalidations")},
            "hw_syncs": r.model["hw_syncs"],
            "disagreements": len(r.disagreements),
            **{f"example_{kind}": _first(r.hazards, kind) for kind in ("ill", "q2", "q3")},
        }
        return PointResult(name, seed, values, metrics)

    return Task(name, "ops", resolve, prepare, run)


def _first(hazards: Any, kind: str) -> str:
    """The first hazard of ``kind`` in words (where, opcode, queue, reason), "" if none."""
    return next((f"{h.where()}: {h.opcode} on {h.queue}: {h.reason}" for h in hazards if h.kind == kind), "")
