"""Render an executed notebook to static HTML that loads nothing from the network.

Cells are rendered here rather than through an nbconvert template: nbconvert's ``lab`` and
``classic`` templates reference require.js, MathJax and (with widget state) the ipywidgets manager
on CDNs (``require_js_url``, ``mathjax_url``, ``widget_renderer_url``), and they show charts only
as whatever HTML the output carried. The rules here:

- Markdown cells: nbconvert's mistune filter (TeX stays as written: no MathJax), then the
  allowlist of :mod:`cmdqv_lab.report.sanitize`; links to ``../docs/sources.md#<id>`` become
  links to the site's ``sources.html#<id>`` (an unknown id fails the build);
- code: collapsed under "code", highlighted by Pygments; the papermill-injected parameters shown;
- outputs, first match wins: a :func:`~cmdqv_lab.report.answer` record, a table record
  (:func:`~cmdqv_lab.report.param_table` folded away, :func:`~cmdqv_lab.report.result_table`
  small, long ones folded), a Vega-Lite chart (a placeholder that the page's one Vega runtime
  draws, with links to the figure as SVG and PNG in ``figures/``), ipywidgets (dropped, with a
  note), HTML through the allowlist, SVG/PNG/JPEG as data URIs, Markdown through the allowlist,
  plain text escaped; long printed output is folded;
- cells tagged ``remove_cell``, ``remove_input`` or ``remove_output`` lose that part.

Every string from the notebook is escaped or sanitised: the only markup a page carries that the
allowlist did not pass is the report's own.

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
from cmdqv_lab.report import sources as _sources
from cmdqv_lab.report.notebook import ANSWER_MIME, RESULT_ROWS, TABLE_MIME, table_html
from cmdqv_lab.report.sanitize import clean

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
FIGURES_DIR = "figures"
"""Site subdirectory holding every chart as ``<page>-chart-<n>.svg`` and ``.png``."""
_SOURCE_HREF = re.compile(r'href="' + re.escape(_sources.DOCS_HREF) + r'([^"]*)"')
_DOCS_HREF = re.compile(r'href="(?:\.\./)?docs/sources\.md"')
#: Printed output longer than this many lines is folded away.
STREAM_LINES = 8
_HEADING = re.compile(r"^\s*#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass
class Page:
    """A rendered notebook: body HTML and what the report collects from it."""

    title: str
    body: str
    answers: list[dict[str, Any]] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    #: titles of parameter tables (a page shows at most one)
    param_tables: list[str] = field(default_factory=list)
    #: bibliography ids the page cites, in order of first citation
    cited: list[str] = field(default_factory=list)
    #: HTML of the first Markdown cell (the question), rendered once more above the answer box
    question: str = ""
    charts: int = 0
    widgets_dropped: int = 0
    #: (file stem, Vega-Lite spec, the SVG the kernel rendered or None), one per chart, in order
    figures: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)


def markdown(text: str, cited: list[str] | None = None) -> str:
    """Markdown to HTML with nbconvert's mistune renderer, sanitised, source links resolved.

    ``cited`` collects the bibliography ids the text links to.

    >>> markdown("**b** <script>x</script>")
    '<p><strong>b</strong> </p>\\n'
    >>> markdown("[C1](../docs/sources.md#c1-garry-2020)")
    '<p><a href="sources.html#c1-garry-2020" class="cite" rel="noopener noreferrer">C1</a></p>\\n'
    """
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return resolve_sources(clean(str(markdown2html_mistune(text))), cited)


def resolve_sources(html_text: str, cited: list[str] | None = None) -> str:
    """Links to ``../docs/sources.md#<id>`` become ``sources.html#<id>``; unknown ids are an error."""

    def sub(m: re.Match[str]) -> str:
        sid = html.unescape(m.group(1))
        _sources.get(sid)  # raises ReportError naming the closest ids
        if cited is not None and sid not in cited:
            cited.append(sid)
        return f'href="{_sources.SITE_PAGE}#{html.escape(sid)}" class="cite"'

    out = _SOURCE_HREF.sub(sub, html_text)
    return _DOCS_HREF.sub(f'href="{_sources.SITE_PAGE}"', out)


