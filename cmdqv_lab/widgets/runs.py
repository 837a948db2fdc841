"""What an explorer run produces (:class:`RunSet`) and what it shows: charts, summary, notes, estimates.

A :class:`RunSet` holds the :class:`~cmdqv_lab.scenarios.SimResult` of every simulation of one
run (configurations x seeds) with the varied values of each (``points``). Chart functions take a
``RunSet`` and return an Altair chart; :func:`default_chart` draws ``metric`` against ``x`` per
``series`` when a parameter is swept along ``x``, else the latency CDF (per ``series``).
:func:`summary_frame` / :func:`summary_html` give the metrics table (mean and 95% confidence
half-width over seeds). :func:`metric_interval` gives the 95% interval of the metric a run shows
(over seeds, or by batch means over one run's ops) for the status line. :func:`estimate_s`
predicts a run's wall time from the speed of earlier runs of the same scenario, to decide whether a
progress bar is worth showing. :class:`RunCache` keeps recent simulations, so a run repeats none
whose inputs are unchanged (more seeds, more x values, a value moved back).

>>> from cmdqv_lab.scenarios import simulate
>>> r = simulate("open-queue", {"rate_mcmd_s": 5}, seed=0, count=2000, record=True)
>>> runs = RunSet("open-queue", (r,), ({},), count=2000)
>>> default_chart(runs).to_dict()["mark"]["type"]
'line'
>>> summary_frame(runs, ["ops_per_s"])["seeds"].to_list()
[1]
"""

from __future__ import annotations

import html
import math
import re
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import polars as pl

from cmdqv_lab.analysis.summary import summarize_replicates, t_critical
from cmdqv_lab.analysis.theory import mg1_wait
from cmdqv_lab.describe import KEY_METRICS
from cmdqv_lab.errors import CmdqvError, FrameError, ParamError
from cmdqv_lab.plots.charts import latency_cdf, throughput_vs_cpus
from cmdqv_lab.scenarios.base import SimResult, simulate

#: Metrics in the summary table by default (those a scenario does not report are left out).
SUMMARY_METRICS: tuple[str, ...] = KEY_METRICS[:6]

#: A sweep chart uses a log x axis when the largest x is at least this multiple of the smallest.
LOG_X_RATIO = 16

#: Style of a summary table cell.
CELL = "padding:1px 10px;text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"


@dataclass(frozen=True)
class RunSet:
    """The simulations of one explorer run.

    Attributes
    ----------
    results
        One :class:`SimResult` per (configuration, seed) that ran without error.
    points
        For each result, the values of the varied parameters (``{x: .., series: ..}``; ``{}``
        when nothing is varied).
    x, series
        The parameter swept along the x axis and the one drawn as separate series (or None).
    metric
        The metric a sweep chart plots against ``x``.
    failures
        ``(point, message)`` of configurations that raised an expected error (e.g. ParamError).
    """

    scenario: str
    results: tuple[SimResult, ...]
    points: tuple[Mapping[str, Any], ...]
    x: str | None = None
    series: str | None = None
    metric: str = "ops_per_s"
    count: int = 0
    wall_s: float = 0.0
    failures: tuple[tuple[Mapping[str, Any], str], ...] = field(default=())

    @property
    def keys(self) -> list[str]:
        """The varied parameters, series first."""
        return [k for k in (self.series, self.x) if k is not None]

    def metrics(self) -> pl.DataFrame:
        """One row per simulation: the flattened metrics, the seed and the varied parameters."""
        rows = [{**r.metrics_row(), **pt} for r, pt in zip(self.results, self.points)]
        return pl.DataFrame(rows, infer_schema_length=None)

    def ops(self) -> pl.DataFrame:
        """Per-op records of every simulation with ``latency_ns`` and the varied parameters."""
        frames = []
        for r, pt in zip(self.results, self.points):
            ops = r.ops
            if ops is None:
                raise FrameError("this chart needs per-op records: create the explorer with record=True")
            frames.append(
                ops.with_columns(
                    (pl.col("latency_ps") / 1000.0).alias("latency_ns"),
                    *(pl.lit(v).alias(k) for k, v in pt.items()),
                )
            )
        if not frames:
            raise FrameError("no results to chart")
        return pl.concat(frames, how="vertical_relaxed")

    def numeric_metrics(self) -> list[str]:
        """Metric columns a sweep chart can plot (numeric, not all missing)."""
        df = self.metrics()
        skip = {"seed", *self.keys}
        return [
            c
            for c in df.columns
            if c not in skip and df[c].dtype.is_numeric() and df[c].null_count() < df.height
        ]


