"""Controls: a scenario or platform parameter turned into an ipywidget from its metadata.

A :class:`Control` names a parameter and optionally overrides what its metadata
(:class:`~cmdqv_lab.params.ParamInfo`) would give: range, step, log scale, a fixed list of values,
label, initial value. :func:`param_spec` finds the parameter (the scenario's own fields first, then
:class:`~cmdqv_lab.platform.Platform` for scenarios that take a platform) and :func:`make_widget`
derives the widget:

=============================================  =====================================================
parameter                                      widget
=============================================  =====================================================
``choices`` (or ``platform``: the presets)     ``Dropdown``
``bool``                                       ``Checkbox``
``values=`` given                              ``SelectionSlider`` over those values
``int``, ``lo >= 1`` and ``hi/lo >= 32``       ``SelectionSlider`` over powers of two (and default)
``int`` with both bounds                       ``IntSlider``
``float``, ``lo > 0`` and ``hi/lo >= 100``     ``FloatLogSlider`` (base 10)
``float`` with both bounds                     ``FloatSlider``
unbounded number / free string                 ``IntText`` / ``FloatText`` / ``Text``
=============================================  =====================================================

Every slider and text box has ``continuous_update=False``: the browser sends the value once, when
the handle is released (or Enter is pressed), so dragging never starts a simulation.

>>> spec = param_spec("host-map-unmap", "cpus")
>>> w = make_widget(spec, Control("cpus", lo=1, hi=64))
>>> type(w).__name__, w.value, w.continuous_update, [v for _, v in w.options][-3:]
('SelectionSlider', 16, False, [16, 32, 64])
>>> type(make_widget(param_spec("host-map-unmap", "submit"), Control("submit"))).__name__
'Dropdown'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import ParamInfo, Params
from cmdqv_lab.platform import Platform, load_platform, preset_names
from cmdqv_lab.scenarios.base import get_scenario

#: A float log-scale slider is used where the range spans at least this ratio (two decades) ...
LOG_RATIO = 100.0
#: ... and an int slider over powers of two where it spans at least this one (five doublings).
INT_LOG_RATIO = 32.0

#: Width of one control and of its label, in CSS pixels.
WIDGET_WIDTH, LABEL_WIDTH = 400, 130

#: Positions of a linear float slider (the step is the largest power of ten giving at least this many).
SLIDER_POSITIONS = 200


@dataclass(frozen=True)
class Control:
    """A parameter to control, with optional overrides of what its metadata gives.

    Parameters
    ----------
    name
        A field of the scenario's parameters or, for scenarios with a platform, of
        :class:`~cmdqv_lab.platform.Platform`.
    lo, hi
        Slider range (within the parameter's allowed range).
    step
        Slider step (linear sliders; for log sliders the step in decades).
    log
        Force (True) or forbid (False) a log-scale slider; None decides from the range.
    values
        A fixed list of values: a ``SelectionSlider`` (numbers) or ``Dropdown`` (other values).
    label
        Text in front of the widget (default: the parameter name).
    value
        Initial value (default: the parameter's default, or the platform preset's value).
    """

    name: str
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    log: bool | None = None
    values: tuple[Any, ...] | None = None
    label: str | None = None
    value: Any = None

    def __post_init__(self) -> None:
        if self.values is not None:
            object.__setattr__(self, "values", tuple(self.values))
            if not self.values:
                raise ParamError(f"control {self.name}: values= is empty")


@dataclass(frozen=True)
class ParamSpec:
    """Where a parameter lives: its owner class, default, metadata and Python type."""

    name: str
    owner: type[Params]
    default: Any
    info: ParamInfo
    kind: type

    @property
    def is_platform(self) -> bool:
        """True for a :class:`~cmdqv_lab.platform.Platform` field (its value comes from the preset)."""
        return self.owner is Platform

    @property
    def numeric(self) -> bool:
        return self.kind in (int, float) and self.info.choices is None

    def choices(self) -> tuple[Any, ...] | None:
        """Allowed values of a choice parameter (``platform``: the preset names), else None."""
        if self.info.choices is not None:
            return self.info.choices
        if self.name == "platform" and self.kind is str:
            return tuple(preset_names())
        return None

    def parse(self, raw: Any) -> Any:
        """``raw`` (a string or a value) as this parameter's type, checked against its allowed values.

        >>> param_spec("host-map-unmap", "cpus").parse(" 8 ")
        8
        >>> param_spec("host-map-unmap", "cpus").parse("0")
        Traceback (most recent call last):
        ...
        cmdqv_lab.errors.ParamError: cpus=0 is out of range: allowed 1 .. 4000 CPUs
        """
        value = self.owner.parse_overrides({self.name: raw})[self.name]
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.kind is int and isinstance(value, float):
            if not value.is_integer():
                raise ParamError(f"{self.name}={value:g} is not an integer: allowed {self.info.allowed()}")
            value = int(value)
        choices = self.choices()
        if choices is not None:
            if value not in choices:
                raise ParamError(
                    f"{self.name}={value!r} is not allowed: one of {', '.join(map(str, choices))}"
                )
            return value
        if self.numeric:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
                raise ParamError(f"{self.name}={raw!r} is not a number: allowed {self.info.allowed()}")
            lo, hi = self.info.lo, self.info.hi
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ParamError(f"{self.name}={value:g} is out of range: allowed {self.info.allowed()}")
        return value


def param_spec(scenario: str, name: str) -> ParamSpec:
    """Find parameter ``name`` of ``scenario`` (its own fields first, then the platform's).

    >>> param_spec("host-map-unmap", "tlbi_service_ns").is_platform
    True
    >>> param_spec("open-queue", "tlbi_service_ns")
    Traceback (most recent call last):
    ...
    cmdqv_lab.errors.ParamError: unknown parameter 'tlbi_service_ns' for scenario open-queue: allowed rate_mcmd_s, service_ns, service_dist, burst, log2size
    """
    scn = get_scenario(scenario)
    owners: list[type[Params]] = [scn.params] + ([Platform] if scn.uses_platform else [])
    for owner in owners:
        infos = owner.field_infos()
        if name in infos:
            default, info = infos[name]
            return ParamSpec(name, owner, default, info, type(default))
    allowed = ", ".join(n for o in owners for n in o.field_infos())
    raise ParamError(f"unknown parameter {name!r} for scenario {scenario}: allowed {allowed}")


def preset_value(spec: ParamSpec, platform: str) -> Any:
    """The value of a platform field in preset ``platform`` (the default for other parameters)."""
    if not spec.is_platform:
        return spec.default
    return getattr(load_platform(platform), spec.name)


def _nice_step(lo: float, hi: float, value: float) -> float:
    step = 10.0 ** math.floor(math.log10((hi - lo) / SLIDER_POSITIONS)) if hi > lo else 1.0
    for _ in range(6):  # make the start value sit on the grid if a finer power of ten allows it
        if abs(round((value - lo) / step) * step - (value - lo)) <= 1e-9 * max(1.0, abs(value)):
            break
        step /= 10.0
    return step


def powers_of_two(lo: int, hi: int, extra: tuple[int, ...] = ()) -> list[int]:
    """Powers of two in ``[lo, hi]`` plus ``lo``, ``hi`` and ``extra`` values inside the range.

    >>> powers_of_two(1, 100, (12,))
    [1, 2, 4, 8, 12, 16, 32, 64, 100]
    """
    out = {lo, hi, *(e for e in extra if lo <= e <= hi)}
    p = 1
    while p <= hi:
        if p >= lo:
            out.add(p)
        p *= 2
    return sorted(out)


def _bounds(spec: ParamSpec, c: Control) -> tuple[float | None, float | None]:
    lo = spec.info.lo if c.lo is None else c.lo
    hi = spec.info.hi if c.hi is None else c.hi
    for v in (c.lo, c.hi):
        if v is not None:
            spec.parse(v)  # inside the parameter's allowed range
    if lo is not None and hi is not None and lo > hi:
        raise ParamError(f"control {spec.name}: lo={lo:g} is above hi={hi:g}")
    return lo, hi


def _auto_log(spec: ParamSpec, lo: float, hi: float) -> bool:
    return lo > 0 and hi / lo >= (INT_LOG_RATIO if spec.kind is int else LOG_RATIO)


def _clip(v: float, lo: float, hi: float) -> float:
    return min(max(v, lo), hi)


def make_widget(spec: ParamSpec, c: Control, value: Any = None) -> w.ValueWidget:
    """The widget for ``spec`` (see the module docstring), starting at ``value``/``c.value``/default."""
    start = c.value if c.value is not None else (value if value is not None else spec.default)
    start = spec.parse(start)
    label = c.label or spec.name
    doc = spec.info.doc or spec.name
    tip = f"{spec.name}: {doc} ({spec.info.allowed()}; {spec.info.provenance})"
    common: dict[str, Any] = {
        "description": label,
        "tooltip": tip,
        "style": {"description_width": f"{LABEL_WIDTH}px"},
        "layout": w.Layout(width=f"{WIDGET_WIDTH}px"),
    }
    slider: dict[str, Any] = {**common, "continuous_update": False}
    choices = spec.choices()
    if c.values is not None:
        vals = [spec.parse(v) for v in c.values]
        if start not in vals:
            vals.append(start)
        if spec.numeric:
            vals = sorted(set(vals))
            return w.SelectionSlider(options=[(f"{v:g}", v) for v in vals], value=start, **slider)
        return w.Dropdown(options=list(dict.fromkeys(vals)), value=start, **common)
    if choices is not None:
        return w.Dropdown(options=list(choices), value=start, **common)
    if spec.kind is bool:
        return w.Checkbox(value=bool(start), indent=False, **common)
    if spec.kind is str:
        return w.Text(value=start, **slider)
    lo, hi = _bounds(spec, c)
    if lo is None or hi is None:
        if spec.kind is int:
            return w.IntText(value=start, **slider)
        return w.FloatText(value=start, **slider)
    log = _auto_log(spec, lo, hi) if c.log is None else c.log
    if log and lo <= 0:
        raise ParamError(f"control {spec.name}: a log slider needs lo > 0 (got lo={lo:g})")
    if spec.kind is int:
        if log:
            vals = powers_of_two(int(lo), int(hi), (int(_clip(start, lo, hi)),))
            return w.SelectionSlider(
                options=[(str(v), v) for v in vals], value=int(_clip(start, lo, hi)), **slider
            )
        return w.IntSlider(
            value=int(_clip(start, lo, hi)), min=int(lo), max=int(hi), step=int(c.step or 1), **slider
        )
    v = float(_clip(start, lo, hi))
    if log:
        return w.FloatLogSlider(
            value=v,
            base=10,
            min=math.log10(lo),
            max=math.log10(hi),
            step=c.step or 0.01,
            readout_format=".3g",
            **slider,
        )
    step = c.step or _nice_step(lo, hi, v)
    return w.FloatSlider(value=v, min=lo, max=hi, step=step, readout_format=".4g", **slider)


def sweep_values(spec: ParamSpec, c: Control) -> list[Any]:
    """Default values to compare for a parameter: all choices, or a few points over the control's range.

    >>> sweep_values(param_spec("host-map-unmap", "cpus"), Control("cpus", lo=1, hi=64))
    [1, 2, 4, 8, 16, 32, 64]
    >>> sweep_values(param_spec("host-map-unmap", "tlbi_service_ns"), Control("tlbi_service_ns", lo=10, hi=10_000))
    [10.0, 56.0, 320.0, 1800.0, 10000.0]
    """
    if c.values is not None:
        return [spec.parse(v) for v in c.values]
    choices = spec.choices()
    if choices is not None:
        return list(choices)
    if spec.kind is bool:
        return [False, True]
    if not spec.numeric:
        return [spec.default]
    lo, hi = _bounds(spec, c)
    if lo is None or hi is None:
        return [spec.default]
    log = _auto_log(spec, lo, hi) if c.log is None else c.log
    if spec.kind is int:
        if log:
            vals = powers_of_two(int(lo), int(hi))
            while len(vals) > 9:
                vals = vals[::2] if vals[-1] == vals[::2][-1] else [*vals[::2], vals[-1]]
            return vals
        return sorted({round(lo + (hi - lo) * i / 4) for i in range(5)})
    if log:
        pts = [lo * (hi / lo) ** (i / 4) for i in range(5)]
    else:
        pts = [lo + (hi - lo) * i / 4 for i in range(5)]
    return sorted({float(f"{p:.2g}") for p in pts})


def parse_values(spec: ParamSpec, text: str) -> list[Any]:
    """A comma- or space-separated list of values for ``spec``, each parsed and range-checked.

    >>> parse_values(param_spec("host-map-unmap", "cpus"), "1, 2 4,8")
    [1, 2, 4, 8]
    >>> parse_values(param_spec("host-map-unmap", "cpus"), "1, x")
    Traceback (most recent call last):
    ...
    cmdqv_lab.errors.ParamError: cpus='x' is not an integer: allowed 1 .. 4000 CPUs
    """
    tokens = [t for t in text.replace(",", " ").split() if t]
    if not tokens:
        raise ParamError(f"{spec.name}: no values to compare (give a comma-separated list)")
    return list(dict.fromkeys(spec.parse(t) for t in tokens))


def format_values(values: list[Any]) -> str:
    """The text form :func:`parse_values` reads back.

    >>> format_values([1, 2.5, "spinlock"])
    '1, 2.5, spinlock'
    """
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


ParamArg = str | Control | tuple[str, Sequence[Any]]


def as_control(p: ParamArg) -> Control:
    """A :class:`Control` from a name, a Control, or ``(name, values)``."""
    if isinstance(p, Control):
        return p
    if isinstance(p, str):
        return Control(p)
    if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
        return Control(p[0], values=tuple(p[1]))
    raise ParamError(f"a control is a parameter name, a Control or (name, values), not {p!r}")


# ------------------------------------------------------------------------ bound to a widget
class Bound:
    """A control bound to its parameter and widget."""

    def __init__(self, spec: ParamSpec, control: Control, widget: w.ValueWidget) -> None:
        self.spec, self.control, self.widget = spec, control, widget

    @property
    def value(self) -> Any:
        return self.widget.value

    def set(self, value: Any) -> None:
        """Set the widget's value (parsed and checked; added to a selection slider if missing)."""
        v = self.spec.parse(value)
        if isinstance(self.widget, w.SelectionSlider) and v not in [o[1] for o in self.widget.options]:
            opts = sorted([*(o[1] for o in self.widget.options), v])
            self.widget.options = [(f"{o:g}", o) for o in opts]
        self.widget.value = v


class Varied:
    """A parameter given several values: a multi-select (choices) or a comma-separated list."""

    def __init__(self, spec: ParamSpec, control: Control, role: str) -> None:
        self.spec, self.control, self.role = spec, control, role
        vals = sweep_values(spec, control)
        common: dict[str, Any] = {
            "description": f"{role}: {control.label or spec.name}",
            "style": {"description_width": f"{LABEL_WIDTH}px"},
            "tooltip": f"values of {spec.name} to {role} ({spec.info.allowed()})",
        }
        choices = spec.choices()
        if choices is not None and control.values is None:
            self.widget: w.ValueWidget = w.SelectMultiple(
                options=list(choices), value=tuple(vals), rows=min(len(choices), 5), **common
            )
        else:
            self.widget = w.Text(
                value=format_values(vals),
                continuous_update=False,
                layout=w.Layout(width=f"{WIDGET_WIDTH}px"),
                **common,
            )

    @property
    def name(self) -> str:
        return self.spec.name

    def values(self) -> list[Any]:
        if isinstance(self.widget, w.SelectMultiple):
            chosen = [o for o in self.widget.options if o in self.widget.value]
            if not chosen:
                raise ParamError(f"{self.role}: select at least one value of {self.name}")
            return chosen
        return parse_values(self.spec, self.widget.value)

    def set(self, values: Sequence[Any] | str) -> None:
        vals = (
            parse_values(self.spec, values)
            if isinstance(values, str)
            else [self.spec.parse(v) for v in values]
        )
        self.widget.value = tuple(vals) if isinstance(self.widget, w.SelectMultiple) else format_values(vals)
