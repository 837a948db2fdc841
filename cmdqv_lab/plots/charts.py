"""Chart builders: pure functions from a polars frame to an :class:`altair.Chart`, with no I/O.

Each builder checks its columns (raising :class:`~cmdqv_lab.errors.FrameError` that names the
builder and the missing column), aggregates or downsamples in polars so the data embedded in the
Vega-Lite spec stays small whatever the size of the input, and returns a chart that tests can
inspect with ``chart.to_dict()``. Column names are parameters; the defaults match the result
schemas of the engine. Altair takes polars frames directly (no pandas or pyarrow involved).

Interactive exploration for the static report is :func:`explorer`: a Vega-Lite parameter bound to
an HTML slider (or drop-down) filters precomputed sweep data, so it works without a kernel.

>>> import polars as pl
>>> df = pl.DataFrame({"cpus": [1, 1, 2, 2], "ops_per_s": [1.0, 1.2, 1.9, 2.1],
...                    "policy": ["shared"] * 4})
>>> spec = throughput_vs_cpus(df).to_dict()
>>> [layer["mark"]["type"] for layer in spec["layer"]]
['area', 'line', 'point']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import altair as alt
import polars as pl

from cmdqv_lab.analysis.summary import (
    BAND_COLUMNS,
    DEFAULT_QUANTILES,
    PERCENTILE_COLUMNS,
    SUMMARY_COLUMNS,
    percentile_label,
    percentiles,
    replicate_band,
    require_columns,
)
from cmdqv_lab.errors import FrameError
from cmdqv_lab.plots.encoding import channels
from cmdqv_lab.plots.explorer import explorer
from cmdqv_lab.plots.kinds import DASH, KINDS, check_kind, kind_text
from cmdqv_lab.plots.labels import label
from cmdqv_lab.plots.marks import marked_lines

__all__ = [
    "PHASES",
    "batch_timeline",
    "ecdf_points",
    "explorer",
    "hazard_counts",
    "latency_cdf",
    "latency_percentiles",
    "occupancy_over_time",
    "throughput_vs_cpus",
]

#: Phases of one batch's life, in the order they happen (colour order of :func:`batch_timeline`).
PHASES: tuple[str, ...] = (
    "reserve",
    "write",
    "publish",
    "wait_owner",
    "gather",
    "doorbell",
    "consume",
    "sync_wait",
    "wake",
    "fixup",
)


def _q(field: str, **kw: Any) -> dict[str, Any]:
    return {"field": field, "type": "quantitative", **kw}


def _n(field: str, **kw: Any) -> dict[str, Any]:
    return {"field": field, "type": "nominal", **kw}


def _title(text: str, subtitle: str | None = None) -> alt.TitleParams:
    return alt.TitleParams(text=text, subtitle=subtitle) if subtitle else alt.TitleParams(text=text)


def _safe(name: str, reserved: Sequence[str]) -> str:
    while name in reserved:
        name += "_"
    return name


def _log_ok(s: pl.Series) -> bool:
    s = s.drop_nulls()
    return s.len() > 0 and bool((s > 0).all())


def _series_check(df: pl.DataFrame, color: str | None, max_series: int, where: str) -> None:
    if color and df[color].n_unique() > max_series:
        raise FrameError(
            f"{where}: {df[color].n_unique()} series in one panel exceed {max_series}; "
            "split them into panels (panel=...) or select with an explorer"
        )


def _kind_of(df: pl.DataFrame, kind: str, where: str) -> tuple[str | None, str | None]:
    """(constant kind, kind column): ``kind`` is a kind name or the name of a column of kinds."""
    if kind in df.columns:
        bad = set(df[kind].unique().to_list()) - set(KINDS)
        if bad:
            raise FrameError(
                f"{where}: column {kind!r} holds {sorted(map(str, bad))[0]!r}, not one of {', '.join(KINDS)}"
            )
        return None, kind
    return check_kind(kind, where), None


def throughput_vs_cpus(
    df: pl.DataFrame,
    x: str = "cpus",
    y: str = "ops_per_s",
    color: str | None = "policy",
    *,
    confidence: float = 0.95,
    log_x: bool = False,
    log_y: bool = False,
    title: str | None = None,
    subtitle: str | None = None,
    kind: str = "predicted",
    x_title: str | None = None,
    y_title: str | None = None,
    color_title: str | None = None,
    panel: str | None = None,
    max_series: int = 8,
    ranges: tuple[str, str] | None = None,
) -> alt.LayerChart | alt.HConcatChart:
    """Mean of ``y`` against ``x`` per ``color`` group, with a band across replicates when there are any.

    Parameters
    ----------
    df
        One row per replicate (seed): columns ``x``, ``y`` and ``color``.
    confidence
        Level of the interval of :func:`~cmdqv_lab.analysis.summary.replicate_band`: on a log scale
        for positive data (never below zero), lowest-to-highest seed for non-negative data; no band
        where a point has a single replicate. The subtitle says which.
    kind
        What the values are (:mod:`cmdqv_lab.plots.kinds`): a kind name for the whole chart, or
        the name of a column holding one per row. Predictions are drawn dashed, measurements as
        diamonds without a line.
    x_title, y_title, color_title
        Axis and legend titles (default: :func:`~cmdqv_lab.plots.labels.label` of the column).
    panel
        A column whose values split the chart into side-by-side panels (each its own legend, one
        y scale), for more series than one panel can show apart.
    max_series
        Most series one panel may hold (colours stay distinct up to the palette's 8).
    ranges
        Two columns ``(low, high)``: where both are set (predictions of a calibrated preset), a
        vertical bar with end ticks shows the range of the value over the calibration's assumptions
        (:mod:`cmdqv_lab.analysis.uncertainty`). It is not a confidence interval, and the subtitle
        says so.

    Examples
    --------
    >>> df = pl.DataFrame({"cpus": [1, 1, 4, 4], "ops_per_s": [1.0, 3.0, 4.0, 6.0], "policy": "a"})
    >>> spec = throughput_vs_cpus(df).to_dict()
    >>> spec["layer"][1]["encoding"]["y"]["field"], len(next(iter(spec["datasets"].values())))
    ('mean', 2)
    >>> spec["title"]["subtitle"]
    'model prediction (timing model outside its calibration rows); line: mean of 2 seeds; band: 95% confidence interval on a log scale'
    """
    where = "throughput_vs_cpus"
    const_kind, kind_col = _kind_of(df, kind, where)
    if panel:
        require_columns(df, [panel], where)
        parts = [
            throughput_vs_cpus(
                df.filter(pl.col(panel) == v), x, y, color, confidence=confidence, log_x=log_x, log_y=log_y,
                title=str(v), subtitle="", kind=kind, x_title=x_title, y_title=y_title,
                color_title=color_title, max_series=max_series,
            ).properties(width=330)
            for v in df[panel].unique(maintain_order=True).to_list()
        ]  # fmt: skip
        sub0 = _band_subtitle(df, x, y, color, panel, kind, confidence)
        return (
            alt.hconcat(*parts)
            .resolve_scale(y="shared", color="independent", shape="independent", stroke="independent",
                           fill="independent", strokeDash="independent")
            .properties(title=_title(title or f"{label(y)} vs {label(x)}", subtitle or sub0))
            .configure_legend(orient="bottom", direction="vertical", columns=1)
        )  # fmt: skip
    keys = [x] if color is None else [color, x]
    if kind_col:
        keys.append(kind_col)
    require_columns(df, [*keys, y], where)
    if y in keys:
        raise FrameError(f"throughput_vs_cpus: {y!r} cannot be both the measure and a grouping column")
    if color:
        _series_check(df, color, max_series, where)
    # group columns that clash with the band's own columns (e.g. x="n") get a trailing "_"
    fx = _safe(x, (*SUMMARY_COLUMNS, *BAND_COLUMNS))
    fc = _safe(color, (*SUMMARY_COLUMNS, *BAND_COLUMNS)) if color else None
    d = df.select(
        pl.col(x).alias(fx),
        *([pl.col(color).alias(fc)] if color and fc else []),
        *([pl.col(kind_col).alias("kind")] if kind_col else []),
        pl.col(y),
    )
    s, how = replicate_band(d, by=[k for k in (fc, fx, "kind" if kind_col else None) if k], value=y,
                            confidence=confidence)  # fmt: skip
    xt, yt, ct = x_title or label(x), y_title or label(y), color_title or (label(color) if color else None)
    xenc = _q(fx, title=xt, scale={"type": "log", "nice": False} if log_x else {"zero": False})
    yscale: dict[str, Any] = {"type": "log"} if log_y else {}
    base = alt.Chart(s).encode(**channels(x=xenc))
    layers: list[Any] = []
    range_words = ""
    if ranges:
        require_columns(df, list(ranges), where)
        r = df.filter(pl.col(ranges[0]).is_not_null() & pl.col(ranges[1]).is_not_null()).select(
            pl.col(x).alias(fx),
            *([pl.col(color).alias(fc)] if color and fc else []),
            pl.col(ranges[0]).cast(pl.Float64).alias("range_low"),
            pl.col(ranges[1]).cast(pl.Float64).alias("range_high"),
        )
        if r.height:
            rb = alt.Chart(r).encode(**channels(x=_q(fx, title=x_title or label(x),
                                          scale={"type": "log", "nice": False} if log_x else {"zero": False})))  # fmt: skip
            rtip = [alt.Tooltip(field=f, type="quantitative", format=",.4~g", title=t)
                    for f, t in (("range_low", "low end over assumptions"), ("range_high", "high end over assumptions"))]  # fmt: skip
            rule = rb.mark_rule(strokeWidth=2, opacity=0.8).encode(
                **channels(
                    y=alt.Y("range_low:Q", scale={"type": "log"} if log_y else {}),
                    y2="range_high:Q",
                    tooltip=rtip,
                )
            )
            ticks = [rb.mark_tick(thickness=2, size=12, opacity=0.8).encode(y=alt.Y(f"{f}:Q"), tooltip=rtip)
                     for f in ("range_low", "range_high")]  # fmt: skip
            if color and fc:
                rule = rule.encode(color=alt.Color(field=fc, type="nominal", legend=None))
                ticks = [t.encode(color=alt.Color(field=fc, type="nominal", legend=None)) for t in ticks]
            layers += [rule, *ticks]
            range_words = "; vertical bars: range of a prediction over the calibration's assumptions (not a confidence interval)"
    if s["lo"].drop_nulls().len():
        band = (
            base.transform_filter("isValid(datum.lo)")
            .mark_area(opacity=0.2)
            .encode(y=alt.Y("lo:Q", scale=yscale), y2=alt.Y2("hi:Q"))
        )
        if color and fc:  # coloured through `fill`, without a legend: see marked_lines
            band = band.encode(fill=alt.Fill(field=fc, type="nominal", legend=None))
        layers.append(band)
    tooltip = [alt.Tooltip(field=fx, type="quantitative", title=xt)]
    if color and fc:
        tooltip.insert(0, alt.Tooltip(field=fc, type="nominal", title=ct))
    tooltip += [alt.Tooltip(field="mean", type="quantitative", format=",.4~g", title=yt)]
    tooltip += [
        alt.Tooltip(field=f, type="quantitative", format=",.4~g", title=f"band {f}") for f in ("lo", "hi")
    ]
    tooltip.append(alt.Tooltip(field="n", type="quantitative", title="seeds"))
    yenc = _q("mean", title=yt, scale=yscale)
    if kind_col:
        tooltip.append(alt.Tooltip(field="kind", type="nominal", title="what it is"))
        present = set(s["kind"].to_list())
        lined = [k for k in KINDS if k in present and k != "measured"]
        modelled = base.transform_filter("datum.kind != 'measured'")
        layers += marked_lines(modelled, yenc, fc if color else None, ct, tooltip, dash=("kind", lined))
        if "measured" in present:
            # measured values: large hollow markers without a line, in the series' colour and shape
            measured = (
                base.transform_filter("datum.kind == 'measured'")
                .mark_point(filled=False, size=170, strokeWidth=2.5, opacity=1)
                .encode(**channels(y=yenc, tooltip=tooltip))
            )
            if color and fc:
                measured = measured.encode(
                    **channels(
                        color={"field": fc, "type": "nominal", "title": ct},
                        shape={"field": fc, "type": "nominal", "title": ct},
                    )
                )
            layers.append(measured)
        what = _kinds_words([k for k in KINDS if k in present])
    else:
        layers += marked_lines(
            base, yenc, fc if color else None, ct, tooltip, dash=DASH[const_kind or "predicted"]
        )
        what = kind_text(const_kind or "predicted")
    head = title or f"{yt} vs {xt}"
    return alt.LayerChart(
        layer=layers, title=_title(head, f"{what}; {how}{range_words}" if subtitle is None else subtitle)
    )


def _kinds_words(kinds: list[str]) -> str:
    return "; ".join(
        "measured: large hollow markers"
        if k == "measured"
        else kind_text(k) + (" (dashed)" if k == "predicted" else "")
        for k in kinds
    )


def _band_subtitle(
    df: pl.DataFrame, x: str, y: str, color: str | None, panel: str, kind: str, confidence: float
) -> str:
    """The subtitle a whole panelled chart gets (kinds present; how the band is made)."""
    keys = list(dict.fromkeys(k for k in (color, panel, x, kind if kind in df.columns else None) if k))
    _, how = replicate_band(df.select(*keys, y), keys, y, confidence)
    what = (
        _kinds_words([k for k in KINDS if k in set(df[kind].to_list())])
        if kind in df.columns
        else kind_text(kind)
    )
    return f"{what}; {how}"


def latency_percentiles(
    df: pl.DataFrame,
    value: str = "latency_ns",
    by: str = "policy",
    q: Sequence[float] = DEFAULT_QUANTILES,
    *,
    replicate: str | None = None,
    log_y: bool | None = None,
    title: str | None = None,
    kind: str = "predicted",
    y_title: str | None = None,
    color_title: str | None = None,
) -> alt.Chart | alt.LayerChart:
    """Latency percentiles (p50, p90, ...) per group; one line per group across percentiles.

    Parameters
    ----------
    df
        One row per operation: columns ``value`` and ``by`` (and ``replicate`` if given).
    replicate
        If given (e.g. ``"seed"``), each percentile is computed per replicate and drawn as the
        mean across replicates with the band of :func:`~cmdqv_lab.analysis.summary.replicate_band`
        (on a log scale: it never reaches zero).
    log_y
        Logarithmic y axis; by default when every percentile is positive.

    Examples
    --------
    >>> df = pl.DataFrame({"latency_ns": list(range(1, 1001)), "policy": "a"})
    >>> spec = latency_percentiles(df).to_dict()
    >>> [r["percentile"] for r in next(iter(spec["datasets"].values()))]
    ['p50', 'p90', 'p99', 'p99.9']
    """
    cols = [value, by] + ([replicate] if replicate else [])
    require_columns(df, cols, "latency_percentiles")
    check_kind(kind, "latency_percentiles")
    labels = [percentile_label(x) for x in q]
    reserved = (*PERCENTILE_COLUMNS, *SUMMARY_COLUMNS, *BAND_COLUMNS, value)
    fb = _safe(by, reserved)
    how = "one run per group: no interval"
    if replicate:
        fr = _safe(replicate, (*reserved, fb))
        d = df.select(pl.col(value), pl.col(by).alias(fb), pl.col(replicate).alias(fr))
        per_rep = percentiles(d, value, by=[fb, fr], q=q)
        p, how = replicate_band(per_rep, by=[fb, "q", "percentile"], value="value")
        p = p.rename({"mean": "value"})
        how = how.replace("line:", "percentile per seed, line:")
    else:
        p = percentiles(df.select(pl.col(value), pl.col(by).alias(fb)), value, by=fb, q=q)
    if log_y is None:
        log_y = _log_ok(p["value"])
    yscale = {"type": "log"} if log_y else {}
    yt, ct = y_title or label(value), color_title or label(by)
    base = alt.Chart(p).encode(
        x=alt.X("percentile:O", sort=labels, title="percentile", axis={"labelAngle": 0}),
    )
    tip = [
        alt.Tooltip(field=fb, type="nominal", title=ct),
        alt.Tooltip(field="percentile", type="nominal"),
        alt.Tooltip(field="value", type="quantitative", title=yt, format=",.4~g"),
    ]
    lines = marked_lines(base, _q("value", title=yt, scale=yscale), fb, ct, tip, dash=DASH[kind])
    head = title or f"{yt}: percentiles by {ct}"
    width = max(240, 70 * len(labels))
    if not replicate or not p["lo"].drop_nulls().len():
        return alt.LayerChart(layer=lines, title=_title(head, f"{kind_text(kind)}; {how}"), width=width)
    bars = (
        alt.Chart(p.drop_nulls(["lo", "hi"]))
        .encode(
            x=alt.X("percentile:O", sort=labels), stroke=alt.Stroke(field=fb, type="nominal", legend=None)
        )
        .mark_rule()
        .encode(y=alt.Y("lo:Q", scale=yscale), y2=alt.Y2("hi:Q"))
    )
    return alt.LayerChart(layer=[bars, *lines], title=_title(head, f"{kind_text(kind)}; {how}"), width=width)


def ecdf_points(df: pl.DataFrame, value: str, by: str | None, max_points: int = 300) -> pl.DataFrame:
    """Empirical CDF per group, downsampled to at most ``max_points + 1`` rows per group.

    Rows are kept at evenly spaced ranks (about 3/4 of the budget) and at geometrically spaced
    distances from the maximum (the rest), so both the body and the tail of the distribution
    survive; the minimum and the maximum are always kept. Columns: ``by`` (if any), ``value``,
    ``cdf`` (fraction of values <= this one) and ``ccdf`` (fraction >= this one, never 0).

    >>> out = ecdf_points(pl.DataFrame({"v": range(100_000)}), "v", None, max_points=100)
    >>> out.height <= 101, out["cdf"].max(), out["v"].min()
    (True, 1.0, 0)
    """
    keys = [by] if by else []
    require_columns(df, [*keys, value], "ecdf")
    if max_points < 4:
        raise FrameError(f"ecdf: max_points={max_points} is out of range: allowed >= 4")
    n_lin = max(2, (max_points * 3) // 4)
    n_tail = max(2, max_points - n_lin)
    over = keys or None
    idx = pl.int_range(pl.len()).over(over) if over else pl.int_range(pl.len())
    n = pl.len().over(over) if over else pl.len()
    v = pl.col(value).fill_nan(None) if df[value].dtype.is_float() else pl.col(value)
    d = df.select(*keys, v).drop_nulls().sort([*keys, value]).with_columns(idx.alias("__i"), n.alias("__n"))
    lin = (pl.col("__i") * n_lin / pl.col("__n")).floor()
    tail = ((pl.col("__n") - pl.col("__i")).log() * n_tail / (pl.col("__n").log() + 1e-12)).floor()

    def first(e: pl.Expr) -> pl.Expr:
        return e.is_first_distinct().over(over) if over else e.is_first_distinct()

    keep = first(lin) | first(tail) | (pl.col("__i") == pl.col("__n") - 1)
    return d.filter(keep).select(
        *keys,
        pl.col(value),
        ((pl.col("__i") + 1) / pl.col("__n")).alias("cdf"),
        ((pl.col("__n") - pl.col("__i")) / pl.col("__n")).alias("ccdf"),
    )


def latency_cdf(
    df: pl.DataFrame,
    value: str = "latency_ns",
    by: str | None = "policy",
    *,
    max_points: int = 300,
    complementary: bool = False,
    log_x: bool = False,
    title: str | None = None,
    kind: str = "predicted",
) -> alt.Chart:
    """Empirical CDF of ``value`` per group (or, with ``complementary``, the tail ``P(X >= x)``).

    The ECDF is computed in polars and downsampled by :func:`ecdf_points`, so the spec holds at
    most about ``max_points`` rows per group however many operations the frame has.

    Examples
    --------
    >>> df = pl.DataFrame({"latency_ns": range(50_000), "policy": ["a", "b"] * 25_000})
    >>> rows = next(iter(latency_cdf(df, max_points=100).to_dict()["datasets"].values()))
    >>> len(rows) <= 2 * 101
    True
    """
    pts = ecdf_points(df, value, by, max_points=max_points)
    ycol = "ccdf" if complementary else "cdf"
    vt = label(value)
    ytitle = "fraction of ops at or above x" if complementary else "fraction of ops at or below x"
    enc: dict[str, Any] = {
        "x": _q(value, title=vt, scale={"type": "log"} if log_x else {}),
        "y": _q(ycol, title=ytitle, scale={"type": "log"} if complementary else {"domain": [0, 1]}),
        "tooltip": [
            alt.Tooltip(field=value, type="quantitative", format=",.4~g"),
            alt.Tooltip(field=ycol, type="quantitative", format=".4~f"),
        ],
    }
    if by:
        enc["color"] = _n(by, title=label(by))
        enc["tooltip"].insert(0, alt.Tooltip(field=by, type="nominal"))
    interp: Literal["step-before", "step-after"] = "step-before" if complementary else "step-after"
    head = title or (f"Tail of {vt}" if complementary else f"Distribution of {vt}")
    return (
        alt.Chart(pts)
        .mark_line(interpolate=interp, strokeDash=DASH[check_kind(kind, "latency_cdf")])
        .encode(**channels(**enc))
        .properties(title=_title(head, f"{kind_text(kind)}; empirical distribution of every op"))
    )


def occupancy_over_time(
    df: pl.DataFrame,
    t: str = "t_ns",
    y: str = "occupancy",
    by: str | None = "queue",
    *,
    max_points: int = 1000,
    title: str | None = None,
) -> alt.Chart:
    """Queue occupancy over time as a step line per queue.

    Rows that repeat the previous occupancy of their queue are dropped (they draw nothing). If a
    queue still has more than ``max_points`` rows, time is cut into ``max_points`` equal bins and
    each bin keeps its maximum (drawn at the bin's first sample): the chart becomes the upper
    envelope, and its subtitle says so.

    Examples
    --------
    >>> df = pl.DataFrame({"t_ns": range(10_000), "occupancy": [i % 7 for i in range(10_000)], "queue": "q0"})
    >>> spec = occupancy_over_time(df, max_points=200).to_dict()
    >>> len(next(iter(spec["datasets"].values()))) <= 200, spec["mark"]["interpolate"]
    (True, 'step-after')
    """
    keys = [by] if by else []
    require_columns(df, [*keys, t, y], "occupancy_over_time")
    if max_points < 2:
        raise FrameError(f"occupancy_over_time: max_points={max_points} is out of range: allowed >= 2")
    over = keys or None
    d = df.select(*keys, pl.col(t), pl.col(y)).drop_nulls().sort([*keys, t])
    prev = pl.col(y).shift(1).over(over) if over else pl.col(y).shift(1)
    last = pl.int_range(pl.len()).over(over) if over else pl.int_range(pl.len())
    count = pl.len().over(over) if over else pl.len()
    d = d.filter(prev.is_null() | (pl.col(y) != prev) | (last == count - 1))
    subtitle = None
    sizes = d.group_by(keys).len() if keys else pl.DataFrame({"len": [d.height]})
    if sizes.height and int(sizes["len"].max()) > max_points:  # type: ignore[arg-type]
        lo = pl.col(t).min().over(over) if over else pl.col(t).min()
        hi = pl.col(t).max().over(over) if over else pl.col(t).max()
        width = ((hi - lo).cast(pl.Float64) / max_points).clip(lower_bound=1e-300)
        d = (
            d.with_columns(
                ((pl.col(t) - lo).cast(pl.Float64) / width).floor().clip(0, max_points - 1).alias("__b")
            )
            .group_by([*keys, "__b"])
            .agg(pl.col(t).first(), pl.col(y).max())
            .sort([*keys, t])
            .drop("__b")
        )
        subtitle = f"downsampled: maximum {y} per time bin ({max_points} bins per {by or 'series'})"
    enc: dict[str, Any] = {
        "x": _q(t, title=label(t)),
        "y": _q(y, title=label(y)),
        "tooltip": [
            *(alt.Tooltip(field=k, type="nominal") for k in keys),
            alt.Tooltip(field=t, type="quantitative"),
            alt.Tooltip(field=y, type="quantitative"),
        ],
    }
    if by:
        enc["color"] = _n(by, title=label(by))
    return (
        alt.Chart(d)
        .mark_line(interpolate="step-after")
        .encode(**channels(**enc))
        .properties(title=_title(title or f"{y} over time", subtitle))
    )


def batch_timeline(
    df: pl.DataFrame,
    *,
    cpu: str = "cpu",
    op_id: str = "op_id",
    phase: str = "phase",
    start: str = "start_ns",
    end: str = "end_ns",
    relative: bool = True,
    max_rows: int = 2000,
    title: str | None = None,
) -> alt.Chart:
    """Gantt-like chart of batches' lives: one row per CPU, one bar per phase interval.

    Parameters
    ----------
    df
        Long frame, one row per (cpu, op_id, phase) interval with ``start_ns <= end_ns``. Phases
        named in :data:`PHASES` are coloured in that order; other phase names follow.
    relative
        Shift time so the earliest start is 0.
    max_rows
        Refuse larger frames (filter to the batches of interest first).

    Examples
    --------
    >>> df = pl.DataFrame({"cpu": [0, 0, 1], "op_id": [7, 7, 8], "phase": ["reserve", "write", "reserve"],
    ...                    "start_ns": [100, 110, 105], "end_ns": [110, 130, 140]})
    >>> spec = batch_timeline(df).to_dict()
    >>> spec["encoding"]["x"]["field"], spec["encoding"]["color"]["scale"]["domain"]
    ('start', ['reserve', 'write'])
    """
    require_columns(df, [cpu, op_id, phase, start, end], "batch_timeline")
    if df.height > max_rows:
        raise FrameError(
            f"batch_timeline: {df.height} rows exceed max_rows={max_rows}; filter to the batches to show"
        )
    bad = df.filter(pl.col(end) < pl.col(start))
    if bad.height:
        r = bad.row(0, named=True)
        raise FrameError(f"batch_timeline: {end} < {start} for cpu {r[cpu]} op {r[op_id]} phase {r[phase]}")
    t0 = df[start].min() if (relative and df.height) else 0
    d = df.select(
        pl.col(cpu).alias("cpu"),
        pl.col(op_id).alias("op_id"),
        pl.col(phase).cast(pl.String).alias("phase"),
        (pl.col(start) - t0).alias("start"),
        (pl.col(end) - t0).alias("end"),
        (pl.col(end) - pl.col(start)).alias("duration"),
    )
    present = d["phase"].unique(maintain_order=True).to_list()
    domain = [p for p in PHASES if p in present] + sorted(p for p in present if p not in PHASES)
    xtitle = "time since the first op starts (ns)" if relative else "time (ns)"
    return (
        alt.Chart(d)
        .mark_bar(height={"band": 0.7})
        .encode(
            **channels(
                x=_q("start", title=xtitle),
                x2=alt.X2("end:Q"),
                y=alt.Y("cpu:O", title=label(cpu)),
                color=_n("phase", title=label(phase), scale={"domain": domain}, sort=domain),
                detail=alt.Detail("op_id:N"),
                tooltip=["cpu:O", "op_id:N", "phase:N", "start:Q", "end:Q", "duration:Q"],
            )
        )
        .properties(title=_title(title or "Life of a batch per CPU"), height=alt.Step(26))
    )


def hazard_counts(
    df: pl.DataFrame,
    policy: str = "policy",
    kind_col: str = "hazard",
    count: str = "count",
    *,
    title: str | None = None,
    subtitle: str | None = None,
    kind: str = "computed",
) -> alt.LayerChart:
    """Grouped bars: number of hazards of each kind per routing policy, zeros shown as ``0``.

    Counts are summed per (policy, kind) first, so the frame may hold one row per run.

    Examples
    --------
    >>> df = pl.DataFrame({"policy": ["first_opcode", "first_opcode", "split"],
    ...                    "hazard": ["ill", "sync_cross_queue", "ill"], "count": [3, 1, 0]})
    >>> rows = next(iter(hazard_counts(df).to_dict()["datasets"].values()))
    >>> sorted((r["policy"], r["hazard"], r["count"]) for r in rows)[-1]
    ('split', 'sync_cross_queue', 0)
    """
    require_columns(df, [policy, kind_col, count], "hazard_counts")
    sums = df.group_by(policy, kind_col).agg(pl.col(count).sum().alias("count"))
    grid = (
        sums.select(policy)
        .unique()
        .join(sums.select(kind_col).unique(), how="cross")
        .join(sums, on=[policy, kind_col], how="left")
        .with_columns(pl.col("count").fill_null(0))
        .rename({policy: "policy", kind_col: "hazard"})
        .sort("policy", "hazard")
    )
    pt, kt = label(policy), label(kind_col)
    base = alt.Chart(grid).encode(
        **channels(
            x=alt.X("policy:N", title=pt, axis={"labelAngle": 0, "labelLimit": 0}),
            xOffset=alt.XOffset("hazard:N"),
            y=_q("count", title=label(count)),
        )
    )
    bars = base.mark_bar().encode(
        **channels(color=_n("hazard", title=kt), tooltip=["policy:N", "hazard:N", "count:Q"])
    )
    labels = base.mark_text(dy=-6).encode(**channels(text="count:Q"))
    n_pol, n_kind = grid["policy"].n_unique(), grid["hazard"].n_unique()
    width = min(900, max(240, n_pol * (n_kind * 28 + 36)))
    return alt.LayerChart(
        layer=[bars, labels],
        title=_title(
            title or f"{label(count)} per {pt}", subtitle or kind_text(check_kind(kind, "hazard_counts"))
        ),
        width=width,
    )
