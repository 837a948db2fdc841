"""The HTML of the report's pages: index, one page per notebook, sources, provenance.

Every page is a review document: the question, the short answer with its key numbers (each
labelled measured, fitted, predicted or computed), the evidence, details folded away. Every
string from a notebook, a manifest or the bibliography is escaped here or sanitised by
:mod:`cmdqv_lab.report.render`. Every page carries :data:`CSP`.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any

from cmdqv_lab.report import sources as _sources
from cmdqv_lab.report.execute import Executed
from cmdqv_lab.report.notebook import fmt_number
from cmdqv_lab.report.render import KIND_LABELS, Page, inline_markdown

#: The Content-Security-Policy of every page: scripts only from the site itself (Vega compiles its
#: expressions with ``Function``, hence ``'unsafe-eval'``), no inline scripts, no network, no
#: frames, forms, plugins or base URL changes; inline styles stay allowed (Vega's SVG uses them).
CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'none'; media-src 'none'; "
    "object-src 'none'; frame-src 'none'; worker-src 'none'; manifest-src 'none'; "
    "base-uri 'none'; form-action 'none'"
)

#: Short titles of the design questions (domain brief, section 1).
QUESTIONS: dict[str, str] = {
    "Q1": "Routing a batch by its first opcode: unsupported commands on guest VCMDQs",
    "Q2": "A SYNC covers only its own queue: cross-queue completion hazards",
    "Q3": "Hardware-inserted SYNCs: what they cost without a guarantee",
    "Q4": "VINTF and SID MATCH/REPLACE capacity",
    "Q5": "Which opcodes a guest-owned queue may legitimately take",
    "Q6": "Guest VCMDQ as the vSMMU main queue: trap, direct, error fix-up",
    "Q7": "One threaded IRQ for every VCMDQ error: fix-up latency under storms",
    "Q8": "Guests with several VCMDQs",
    "Q9": "Host scaling: shared cmdq, VCMDQs, per-CPU lightweight queues, ECMDQ",
    "Q10": "Is the command queue the bottleneck? Strict vs lazy invalidation",
    # later questions from the lists (issue 15), each with the source that asked it
    "Q11": "The invalidation threshold: per-page TLBIs or one ASID flush (CMDQ_MAX_TLBI_OPS)",
    "Q12": "Noisy neighbours: one VM's invalidations against another's latency, shared vs private queues",
    "Q13": "Batching the trapped guest's invalidations (one ioctl per guest command)",
    "Q14": "ECMDQ and VCMDQ at scale: where per-CPU queues stop mattering",
}
#: The bibliography entry (``sources.toml`` id) that asked each question: the seed thread for the
#: 2021 questions, the later mail (or code) for Q11 on. A question's page must cite it.
QUESTION_SOURCES: dict[str, str] = {
    **{f"Q{i}": "seed-thread" for i in range(1, 11)},
    "Q11": "murphy-2023-threshold",
    "Q12": "gunthorpe-2024-dos",
    "Q13": "qemu-accel-cmdqv",
    "Q14": "ecmdq-marvell-2024",
}


@dataclass
class NotebookPage:
    """One notebook of the report after execution and rendering."""

    executed: Executed
    page: Page

    @property
    def slug(self) -> str:
        return self.executed.source.stem

    @property
    def href(self) -> str:
        return f"{self.slug}.html"


def qkey(qid: str) -> tuple[int, str]:
    m = re.match(r"Q(\d+)(.*)", qid)
    return (int(m.group(1)), m.group(2)) if m else (10**6, qid)


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def page(title: str, body: str, *, charts: bool, nav: str = "") -> str:
    """A whole page: CSP, stylesheet, header, body, and the chart scripts when it has charts."""
    scripts = (
        '<script src="assets/vega.js"></script>\n<script src="assets/report.js"></script>\n' if charts else ""
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)} · cmdqv-lab report</title>\n"
        '<link rel="stylesheet" href="assets/report.css">\n</head>\n<body>\n'
        f'<header class="site"><a class="brand" href="index.html">cmdqv-lab report</a><nav>{nav}'
        '<a href="sources.html">sources</a><a href="provenance.html">provenance</a></nav></header>\n'
        f"<main>\n{body}\n</main>\n{scripts}</body>\n</html>\n"
    )


def kv_table(rows: list[tuple[str, Any]], caption: str = "") -> str:
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{cap}<tbody>{body}</tbody></table>'


def git_text(git: dict[str, Any] | None) -> str:
    if not git:
        return "not a git checkout"
    return f"{git['commit'][:12]} ({git.get('branch') or '?'}){' with uncommitted changes' if git['dirty'] else ''}"


def smoke_banner(env: dict[str, Any], what: str) -> str:
    if not env["smoke"]:
        return ""
    return (
        f'<p class="banner">Smoke build: {what} ran with <code>smoke=True</code>; the numbers come from '
        "reduced runs and are not the published ones.</p>"
    )


def source_link(s: _sources.Source) -> str:
    return f'<a href="{esc(s.link)}" rel="noopener noreferrer">{esc(s.short)}</a>'


def cited_html(cited: list[str]) -> str:
    """The primary sources a page cites, with their links (lore.kernel.org, commits)."""
    if not cited:
        return ""
    items = "".join(
        f'<li><a href="sources.html#{esc(s.id)}">{esc(s.short)}</a>: {esc(s.title)} '
        f'(<a href="{esc(s.link)}" rel="noopener noreferrer">{esc(_link_text(s))}</a>)</li>'
        for s in (_sources.get(i) for i in cited)
    )
    return f'<section class="cited"><h2>Sources cited on this page</h2><ul>{items}</ul></section>'


def _link_text(s: _sources.Source) -> str:
    if s.message_id:
        return "lore.kernel.org"
    if s.commit:
        return f"commit {s.commit[:12]}"
    return "link"


def notebook_page_html(nbp: NotebookPage, env: dict[str, Any], nav: str) -> str:
    """The HTML of one notebook's page."""
    ex, pg = nbp.executed, nbp.page
    details = kv_table(
        [
            ("source", f"notebooks/{ex.source.name}"),
            ("execution time", f"{ex.seconds:.1f} s"),
            ("widgets omitted (need a kernel)", pg.widgets_dropped),
            ("built", f"{env['built_utc']} from {git_text(env['git'])}"),
        ]
    )
    prov = (
        '<section class="provenance"><details><summary>How this page was made</summary>'
        f'<p><a href="notebooks/{esc(ex.ipynb.name)}">Executed notebook (.ipynb)</a> · '
        f'<a href="provenance.html">environment and data manifests</a></p>{details}</details></section>'
    )
    body = smoke_banner(env, "this notebook") + pg.body + cited_html(pg.cited) + prov
    return page(pg.title, body, charts=pg.charts > 0, nav=nav)


