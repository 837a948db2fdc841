"""Showing and exporting charts offline: notebook mime bundles, SVG and PNG files.

Why not Altair's own renderers (checked with Altair 6.3, vl-convert-python 1.9, JupyterLab 4.6,
nbformat 5.10):

- Altair 6.3 emits Vega-Lite **v6.4.1** specs. Its ``mimetype`` renderer files them under the key
  ``application/vnd.vegalite.v6.json`` (a dot where the mime type needs ``+json``). nbformat's
  schema only allows a non-string value for keys matching ``^application/(.*\\+)?json$``, so the
  dict spec fails validation and papermill refuses to write the notebook. JupyterLab 4.6 would
  not render that key anyway: its vega5 extension registers ``application/vnd.vegalite.v3/v4/v5
  +json`` and ``application/vnd.vega.v5+json`` only (it bundles vega-lite 5.6.1, vega 5.33).
- The default ``html`` renderer writes ``<script>`` tags that load vega, vega-lite and vega-embed
  from a CDN (jsdelivr) through require.js or ES imports: blank without internet, and untrusted
  notebooks do not run it at all.
- The ``jupyter`` renderer needs anywidget (not a dependency).

:func:`chart_bundle` instead emits a bundle nbformat accepts and JupyterLab renders natively:

``application/vnd.vegalite.v5+json``
    the spec, drawn by JupyterLab's bundled vega-lite (5.6); our builders only use features that
    vega-lite 5 has (parameters bound to inputs, xOffset, expression titles). The key's version
    is that of the renderer, the spec's ``$schema`` says v6: vega-embed logs a version warning
    and draws it. The offline report reads the spec from this key and draws it with the Vega-Lite
    6.4 runtime of vl-convert instead.
``image/svg+xml``
    a static rendering by vl-convert, for viewers without a Vega renderer (nbconvert HTML,
    GitHub, VS Code without extensions);
``text/plain``
    a one-line description.

JupyterLab 4.6.7 and later draw Vega (and SVG) only in trusted notebooks. The outputs a user's own
kernel produces are trusted; a notebook with outputs opened from disk (one the report executed, say)
shows the one-line description until it is trusted (File > Trust Notebook, or ``jupyter trust``).

:func:`save_svg` and :func:`save_png` use vl-convert (no browser, no network: remote data URLs
are refused).

>>> import altair as alt, polars as pl
>>> chart = alt.Chart(pl.DataFrame({"a": [1, 2]})).mark_point().encode(x="a:Q")
>>> sorted(chart_bundle(chart, svg=False))
['application/vnd.vegalite.v5+json', 'text/plain']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import altair as alt

from cmdqv_lab.atomicfile import write_bytes
from cmdqv_lab.plots import theme

#: Mime type under which charts are displayed (the newest Vega-Lite type JupyterLab 4.6 renders).
VEGALITE_MIME = "application/vnd.vegalite.v5+json"

#: Vega-Lite mime types the report accepts as charts (ours, then other producers').
CHART_MIMES: tuple[str, ...] = (
    VEGALITE_MIME,
    "application/vnd.vegalite.v6+json",
    "application/vnd.vegalite.v6.json",
    "application/vnd.vegalite.v4+json",
)

RENDERER_NAME = "cmdqv"


def vl_version() -> str | None:
    """The vl-convert Vega-Lite version matching Altair's schema (``"6.4"``), or None for its latest.

    >>> vl_version()
    '6.4'
    """
    import vl_convert as vlc

    want = alt.SCHEMA_VERSION.lstrip("v").split(".")
    mm = ".".join(want[:2])
    return mm if mm in vlc.get_vegalite_versions() else None


def to_spec(chart: alt.TopLevelMixin | dict[str, Any], *, validate: bool = True) -> dict[str, Any]:
    """The chart's Vega-Lite spec with the cmdqv theme applied (whatever theme is enabled).

    ``validate=False`` skips Altair's JSON-schema check of the whole spec (a third of the export);
    the spec is the same. An explorer's redraw uses it for charts whose builders the tests and the
    report already export with the check."""
    if isinstance(chart, dict):
        return chart
    with theme.enabled():
        return chart.to_dict(validate=validate)


def _describe(spec: dict[str, Any]) -> str:
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    if not isinstance(title, str):
        title = "untitled"
    rows = sum(len(v) for v in spec.get("datasets", {}).values() if isinstance(v, list))
    return f"<chart: {title}; {rows} data rows; Vega-Lite {spec.get('$schema', '?').rsplit('/', 1)[-1]}>"


def spec_to_svg(spec: dict[str, Any]) -> str:
    """Render a Vega-Lite spec to SVG with vl-convert (offline)."""
    import vl_convert as vlc

    return str(vlc.vegalite_to_svg(spec, vl_version=vl_version(), allowed_base_urls=[]))


def chart_bundle(
    chart: alt.TopLevelMixin | dict[str, Any], *, svg: bool = True, validate: bool = True
) -> dict[str, Any]:
    """A mime bundle for a chart that nbformat accepts and JupyterLab renders (see module doc);
    ``validate`` as for :func:`to_spec`."""
    spec = to_spec(chart, validate=validate)
    bundle: dict[str, Any] = {VEGALITE_MIME: spec}
    if svg:
        bundle["image/svg+xml"] = spec_to_svg(spec)
    bundle["text/plain"] = _describe(spec)
    return bundle


def show(chart: alt.TopLevelMixin, *, svg: bool = True) -> None:
    """Display a chart in a notebook (Vega-Lite for JupyterLab, SVG fallback, text)."""
    from IPython.display import display

    display(chart_bundle(chart, svg=svg), raw=True)


def _renderer(spec: dict[str, Any], **_: Any) -> dict[str, Any]:
    return chart_bundle(spec)


def enable() -> None:
    """Enable the cmdqv theme and make a bare ``chart`` at the end of a cell display like :func:`show`.

    >>> enable()
    >>> alt.renderers.active, alt.theme.active
    ('cmdqv', 'cmdqv')
    """
    theme.enable()
    if RENDERER_NAME not in alt.renderers.names():
        alt.renderers.register(RENDERER_NAME, _renderer)
    alt.renderers.enable(RENDERER_NAME)


def save_svg(chart: alt.TopLevelMixin | dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the chart as an SVG file (themed, offline) and return its path."""
    return write_bytes(path, spec_to_svg(to_spec(chart)).encode(), durable=False)


