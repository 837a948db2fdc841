"""Scenario declarations, parameter resolution and the :func:`simulate` entry point.

A scenario is a declaration: a *workload* (the stream of commands each issuing CPU sends, in the one
stream form of :mod:`cmdqv_lab.workloads.stream`), a *routing* (guests only: which queue each batch
goes to), a *topology* (queues, routes, locks, IRQ thread: :mod:`cmdqv_lab.programs.topology`) and a
platform (costs). :meth:`Scenario.build` compiles them for the timing engine
(:mod:`cmdqv_lab.programs`); the correctness checker reads the same workload
(:func:`cmdqv_lab.checker.scenarios.load_source`), so every scenario name is accepted by
``simulate``, ``check`` and sweeps alike.

Parameters of a scenario are its own fields plus, for scenarios that take a ``platform``, every
field of :class:`~cmdqv_lab.platform.Platform`; ``--set`` keys may name either. Resolution order:
field defaults, then the platform preset's values, then the overrides.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmdqv_lab.engine.runner import EngineConfig, EngineResult, run_engine
from cmdqv_lab.engine.stream import CpuStream
from cmdqv_lab.errors import ParamError, suggest
from cmdqv_lab.limits import check_entities, check_memory
from cmdqv_lab.params import Params
from cmdqv_lab.platform import Platform, load_platform
from cmdqv_lab.programs.compile import Routing, compile_streams
from cmdqv_lab.programs.topology import Topology
from cmdqv_lab.units import ns
from cmdqv_lab.workloads.stream import Workload

if TYPE_CHECKING:
    import polars as pl


def no_routing(_p: Any, _plat: Platform, _w: Workload) -> Routing | None:
    """Host streams: every batch goes whole to the issuing CPU's host queue."""
    return None


def no_prefix(_p: Any, _plat: Platform) -> float:
    return 0.0


def cmdq_metrics(res: EngineResult) -> dict[str, Any]:
    """Metrics of every scenario whose CPUs run a driver's submission path (host CPUs, and guest
    vCPUs on their VCMDQs or their trapped queue), beyond the common set: ``shared_lock_wait_ns``,
    ``op_phase_ns``, ``cpus_in_retry_loop``."""
    return {
        "shared_lock_wait_ns": res.shared_lock_wait(),
        "op_phase_ns": res.op_phases(),
        "cpus_in_retry_loop": res.cpus_in_retry_loop(),
    }


@dataclass(frozen=True)
class Scenario:
    """A named scenario: parameters, and the workload, routing, topology and platform of a run.

    ``workload(params, platform, seed, count)`` gives the streams; ``topology(params, platform,
    workload)`` and ``routing(...)`` say where they go; ``prefix_ns(params, platform)`` is CPU work
    at the start of every op. A scenario without a preset (``uses_platform=False``) makes its
    platform from its own parameters with ``platform``. ``extra_metrics(params, platform, result,
    seed)`` adds metrics of its own; ``driver_metrics`` adds :func:`cmdq_metrics` (every scenario
    whose CPUs run a driver); with ``op_records`` the engine keeps a record of every op for it
    (``result.ops``).
    """

    name: str
    doc: str
    params: type[Params]
    workload: Callable[[Any, Platform, int, int], Workload]
    topology: Callable[[Any, Platform, Workload], Topology]
    routing: Callable[[Any, Platform, Workload], Routing | None] = no_routing
    prefix_ns: Callable[[Any, Platform], float] = no_prefix
    count: str = "ops"  # what --ops/--commands counts for this scenario
    default_count: int = 100_000
    uses_platform: bool = True
    platform: Callable[[Any], Platform] | None = None
    extra_metrics: Callable[[Any, Platform | None, EngineResult, int], dict[str, Any]] | None = None
    op_records: bool = False
    driver_metrics: bool = True

    def run_platform(self, p: Any, preset: Platform | None) -> Platform:
        """The platform a run uses: the resolved preset, or the one the scenario makes from ``p``."""
        if preset is not None:
            return preset
        if self.platform is None:
            raise ParamError(f"scenario {self.name} has neither a platform preset nor a platform of its own")
        return self.platform(p)

    def build(self, p: Any, plat: Platform, seed: int, n: int) -> tuple[EngineConfig, Sequence[CpuStream]]:
        """The engine configuration and one op-program stream per engine CPU."""
        w = self.workload(p, plat, seed, n)
        topo = self.topology(p, plat, w)
        streams = compile_streams(
            w, topo, plat, seed=seed, name=self.name, routing=self.routing(p, plat, w),
            prefix_ps=ns(self.prefix_ns(p, plat)),
        )  # fmt: skip
        return topo.engine_config(plat.costs(), w.ops, open_loop=w.open_loop), streams


