"""Build the offline report site: execute notebooks, render pages, write the site atomically.

Layout of the output directory::

    index.html            one-line answers to Q1..Q10, linking to the notebooks' pages
    NN-topic.html         one page per notebook (outputs, parameter tables, provenance)
    notebooks/*.ipynb     the executed notebooks
    assets/vega.js        Vega + Vega-Lite + vega-embed (vl-convert's bundle), written once
    assets/report.js      draws the page's charts with it; assets/report.css
    manifest.json         environment and data manifests, answers, per-notebook timings

Pages with charts load ``assets/vega.js`` and ``assets/report.js`` once each, at the end of the
body; pages without charts load no script. Every page is checked for references that a browser
would fetch from the network (``src``/``href`` of scripts, images, stylesheets, frames, CSS
``url()`` and ``@import``); one fails the build.

The site is built in a hidden sibling directory and swapped in by two renames at the end, so a
failed or interrupted build leaves the previous site as it was. The output directory must be
empty, absent or a previous report (it holds the marker file :data:`MARKER`); anything else is
refused rather than deleted.
"""

from __future__ import annotations

import html
import json
import multiprocessing
import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from cmdqv_lab.errors import ReportError
from cmdqv_lab.report import manifest as _manifest
from cmdqv_lab.report.execute import Executed, discover, execute
from cmdqv_lab.report.render import FIGURES_DIR, Page, inline_markdown, pygments_css, render_notebook

#: File marking a directory as a cmdqv-lab report (so a rebuild may replace it).
MARKER = ".cmdqv-report"

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


def _qkey(qid: str) -> tuple[int, str]:
    m = re.match(r"Q(\d+)(.*)", qid)
    return (int(m.group(1)), m.group(2)) if m else (10**6, qid)


# ---------------------------------------------------------------------------------- HTML pieces
def _page(title: str, body: str, *, charts: bool, nav: str = "") -> str:
    scripts = (
        '<script src="assets/vega.js"></script>\n<script src="assets/report.js"></script>\n' if charts else ""
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{html.escape(title)} · cmdqv-lab report</title>\n"
        '<link rel="stylesheet" href="assets/report.css">\n</head>\n<body>\n'
        f'<header class="site"><a class="brand" href="index.html">cmdqv-lab report</a><nav>{nav}</nav></header>\n'
        f"<main>\n{body}\n</main>\n{scripts}</body>\n</html>\n"
    )


def _kv_table(rows: list[tuple[str, Any]], caption: str = "") -> str:
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape('' if v is None else str(v))}</td></tr>"
        for k, v in rows
    )
    return f'<table class="kv">{cap}<tbody>{body}</tbody></table>'


def _git_text(git: dict[str, Any] | None) -> str:
    if not git:
        return "not a git checkout"
    return f"{git['commit'][:12]} ({git.get('branch') or '?'}){' with uncommitted changes' if git['dirty'] else ''}"


def _environment_html(env: dict[str, Any]) -> str:
    rows = [
        ("built (UTC)", env["built_utc"]),
        ("git commit", _git_text(env["git"])),
        ("smoke mode", "yes: numbers come from reduced runs" if env["smoke"] else "no"),
        ("cmdqv-lab", env["cmdqv_lab"]),
        ("python", f"{env['python']} ({env['implementation']})"),
        ("platform", f"{env['platform']} ({env['machine']}, {env['cpu_count']} CPUs)"),
        ("command", env["command"]),
    ]
    rows += [(f"site runtime: {k}", v) for k, v in env["vega_runtime"].items()]
    pkgs = _kv_table(sorted(env["packages"].items()), "package versions")
    return (
        f"<details open><summary>Environment</summary>{_kv_table(rows)}"
        f"<details><summary>Package versions</summary>{pkgs}</details></details>"
    )