def inline_markdown(text: str) -> str:
    """Markdown of one line, without the enclosing paragraph.

    >>> inline_markdown("p99 is *2x* lower <img src=x onerror=alert(1)>")
    'p99 is <em>2x</em> lower '
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


KIND_LABELS = {"measured": "measured", "fitted": "fitted", "predicted": "PREDICTION", "computed": "computed"}


def numbers_html(numbers: list[dict[str, str]]) -> str:
    """Key numbers as a small table, each with its kind as a badge (escaped)."""
    if not numbers:
        return ""
    rows = "".join(
        f'<tr class="kind-{html.escape(n["kind"])}"><td>{html.escape(n["label"])}</td>'
        f'<td class="num">{html.escape(n["value"])}</td>'
        f'<td><span class="badge kind-{html.escape(n["kind"])}">{html.escape(KIND_LABELS.get(n["kind"], n["kind"]))}'
        "</span></td></tr>"
        for n in numbers
    )
    return f'<table class="key-numbers"><tbody>{rows}</tbody></table>'


def _folded(block: str, text: str) -> str:
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if lines <= STREAM_LINES:
        return block
    first = html.escape(next((ln for ln in text.splitlines() if ln.strip()), "")[:100])
    return f'<details class="output-fold"><summary>printed output, {lines} lines: <code>{first}</code></summary>{block}</details>'


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

    def answer(self, rec: dict[str, Any]) -> str:
        qid, text = str(rec.get("qid", "?")), str(rec.get("text", ""))
        numbers = [
            {k: str(n.get(k, "")) for k in ("label", "value", "kind")}
            for n in rec.get("numbers", [])
            if isinstance(n, dict)
        ]
        self.page.answers.append({"qid": qid, "text": text, "numbers": numbers})
        anchor = html.escape(f"answer-{qid}")
        return (
            f'<div class="answer" id="{anchor}"><span class="qid">{html.escape(qid)}</span> '
            f"{inline_markdown(text)}{numbers_html(numbers)}</div>"
        )

    def table(self, rec: dict[str, Any]) -> str:
        title = str(rec.get("title", ""))
        self.page.tables.append(title)
        if rec.get("role", "parameters") == "parameters":
            self.page.param_tables.append(title)
            return (
                f'<details class="params"><summary>Parameters this page depends on: {html.escape(title)}'
                f'</summary><div class="table-wrap">{table_html(rec)}</div></details>'
            )
        rows = list(rec.get("rows", []))
        if len(rows) <= RESULT_ROWS:
            return f'<div class="table-wrap result">{table_html(rec)}</div>'
        head = {
            **rec,
            "rows": rows[:RESULT_ROWS],
            "title": f"{title} (first {RESULT_ROWS} of {len(rows)} rows)",
        }
        return (
            f'<div class="table-wrap result">{table_html(head)}</div>'
            f'<details class="more-rows"><summary>all {len(rows)} rows</summary>'
            f'<div class="table-wrap result">{table_html(rec)}</div></details>'
        )

    def output_data(self, data: dict[str, Any]) -> str:
        if ANSWER_MIME in data and isinstance(data[ANSWER_MIME], dict):
            return self.answer(data[ANSWER_MIME])
        if TABLE_MIME in data and isinstance(data[TABLE_MIME], dict):
            return self.table(data[TABLE_MIME])
        for mime in CHART_MIMES:
            if mime in data and isinstance(data[mime], dict):
                svg = data.get("image/svg+xml")
                return self.chart(data[mime], _text(svg) if svg else None)
        if WIDGET_MIME in data:
            self.page.widgets_dropped += 1
            return '<p class="note">Interactive widget omitted in the static report.</p>'
        if "text/html" in data:
            raw = _text(data["text/html"])
            cleaned = clean(raw)
            scripted = re.search(r"<\s*script", raw, re.IGNORECASE) is not None
            empty = not re.sub(r"<[^>]*>", "", cleaned).strip()
            # HTML that needed a script, or that the allowlist emptied, shows its text form instead
            if not ((scripted or empty) and "text/plain" in data):
                return f'<div class="html-output">{resolve_sources(cleaned, self.page.cited)}</div>'
        for mime in ("image/png", "image/jpeg", "image/svg+xml"):
            if mime in data:
                raw = _text(data[mime])
                b64 = base64.b64encode(raw.encode()).decode() if mime == "image/svg+xml" else raw.strip()
                if not re.fullmatch(r"[A-Za-z0-9+/=\s]*", b64):
                    return '<p class="note">An image output that is not base64 was omitted.</p>'
                b64 = re.sub(r"\s", "", b64)
                return f'<img class="image-output" alt="output image" src="data:{mime};base64,{b64}">'
        if "text/markdown" in data:
            return f'<div class="md-output">{markdown(_text(data["text/markdown"]), self.page.cited)}</div>'
        if "text/latex" in data:
            return f'<pre class="text-output">{html.escape(_text(data["text/latex"]))}</pre>'
        if "text/plain" in data:
            return _folded(
                f'<pre class="text-output">{_ansi(_text(data["text/plain"]))}</pre>',
                _text(data["text/plain"]),
            )
        return ""

    def output(self, out: Any) -> str:
        kind = out.get("output_type")
        if kind == "stream":
            cls = "stderr" if out.get("name") == "stderr" else "stdout"
            text = _text(out.get("text", ""))
            return _folded(f'<pre class="stream {cls}">{_ansi(text)}</pre>', text)
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
            return f'<section class="cell markdown">{markdown(src, self.page.cited)}</section>'
        if cell.cell_type != "code":
            return ""
        parts = []
        src = _text(cell.source)
        if src.strip() and "remove_input" not in tags:
            if "injected-parameters" in tags:
                label = "parameters injected by the report build"
                parts.append(
                    f'<details class="input injected"><summary>{label}</summary>{highlight(src)}</details>'
                )
            else:
                parts.append(f'<details class="input"><summary>code</summary>{highlight(src)}</details>')
        if "remove_output" not in tags:
            outs = "".join(self.output(o) for o in cell.get("outputs", []))
            if outs:
                parts.append(f'<div class="outputs">{outs}</div>')
        return f'<section class="cell code">{"".join(parts)}</section>' if parts else ""


def answer_box(page: Page) -> str:
    """The short answers of a page, with their key numbers, for the top of the page."""
    if not page.answers:
        return ""
    items = "".join(
        f'<div class="answer-top"><span class="qid">{html.escape(a["qid"])}</span> {inline_markdown(a["text"])}'
        f'{numbers_html(a.get("numbers", []))}<p class="muted"><a href="#answer-{html.escape(a["qid"])}">'
        "how it is computed</a></p></div>"
        for a in page.answers
    )
    return f'<section class="short-answer"><h2>Short answer</h2>{items}</section>'


def render_notebook(nb: Any, slug: str = "nb") -> Page:
    """Render an executed nbformat notebook; ``slug`` prefixes element ids (unique per page).

    The body is the question (the first Markdown cell), the short answers with their key numbers,
    then the notebook's cells.
    """
    r = _Renderer(slug)
    parts = [h for h in (r.cell(c) for c in nb.cells) if h]
    first_md = next((i for i, h in enumerate(parts) if h.startswith('<section class="cell markdown">')), -1)
    parts.insert(first_md + 1, answer_box(r.page))
    r.page.body = "\n".join(p for p in parts if p)
    return r.page