#: name -> "module" defining it (imported on first use)
_MODULES = {
    "open-queue": "cmdqv_lab.scenarios.open_queue",
    "host-map-unmap": "cmdqv_lab.scenarios.host",
    "guest-trap": "cmdqv_lab.scenarios.guest",
    "guest-vcmdq": "cmdqv_lab.scenarios.guest",
    "guest-fixup": "cmdqv_lab.scenarios.guest",
    "trace-replay": "cmdqv_lab.scenarios.replay",
    "host-dma-map": "cmdqv_lab.scenarios.workload",
    "host-fio": "cmdqv_lab.scenarios.workload",
    "host-netperf": "cmdqv_lab.scenarios.workload",
    "host-config-churn": "cmdqv_lab.scenarios.workload",
    "host-mixed": "cmdqv_lab.scenarios.workload",
    "guest-wl-dma-map": "cmdqv_lab.scenarios.guest_workload",
    "guest-wl-fio": "cmdqv_lab.scenarios.guest_workload",
    "guest-wl-netperf": "cmdqv_lab.scenarios.guest_workload",
    "guest-wl-config-churn": "cmdqv_lab.scenarios.guest_workload",
    "guest-wl-mixed": "cmdqv_lab.scenarios.guest_workload",
    "guest-mixed": "cmdqv_lab.scenarios.guest_mixed",
    "guest-noisy": "cmdqv_lab.scenarios.guest_noisy",
    "host-iotlb": "cmdqv_lab.scenarios.iotlb",
}
SCENARIOS: dict[str, Scenario] = {}
#: Where an error about a scenario name points the user.
SEE_LIST = "cmdqv-lab simulate --list shows every scenario"


def register(s: Scenario) -> Scenario:
    SCENARIOS[s.name] = s
    return s


def _load_all() -> None:
    for mod in _MODULES.values():
        importlib.import_module(mod)


def scenario_names() -> list[str]:
    return sorted(_MODULES)


#: Scenario families built for any workload, also one named by a file or an entry point.
_WORKLOAD_FAMILIES = {
    "guest-wl-": ("cmdqv_lab.scenarios.guest_workload", "register_guest"),
    "host-": ("cmdqv_lab.scenarios.workload", "register_host"),
}


def _workload_scenario(name: str) -> Scenario | None:
    """``host-<workload>`` / ``guest-wl-<workload>`` for a workload file or entry point, else None."""
    from cmdqv_lab.workloads import custom, registry

    for prefix, (module, func) in _WORKLOAD_FAMILIES.items():
        ref = name.removeprefix(prefix)
        if ref != name and (custom.is_reference(ref) or ref in registry.plugin_names()):
            scn: Scenario = getattr(importlib.import_module(module), func)(ref)
            return scn
    return None


def get_scenario(name: str) -> Scenario:
    if name not in _MODULES:
        dynamic = _workload_scenario(name)
        if dynamic is not None:
            return dynamic
        raise ParamError(
            f"unknown scenario {name!r}: {suggest(name, scenario_names(), limit=0, see=SEE_LIST)}"
        )
    importlib.import_module(_MODULES[name])
    return SCENARIOS[name]


@dataclass
class SimResult:
    """What :func:`simulate` returns: inputs, metrics and (optionally) records."""

    scenario: str
    seed: int
    params: dict[str, Any]
    metrics: dict[str, Any]
    engine: EngineResult
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def commands(self) -> pl.DataFrame | None:
        """Per-command records (``record=True``), each row tagged with the seed."""
        import polars as pl

        df = self.engine.commands
        return None if df is None else df.with_columns(pl.lit(self.seed, pl.Int64).alias("seed"))

    @property
    def ops(self) -> pl.DataFrame | None:
        import polars as pl

        df = self.engine.ops
        return None if df is None else df.with_columns(pl.lit(self.seed, pl.Int64).alias("seed"))

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "params": self.params,
            "metrics": self.metrics,
            "wall_s": self.wall_s,
        }

    def metrics_row(self) -> dict[str, Any]:
        """Metrics flattened to one row (``op_latency_ns.mean`` -> ``op_latency_ns_mean``)."""
        row: dict[str, Any] = {"scenario": self.scenario, "seed": self.seed}
        for k, v in self.metrics.items():
            if isinstance(v, dict):
                for kk, vv in v.items():
                    row[f"{k}_{kk}"] = vv
            else:
                row[k] = v
        return row


