"""What a number is, and how a chart shows it: measured, fitted, predicted or computed.

- **measured**: a public measurement (the C1-C4 rows of docs/sources.md, NVIDIA's statements, the captured traces);
- **fitted**: the timing model at a configuration its preset was fitted to (calibration rows);
- **predicted**: the timing model anywhere else (a prediction, to be judged by held-out data);
- **computed**: an exact consequence of the functional model or the geometry (hazard counts on a
  generated stream, capacity limits), not a timing estimate.

Charts draw them apart everywhere: measured values as black-outlined diamonds without a line,
fitted values with solid lines, predictions with dashed lines, computed values with solid lines;
a chart's subtitle names the kind, and a chart mixing kinds has a legend for it.

>>> kind_text("predicted")
'model prediction (timing model outside its calibration rows)'
"""

from __future__ import annotations

from cmdqv_lab.errors import FrameError

KINDS: tuple[str, ...] = ("measured", "fitted", "predicted", "computed")

#: strokeDash per kind (Vega-Lite dash arrays); measured values get no line at all.
DASH: dict[str, list[int]] = {"measured": [1, 0], "fitted": [1, 0], "predicted": [6, 3], "computed": [1, 0]}

_TEXT = {
    "measured": "measured (public data)",
    "fitted": "model fitted to the measurements",
    "predicted": "model prediction (timing model outside its calibration rows)",
    "computed": "computed exactly (functional model / geometry)",
}


def check_kind(kind: str, where: str) -> str:
    """``kind`` if it is one of :data:`KINDS`, else a one-line error naming ``where``."""
    if kind not in KINDS:
        raise FrameError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def kind_text(kind: str) -> str:
    """The subtitle words for a kind."""
    return _TEXT[check_kind(kind, "kind_text")]
