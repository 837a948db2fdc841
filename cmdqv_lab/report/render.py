"""Render an executed notebook to static HTML that loads nothing from the network.

Cells are rendered here rather than through an nbconvert template: nbconvert's ``lab`` and
``classic`` templates reference require.js, MathJax and (with widget state) the ipywidgets manager
on CDNs (``require_js_url``, ``mathjax_url``, ``widget_renderer_url``), and they show charts only
as whatever HTML the output carried. The rules here:

- Markdown cells: nbconvert's mistune filter (TeX stays as written: no MathJax);
- code: collapsed under "code", highlighted by Pygments; the papermill-injected parameters shown;
- outputs, first match wins: a :func:`~cmdqv_lab.report.answer` record, a
  :func:`~cmdqv_lab.report.param_table` record, a Vega-Lite chart (a placeholder that the page's
  one Vega runtime draws, with links to the figure as SVG and PNG in ``figures/``), ipywidgets
  (dropped, with a note: the report shows results statically and keeps interaction through
  :func:`~cmdqv_lab.plots.explorer` sliders), HTML without scripts, SVG/PNG/JPEG as data URIs,
  Markdown, plain text;
- cells tagged ``remove_cell``, ``remove_input`` or ``remove_output`` lose that part.

>>> import nbformat
>>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title")])
>>> page = render_notebook(nb)
>>> page.title, page.charts
('Title', 0)
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cmdqv_lab.plots.display import CHART_MIMES
from cmdqv_lab.report.notebook import ANSWER_MIME, TABLE_MIME, table_html

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
FIGURES_DIR = "figures"
"""Site subdirectory holding every chart as ``<page>-chart-<n>.svg`` and ``.png``."""
_SCRIPT = re.compile(r"<\s*script|<[^>]*\son[a-z]+\s*=|javascript:", re.IGNORECASE)
_HEADING = re.compile(r"^\s*#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass
class Page:
    """A rendered notebook: body HTML and what the report collects from it."""

    title: str
    body: str
    answers: list[dict[str, str]] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    charts: int = 0
    widgets_dropped: int = 0
    #: (file stem, Vega-Lite spec, the SVG the kernel rendered or None), one per chart, in order
    figures: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)


def markdown(text: str) -> str:
    """Markdown to HTML with nbconvert's mistune renderer.

    >>> markdown("**b**")
    '<p><strong>b</strong></p>\\n'
    """
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return str(markdown2html_mistune(text))


def inline_markdown(text: str) -> str:
    """Markdown of one line, without the enclosing paragraph.

    >>> inline_markdown("p99 is *2x* lower")
    'p99 is <em>2x</em> lower'
    """
    out = markdown(text).strip()
    if out.startswith("<p>") and out.endswith("</p>") and out.count("<p>") == 1:
        out = out[3:-4]
    return out


def highlight(code: str) -> str:
    """Python source as Pygments HTML (class ``highlight``)."""
    from pygments import highlight as _hl
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return str(_hl(code, PythonLexer(), HtmlFormatter(cssclass="highlight")))


def pygments_css() -> str:
    """The stylesheet for :func:`highlight`."""
    from pygments.formatters import HtmlFormatter

    return str(HtmlFormatter(cssclass="highlight").get_style_defs(".highlight"))


def _text(data: Any) -> str:
    return "".join(data) if isinstance(data, list) else str(data)


def _ansi(text: str) -> str:
    from nbconvert.filters.ansi import ansi2html

    return str(ansi2html(text))


def json_script(obj: Any, element_id: str) -> str:
    """``obj`` as JSON inside ``<script type="application/json">``, safe against ``</script>``.

    ``<``, ``>`` and ``&`` are written as JSON unicode escapes, so no string in the data can end
    the element or open a comment; ``JSON.parse`` gives back the original text.

    >>> print(json_script({"a": "</script>"}, "s1"))
    <script type="application/json" id="s1">{"a": "\\u003c/script\\u003e"}</script>
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{html.escape(element_id)}">{text}</script>'


