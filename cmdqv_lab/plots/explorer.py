"""Interactive exploration that survives in a static page: a slider bound to a Vega-Lite parameter.

In Jupyter, ipywidgets re-run code when a slider moves; in the offline report there is no kernel
and the widget manager would come from a CDN. :func:`explorer` instead embeds a whole precomputed
sweep in the chart and lets a Vega-Lite parameter, bound to an HTML ``<input type=range>`` (or a
``<select>``), filter the slice on display. The Vega runtime does the filtering in the browser.

>>> import polars as pl
>>> df = pl.DataFrame({"cpus": [1, 2] * 3, "ops_per_s": [1.0, 2.0, 1.5, 2.5, 1.7, 3.0],
...                    "queues": [1, 1, 2, 2, 8, 8]})
>>> spec = explorer(df, "cpus", "ops_per_s", None, "queues").to_dict()
>>> spec["params"][0]["bind"]["input"], spec["params"][0]["bind"]["options"]
('radio', [1, 2, 8])
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any, Literal

import altair as alt
import polars as pl

from cmdqv_lab.analysis.summary import require_columns
from cmdqv_lab.errors import FrameError
from cmdqv_lab.plots.encoding import channels
from cmdqv_lab.plots.kinds import DASH, check_kind, kind_text
from cmdqv_lab.plots.labels import label
from cmdqv_lab.plots.marks import marked_lines

#: Largest number of distinct slider positions :func:`explorer` accepts.
MAX_SLIDER_POSITIONS = 200


def _q(field: str, **kw: Any) -> dict[str, Any]:
    return {"field": field, "type": "quantitative", **kw}


def _kind(s: pl.Series) -> Literal["quantitative", "nominal"]:
    return "quantitative" if s.dtype.is_numeric() else "nominal"


def _n(field: str, **kw: Any) -> dict[str, Any]:
    return {"field": field, "type": "nominal", **kw}


def _param_name(field: str) -> str:
    return "explore_" + (re.sub(r"\W", "_", field) or "value")


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        raise FrameError(f"explorer: slider value {v!r} is not finite")
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def explorer(
    df: pl.DataFrame,
    x: str,
    y: str,
    color: str | None,
    slider_field: str,
    *,
    control: str = "auto",
    mark: str = "line",
    log_x: bool = False,
    log_y: bool = False,
    initial: Any = None,
    max_rows: int = 5000,
    title: str | None = None,
    kind: str = "predicted",
    x_title: str | None = None,
    y_title: str | None = None,
    color_title: str | None = None,
    slider_title: str | None = None,
    max_series: int = 8,
) -> alt.Chart | alt.LayerChart:
    """A chart over precomputed sweep data with a slider (or drop-down) choosing one slice.

    The slider is a Vega-Lite parameter bound to an HTML input; the chart filters rows whose
    ``slider_field`` matches it, so the exploration also works in the static report. Axis domains
    are fixed to the whole data so moving the slider does not rescale them, and the title shows
    the selected value.

    Parameters
    ----------
    df
        Sweep results (already aggregated, at most ``max_rows`` rows): ``x``, ``y``, ``color``
        and ``slider_field`` columns.
    control
        ``"range"`` (slider), ``"radio"``, ``"select"`` (drop-down) or ``"auto"``. A slider is used
        only over evenly spaced integers, so its label is the value the chart shows; other values
        get radio buttons (up to 8) or a drop-down, which show the values themselves.
    kind
        What the values are (:mod:`cmdqv_lab.plots.kinds`); predictions are drawn dashed.
    mark
        ``"line"`` (lines with points), ``"point"`` or ``"bar"``.
    initial
        Slider start value (default: the smallest value).

    Examples
    --------
    >>> df = pl.DataFrame({"cpus": [1, 2, 1, 2], "ops_per_s": [1.0, 2.0, 1.5, 2.5],
    ...                    "queues": [1, 1, 4, 4], "policy": "vcmdq"})
    >>> spec = explorer(df, "cpus", "ops_per_s", "policy", "queues").to_dict()
    >>> spec["params"][0]["bind"]["input"], spec["params"][0]["bind"]["step"]
    ('range', 3)
    >>> explorer(df.with_columns(queues=pl.col("queues") * 0.5), "cpus", "ops_per_s", "policy", "queues"
    ...          ).to_dict()["params"][0]["bind"]["input"]
    'radio'

    """
    cols = [x, y, slider_field] + ([color] if color else [])
    require_columns(df, cols, "explorer")
    if df.height > max_rows:
        raise FrameError(
            f"explorer: {df.height} rows exceed max_rows={max_rows}; aggregate the sweep before exploring it"
        )
    if mark not in ("line", "point", "bar"):
        raise FrameError(f"explorer: mark={mark!r} is not allowed: one of line, point, bar")
    values = [_jsonable(v) for v in df[slider_field].drop_nulls().unique().sort().to_list()]
    if not values:
        raise FrameError(f"explorer: column {slider_field!r} has no values")
    if len(values) > MAX_SLIDER_POSITIONS:
        raise FrameError(
            f"explorer: {len(values)} distinct {slider_field} values exceed {MAX_SLIDER_POSITIONS} slider positions"
        )
    numeric = df[slider_field].dtype.is_numeric()
    check_kind(kind, "explorer")
    if color:
        most = int(df.group_by(slider_field).agg(pl.col(color).n_unique().alias("n"))["n"].max() or 0)  # type: ignore[arg-type]
        if most > max_series:
            raise FrameError(
                f"explorer: {most} series in one view exceed {max_series}; put some on the control instead"
            )
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    steps = {b - a for a, b in itertools.pairwise(values)} if ints else set()
    even = ints and len(steps) <= 1
    if control == "auto":
        control = (
            "range" if numeric and even and len(values) > 1 else ("radio" if len(values) <= 8 else "select")
        )
    if control not in ("range", "radio", "select"):
        raise FrameError(f"explorer: control={control!r} is not allowed: one of auto, range, radio, select")
    if control == "range" and not even:
        raise FrameError(
            f"explorer: a slider needs evenly spaced integer {slider_field!r} values; use control='radio' or 'select'"
        )
    if initial is not None and initial not in values:
        raise FrameError(f"explorer: initial={initial!r} is not a value of {slider_field!r}")
    start = values[0] if initial is None else initial
    name = _param_name(slider_field)
    data = df.select(*dict.fromkeys(cols))
    st = slider_title or label(slider_field)
    bind: Any
    if control == "select":
        bind = alt.binding_select(options=values, name=st)
    elif control == "radio":
        bind = alt.binding_radio(options=values, name=st)
    else:
        step = steps.pop() if steps else 1
        bind = alt.binding_range(min=values[0], max=values[-1], step=step, name=st)
    param = alt.param(name=name, value=start, bind=bind)
    filt = alt.datum[slider_field] == param
    label_expr = name
    xd = [data[x].min(), data[x].max()]
    yd = [data[y].min(), data[y].max()] if log_y else [min(0, data[y].min()), data[y].max()]  # type: ignore[type-var]
    xt, yt = x_title or label(x), y_title or label(y)
    ct = color_title or (label(color) if color else None)
    titles = {x: xt, y: yt, slider_field: st, **({color: ct} if color and ct else {})}
    enc: dict[str, Any] = {
        "x": _q(x, title=xt, scale={"domain": xd, **({"type": "log"} if log_x else {})}),
        "y": _q(y, title=yt, scale={"domain": yd, **({"type": "log"} if log_y else {})}),
        "tooltip": [alt.Tooltip(field=c, type=_kind(data[c]), title=titles.get(c, label(c)))
                    for c in dict.fromkeys(cols)],
    }  # fmt: skip
    chart: alt.Chart | alt.LayerChart
    if mark == "line":  # one legend with colour and shape: see marked_lines
        base = alt.Chart(data).encode(**channels(x=enc["x"]))
        chart = alt.LayerChart(layer=marked_lines(base, enc["y"], color, ct, enc["tooltip"], dash=DASH[kind]))
    else:
        if color:
            enc["color"] = _n(color, title=ct)
        chart = alt.Chart(data).encode(**channels(**enc))
        chart = chart.mark_point(filled=True) if mark == "point" else chart.mark_bar()
    head = json.dumps(f"{title or f'{yt} vs {xt}'} — {st} = ", ensure_ascii=False)
    return (
        chart.add_params(param)
        .transform_filter(filt)
        .properties(
            title=alt.TitleParams(text=alt.ExprRef(expr=f"{head} + {label_expr}"), subtitle=kind_text(kind))
        )
    )
