"""The :class:`Explorer`: widgets for a scenario's parameters that re-simulate when they change.

Layout, top to bottom: the scenario's one-line description; one control per parameter (see
:mod:`.controls`); for a comparison, the values to compare (``compare``: one series per value) and
to sweep along the x axis (``x``); seeds, count and a "more ops" button, the metric a sweep plots, a Run button and a "run
on change" switch; a progress bar and a one-line status; the metrics summary; the chart.

When runs happen, and why dragging does not start one:

- Sliders and text boxes have ``continuous_update=False``: the browser sends a value once, when
  the handle is released or Enter is pressed. Dropdowns and checkboxes send one value per choice.
- A change schedules a run ``debounce_s`` later on the kernel's asyncio loop; a further change
  before then reschedules it. Changes made while a simulation blocks the kernel are queued by
  Jupyter and delivered afterwards, so a burst of changes (several sliders, or a slider moved again
  during a long run) ends in one run with the last values. Without a running event loop (plain
  Python, tests) the run happens at once.
- With "run on change" off, changes only mark the result stale; the Run button runs.

Errors a user can cause (:class:`~cmdqv_lab.errors.CmdqvError`, e.g. ``submit=exclusive`` on a
shared queue) appear as one line in the status (``Explorer.error``) and the previous chart stays.
In a comparison, configurations that fail are skipped and counted in a warning. Other exceptions
are bugs: their traceback is shown in the output area.

>>> ex = Explorer("open-queue", ["rate_mcmd_s", "service_dist"], count=2000)
>>> ex.result.metrics["commands"], ex.error
(2000, None)
>>> ex.controls["service_dist"].widget.value = "exponential"   # a choice in the drop-down: one run
>>> ex.result.params["service_dist"], ex.runs_done
('exponential', 2)
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import ipywidgets as w

from cmdqv_lab.errors import CmdqvError, ParamError
from cmdqv_lab.plots.display import chart_bundle
from cmdqv_lab.scenarios.base import SimResult, get_scenario
from cmdqv_lab.widgets.controls import (
    WIDGET_WIDTH,
    Bound,
    Control,
    ParamArg,
    Varied,
    as_control,
    make_widget,
    param_spec,
    preset_value,
)
from cmdqv_lab.widgets.runs import (
    SUMMARY_METRICS,
    ChartFn,
    Plan,
    RunCache,
    RunSet,
    default_chart,
    error_output,
    estimate_s,
    header_html,
    make_plan,
    one_line,
    point_label,
    run_plan,
    status_line,
    summary_html,
)
from cmdqv_lab.widgets.status import StatusBar

#: ``scheduler(delay_s, fn)`` runs ``fn`` later and returns a handle with ``cancel()``, or None
#: if it cannot schedule (then the run happens at once).
Scheduler = Callable[[float, Callable[[], None]], Any]

#: Choices of the count drop-down.
COUNTS: tuple[int, ...] = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)


def call_later(delay_s: float, fn: Callable[[], None]) -> asyncio.TimerHandle | None:
    """Schedule ``fn`` on the running asyncio loop (a Jupyter kernel's); None outside one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(delay_s, fn)


class Explorer:
    """Live widgets for one scenario: controls, optional comparison, chart, summary (see module doc).

    Parameters
    ----------
    scenario
        A registered scenario name (``cmdqv_lab.scenarios.describe()`` lists them).
    params
        Parameters to control: names, :class:`~cmdqv_lab.widgets.controls.Control` objects (range,
        step, log, values, label, value overrides) or ``(name, values)``. Default: every parameter
        of the scenario itself (not the platform's).
    x, compare
        Comparison mode: ``x`` is a numeric parameter swept along the x axis, ``compare`` one drawn
        as one series per value (a name: its choices, or a few points over its range; or a Control
        with ``values=``; or ``(name, values)``). Their values are edited as lists in the widget.
    fixed
        Parameter values used by every run without a control.
    seeds, seed
        Replicates per configuration, with seeds ``seed, seed+1, ...``.
    count
        Ops (or commands) per simulation (default 20,000; 5,000 when comparing).
    metric
        What a sweep chart plots against ``x`` (a ``SimResult.metrics_row()`` key); a drop-down.
    chart
        ``RunSet -> altair chart`` (default :func:`~cmdqv_lab.widgets.runs.default_chart`).
    record
        Keep per-op records (default: when the chart needs them: no ``x``, or a custom chart).
    summary
        Metrics in the summary table. ``notes``: ``RunSet -> str`` shown under it (e.g. theory).
    run_on_change, debounce_s
        Re-run when a value changes, ``debounce_s`` after the last change (see module doc).
    progress_after_s
        Show the progress bar for runs expected (or found) to take longer than this.
    max_sims
        Refuse runs of more simulations than this (one-line error).
    scheduler
        How a debounced run is scheduled (default: the kernel's asyncio loop, see :data:`Scheduler`).
    run
        Run once on construction, so the explorer opens with a chart.
    """

    def __init__(
        self,
        scenario: str,
        params: Sequence[ParamArg] | None = None,
        *,
        x: ParamArg | None = None,
        compare: ParamArg | None = None,
        fixed: Mapping[str, Any] | None = None,
        seeds: int = 1,
        seed: int = 0,
        count: int | None = None,
        metric: str = "ops_per_s",
        chart: ChartFn | None = None,
        record: bool | None = None,
        summary: Sequence[str] = SUMMARY_METRICS,
        notes: Callable[[RunSet], str] | None = None,
        run_on_change: bool = True,
        debounce_s: float = 0.05,
        progress_after_s: float = 1.0,
        max_sims: int = 400,
        svg: bool = False,
        scheduler: Scheduler | None = call_later,
        run: bool = True,
    ) -> None:
        self.scenario = get_scenario(scenario)
        name = self.scenario.name
        if not isinstance(seeds, int) or not 1 <= seeds <= 100:
            raise ParamError(f"seeds={seeds!r} is out of range: allowed 1 .. 100")
        self.fixed = {k: param_spec(name, k).parse(v) for k, v in (fixed or {}).items()}
        given = [
            as_control(p) for p in (params if params is not None else self.scenario.params.field_infos())
        ]
        self.x = self._varied(x, given, "x")
        self.compare = self._varied(compare, given, "compare")
        if self.x is not None and not self.x.spec.numeric:
            raise ParamError(
                f"x={self.x.name}: the x axis needs a numeric parameter; use compare={self.x.name!r}"
            )
        if self.x and self.compare and self.x.name == self.compare.name:
            raise ParamError(f"{self.x.name} cannot be both x and compare")
        varied = {v.name for v in (self.x, self.compare) if v is not None}
        ctrls = [c for c in given if c.name not in varied]
        for c in ctrls:
            if c.name in self.fixed:
                raise ParamError(f"{c.name} is both fixed and controlled")
        plat = next((c.value for c in ctrls if c.name == "platform" and c.value is not None), None)
        self._platform0 = str(plat or self.fixed.get("platform") or self._default_platform())
        self.controls: dict[str, Bound] = {}
        for c in ctrls:
            spec = param_spec(name, c.name)
            self.controls[c.name] = Bound(spec, c, make_widget(spec, c, preset_value(spec, self._platform0)))
        self.seed = seed
        self.chart_fn: ChartFn = chart or default_chart
        # our chart builders' specs are checked against Vega-Lite's schema by the tests and the report,
        # so a redraw skips Altair's check of the whole spec (10 ms a move, the same spec); a caller's
        # own chart function's are checked
        self._check_chart = chart is not None
        self.record = (self.x is None or chart is not None) if record is None else record
        self.summary_metrics, self.notes = tuple(summary), notes
        self.debounce_s, self.max_sims = debounce_s, max_sims
        self.bar = StatusBar(progress_after_s)
        self.cache = RunCache()
        self.svg, self.scheduler = svg, scheduler
        cap = 5_000 if varied else 20_000  # a scenario's default_count 0 means "all of its input"
        n = (min(self.scenario.default_count, cap) or cap) if count is None else count
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ParamError(f"count={count!r} must be a positive integer")

        # state a notebook (or a test) can read
        self.last: RunSet | None = None
        self.chart: Any = None
        self.error: str | None = None
        self.warning: str | None = None
        self.runs_done = 0
        self._busy = self._pending = self._stale = False
        self._hold = self._quiet_depth = 0
        self._timer: Any = None

        self._build_widgets(seeds, n, metric, run_on_change)
        if run:
            self.run()

    # ------------------------------------------------------------------------ widgets
    def _varied(self, arg: ParamArg | None, given: list[Control], role: str) -> Varied | None:
        """A varied parameter; a bare name takes the range (or values) of its control in ``params``."""
        if arg is None:
            return None
        c = as_control(arg)
        if isinstance(arg, str):
            c = next((replace(g, value=None) for g in given if g.name == c.name), c)
        return Varied(param_spec(self.scenario.name, c.name), c, role)

    def _default_platform(self) -> str:
        own = self.scenario.params.field_infos()
        return str(own["platform"][0]) if "platform" in own else "generic"

    def _build_widgets(self, seeds: int, count: int, metric: str, auto: bool) -> None:
        scn = self.scenario
        small = {"style": {"description_width": "initial"}}
        self.header = w.HTML(header_html(scn.name, scn.doc))
        self.seeds = w.BoundedIntText(
            value=seeds, min=1, max=100, description="seeds", continuous_update=False,
            layout=w.Layout(width="120px"), **small,
        )  # fmt: skip
        opts = sorted({*COUNTS, count})
        self.count = w.Dropdown(
            options=[(f"{c:,}", c) for c in opts], value=count, description=scn.count, **small
        )
        self.more = w.Button(
            description=f"more {scn.count}", icon="plus", layout=w.Layout(width="120px"),
            tooltip=f"the next larger count of {scn.count} per simulation: a narrower interval, a slower answer",
        )  # fmt: skip
        self.metric = w.Dropdown(options=[metric], value=metric, description="metric", **small)
        self.metric.layout.display = "" if self.x is not None else "none"
        self.run_button = w.Button(description="Run", icon="play", tooltip="run the simulations now")
        self.auto = w.Checkbox(
            value=auto, description="run on change", indent=False, layout=w.Layout(width="140px")
        )
        self.progress, self.status = self.bar.progress, self.bar.status
        self.summary = w.HTML()
        self.summary_box = w.Accordion(children=[self.summary], titles=("summary",))
        self.notes_html = w.HTML()
        self.output = w.Output()

        for b in self.controls.values():
            if b.spec.name == "platform":
                b.widget.observe(self._on_platform, names="value")  # before _on_change: one run
            b.widget.observe(self._on_change, names="value")
        for v in (self.x, self.compare):
            if v is not None:
                v.widget.observe(self._on_change, names="value")
        self.seeds.observe(self._on_change, names="value")
        self.count.observe(self._on_change, names="value")
        self.metric.observe(self._on_metric, names="value")
        self.auto.observe(self._on_auto, names="value")
        self.run_button.on_click(lambda _b: self._run_safely())
        self.more.on_click(lambda _b: self.more_ops())

        grid = w.GridBox(
            [b.widget for b in self.controls.values()],
            layout=w.Layout(
                grid_template_columns=f"repeat(auto-fill, {WIDGET_WIDTH + 10}px)", grid_gap="2px 8px"
            ),
        )
        varied = [v.widget for v in (self.compare, self.x) if v is not None]
        settings = w.HBox([self.seeds, self.count, self.more, self.metric, self.run_button, self.auto])
        self.widget = w.VBox(
            [
                self.header,
                grid,
                *([w.HBox(varied)] if varied else []),
                settings,
                self.bar.widget,
                self.output,
                self.notes_html,
                self.summary_box,
            ]
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------------ values
    @property
    def platform(self) -> str:
        """The platform preset the platform controls start from."""
        b = self.controls.get("platform")
        return str(b.value) if b is not None else self._platform0

    def overrides(self) -> dict[str, Any]:
        """The parameter values of the next run (without the varied ones).

        Platform controls are overrides on the preset: one whose value equals the preset's is left
        out, so comparing ``platform`` presets compares their own values.
        """
        ov = dict(self.fixed)
        for name, b in self.controls.items():
            if b.spec.is_platform and b.value == preset_value(b.spec, self.platform):
                continue
            ov[name] = b.value
        return ov

    def values(self) -> dict[str, Any]:
        """Every setting as shown: control values, compared/swept values, seeds and count."""
        out: dict[str, Any] = {k: b.value for k, b in self.controls.items()}
        for v in (self.compare, self.x):
            if v is not None:
                out[v.name] = v.values()
        return {**out, "seeds": self.seeds.value, "count": self.count.value}

    def plan(self) -> Plan:
        """``(point, overrides, seed)`` of every simulation of the next run."""
        return make_plan(
            self.overrides(),
            (self.compare.name, self.compare.values()) if self.compare else None,
            (self.x.name, self.x.values()) if self.x else None,
            seeds=self.seeds.value,
            seed=self.seed,
            max_sims=self.max_sims,
        )

    @property
    def progress_shown(self) -> bool:
        """Whether the progress bar was shown during the last run."""
        return self.bar.shown

    @property
    def result(self) -> SimResult | None:
        """The last simulation of the last successful run."""
        return self.last.results[-1] if self.last else None

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Change several values with (at most) one run at the end."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
            if self._hold == 0 and self._pending:
                self._pending = False
                self._on_change()

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    def set(self, **values: Any) -> None:
        """Set controls (and ``seeds``, ``count``, or the compared/swept lists) with one run.

        >>> ex = Explorer("open-queue", ["rate_mcmd_s", "service_ns"], count=1000, run=False)
        >>> ex.set(rate_mcmd_s=2, service_ns=250)
        >>> ex.runs_done, ex.result.metrics["offered_load"]
        (1, 0.5)
        """
        varied = {v.name: v for v in (self.x, self.compare) if v is not None}
        for k in values:
            if k not in self.controls and k not in varied and k not in ("seeds", "count"):
                allowed = ", ".join([*self.controls, *varied, "seeds", "count"])
                raise ParamError(f"no control {k!r} in this explorer: one of {allowed}")
        with self.hold():
            for k, v in values.items():
                if k == "seeds":
                    self.seeds.value = v
                elif k == "count":
                    if v not in [o[1] for o in self.count.options]:
                        self.count.options = [(f"{c:,}", c) for c in sorted({*COUNTS, v})]
                    self.count.value = v
                elif k in varied:
                    varied[k].set(v)
                else:
                    self.controls[k].set(v)

    def more_ops(self) -> None:
        """Step the count to the next larger choice (the "more ops" button): one run.

        >>> ex = Explorer("open-queue", ["rate_mcmd_s"], count=1000)
        >>> ex.more_ops(); ex.count.value, ex.result.metrics["commands"]
        (2000, 2000)
        """
        larger = [c for _label, c in self.count.options if c > self.count.value]
        if larger:
            self.count.value = larger[0]

    # ------------------------------------------------------------------------ events
    def _on_platform(self, change: Any) -> None:
        with self._quiet():  # load the new preset's values; the platform change itself runs once
            for b in self.controls.values():
                if b.spec.is_platform:
                    b.set(preset_value(b.spec, change["new"]))

    def _on_change(self, change: Any = None) -> None:
        if self._quiet_depth:
            return
        self._stale = True
        if self._hold or self._busy:
            self._pending = True
            return
        if not self.auto.value:
            self._show_stale()
            return
        self._schedule()

    def _on_auto(self, change: Any) -> None:
        if change["new"] and self._stale:
            self._schedule()

    def _on_metric(self, change: Any) -> None:
        if not self._quiet_depth and self.last is not None and self._render_chart(self.last):
            self.error = None
            self.status.value, self.warning = status_line(self.last, self.scenario.count)

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        handle = (
            self.scheduler(self.debounce_s, self._fire) if self.debounce_s > 0 and self.scheduler else None
        )
        if handle is None:
            self._fire()
        else:
            self._timer = handle

    def _fire(self) -> None:
        self._timer = None
        self._run_safely()

    def _run_safely(self) -> None:
        try:
            self.run()
        except Exception as e:  # a bug: show its traceback where the chart was
            self.error = f"internal error: {type(e).__name__}: {one_line(e)}"
            self.bar.error(self.error)
            self.output.outputs = (error_output(e),)

    def _show_stale(self) -> None:
        self.run_button.button_style = "warning"
        self.bar.stale()

    def _show_error(self, message: str) -> None:
        self.error = message
        self.bar.error(message, " (the chart shows the previous run)" if self.last is not None else "")

    # ------------------------------------------------------------------------ running
    def run(self) -> RunSet | None:
        """Run the simulations now (not debounced); None if an expected error stopped every one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy:
            self._pending = True
            return None
        self._busy = True
        try:
            while True:
                self._pending = False
                out = self._run_once()
                if not self._pending:
                    return out
                if not self.auto.value:
                    self._show_stale()
                    return out
        finally:
            self._busy = False

    def _run_once(self) -> RunSet | None:
        try:
            plan = self.plan()
        except CmdqvError as e:
            self._show_error(one_line(e))
            return None
        count = self.count.value
        self.bar.begin(len(plan), estimate_s(self.scenario.name, count, len(plan)))
        try:
            runs = run_plan(
                self.scenario.name,
                plan,
                count=count,
                record=self.record,
                x=self.x.name if self.x else None,
                series=self.compare.name if self.compare else None,
                metric=self.metric.value,
                on_step=self.bar.step,
                cache=self.cache,
            )
        finally:
            self.bar.end()
        self._stale = False
        self.run_button.button_style = ""
        if not runs.results:
            pt, msg = runs.failures[0]
            self._show_error(f"{point_label(pt)}: {msg}" if pt else msg)
            return None
        self.last, self.error = runs, None
        self.runs_done += 1
        self._render(runs)
        return runs

    def _render(self, runs: RunSet) -> None:
        with self._quiet():
            opts = runs.numeric_metrics()
            current = self.metric.value
            self.metric.options = opts if current in opts else [current, *opts]
            self.metric.value = current
        if self._render_chart(runs):
            self.status.value, self.warning = status_line(runs, self.scenario.count)
        self.summary.value = summary_html(runs, self.summary_metrics)
        configs = len({tuple(p.items()) for p in runs.points})
        what = f"{configs} configuration{'s' if configs > 1 else ''}"
        self.summary_box.set_title(0, f"summary: mean ± 95% CI half-width over seeds ({what})")
        if self.runs_done == 1:  # open for a few rows; the user's choice afterwards
            self.summary_box.selected_index = 0 if configs <= 4 else None
        self.notes_html.value = (
            "<br>".join(html.escape(s) for s in self.notes(runs).splitlines()) if self.notes else ""
        )

    def _render_chart(self, runs: RunSet) -> bool:
        try:
            chart = self.chart_fn(replace(runs, metric=self.metric.value))
        except CmdqvError as e:
            self.chart = None
            self.output.outputs = ()
            self._show_error(one_line(e))
            return False
        self.chart = chart
        bundle = chart_bundle(chart, svg=self.svg, validate=self._check_chart)
        self.output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
        return True
