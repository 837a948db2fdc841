"""Encoding channels as Altair channel objects.

``chart.encode(y={"field": ..., "type": ...})`` or ``encode(y="a:Q")`` makes Altair find the channel's
class by rebuilding a hash table of its whole Vega-Lite schema (about 600 classes), 3 ms per channel
given that way; with the channel object (``alt.Y(...)``) it costs 0.04 ms. Building an explorer's chart
spent most of its time there. :func:`channels` turns the shorthand and dict forms into the objects
Altair would have built, so the spec is the same.

>>> import altair as alt
>>> ch = channels(x="a:Q", y={"field": "b", "type": "quantitative"}, color={"value": "#000000"},
...               tooltip=["a:Q", alt.Tooltip("b:Q")])
>>> [type(v).__name__ for v in (ch["x"], ch["y"], ch["color"])], [type(t).__name__ for t in ch["tooltip"]]
(['X', 'Y', 'ColorValue'], ['Tooltip', 'Tooltip'])
"""

from __future__ import annotations

from typing import Any

import altair as alt


def channels(**kw: Any) -> dict[str, Any]:
    """``kw`` (encoding name -> shorthand string, dict, list of them, or channel object) with every
    string and dict made the channel object of its name (``{"value": ...}``: the value channel)."""
    return {name: _channel(name, v) for name, v in kw.items()}


def _channel(name: str, v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_channel(name, e) for e in v]
    if isinstance(v, str):
        return getattr(alt, name[0].upper() + name[1:])(v)
    if isinstance(v, dict):
        cls = name[0].upper() + name[1:] + ("Value" if "value" in v else "")
        return getattr(alt, cls)(**v)
    return v