ChartFn = Callable[[RunSet], alt.TopLevelMixin]


def default_chart(runs: RunSet) -> alt.TopLevelMixin:
    """``metric`` vs ``x`` per ``series`` (mean, 95% CI over seeds) for a sweep, else the op latency CDF.

    The x axis is logarithmic when the swept values span a factor of :data:`LOG_X_RATIO` or more.
    """
    n_seeds = len({r.seed for r in runs.results})
    what = f"{runs.scenario}, {n_seeds} seed{'s' if n_seeds > 1 else ''} x {runs.count:,}"
    if runs.x is not None:
        per = f" per {runs.series}" if runs.series else ""
        df = runs.metrics()
        xs = df[runs.x].drop_nulls()
        return throughput_vs_cpus(
            df,
            x=runs.x,
            y=runs.metric,
            color=runs.series,
            log_x=bool(xs.len() and xs.min() > 0 and xs.max() >= LOG_X_RATIO * xs.min()),  # type: ignore[operator]
            title=f"{runs.metric} vs {runs.x}{per} ({what})",
        )
    return latency_cdf(runs.ops(), "latency_ns", by=runs.series, title=f"Op latency ({what})")


def summary_frame(runs: RunSet, metrics: Sequence[str] = SUMMARY_METRICS) -> pl.DataFrame:
    """Per configuration: ``seeds`` and, per metric, its mean and 95% CI half-width (``<metric>_ci``)."""
    df = runs.metrics()
    keys = runs.keys
    cols = [
        m for m in metrics if m in df.columns and df[m].dtype.is_numeric() and df[m].null_count() < df.height
    ]
    out = df.group_by(keys).agg(pl.len().alias("seeds")) if keys else pl.DataFrame({"seeds": [df.height]})
    for m in cols:
        s = summarize_replicates(df, keys or None, m).select(
            *keys, pl.col("mean").alias(m), ((pl.col("ci_hi") - pl.col("ci_lo")) / 2).alias(f"{m}_ci")
        )
        out = out.join(s, on=keys, how="left") if keys else pl.concat([out, s], how="horizontal")
    return out.sort(keys) if keys else out


def fmt(v: Any, digits: int = 4) -> str:
    """A number for a table cell: SI prefixes above 10^4, ``digits`` significant digits.

    >>> fmt(1706759.9), fmt(863.127), fmt(0.61324), fmt(None), fmt(15678.2, 2)
    ('1.707 M', '863.1', '0.6132', '–', '16 k')
    """
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    for threshold, scale, prefix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(v) >= threshold:
            return f"{v / scale:.{digits}g} {prefix}"
    return f"{v:.{digits}g}"


def header_html(name: str, doc: str) -> str:
    """The scenario's name and one-line description, with RST ````code```` as HTML code.

    >>> header_html("open-queue", "``open-queue``: one queue, ``rate`` <arrivals>")
    '<b>open-queue</b>: one queue, <code>rate</code> &lt;arrivals&gt;'
    """
    doc = doc.strip()
    if doc.startswith(f"``{name}``"):
        doc = doc[len(name) + 4 :].lstrip(": ")
    text = re.sub(r"``(.+?)``", r"<code>\1</code>", html.escape(doc))
    return f"<b>{html.escape(name)}</b>: {text}" if text else f"<b>{html.escape(name)}</b>"