def _numbers_by_kind(pages: list[NotebookPage]) -> dict[str, list[tuple[str, dict[str, str], NotebookPage]]]:
    out: dict[str, list[tuple[str, dict[str, str], NotebookPage]]] = {k: [] for k in KIND_LABELS}
    for p in pages:
        for a in p.page.answers:
            for n in a.get("numbers", []):
                out.setdefault(n["kind"], []).append((a["qid"], n, p))
    return out


def _preset_rows() -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """(measured, fitted, predicted) rows from the presets' stored calibration."""
    from cmdqv_lab.platform import read_preset

    measured, fitted, predicted = [], [], []
    for name, src in (("d06", "c1-garry-2020"), ("grace", "c2-hwqueue-v9")):
        meta = read_preset(name).meta
        for r in meta.get("fit_row", []):
            measured.append(
                [name, str(r["label"]), fmt_number(float(r["measured"])), _sources.get(src).short]
            )
            fitted.append(
                [name, str(r["label"]), fmt_number(float(r["measured"])), fmt_number(float(r["model"])),
                 f"{float(r.get('rel_error', 0.0)):+.1%}"]
            )  # fmt: skip
        for r in meta.get("prediction", []):
            predicted.append([name, str(r["label"]), str(r.get("metric", "")), fmt_number(float(r["model"]))])
    return measured, fitted, predicted


