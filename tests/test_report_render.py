"""Rendering of executed notebooks and the notebook-side helpers, without running a kernel."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

import nbformat
import polars as pl
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cmdqv_lab.errors import ReportError
from cmdqv_lab.params import Params, param
from cmdqv_lab.plots.display import VEGALITE_MIME
from cmdqv_lab.report.notebook import ANSWER_MIME, TABLE_MIME, answer_bundle, table_bundle, table_record
from cmdqv_lab.report.render import json_script, render_notebook
from cmdqv_lab.report.site import remote_references


@dataclass(frozen=True, kw_only=True)
class Demo(Params):
    cpus: int = param(4, unit="CPUs", lo=1, hi=64, provenance="choice", doc="issuing CPUs")
    tlbi_ns: float = param(320.0, unit="ns", lo=1, hi=1e6, provenance="derived", source="C1")


def cell_with(*outputs: dict, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    c = new_code_cell("pass", outputs=[new_output(**o) for o in outputs])
    c.metadata["tags"] = list(tags)
    return c


def test_widget_outputs_are_dropped_with_a_note() -> None:
    widget = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    nb = new_notebook(
        cells=[
            cell_with(
                {
                    "output_type": "display_data",
                    "data": {
                        "application/vnd.jupyter.widget-view+json": widget,
                        "text/plain": "IntSlider(value=3)",
                    },
                }
            )
        ]
    )
    page = render_notebook(nb)
    assert page.widgets_dropped == 1
    assert "Interactive widget omitted" in page.body and "IntSlider" not in page.body


def test_html_with_scripts_falls_back_to_text() -> None:
    html = '<div id="vis"></div><script src="https://cdn.jsdelivr.net/npm/vega@6"></script>'
    data = {"text/html": html, "text/plain": "alt.Chart(...)"}
    nb = new_notebook(cells=[cell_with({"output_type": "display_data", "data": data})])
    body = render_notebook(nb).body
    assert "cdn.jsdelivr" not in body and "alt.Chart(...)" in body
    handler = {"text/html": '<img src="x.png" onerror="alert(1)">', "text/plain": "plain"}
    body = render_notebook(
        new_notebook(cells=[cell_with({"output_type": "display_data", "data": handler})])
    ).body
    assert "onerror" not in body and "plain" in body


def test_safe_html_svg_png_and_streams() -> None:
    frame_html = pl.DataFrame({"a": [1]})._repr_html_()
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    nb = new_notebook(
        cells=[
            cell_with(
                {"output_type": "execute_result", "data": {"text/html": frame_html}, "execution_count": 1}
            ),
            cell_with({"output_type": "display_data", "data": {"image/svg+xml": svg, "text/plain": "x"}}),
            cell_with({"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=\n"}}),
            cell_with({"output_type": "stream", "name": "stderr", "text": "\x1b[31mwarning\x1b[0m <tag>"}),
        ]
    )
    body = render_notebook(nb).body
    assert "<table" in body  # the polars frame's own HTML
    b64 = base64.b64encode(svg.encode()).decode()
    assert f'src="data:image/svg+xml;base64,{b64}"' in body
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in body
    assert '<pre class="stream stderr"><span class="ansi-red-fg">warning</span> &lt;tag&gt;</pre>' in body
    assert remote_references(body) == []


def test_charts_become_placeholders_with_escaped_specs() -> None:
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.4.1.json",
        "title": "</script><b>",
        "mark": "point",
    }
    nb = new_notebook(
        cells=[
            cell_with(
                {"output_type": "display_data", "data": {VEGALITE_MIME: spec, "image/svg+xml": "<svg/>"}}
            ),
            cell_with({"output_type": "display_data", "data": {VEGALITE_MIME: spec}}),
        ]
    )
    page = render_notebook(nb, slug="07-x")
    assert page.charts == 2
    ids = re.findall(
        r'<div class="cmdqv-chart" id="(07-x-chart-\d)" data-spec="(07-x-chart-\d-spec)">', page.body
    )
    assert ids == [("07-x-chart-1", "07-x-chart-1-spec"), ("07-x-chart-2", "07-x-chart-2-spec")]
    m = re.search(r'<script type="application/json" id="07-x-chart-1-spec">(.*?)</script>', page.body, re.S)
    assert m and json.loads(m.group(1)) == spec
    assert "data:image/svg" not in page.body  # the SVG fallback is not needed in the site


def test_json_script_cannot_be_closed_early() -> None:
    out = json_script({"s": "</script><script>alert(1)</script><!--"}, "i")
    inner = out[len('<script type="application/json" id="i">') : -len("</script>")]
    assert "</" not in inner and "<!--" not in inner
    assert json.loads(inner)["s"] == "</script><script>alert(1)</script><!--"


def test_tags_markdown_title_and_injected_parameters() -> None:
    hidden = cell_with({"output_type": "stream", "name": "stdout", "text": "shown"}, tags=("remove_input",))
    hidden.source = "secret_code()"
    gone = cell_with({"output_type": "stream", "name": "stdout", "text": "gone"}, tags=("remove_cell",))
    injected = new_code_cell("# Parameters\nsmoke = True\n")
    injected.metadata["tags"] = ["injected-parameters"]
    nb = new_notebook(cells=[new_markdown_cell("intro\n\n# The *title*\n"), injected, hidden, gone])
    page = render_notebook(nb)
    assert page.title == "The *title*"
    assert "secret_code" not in page.body and "shown" in page.body and "gone" not in page.body
    assert "parameters injected by the report build" in page.body


def test_answer_and_table_records_are_collected() -> None:
    nb = new_notebook(
        cells=[
            cell_with({"output_type": "display_data", "data": answer_bundle("Q3", "Costs **2%**.")}),
            cell_with({"output_type": "display_data", "data": table_bundle(Demo(cpus=8), "Demo params")}),
        ]
    )
    nbformat.validate(nb)
    page = render_notebook(nb)
    assert page.answers == [{"qid": "Q3", "text": "Costs **2%**.", "numbers": []}]
    assert page.tables == ["Demo params"]
    assert (
        '<div class="answer" id="answer-Q3"><span class="qid">Q3</span> Costs <strong>2%</strong>.</div>'
        in page.body
    )
    assert '<td class="prov-derived">derived</td>' in page.body


@pytest.mark.parametrize(
    ("qid", "text", "match"),
    [
        ("3", "x", "not like 'Q1'"),
        ("Q1", "  ", "empty"),
        ("Q1", "two\nlines", "one line"),
    ],
)
def test_answer_validation(qid: str, text: str, match: str) -> None:
    with pytest.raises(ReportError, match=match):
        answer_bundle(qid, text)


def test_answer_bundle_mimes() -> None:
    b = answer_bundle("Q10", " Lazy mode wins. ")
    assert b["text/markdown"] == "**Q10.** Lazy mode wins."
    assert b[ANSWER_MIME] == {"qid": "Q10", "text": "Lazy mode wins."}


def test_table_record_inputs() -> None:
    rec = table_record(Demo, "defaults")
    assert rec["columns"] == ["name", "value", "default", "unit", "allowed", "provenance", "source", "doc"]
    assert rec["rows"][0][:2] == ["cpus", "4"]
    frame = table_record(pl.DataFrame({"k": ["a"], "v": [float("inf")], "n": [None]}), "frame")
    assert frame["rows"] == [["a", "inf", None]]  # JSON-safe
    json.dumps(frame, allow_nan=False)
    assert table_record({"x": 1}, "map")["rows"] == [["x", 1]]
    with pytest.raises(ReportError, match="expected Params"):
        table_record([1, 2], "list")
    with pytest.raises(ReportError, match="title is empty"):
        table_record({"x": 1}, "")
    with pytest.raises(ReportError, match="exceed"):
        table_record(pl.DataFrame({"i": range(1001)}), "big")


def test_table_bundle_html_is_escaped_and_has_text() -> None:
    b = table_bundle({"<b>": "x & y"}, "T <1>")
    assert "<caption>T &lt;1&gt;</caption>" in b["text/html"] and "x &amp; y" in b["text/html"]
    assert b["text/plain"].splitlines()[0] == "T <1>"
    assert b[TABLE_MIME]["rows"] == [["<b>", "x & y"]]