class _Renderer:
    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.page = Page(title="", body="")

    def chart(self, spec: Any, svg: str | None = None) -> str:
        self.page.charts += 1
        cid = f"{self.slug}-chart-{self.page.charts}"
        self.page.figures.append((cid, spec, svg))
        links = " · ".join(
            f'<a href="{FIGURES_DIR}/{cid}.{ext}" download>{ext.upper()}</a>' for ext in ("svg", "png")
        )
        return (
            f'<figure class="chart-figure"><div class="cmdqv-chart" id="{cid}" data-spec="{cid}-spec">'
            f'<p class="chart-loading">Chart (needs JavaScript)</p></div>{json_script(spec, cid + "-spec")}'
            f'<figcaption class="chart-export">figure as {links}</figcaption></figure>'
        )

    def output_data(self, data: dict[str, Any]) -> str:
        if ANSWER_MIME in data:
            rec = data[ANSWER_MIME]
            qid, text = str(rec.get("qid", "?")), str(rec.get("text", ""))
            self.page.answers.append({"qid": qid, "text": text})
            anchor = html.escape(f"answer-{qid}")
            return (
                f'<div class="answer" id="{anchor}"><span class="qid">{html.escape(qid)}</span> '
                f"{inline_markdown(text)}</div>"
            )
        if TABLE_MIME in data:
            rec = data[TABLE_MIME]
            self.page.tables.append(str(rec.get("title", "")))
            return f'<div class="table-wrap">{table_html(rec)}</div>'
        for mime in CHART_MIMES:
            if mime in data and isinstance(data[mime], dict):
                svg = data.get("image/svg+xml")
                return self.chart(data[mime], _text(svg) if svg else None)
        if WIDGET_MIME in data:
            self.page.widgets_dropped += 1
            return '<p class="note">Interactive widget omitted in the static report.</p>'
        if "text/html" in data and not _SCRIPT.search(_text(data["text/html"])):
            return f'<div class="html-output">{_text(data["text/html"])}</div>'
        for mime in ("image/svg+xml", "image/png", "image/jpeg"):
            if mime in data:
                raw = _text(data[mime])
                b64 = base64.b64encode(raw.encode()).decode() if mime == "image/svg+xml" else raw.strip()
                return f'<img class="image-output" alt="output image" src="data:{mime};base64,{b64}">'
        if "text/markdown" in data:
            return f'<div class="md-output">{markdown(_text(data["text/markdown"]))}</div>'
        if "text/latex" in data:
            return f'<pre class="text-output">{html.escape(_text(data["text/latex"]))}</pre>'
        if "text/plain" in data:
            return f'<pre class="text-output">{_ansi(_text(data["text/plain"]))}</pre>'
        return ""

    def output(self, out: Any) -> str:
        kind = out.get("output_type")
        if kind == "stream":
            cls = "stderr" if out.get("name") == "stderr" else "stdout"
            return f'<pre class="stream {cls}">{_ansi(_text(out.get("text", "")))}</pre>'
        if kind == "error":
            tb = "\n".join(out.get("traceback", [])) or f"{out.get('ename')}: {out.get('evalue')}"
            return f'<pre class="error">{_ansi(tb)}</pre>'
        if kind in ("display_data", "execute_result"):
            return self.output_data(dict(out.get("data", {})))
        return ""

    def cell(self, cell: Any) -> str:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "remove_cell" in tags:
            return ""
        if cell.cell_type == "markdown":
            src = _text(cell.source)
            if not self.page.title:
                m = _HEADING.search(src)
                if m:
                    self.page.title = m.group(1).strip()
            return f'<section class="cell markdown">{markdown(src)}</section>'
        if cell.cell_type != "code":
            return ""
        parts = []
        src = _text(cell.source)
        if src.strip() and "remove_input" not in tags:
            if "injected-parameters" in tags:
                label = "parameters injected by the report build"
                parts.append(f'<div class="injected"><span>{label}</span>{highlight(src)}</div>')
            else:
                parts.append(f'<details class="input"><summary>code</summary>{highlight(src)}</details>')
        if "remove_output" not in tags:
            outs = "".join(self.output(o) for o in cell.get("outputs", []))
            if outs:
                parts.append(f'<div class="outputs">{outs}</div>')
        return f'<section class="cell code">{"".join(parts)}</section>' if parts else ""


def render_notebook(nb: Any, slug: str = "nb") -> Page:
    """Render an executed nbformat notebook; ``slug`` prefixes element ids (unique per page)."""
    r = _Renderer(slug)
    r.page.body = "\n".join(h for h in (r.cell(c) for c in nb.cells) if h)
    return r.page
