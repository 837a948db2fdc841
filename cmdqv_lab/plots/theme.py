"""The one Altair theme of cmdqv-lab: readable on screen, in dark notebooks and in print.

Choices and why:

- white background (not transparent), so a chart stays legible in a dark JupyterLab theme and
  prints the same as on screen;
- the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies), ordered so
  the first colours also differ in lightness when printed in grey; line charts add point shapes,
  seven of them against eight colours so that no two of up to 56 groups look alike;
- 12-13 px labels and 15 px titles, grid lines light enough not to compete with the data;
- system sans-serif fonts only (no web fonts: the report must load nothing remote).

>>> import altair as alt
>>> enable()
>>> alt.theme.active
'cmdqv'
>>> config()["config"]["range"]["category"][0]
'#0072B2'
"""

from __future__ import annotations

from typing import Any, cast

import altair as alt
from altair.utils.plugin_registry import NoSuchEntryPoint, PluginEnabler

#: Name under which the theme is registered with :mod:`altair.theme`.
THEME_NAME = "cmdqv"

#: Okabe-Ito colours, reordered: dark and light colours alternate so neighbours differ in grey too.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#000000",  # black
    "#F0E442",  # yellow (last: weak on white paper)
)

#: Point shapes: seven, against eight colours, so colour and shape together tell apart up to 56
#: groups (with Vega-Lite's eight default shapes the ninth group looked exactly like the first).
SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle-up",
    "cross",
    "diamond",
    "triangle-down",
    "triangle-right",
)

FONT = "Helvetica Neue, Helvetica, Arial, Liberation Sans, DejaVu Sans, sans-serif"
TEXT = "#1f1f1f"
MUTED = "#5f5f5f"
GRID = "#e6e6e6"

#: Default size of one view in pixels (width, height).
VIEW_SIZE = (480, 300)


def config() -> dict[str, Any]:
    """The theme as a Vega-Lite top-level ``{"config": ...}`` dictionary (a fresh copy each call)."""
    axis = {
        "labelFont": FONT,
        "titleFont": FONT,
        "labelFontSize": 12,
        "titleFontSize": 13,
        "titleFontWeight": "normal",
        "labelColor": TEXT,
        "titleColor": TEXT,
        "domainColor": MUTED,
        "tickColor": MUTED,
        "gridColor": GRID,
        "labelLimit": 240,
    }
    return {
        "config": {
            "background": "#ffffff",
            "font": FONT,
            "padding": 8,
            "view": {
                "continuousWidth": VIEW_SIZE[0],
                "continuousHeight": VIEW_SIZE[1],
                "stroke": GRID,
            },
            "title": {
                "font": FONT,
                "fontSize": 15,
                "fontWeight": 600,
                "color": TEXT,
                "subtitleFont": FONT,
                "subtitleFontSize": 12,
                "subtitleColor": MUTED,
                "anchor": "start",
                "offset": 10,
                "limit": 0,
                "subtitleLineHeight": 15,
            },
            "axis": axis,
            "legend": {
                "labelFont": FONT,
                "titleFont": FONT,
                "labelFontSize": 12,
                "titleFontSize": 12,
                "labelColor": TEXT,
                "titleColor": TEXT,
                "symbolStrokeWidth": 2,
                "labelLimit": 0,  # 0: never truncate a legend label ("model, PREDICTI...")
                "titleLimit": 0,
            },
            "header": {"labelFont": FONT, "titleFont": FONT, "labelFontSize": 12, "titleFontSize": 13},
            "range": {"category": list(PALETTE), "symbol": list(SHAPES)},
            "line": {"strokeWidth": 2},
            "point": {"size": 45, "filled": True},
            "area": {"opacity": 0.2},
            "bar": {"binSpacing": 1},
            "text": {"font": FONT, "fontSize": 11, "color": TEXT},
        }
    }


def _theme() -> alt.theme.ThemeConfig:
    return cast(alt.theme.ThemeConfig, config())


def register() -> None:
    """Register the theme under :data:`THEME_NAME` without enabling it (idempotent)."""
    if THEME_NAME not in alt.theme.names():
        alt.theme.register(THEME_NAME, enable=False)(_theme)


def enabled() -> PluginEnabler[Any, Any]:
    """The theme enabled for a ``with`` block, registered first if Altair does not know it.

    Registering is not done once for all: leaving another ``alt.theme.enable(...)`` block restores
    the registry as it was before it, which drops a theme registered inside it. Nor is it checked
    each time with ``alt.theme.names()``, which reads every installed package's entry points
    (6.5 ms a call); enabling a registered theme is a dictionary lookup."""
    try:
        return alt.theme.enable(THEME_NAME)
    except NoSuchEntryPoint:
        register()
        return alt.theme.enable(THEME_NAME)


def enable() -> None:
    """Register (if needed) and enable the theme for every chart rendered afterwards."""
    register()
    alt.theme.enable(THEME_NAME)
