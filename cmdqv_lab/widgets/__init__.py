"""Widget explorers: sliders and drop-downs over a scenario's parameters that re-simulate live.

One call in a notebook shows an explorer (it runs once on creation, so it opens with a chart)::

    from cmdqv_lab import widgets
    widgets.explore_host()                                   # Q9: one configuration, latency CDF
    widgets.explore_host(compare="submit", x="cpus")         # Q9: ops/s vs CPUs per algorithm
    widgets.explore_open_queue()                             # queueing check against M/D/1, M/M/1
    widgets.explore("host-map-unmap", ["cpus", "tlbis"], fixed={"queues": "ecmdq"})

:func:`explore` works for any registered scenario: without ``params`` it controls every
parameter of the scenario (not the platform's). A ready-made explorer for a new scenario is one
entry in :data:`PRESETS` (controls with ranges, notes), for example when ``guest-vcmdq`` lands::

    PRESETS["guest-vcmdq"] = {"params": ("threads", "granule_kib", "vms", "vcmdqs_per_vm")}

after which ``explore("guest-vcmdq")`` uses them (a named ``explore_guest_vcmdq`` is a two-line
wrapper like :func:`explore_host`). How runs are triggered, debounced and reported:
:mod:`cmdqv_lab.widgets.explorer`; how a parameter becomes a widget:
:mod:`cmdqv_lab.widgets.controls`; charts and the summary: :mod:`cmdqv_lab.widgets.runs`.

The widgets need a live kernel. For the static report, :func:`cmdqv_lab.plots.explorer` binds a
slider to precomputed sweep data instead.

>>> ex = explore_host(cpus=4, count=1000)
>>> ex.result.params["cpus"], ex.chart.to_dict()["mark"]["type"]
(4, 'line')
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from cmdqv_lab.errors import ParamError
from cmdqv_lab.widgets.controls import Control, make_widget, param_spec
from cmdqv_lab.widgets.explorer import Explorer, ParamArg, as_control
from cmdqv_lab.widgets.runs import RunSet, default_chart, queue_theory, summary_frame

__all__ = [
    "HOST_PARAMS",
    "OPEN_QUEUE_PARAMS",
    "PRESETS",
    "Control",
    "Explorer",
    "RunSet",
    "default_chart",
    "explore",
    "explore_host",
    "explore_open_queue",
    "make_widget",
    "param_spec",
    "queue_theory",
    "summary_frame",
]

#: Q9 controls: CPUs, submission algorithm, topology, VCMDQ count, platform and its two main costs.
HOST_PARAMS: tuple[ParamArg, ...] = (
    Control("cpus", lo=1, hi=256),
    "submit",
    "queues",
    Control("vcmdqs", lo=1, hi=128),
    "platform",
    Control("line_xfer_ns", lo=0, hi=200, step=1),
    Control("tlbi_service_ns", lo=10, hi=10_000),
)

#: Queueing-check controls: arrival rate, service time and distribution, burst size.
OPEN_QUEUE_PARAMS: tuple[ParamArg, ...] = (
    Control("rate_mcmd_s", lo=0.1, hi=100),
    Control("service_ns", lo=1, hi=10_000),
    Control("service_dist", label="distribution"),
    Control("burst", lo=1, hi=100),
)

#: Scenario -> keyword arguments of :class:`Explorer` used by :func:`explore` unless overridden.
PRESETS: dict[str, dict[str, Any]] = {
    "host-map-unmap": {"params": HOST_PARAMS},
    "open-queue": {"params": OPEN_QUEUE_PARAMS, "notes": queue_theory},
}


def explore(scenario: str, params: Any = None, **kwargs: Any) -> Explorer:
    """An :class:`Explorer` for ``scenario`` with its :data:`PRESETS` (keyword arguments win).

    Parameters
    ----------
    scenario
        Any registered scenario.
    params
        Controls (names, :class:`Control` objects or ``(name, values)``); default: the preset's,
        else every parameter of the scenario.
    **kwargs
        :class:`Explorer` options: ``x``, ``compare``, ``fixed``, ``seeds``, ``count``, ``metric``,
        ``chart``, ``run_on_change``, ...
    """
    opts = {**PRESETS.get(scenario, {}), **kwargs}
    if params is not None:
        opts["params"] = params
    return Explorer(scenario, **opts)


def _start_values(params: tuple[ParamArg, ...], values: dict[str, Any]) -> tuple[ParamArg, ...]:
    """``params`` with start values given by keyword (``explore_host(cpus=4)``)."""
    if not values:
        return params
    controls = [as_control(p) for p in params]
    return tuple(dataclasses.replace(c, value=values[c.name]) if c.name in values else c for c in controls)


def explore_host(*, x: Any = None, compare: Any = None, **kwargs: Any) -> Explorer:
    """Q9: host throughput and latency vs CPUs for each submission algorithm and queue topology.

    Keyword arguments named like a control set its start value (``explore_host(cpus=64)``); the
    rest go to :class:`Explorer`. ``compare="submit", x="cpus"`` draws ops/s against CPUs per
    algorithm (configurations an algorithm cannot run, e.g. ``exclusive`` on a shared queue, are
    skipped with a warning).
    """
    return _preset_explorer("host-map-unmap", HOST_PARAMS, x, compare, kwargs)


def explore_open_queue(*, x: Any = None, compare: Any = None, **kwargs: Any) -> Explorer:
    """One queue with Poisson (or bursty) arrivals, with the M/D/1 or M/M/1 prediction beside it."""
    return _preset_explorer("open-queue", OPEN_QUEUE_PARAMS, x, compare, kwargs)


def _preset_explorer(
    scenario: str, params: tuple[ParamArg, ...], x: Any, compare: Any, kw: dict[str, Any]
) -> Explorer:
    names = [as_control(p).name for p in params]
    starts = {k: kw.pop(k) for k in list(kw) if k in names}
    options = [k for k in inspect.signature(Explorer).parameters if k not in ("scenario", "params")]
    for k in kw:
        if k not in options:
            raise ParamError(
                f"unknown argument {k!r} for {scenario}: controls {', '.join(names)}; options {', '.join(options)}"
            )
    return explore(scenario, _start_values(params, starts), x=x, compare=compare, **kw)
