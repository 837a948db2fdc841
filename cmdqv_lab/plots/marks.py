"""Mark combinations shared by the chart builders and the explorer."""

from __future__ import annotations

from typing import Any

import altair as alt

from cmdqv_lab.plots.encoding import channels
from cmdqv_lab.plots.kinds import DASH, KINDS


def marked_lines(
    base: alt.Chart,
    y: dict[str, Any],
    by: str | None,
    title: str | None,
    tooltip: Any,
    dash: list[int] | tuple[str, list[str]] | None = None,
) -> list[alt.Chart]:
    """A line per ``by`` group with filled points on it, and one legend showing colour and shape.

    Only the point layer carries ``color`` and ``shape`` (Vega-Lite merges those into one legend);
    the line is coloured through ``stroke`` (its own scale: same domain, same palette, no legend).
    ``mark_line(point=True)`` would draw two legends, and a ``color`` with ``legend=None`` on any
    other layer of the chart would draw the shared legend's symbols in black.

    ``dash``: a Vega-Lite dash array for every line, or ``(field, kinds)``: a ``kind`` field (see
    :mod:`cmdqv_lab.plots.kinds`) whose values choose the dash, with a legend "what it is" over
    the kinds present.
    """
    if isinstance(dash, tuple):
        field, present = dash
        kinds = [k for k in KINDS if k in present] or ["predicted"]
        line = base.mark_line().encode(**channels(
            y=y,
            strokeDash=alt.StrokeDash(
                field=field, type="nominal", title="what it is",
                scale=alt.Scale(domain=kinds, range=[DASH[k] for k in kinds]),
            ),
        ))  # fmt: skip
    else:
        line = base.mark_line(strokeDash=dash or [1, 0]).encode(**channels(y=y))
    points = base.mark_point(filled=True, opacity=1).encode(**channels(y=y, tooltip=tooltip))
    if by:
        line = line.encode(stroke=alt.Stroke(field=by, type="nominal", legend=None))
        points = points.encode(
            **channels(
                color={"field": by, "type": "nominal", "title": title or by},
                shape={"field": by, "type": "nominal", "title": title or by},
            )
        )
    return [line, points]