def _rows_table(head: list[str], rows: list[list[str]], cls: str) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="table-wrap result"><table class="cmdqv-table {cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def index_html(pages: list[NotebookPage], env: dict[str, Any]) -> str:
    """The index: each question's short answer; then what was measured, fitted and predicted."""
    answers: dict[str, list[tuple[dict[str, Any], NotebookPage]]] = {}
    for p in pages:
        for a in p.page.answers:
            answers.setdefault(a["qid"], []).append((a, p))
    qids = sorted(set(QUESTIONS) | set(answers), key=qkey)
    rows = []
    for q in qids:
        got = answers.get(q, [])
        if got:
            cell = "".join(
                f'<p>{inline_markdown(a["text"])} <a href="{p.href}#answer-{esc(q)}">({esc(p.page.title or p.slug)})</a></p>'
                for a, p in got
            )
        else:
            cell = '<p class="muted">Not answered yet.</p>'
        rows.append(
            f'<tr><td class="qid">{esc(q)}</td><td>{esc(QUESTIONS.get(q, ""))}</td><td>{cell}</td></tr>'
        )
    seed = _sources.seed_thread()
    by_kind = _numbers_by_kind(pages)
    measured, fitted, predicted = _preset_rows()
    src = {s: _sources.get(s) for s in ("c1-garry-2020", "c2-hwqueue-v9", "traces-linux6.1")}

    def key_rows(kind: str) -> list[list[str]]:
        return [[q, n["label"], n["value"], p.slug] for q, n, p in by_kind.get(kind, [])]

    nb_rows = "".join(
        f'<tr><td><a href="{p.href}">{esc(p.page.title or p.slug)}</a></td>'
        f"<td>{', '.join(esc(a['qid']) for a in p.page.answers) or '—'}</td>"
        f"<td>{p.page.charts}</td><td>{p.executed.seconds:.1f} s</td></tr>"
        for p in pages
    )
    body = (
        "<h1>SMMUv3 command queues, ECMDQ and Tegra241 CMDQV: answers</h1>"
        + smoke_banner(env, "every notebook")
        + "<p>The ten design questions Q1-Q10 come from the review of the Tegra241 CMDQV v3 patches, the "
        f"{source_link(seed)} ({esc(seed.date)}, {esc(seed.author)}); Q11 on are questions asked on the "
        "lists since, each page citing the mail that asked it. Each answer is computed by a "
        "notebook from a functional model of the queues and a timing model calibrated to public "
        'measurements; every source is in <a href="sources.html">the bibliography</a>. Numbers are labelled '
        '<span class="badge kind-measured">measured</span> (public data), <span class="badge kind-fitted">'
        'fitted</span> (the model at the rows it was fitted to), <span class="badge kind-predicted">PREDICTION'
        '</span> (the model anywhere else) or <span class="badge kind-computed">computed</span> (exact '
        "consequences of the functional model or the geometry).</p>"
        f'<p class="muted">Built {esc(env["built_utc"])} from {esc(git_text(env["git"]))}.</p>'
        '<h2>Design questions</h2><table class="answers"><thead><tr><th>#</th><th>question</th>'
        f"<th>short answer</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "<h2>What was measured</h2><p>Public measurements the model is calibrated to "
        f"({source_link(src['c1-garry-2020'])}, {source_link(src['c2-hwqueue-v9'])}), and measured facts the "
        f"answers quote (the {source_link(src['traces-linux6.1'])}).</p>"
        + _rows_table(["preset", "row", "measured", "source"], measured, "kind-measured")
        + _rows_table(
            ["question", "measured fact", "value", "notebook"], key_rows("measured"), "kind-measured"
        )
        + "<h2>What was fitted</h2><p>The model at exactly those rows after fitting: agreement here checks "
        "the fit, it is not evidence for anything else.</p>"
        + _rows_table(["preset", "row", "measured", "model", "error"], fitted, "kind-fitted")
        + _rows_table(["question", "fitted number", "value", "notebook"], key_rows("fitted"), "kind-fitted")
        + "<h2>What is predicted</h2><p>Model outputs outside the calibration rows: predictions, to be "
        "judged by the published measurements that were held out of the fit. They are not findings about "
        "hardware.</p>"
        + _rows_table(
            ["preset", "held-out configuration", "metric", "model prediction"], predicted, "kind-predicted"
        )
        + _rows_table(
            ["question", "predicted number", "value", "notebook"], key_rows("predicted"), "kind-predicted"
        )
        + "<h2>What is computed exactly</h2>"
        + _rows_table(
            ["question", "computed number", "value", "notebook"], key_rows("computed"), "kind-computed"
        )
        + "<h2>Notebooks</h2><table><thead><tr><th>notebook</th><th>answers</th>"
        f"<th>charts</th><th>run time</th></tr></thead><tbody>{nb_rows}</tbody></table>"
        '<p><a href="summary.txt">summary.txt</a> (plain text for a mail to the list) · '
        '<a href="provenance.html">provenance</a> · <a href="manifest.json">manifest.json</a></p>'
    )
    return page("Answers", body, charts=False)


