"""``host-<workload>``: any registered workload generator on a host topology.

For every workload in :mod:`cmdqv_lab.workloads.registry` (dma-map, fio, netperf, config-churn,
mixed, ...) a scenario ``host-<name>`` runs its command stream, issued by the host (``vms = 0``), on
``queues`` with ``submit``. Its parameters are the topology's plus the workload's own, except the
workload's size (``ops``, or ``cycles``): that is the run's count (``--ops``, ``simulate(count=)``,
a sweep's ``count``), default the workload's own default. (As a parameter it would also clash with
the ``ops`` metric in a sweep's result rows.) Each op starts with ``op_cpu_ns`` of CPU work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cmdqv_lab.engine.layout import SUBMITS
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.topology import HOST_TOPOLOGIES, Topology, host_topology
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.workloads.registry import get_workload, workload_names
from cmdqv_lab.workloads.stream import Workload

MAX_BATCH = 65  # CMDQ_BATCH_ENTRIES + a CMD_SYNC
#: Workload fields that give its size: the run's count, not a scenario parameter.
SIZE_KEYS = ("ops", "cycles")


@dataclass(frozen=True, kw_only=True)
class HostTopology(Params):
    platform: str = param("d06", provenance="choice", doc="platform preset in data/params")
    submit: str = param("linux-lockfree", choices=SUBMITS, provenance="choice", doc="submission algorithm")
    queues: str = param("main", choices=HOST_TOPOLOGIES, provenance="choice", doc="queue topology")
    vcmdqs: int = param(2, unit="queues", lo=1, hi=128, provenance="choice", doc="VCMDQs (queues=vcmdq)")
    op_cpu_ns: float = param(
        0.0, unit="ns", lo=0, hi=1e9, provenance="choice", doc="CPU work at the start of each op"
    )


def combine_params(
    cls_name: str,
    *classes: type[Params],
    drop: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> type[Params]:
    """One parameter class: the fields of ``classes`` in order (first one of a name wins), without
    the workload size keys (``--ops`` sets them) and ``drop``, with ``defaults`` changed."""
    fields: list[tuple[str, Any, Any]] = []
    seen: set[str] = set((*SIZE_KEYS, *drop))
    for cls in classes:
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in seen:
                continue
            seen.add(f.name)
            default = (defaults or {}).get(f.name, f.default)
            fields.append((f.name, f.type, dataclasses.field(default=default, metadata=f.metadata)))
    return dataclasses.make_dataclass(cls_name, fields, bases=(Params,), frozen=True, kw_only=True)


def camel(name: str) -> str:
    """``config-churn`` -> ``ConfigChurn`` (for generated parameter class names)."""
    return "".join(part.capitalize() for part in name.split("-"))


def make_workload(name: str, p: Any, n: int, seed: int, **fixed: Any) -> Workload:
    """Registry workload ``name`` with the scenario's values of its fields, ``n`` as its size and
    ``fixed`` values (e.g. ``vms=0`` for a host run)."""
    spec = get_workload(name)
    own = set(spec.params.field_infos())
    values = {k: v for k, v in p.to_dict().items() if k in own}
    values.update({k: v for k, v in fixed.items() if k in own})
    for key in SIZE_KEYS:
        if key in own and n:
            values[key] = n
    return spec.make(spec.params.from_overrides({}, **values), seed)


def _host_workload(name: str):
    def make(p: Any, _plat: Platform, seed: int, n: int) -> Workload:
        return make_workload(name, p, n, seed, vms=0)

    return make


def _host_topology(p: Any, plat: Platform, w: Workload) -> Topology:
    return host_topology(p.queues, cpus=len(w.cpus), vcmdqs=p.vcmdqs, submit=p.submit, plat=plat,
                         max_batch=MAX_BATCH)  # fmt: skip


def op_cpu(p: Any, _plat: Platform) -> float:
    return float(p.op_cpu_ns)


def register_host(name: str) -> Scenario:
    """Register (or refresh) ``host-<name>`` for workload ``name`` (built-in, entry point or file)."""
    spec = get_workload(name)
    size = next((k for k in SIZE_KEYS if k in spec.params.field_infos()), None)
    return register(
        Scenario(
            name=f"host-{name}",
            doc=f"host-{name}: the {spec.name} workload ({spec.doc.split(':')[0]}) on a host topology",
            params=combine_params(f"Host{camel(spec.name)}Params", HostTopology, spec.params, drop=("vms",)),
            workload=_host_workload(name),
            topology=_host_topology,
            prefix_ns=op_cpu,
            count=size or "ops",
            default_count=int(spec.params.field_infos()[size][0]) if size else 0,
        )
    )


for _name in workload_names():
    register_host(_name)