def resolve(scn: Scenario, overrides: Mapping[str, Any]) -> tuple[Params, Platform | None]:
    """Split ``overrides`` between the scenario's fields and the platform's; build both."""
    own = scn.params.field_infos()
    plat_fields = Platform.field_infos() if scn.uses_platform else {}
    mine = {k: v for k, v in overrides.items() if k in own}
    theirs = {k: v for k, v in overrides.items() if k in plat_fields and k not in own}
    unknown = [k for k in overrides if k not in own and k not in plat_fields]
    if unknown:
        names = [*own, *plat_fields]
        see = f"cmdqv-lab describe {scn.name} lists all {len(names)}"
        hint = suggest(unknown[0], names, see=see)
        raise ParamError(f"unknown parameter {unknown[0]!r} for scenario {scn.name}: {hint}")
    params = scn.params.from_overrides(mine)
    if scn.uses_platform:
        return params, load_platform(str(getattr(params, "platform", "generic")), theirs)
    return params, None


def simulate(
    scenario: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    count: int | None = None,
    record: bool = False,
    record_limit: int = 2_000_000,
    until_ns: float | None = None,
) -> SimResult:
    """Run ``scenario`` with parameter ``overrides`` (values or strings) and return its result.

    ``count`` is the number of ops (or commands, for scenarios that count commands); ``record``
    keeps per-command and per-op records; ``until_ns`` stops the run at that simulated time (metrics
    then cover the ops completed by then; ``metrics["stopped_at_ns"]`` says so).

    >>> r = simulate("open-queue", {"rate_mcmd_s": 5, "service_ns": 100}, seed=1, count=20_000)
    >>> r.metrics["commands"]
    20000
    >>> 0.45 < r.metrics["smmu_busy_fraction"] < 0.55
    True
    """
    t0 = time.perf_counter()
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ParamError(f"seed={seed!r} must be a non-negative integer")
    scn = get_scenario(scenario)
    params, platform = resolve(scn, overrides or {})
    n = scn.default_count if count is None else count
    if not isinstance(n, int) or isinstance(n, bool) or (n < 1 and count is not None):
        raise ParamError(f"{scn.count}={n!r} must be a positive integer")
    check_entities(scn.name, params, platform)  # before any stream is built
    cfg, streams = scn.build(params, scn.run_platform(params, platform), seed, n)
    check_memory(scn.name, cfg)  # before the engine allocates its state
    if record or scn.op_records:
        # op_records alone: room for exactly every op (command records are cut at the same count)
        limit = record_limit if record else max(sum(cfg.quotas), 16)
        if record and scn.op_records:
            limit = max(record_limit, sum(cfg.quotas))
        cfg = EngineConfig(**{**cfg.__dict__, "record": True, "record_limit": limit})
    if until_ns is not None and (isinstance(until_ns, bool) or not 0 < float(until_ns) <= 1e12):
        raise ParamError(f"until_ns={until_ns!r} is out of range: allowed 0 .. 1e12 ns")
    res = run_engine(cfg, streams, until_ps=None if until_ns is None else ns(float(until_ns)))
    metrics = res.metrics()
    if res.stopped_at_ps is not None:
        metrics["stopped_at_ns"] = res.stopped_at_ps / 1e3
    if scn.driver_metrics:
        metrics.update(cmdq_metrics(res))
    if scn.extra_metrics is not None:
        metrics.update(scn.extra_metrics(params, platform, res, seed))
    resolved = {**(platform.to_dict() if platform else {}), **params.to_dict()}
    return SimResult(scn.name, seed, resolved, metrics, res, time.perf_counter() - t0)


def describe() -> list[dict[str, Any]]:
    """Every scenario with its parameters (name, default, unit, allowed, doc)."""
    _load_all()
    out = []
    for name in scenario_names():
        scn = SCENARIOS[name]
        rows = []
        infos = dict(scn.params.field_infos())
        if scn.uses_platform:
            infos.update({k: v for k, v in Platform.field_infos().items() if k not in infos})
        for key, (default, info) in infos.items():
            allowed = info.allowed()
            if key == "platform":
                from cmdqv_lab.platform import preset_names

                allowed = "one of " + ", ".join(preset_names())
            rows.append(
                {"name": key, "default": default, "unit": info.unit, "allowed": allowed, "doc": info.doc}
            )
        doc = scn.doc
        for prefix in (f"``{name}``:", f"{name}:"):
            doc = doc.removeprefix(prefix).strip()
        out.append(
            {
                "scenario": name,
                "doc": doc,
                "count": scn.count,
                "default_count": scn.default_count,
                "params": rows,
            }
        )
    return out