def sources_html() -> str:
    """The bibliography page (anchors are the entries' ids)."""
    items = []
    for s in _sources.load().values():
        loc = "".join(f"<li>{esc(k)}: <code>{esc(v)}</code></li>" for k, v in _sources.locators(s))
        note = f"<li>note: {esc(s.note)}</li>" if s.note else ""
        used = f"<li>used in: {esc(', '.join(s.used_in))}</li>" if s.used_in else ""
        items.append(
            f'<section class="source" id="{esc(s.id)}"><h2>{esc(s.short)}: {esc(s.title)}</h2>'
            f"<ul><li><strong>{esc(s.kind)}</strong>, {esc(s.author)}, {esc(s.date)}: "
            f'<a href="{esc(s.link)}" rel="noopener noreferrer">{esc(s.link)}</a></li>{loc}{note}'
            f"<li>taken: {esc(s.taken)}</li>{used}</ul></section>"
        )
    body = (
        "<h1>Sources</h1><p>Every measurement, statement, patch and piece of code the model and the "
        "answers rely on, with where to read it and what was taken from it. A mail is cited by its "
        "Message-ID, readable at <code>https://lore.kernel.org/r/&lt;Message-ID&gt;</code>.</p>"
        + "".join(items)
    )
    return page("Sources", body, charts=False)


def provenance_html(env: dict[str, Any], data: list[dict[str, Any]]) -> str:
    """Environment and data manifests, once for the whole site."""
    rows = [
        ("built (UTC)", env["built_utc"]),
        ("git commit", git_text(env["git"])),
        ("smoke mode", "yes: numbers come from reduced runs" if env["smoke"] else "no"),
        ("cmdqv-lab", env["cmdqv_lab"]),
        ("python", f"{env['python']} ({env['implementation']})"),
        ("platform", f"{env['platform']} ({env['machine']}, {env['cpu_count']} CPUs)"),
        ("command", env["command"]),
    ]
    rows += [(f"site runtime: {k}", v) for k, v in env["vega_runtime"].items()]
    pkgs = kv_table(sorted(env["packages"].items()), "package versions")
    items = []
    for e in data:
        content = e.get("content")
        scalars = (
            ", ".join(f"{k}={v}" for k, v in content.items() if isinstance(v, (str, int, float, bool)))[:300]
            if isinstance(content, dict)
            else ""
        )
        detail = e.get("error") or json.dumps(content, indent=2, ensure_ascii=False)[:20000]
        items.append(
            f"<tr><td><code>{esc(e['path'])}</code></td><td><code>{esc(e['sha256'][:16])}</code></td>"
            f"<td>{esc(scalars)}<details><summary>content</summary><pre>{esc(detail)}</pre></details></td></tr>"
        )
    manifests = (
        f'<div class="table-wrap"><table><thead><tr><th>file</th><th>sha256</th><th>summary</th></tr></thead>'
        f"<tbody>{''.join(items)}</tbody></table></div>"
        if items
        else '<p class="muted">No data manifests found.</p>'
    )
    body = (
        f"<h1>Provenance</h1>{kv_table(rows, 'environment')}<details><summary>Package versions</summary>{pkgs}</details>"
        f"<h2>Data manifests ({len(data)})</h2>{manifests}"
    )
    return page("Provenance", body, charts=False)