def recompress_png(png: bytes, level: int = 9) -> bytes:
    """The same PNG with its image data deflated at ``level`` (vl-convert writes it barely compressed).

    Pixels and filters are unchanged: the IDAT stream is inflated and deflated again, and the
    chunks are written back with fresh CRCs (about a third of the size for a chart).

    >>> import zlib, struct
    >>> def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    >>> ihdr = struct.pack(">IIBBBBB", 2, 1, 8, 0, 0, 0, 0)
    >>> png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\\0\\1\\2", 0)) + chunk(b"IEND", b"")
    >>> out = recompress_png(png)
    >>> out[:8] == png[:8], zlib.decompress(out[8 + 25 + 8 : -12 - 4])
    (True, b'\\x00\\x01\\x02')
    """
    import struct
    import zlib

    sig = b"\x89PNG\r\n\x1a\n"
    if not png.startswith(sig):
        return png
    chunks: list[tuple[bytes, bytes]] = []
    idat = bytearray()
    i = len(sig)
    while i + 8 <= len(png):
        (n,) = struct.unpack(">I", png[i : i + 4])
        kind, data = png[i + 4 : i + 8], png[i + 8 : i + 8 + n]
        i += 12 + n
        if kind == b"IDAT":
            idat += data
            if not chunks or chunks[-1][0] != b"IDAT":
                chunks.append((b"IDAT", b""))
        else:
            chunks.append((kind, data))
    packed = zlib.compress(zlib.decompress(bytes(idat)), level)
    out = bytearray(sig)
    for kind, data in chunks:
        body = packed if kind == b"IDAT" else data
        out += (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )
    return bytes(out)


def save_png(
    chart: alt.TopLevelMixin | dict[str, Any],
    path: str | os.PathLike[str],
    scale: float = 2.0,
    *,
    svg: str | None = None,
) -> Path:
    """Write the chart as a PNG file, ``scale`` times its size in CSS pixels, and return its path.

    ``svg``: the chart's SVG from :func:`spec_to_svg`, if at hand: vl-convert draws a PNG by
    rasterising the SVG it renders, so rasterising this one gives the same bytes without running
    Vega again (28 instead of 69 ms a chart here)."""
    import vl_convert as vlc

    if svg is not None:
        png = vlc.svg_to_png(svg, scale=scale)
    else:
        png = vlc.vegalite_to_png(to_spec(chart), vl_version=vl_version(), scale=scale, allowed_base_urls=[])
    return write_bytes(path, recompress_png(bytes(png)), durable=False)
