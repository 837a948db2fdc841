"""Helpers notebooks call: answers and parameter tables that Jupyter shows and the report collects.

Each helper displays a mime bundle: a human view for Jupyter (Markdown or HTML) plus a record in
a custom JSON mime type. JupyterLab ignores the custom type; the report builder reads it from the
executed notebook to build the index of answers and to render tables. Custom types end in
``+json`` so nbformat stores them as JSON (see :mod:`cmdqv_lab.plots.display`).

>>> b = answer_bundle("Q2", "A SYNC on queue B does not cover TLBIs on queue A.",
...                   [("unmaps at risk per 10^4", "63", "computed")])
>>> b[ANSWER_MIME]["numbers"]
[{'label': 'unmaps at risk per 10^4', 'value': '63', 'kind': 'computed'}]
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cmdqv_lab.errors import ReportError

ANSWER_MIME = "application/vnd.cmdqv.answer+json"
TABLE_MIME = "application/vnd.cmdqv.table+json"

#: Largest table :func:`param_table` accepts (it is for parameters, not results).
MAX_TABLE_ROWS = 1000

_QID = re.compile(r"^Q\d{1,2}[a-z]?$")


#: What a key number is (see :mod:`cmdqv_lab.plots.kinds`).
NUMBER_KINDS = ("measured", "fitted", "predicted", "computed")


def _numbers(qid: str, numbers: Sequence[Sequence[Any]] | None) -> list[dict[str, str]]:
    out = []
    for i, n in enumerate(numbers or (), start=1):
        if len(n) != 3:
            raise ReportError(f"answer {qid}: key number {i} is not (label, value, kind)")
        lab, val, kind = (str(x) for x in n)
        if kind not in NUMBER_KINDS:
            raise ReportError(
                f"answer {qid}: key number {lab!r} has kind {kind!r}, not one of {', '.join(NUMBER_KINDS)}"
            )
        if not lab.strip() or not val.strip():
            raise ReportError(f"answer {qid}: key number {i} has an empty label or value")
        out.append({"label": lab.strip(), "value": val.strip(), "kind": kind})
    return out


def answer_bundle(qid: str, text: str, numbers: Sequence[Sequence[Any]] | None = None) -> dict[str, Any]:
    """The mime bundle :func:`answer` displays (validated)."""
    if not isinstance(qid, str) or not _QID.match(qid):
        raise ReportError(f"answer: question id {qid!r} is not like 'Q1' .. 'Q14' (optionally 'Q6a')")
    if not isinstance(text, str) or not text.strip():
        raise ReportError(f"answer {qid}: the answer text is empty")
    text = text.strip()
    if "\n" in text:
        raise ReportError(f"answer {qid}: the answer must be one line (put details in a Markdown cell)")
    nums = _numbers(qid, numbers)
    rec: dict[str, Any] = {"qid": qid, "text": text}
    if nums:
        rec["numbers"] = nums
    md = f"**{qid}.** {text}"
    if nums:
        md += "\n\n" + "\n".join(f"- {n['label']}: **{n['value']}** ({n['kind']})" for n in nums)
    return {"text/markdown": md, "text/plain": f"{qid}: {text}", ANSWER_MIME: rec}


def answer(qid: str, text: str, numbers: Sequence[Sequence[Any]] | None = None) -> None:
    """Show a question's one-line answer and record it for the report's index.

    Parameters
    ----------
    qid
        The question, ``"Q1"`` .. ``"Q14"`` as in the domain brief and issue 15 (a letter may follow: ``"Q6a"``).
    text
        One line, Markdown allowed, with the numbers that answer it.
    numbers
        The key numbers as ``(label, value, kind)``, kind one of :data:`NUMBER_KINDS`: the index
        and ``summary.txt`` list them apart (measured / fitted / predicted / computed).
    """
    from IPython.display import display

    display(answer_bundle(qid, text, numbers), raw=True)


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    return str(v)


def fmt_number(v: Any) -> Any:
    """A float as a reader wants it: 4 significant digits, thousands separated.

    >>> fmt_number(157234.567), fmt_number(0.012345), fmt_number(3.0), fmt_number("x")
    ('157,235', '0.01235', '3', 'x')
    """
    if isinstance(v, bool) or not isinstance(v, float):
        return v
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def table_record(obj: Any, title: str) -> dict[str, Any]:
    """A JSON-safe table record ``{"title", "columns", "rows"}`` from params, a frame or a mapping.

    Accepted inputs: a :class:`~cmdqv_lab.params.Params` instance (its :meth:`table`, with
    provenance), a ``Params`` class (its defaults), a polars DataFrame, or a mapping
    ``{name: value}``.

    >>> table_record({"cpus": 4, "tlbi_ns": 320.0}, "Workload")["rows"]
    [['cpus', 4], ['tlbi_ns', 320.0]]
    """
    import polars as pl

    from cmdqv_lab.params import Params

    if not isinstance(title, str) or not title.strip():
        raise ReportError("param_table: the title is empty")
    if isinstance(obj, type) and issubclass(obj, Params):
        obj = obj()
    if isinstance(obj, Params):
        df = obj.table()
    elif isinstance(obj, pl.DataFrame):
        df = obj
    elif isinstance(obj, Mapping):
        return _checked(title, ["name", "value"], [[str(k), _cell(v)] for k, v in obj.items()])
    else:
        raise ReportError(
            f"param_table {title!r}: expected Params, a polars DataFrame or a mapping, got {type(obj).__name__}"
        )
    rows = [[_cell(v) for v in row] for row in df.iter_rows()]
    return _checked(title, [str(c) for c in df.columns], rows)


def _checked(title: str, columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    if len(rows) > MAX_TABLE_ROWS:
        raise ReportError(f"param_table {title!r}: {len(rows)} rows exceed {MAX_TABLE_ROWS}")
    return {"title": title.strip(), "columns": columns, "rows": rows}


def table_html(record: Mapping[str, Any]) -> str:
    """Escaped HTML ``<table>`` of a table record (used in Jupyter and in the report).

    >>> print(table_html({"title": "T", "columns": ["a"], "rows": [["<b>"]]}))
    <table class="cmdqv-table"><caption>T</caption><thead><tr><th>a</th></tr></thead><tbody><tr><td>&lt;b&gt;</td></tr></tbody></table>
    """
    cols = list(record["columns"])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for row in record["rows"]:
        cells = []
        for c, v in zip(cols, row):
            text = "" if v is None else str(fmt_number(v))
            cls = f' class="prov-{html.escape(text)}"' if c == "provenance" and text.isidentifier() else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table class="cmdqv-table"><caption>{html.escape(str(record["title"]))}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def table_bundle(obj: Any, title: str, role: str = "parameters") -> dict[str, Any]:
    """The mime bundle :func:`param_table` (role ``parameters``) or :func:`result_table` displays."""
    rec = table_record(obj, title)
    rec["role"] = role
    widths = [
        max([len(str(c))] + [len(str(r[i])) for r in rec["rows"]]) for i, c in enumerate(rec["columns"])
    ]
    lines = [rec["title"], "  ".join(str(c).ljust(w) for c, w in zip(rec["columns"], widths))]
    lines += ["  ".join(str(fmt_number(v)).ljust(w) for v, w in zip(r, widths)).rstrip() for r in rec["rows"]]
    return {"text/html": table_html(rec), "text/plain": "\n".join(lines), TABLE_MIME: rec}


def param_table(obj: Any, title: str) -> None:
    """Show a parameter table (with provenance when given ``Params``) and record it for the report.

    Parameters
    ----------
    obj
        A :class:`~cmdqv_lab.params.Params` instance or class, a polars DataFrame, or a mapping.
    title
        Caption, e.g. ``"Device parameters (Grace preset)"``.
    """
    from IPython.display import display

    display(table_bundle(obj, title), raw=True)


#: Most rows :func:`result_table` shows before folding the rest away.
RESULT_ROWS = 12


def result_table(obj: Any, title: str, *, labels: Mapping[str, str] | None = None) -> None:
    """Show a table of results: columns in words (:func:`~cmdqv_lab.plots.labels.label`), numbers
    to 4 significant digits; the report shows it small and folds rows past :data:`RESULT_ROWS`.

    Parameters
    ----------
    obj
        A polars DataFrame or a mapping ``{name: value}``.
    title
        Caption.
    labels
        Column titles overriding the automatic ones.
    """
    import polars as pl
    from IPython.display import display

    from cmdqv_lab.plots.labels import label

    if isinstance(obj, pl.DataFrame):
        names = {c: (labels or {}).get(c, label(c)) for c in obj.columns}
        if len(set(names.values())) == len(names):
            obj = obj.rename(names)
    display(table_bundle(obj, title, role="results"), raw=True)