def summary_html(runs: RunSet, metrics: Sequence[str] = SUMMARY_METRICS) -> str:
    """The summary table as escaped HTML (a ``cmdqv-table``, like the report's tables)."""
    s = summary_frame(runs, metrics)
    keys = runs.keys
    cols = [m for m in metrics if m in s.columns]
    head = "".join(f'<th style="{CELL}">{html.escape(c)}</th>' for c in [*keys, "seeds", *cols])
    body = []
    for row in s.iter_rows(named=True):
        cells = [html.escape(str(row[k])) for k in keys] + [str(row["seeds"])]
        for m in cols:
            ci = row.get(f"{m}_ci")
            cells.append(html.escape(fmt(row[m]) + (f" ± {fmt(ci, 2)}" if ci is not None else "")))
        body.append("<tr>" + "".join(f'<td style="{CELL}">{c}</td>' for c in cells) + "</tr>")
    return (
        '<table class="cmdqv-table" style="font-size:12px;border-collapse:collapse">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def queue_theory(runs: RunSet) -> str:
    """For ``open-queue``: the Pollaczek-Khinchine mean queue wait next to the simulated one.

    >>> from cmdqv_lab.scenarios import simulate
    >>> r = simulate("open-queue", {"rate_mcmd_s": 8, "service_ns": 100}, seed=0, count=5000)
    >>> queue_theory(RunSet("open-queue", (r,), ({},))).split(";")[0]
    'rate_mcmd_s=8, service_ns=100, deterministic: theory (M/D/1, ρ = 0.80) mean queue wait 200 ns'
    """
    lines = []
    df = runs.metrics()
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, pt in enumerate(runs.points):
        groups.setdefault(tuple(pt.items()), []).append(i)
    for idx in list(groups.values())[:12]:
        p = runs.results[idx[0]].params
        label = f"rate_mcmd_s={p['rate_mcmd_s']:g}, service_ns={p['service_ns']:g}, {p['service_dist']}"
        sim = df[idx]["queue_wait_ns_mean"].mean()
        rho = p["rate_mcmd_s"] * p["service_ns"] / 1000.0
        if p["burst"] != 1:
            lines.append(f"{label}, burst={p['burst']:g}: no closed form for bursts; simulated {fmt(sim)} ns")
        elif rho >= 1:
            lines.append(f"{label}: offered load ρ = {rho:.2f} ≥ 1, unstable: waits grow with the run length")
        else:
            scv = 0.0 if p["service_dist"] == "deterministic" else 1.0
            name = "M/D/1" if scv == 0 else "M/M/1"
            theory = mg1_wait(p["rate_mcmd_s"] / 1000.0, p["service_ns"], scv)
            lines.append(
                f"{label}: theory ({name}, ρ = {rho:.2f}) mean queue wait {fmt(theory)} ns; simulated {fmt(sim)} ns"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- intervals
#: Batches of a single run's batch-means interval (consecutive ops in completion order).
BATCHES = 10
#: Metrics a single run's per-op records give batch means for: a batch's value from its ops (the
#: throughputs in ops per ps: only their relative interval is used).
_SPAN = (pl.col("complete_ps").max() - pl.col("complete_ps").min()).cast(pl.Float64).clip(lower_bound=1.0)
BATCH_METRICS: dict[str, pl.Expr] = {
    "op_latency_ns_mean": pl.col("latency_ps").mean() / 1e3,
    "ops_per_s": pl.len() / _SPAN,
    "ops_per_s_per_cpu": pl.len() / _SPAN,
    "commands_per_s": pl.col("cmds").sum() / _SPAN,
}


@dataclass(frozen=True)
class Interval:
    """The 95% confidence interval of a metric: the widest (relative) over a run's configurations."""

    metric: str
    rel_half: float  # half-width / |mean|
    method: str  # "over 3 seeds", "batch means, 10 batches of 200 ops"

    def text(self) -> str:
        """``op_latency_ns_mean ±1.8% (95% CI, batch means, 10 batches of 200 ops)`` (two digits).

        >>> Interval("ops_per_s", 0.0123, "over 3 seeds").text(), Interval("x", 3.344, "m").text()
        ('ops_per_s ±1.2% (95% CI, over 3 seeds)', 'x ±334% (95% CI, m)')
        """
        pct = 100 * self.rel_half
        return (
            f"{self.metric} ±{pct:.2g}% (95% CI, {self.method})"
            if pct < 100
            else (f"{self.metric} ±{pct:.0f}% (95% CI, {self.method})")
        )


def shown_metric(runs: RunSet) -> str:
    """The metric the default chart shows: ``metric`` of a sweep, else the mean op latency (the CDF)."""
    return runs.metric if runs.x is not None else "op_latency_ns_mean"


def batch_half(ops: pl.DataFrame, metric: str, batches: int = BATCHES) -> float | None:
    """Relative 95% half-width of ``metric`` from one run's op records by batch means, or None.

    >>> import polars as pl
    >>> ops = pl.DataFrame({"latency_ps": [1000.0, 3000.0] * 50, "complete_ps": range(100), "cmds": [2] * 100})
    >>> round(batch_half(ops, "op_latency_ns_mean"), 6), batch_half(ops, "fixups")
    (0.0, None)
    """
    expr = BATCH_METRICS.get(metric)
    if expr is None or ops.height < 2 * batches:
        return None
    ordered = ops.sort("complete_ps").with_row_index("_i")
    ordered = ordered.with_columns((pl.col("_i") * batches // ordered.height).alias("_b"))
    values = ordered.group_by("_b").agg(expr.alias("v"))["v"].cast(pl.Float64).to_list()
    mean = sum(values) / len(values)
    if mean == 0:
        return None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return float(t_critical(pl.Series([len(values)]), 0.95)[0]) * sd / math.sqrt(len(values)) / abs(mean)


def metric_interval(runs: RunSet, metric: str | None = None) -> Interval | None:
    """The widest relative 95% interval of ``metric`` (default: the shown one) over the configurations.

    Over seeds (Student t) when each configuration ran two or more; else by batch means over each
    run's per-op records (:data:`BATCH_METRICS`); None when neither applies (one seed of a metric
    the op records do not give, or no records).
    """
    metric = metric or shown_metric(runs)
    df = runs.metrics()
    n_seeds = len({r.seed for r in runs.results})
    if n_seeds >= 2 and metric in df.columns and df[metric].dtype.is_numeric():
        s = summarize_replicates(df, runs.keys or None, metric).filter(pl.col("n") >= 2)
        rel = s.select(((pl.col("ci_hi") - pl.col("ci_lo")) / 2 / pl.col("mean").abs()).max()).item()
        return None if rel is None else Interval(metric, float(rel), f"over {n_seeds} seeds")
    halves = [batch_half(r.ops, metric) if r.ops is not None else None for r in runs.results]
    if not halves or any(h is None for h in halves):
        return None
    per = runs.count // BATCHES
    return Interval(
        metric, max(h for h in halves if h is not None), f"batch means, {BATCHES} batches of {per:,} ops"
    )


# ---------------------------------------------------------------------------------------- running
#: ``(point, overrides, seed)`` of each simulation of a run.
Plan = list[tuple[dict[str, Any], dict[str, Any], int]]


def one_line(e: BaseException) -> str:
    """The first line of an exception's message."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def point_label(pt: Mapping[str, Any]) -> str:
    """``{"submit": "spinlock", "cpus": 4}`` -> ``"submit=spinlock, cpus=4"``."""
    return ", ".join(f"{k}={v}" for k, v in pt.items())


def make_plan(
    base: Mapping[str, Any],
    series: tuple[str, Sequence[Any]] | None,
    x: tuple[str, Sequence[Any]] | None,
    *,
    seeds: int,
    seed: int = 0,
    max_sims: int = 400,
) -> Plan:
    """Every (series value, x value, seed) combination on top of ``base`` overrides.

    >>> [(pt, s) for pt, _, s in make_plan({"cpus": 2}, ("submit", ["a", "b"]), None, seeds=2)]
    [({'submit': 'a'}, 0), ({'submit': 'a'}, 1), ({'submit': 'b'}, 0), ({'submit': 'b'}, 1)]
    """
    ss = list(series[1]) if series else [None]
    xs = list(x[1]) if x else [None]
    n = len(ss) * len(xs) * seeds
    if n > max_sims:
        raise ParamError(
            f"{n} simulations ({len(ss) * len(xs)} configurations x {seeds} seeds) exceed "
            f"max_sims={max_sims}: compare fewer values or use fewer seeds"
        )
    out: Plan = []
    for s in ss:
        for xv in xs:
            pt: dict[str, Any] = {}
            if series:
                pt[series[0]] = s
            if x:
                pt[x[0]] = xv
            out += [(pt, {**base, **pt}, seed + k) for k in range(seeds)]
    return out


class RunCache:
    """The last ``size`` simulations by their inputs (scenario, parameters, seed, count, records).

    A simulation is a pure function of its inputs (seeded), so a result found here is the result
    it would compute again.

    >>> c = RunCache(size=1)
    >>> c.put(("s", (), 0, 10, False), "r1"); c.put(("s", (), 1, 10, False), "r2")
    >>> c.get(("s", (), 0, 10, False)), c.get(("s", (), 1, 10, False)), c.hits
    (None, 'r2', 1)
    """

    def __init__(self, size: int = 64) -> None:
        self.size, self.hits = size, 0
        self._d: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    @staticmethod
    def key(
        scenario: str, overrides: Mapping[str, Any], seed: int, count: int, record: bool
    ) -> tuple[Any, ...]:
        return (scenario, tuple(sorted((k, repr(v)) for k, v in overrides.items())), seed, count, record)

    def get(self, key: tuple[Any, ...]) -> Any:
        r = self._d.get(key)
        if r is not None:
            self._d.move_to_end(key)
            self.hits += 1
        return r

    def put(self, key: tuple[Any, ...], result: Any) -> None:
        self._d[key] = result
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)


def run_plan(
    scenario: str,
    plan: Plan,
    *,
    count: int,
    record: bool,
    x: str | None = None,
    series: str | None = None,
    metric: str = "ops_per_s",
    on_step: Callable[[int, int, float], None] | None = None,
    cache: RunCache | None = None,
) -> RunSet:
    """Simulate every entry of ``plan`` in order, calling ``on_step(done, total, elapsed_s)`` after each.

    A configuration whose simulation raises an expected error (:class:`~cmdqv_lab.errors.CmdqvError`)
    is recorded once in ``failures`` and its other seeds are skipped; the others still run. With a
    ``cache``, a simulation whose inputs it holds is not run again.
    """
    t0 = time.perf_counter()
    results: list[SimResult] = []
    points: list[dict[str, Any]] = []
    failures: list[tuple[Mapping[str, Any], str]] = []
    failed: set[tuple[tuple[str, Any], ...]] = set()
    for i, (pt, ov, seed) in enumerate(plan):
        key = tuple(pt.items())
        if key not in failed:
            ck = RunCache.key(scenario, ov, seed, count, record)
            r = cache.get(ck) if cache is not None else None
            if r is None:
                try:
                    r = simulate(scenario, ov, seed=seed, count=count, record=record)
                except CmdqvError as e:
                    failed.add(key)
                    failures.append((pt, one_line(e)))
                    r = None
                else:
                    learn_rate(scenario, r.wall_s, count)
                    if cache is not None:
                        cache.put(ck, r)
            if r is not None:
                results.append(r)
                points.append(pt)
        if on_step is not None:
            on_step(i + 1, len(plan), time.perf_counter() - t0)
    return RunSet(
        scenario,
        tuple(results),
        tuple(points),
        x=x,
        series=series,
        metric=metric,
        count=count,
        wall_s=time.perf_counter() - t0,
        failures=tuple(failures),
    )


def error_output(e: BaseException) -> dict[str, Any]:
    """An nbformat ``error`` output with the exception's traceback (for bugs, shown in the output area)."""
    return {
        "output_type": "error",
        "ename": type(e).__name__,
        "evalue": str(e),
        "traceback": traceback.format_exception(e),
    }


def status_line(runs: RunSet, unit: str) -> tuple[str, str | None]:
    """The status HTML after a successful run, and the warning about failed configurations (or None).

    It says how many simulations of how many ops ran, and the 95% interval that gives for the shown
    metric (:func:`metric_interval`), or how to get one.
    """
    n, cfg = len(runs.results), len({tuple(p.items()) for p in runs.points})
    what = f"{n} simulation{'s' if n > 1 else ''}" + (f" ({cfg} configurations)" if cfg > 1 else "")
    iv = metric_interval(runs)
    ci = iv.text() if iv else f"{shown_metric(runs)}: no interval from one seed, set seeds ≥ 2"
    line = html.escape(
        f"{what} of {runs.count:,} {unit} in {runs.wall_s:.2f} s · {ci}; more {unit} or seeds narrow it"
    )
    if not runs.failures:
        return line, None
    pt, msg = runs.failures[0]
    warning = f"{len(runs.failures)} configuration(s) failed, e.g. {point_label(pt)}: {msg}"
    return line + f' — <span style="color:#a15c00">⚠ {html.escape(warning)}</span>', warning


# ---------------------------------------------------------------------------------------- run time
#: Seconds per counted op/command assumed for a scenario that has not run yet in this process.
PRIOR_S_PER_UNIT = 5e-6
#: Added to the first estimate of a process: loading (or compiling, ~40 s) the numba engine.
WARMUP_S = 2.0
_RATES: dict[str, float] = {}


def engine_ready() -> bool:
    """True once the compiled engine has been loaded in this process."""
    from cmdqv_lab.engine.loop import run_loop

    return bool(getattr(run_loop, "signatures", ()))


def learn_rate(scenario: str, wall_s: float, count: int) -> None:
    """Record the speed of a finished simulation (a moving average per scenario)."""
    if count <= 0 or wall_s <= 0:
        return
    rate = wall_s / count
    old = _RATES.get(scenario)
    _RATES[scenario] = rate if old is None else 0.5 * old + 0.5 * rate


def estimate_s(scenario: str, count: int, n_sims: int) -> float:
    """Expected wall time of ``n_sims`` simulations of ``count`` ops (or commands) each.

    >>> estimate_s("no-such-scenario", 1000, 2) >= 2 * 1000 * PRIOR_S_PER_UNIT
    True
    """
    est = _RATES.get(scenario, PRIOR_S_PER_UNIT) * count * n_sims
    return est + (0.0 if engine_ready() else WARMUP_S)