def _data_html(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return '<details><summary>Data manifests</summary><p class="muted">No data manifests found.</p></details>'
    items = []
    for e in entries:
        content = e.get("content")
        scalars = (
            ", ".join(f"{k}={v}" for k, v in content.items() if isinstance(v, (str, int, float, bool)))[:300]
            if isinstance(content, dict)
            else ""
        )
        detail = e.get("error") or json.dumps(content, indent=2, ensure_ascii=False)[:20000]
        items.append(
            f"<tr><td><code>{html.escape(e['path'])}</code></td><td><code>{e['sha256'][:16]}</code></td>"
            f"<td>{html.escape(scalars)}<details><summary>content</summary><pre>{html.escape(detail)}</pre>"
            "</details></td></tr>"
        )
    head = "<thead><tr><th>file</th><th>sha256</th><th>summary</th></tr></thead>"
    return (
        f"<details><summary>Data manifests ({len(entries)})</summary>"
        f"<table>{head}<tbody>{''.join(items)}</tbody></table></details>"
    )


def notebook_page_html(nbp: NotebookPage, env: dict[str, Any], data: list[dict[str, Any]], nav: str) -> str:
    """The HTML of one notebook's page."""
    ex, page = nbp.executed, nbp.page
    banner = (
        '<p class="banner">Smoke build: this notebook ran with <code>smoke=True</code>; '
        "its numbers come from reduced runs.</p>"
        if env["smoke"]
        else ""
    )
    this = _kv_table(
        [
            ("source", f"notebooks/{ex.source.name}"),
            ("executed notebook", f"notebooks/{ex.ipynb.name}"),
            ("execution time", f"{ex.seconds:.1f} s"),
            ("parameter tables", ", ".join(page.tables) or "none"),
            ("widgets omitted", page.widgets_dropped),
        ]
    )
    prov = (
        f'<section class="provenance"><h2>Provenance</h2>'
        f'<p><a href="notebooks/{html.escape(ex.ipynb.name)}">Executed notebook (.ipynb)</a></p>'
        f"{this}{_environment_html(env)}{_data_html(data)}</section>"
    )
    return _page(page.title, banner + page.body + prov, charts=page.charts > 0, nav=nav)


def index_html(pages: list[NotebookPage], env: dict[str, Any]) -> str:
    """The HTML of the index: each question's answers, then the notebooks."""
    answers: dict[str, list[tuple[str, NotebookPage]]] = {}
    for p in pages:
        for a in p.page.answers:
            answers.setdefault(a["qid"], []).append((a["text"], p))
    qids = sorted(set(QUESTIONS) | set(answers), key=_qkey)
    rows = []
    for q in qids:
        got = answers.get(q, [])
        if got:
            cell = "".join(
                f'<p>{inline_markdown(text)} <a href="{p.href}#answer-{html.escape(q)}">'
                f"({html.escape(p.page.title or p.slug)})</a></p>"
                for text, p in got
            )
        else:
            cell = '<p class="muted">Not answered yet.</p>'
        title = html.escape(QUESTIONS.get(q, ""))
        rows.append(f'<tr><td class="qid">{html.escape(q)}</td><td>{title}</td><td>{cell}</td></tr>')
    nb_rows = "".join(
        f'<tr><td><a href="{p.href}">{html.escape(p.page.title or p.slug)}</a></td>'
        f"<td><code>{html.escape(p.executed.source.name)}</code></td>"
        f"<td>{', '.join(html.escape(a['qid']) for a in p.page.answers) or '—'}</td>"
        f"<td>{p.page.charts}</td><td>{p.executed.seconds:.1f} s</td></tr>"
        for p in pages
    )
    banner = (
        '<p class="banner">Smoke build: every notebook ran with <code>smoke=True</code>. '
        "The answers below come from reduced runs and are not the published numbers.</p>"
        if env["smoke"]
        else ""
    )
    body = (
        f"<h1>SMMUv3 command queues, ECMDQ and Tegra241 CMDQV: answers</h1>{banner}"
        f'<p class="muted">Built {html.escape(env["built_utc"])} from {html.escape(_git_text(env["git"]))}.</p>'
        '<h2>Design questions</h2><table class="answers"><thead><tr><th>#</th><th>question</th>'
        f"<th>answer</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "<h2>Notebooks</h2><table><thead><tr><th>notebook</th><th>source</th><th>answers</th>"
        f"<th>charts</th><th>run time</th></tr></thead><tbody>{nb_rows}</tbody></table>"
        f'<section class="provenance"><h2>Provenance</h2>{_environment_html(env)}'
        '<p><a href="manifest.json">manifest.json</a> (machine-readable)</p></section>'
    )
    return _page("Answers", body, charts=False)


# ---------------------------------------------------------------------------------- offline check
class _RemoteRefs(HTMLParser):
    LOADING: ClassVar[dict[str, str]] = {"script": "src", "img": "src", "iframe": "src", "source": "src", "audio": "src",
               "video": "src", "embed": "src", "track": "src", "input": "src", "object": "data",
               "link": "href", "image": "href", "use": "href"}  # fmt: skip
    REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
    CSS = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:[a-z][a-z0-9+.-]*:)?//[^'")\s]*)""", re.I)

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = self.LOADING.get(tag)
        for k, v in attrs:
            if v is None:
                continue
            if (k == attr or k in ("srcset", "poster", "xlink:href")) and self.REMOTE.match(v):
                self.found.append(v)
            if k == "style":
                self.found += self.CSS.findall(v)
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found += self.CSS.findall(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False


def remote_references(page_html: str) -> list[str]:
    """URLs a browser would fetch from the network when showing ``page_html``.

    >>> remote_references('<img src="https://x.org/a.png"><a href="https://x.org">ok</a>')
    ['https://x.org/a.png']
    """
    p = _RemoteRefs()
    p.feed(page_html)
    return p.found


# ---------------------------------------------------------------------------------- build
def _check_out_dir(out: Path, notebooks_dir: Path) -> None:
    out_r, nb_r = out.resolve(), notebooks_dir.resolve()
    if out_r == nb_r or nb_r.is_relative_to(out_r):
        raise ReportError(f"output directory {out} would contain the notebooks; choose another --out")
    if out.exists():
        if not out.is_dir():
            raise ReportError(f"output path {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise ReportError(
                f"output directory {out} is not empty and not a previous report; refusing to replace it"
            )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _assets(site: Path) -> None:
    import vl_convert as vlc

    from cmdqv_lab.plots.display import vl_version

    static = resources.files("cmdqv_lab.report") / "static"
    vv = vl_version()
    # The stub wants a snippet; None means vl-convert's default (vegaEmbed etc. as window globals).
    bundle = vlc.javascript_bundle(None, vl_version=vv)  # type: ignore[arg-type]
    _write(site / "assets" / "vega.js", bundle)
    _write(site / "assets" / "report.js", (static / "report.js").read_text(encoding="utf-8"))
    css = (static / "report.css").read_text(encoding="utf-8")
    _write(site / "assets" / "report.css", css + "\n/* Pygments */\n" + pygments_css())


def _swap_in(tmp: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _execute_task(task: tuple[Path, Path, bool, float | None, Path]) -> Executed | ReportError:
    """Run one notebook (in a worker process); an expected failure is returned, not raised."""
    src, dest, smoke, timeout, cwd = task
    try:
        return execute(src, dest, smoke=smoke, timeout=timeout, cwd=cwd)
    except ReportError as e:
        return e


def _figures(site: Path, pages: list[Page]) -> None:
    """Write every chart as SVG (the one the kernel rendered, else rendered here) and PNG (2x).

    Both come from vl-convert, offline; an explorer is drawn at its controls' initial values.
    """
    from cmdqv_lab.plots.display import save_png, spec_to_svg

    d = site / FIGURES_DIR
    d.mkdir()
    for page in pages:
        for stem, spec, svg in page.figures:
            try:
                _write(d / f"{stem}.svg", svg if svg is not None else spec_to_svg(spec))
                save_png(spec, d / f"{stem}.png")
            except Exception as e:  # vl-convert reports spec errors as plain exceptions
                raise ReportError(f"{stem}: the chart could not be exported as SVG/PNG: {e}") from None


def build(
    notebooks_dir: Path,
    out: Path,
    *,
    smoke: bool = False,
    data_dir: Path | None = None,
    repo: Path | None = None,
    timeout: float | None = None,
    command: str = "",
    log: Callable[[str], None] = lambda _m: None,
    jobs: int = 1,
) -> Path:
    """Execute every notebook of ``notebooks_dir`` and write the site to ``out``.

    Parameters
    ----------
    notebooks_dir
        Directory of ``NN-topic.py`` jupytext files.
    out
        Site directory (replaced only when the whole build succeeded).
    smoke
        Inject ``smoke=True`` into every notebook.
    data_dir
        Directory searched for data manifests (default: ``data`` beside ``notebooks_dir``).
    repo
        Where to read the git commit (default: ``notebooks_dir``).
    timeout
        Per-cell time limit in seconds.
    log
        Receives one progress line per notebook.
    jobs
        Notebooks executed at the same time (each in its own kernel process).

    Returns
    -------
    pathlib.Path
        ``out/index.html``.
    """
    import nbformat

    notebooks = discover(notebooks_dir)
    _check_out_dir(out, notebooks_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    failed = out.with_name(f"{out.name}.failed")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(failed, ignore_errors=True)
    tmp.mkdir()
    try:
        env = _manifest.environment(repo or notebooks_dir, smoke=smoke, command=command)
        data = _manifest.data_manifests(data_dir or notebooks_dir.parent / "data")
        pages: list[NotebookPage] = []

        def finished(src: Path, result: Executed | ReportError) -> Executed:
            dest = tmp / "notebooks" / f"{src.stem}.ipynb"
            if isinstance(result, ReportError):
                msg = str(result)
                if dest.exists():
                    failed.mkdir(exist_ok=True)
                    shutil.copy2(dest, failed / dest.name)
                    msg += f" (executed copy: {failed / dest.name})"
                raise ReportError(msg)
            log(f"{src.name}: ok in {result.seconds:.1f} s")
            return result

        tasks = [
            (src, tmp / "notebooks" / f"{src.stem}.ipynb", smoke, timeout, notebooks_dir) for src in notebooks
        ]
        if jobs <= 1:
            executed = [finished(t[0], _execute_task(t)) for t in tasks]
        else:
            # one process per running notebook: papermill and the kernel client are not thread safe,
            # and execute() sets CMDQV_SMOKE in its process's environment
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futures = [pool.submit(_execute_task, t) for t in tasks]
                executed = [finished(t[0], f.result()) for t, f in zip(tasks, futures)]
        for src, ex in zip(notebooks, executed):
            dest = tmp / "notebooks" / f"{src.stem}.ipynb"
            nb = nbformat.read(dest, as_version=4)
            page = render_notebook(nb, slug=src.stem)
            page.title = page.title or src.stem
            pages.append(NotebookPage(ex, page))
        _assets(tmp)
        _figures(tmp, [p.page for p in pages])
        for i, p in enumerate(pages):
            links = ['<a href="index.html">answers</a>']
            if i > 0:
                links.append(f'<a href="{pages[i - 1].href}">← {html.escape(pages[i - 1].slug)}</a>')
            if i + 1 < len(pages):
                links.append(f'<a href="{pages[i + 1].href}">{html.escape(pages[i + 1].slug)} →</a>')
            _write(tmp / p.href, notebook_page_html(p, env, data, " ".join(links)))
        _write(tmp / "index.html", index_html(pages, env))
        for f in sorted(tmp.glob("*.html")):
            remote = remote_references(f.read_text(encoding="utf-8"))
            if remote:
                raise ReportError(
                    f"page {f.name} would load {remote[0]} from the network; the report must work offline"
                )
        summary = {
            "environment": env,
            "data_manifests": [{k: v for k, v in d.items() if k != "content"} for d in data],
            "notebooks": [
                {
                    "source": p.executed.source.name,
                    "page": p.href,
                    "title": p.page.title,
                    "seconds": round(p.executed.seconds, 3),
                    "charts": p.page.charts,
                    "figures": [
                        f"{FIGURES_DIR}/{f[0]}.{ext}" for f in p.page.figures for ext in ("svg", "png")
                    ],
                    "answers": p.page.answers,
                    "tables": p.page.tables,
                }
                for p in pages
            ],
        }
        _write(tmp / "manifest.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        _write(tmp / MARKER, "cmdqv-lab report; this directory is replaced by `cmdqv-lab report`\n")
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(failed, ignore_errors=True)
    return out / "index.html"
