"""Build the offline report site: execute notebooks, render pages, write the site atomically.

Layout of the output directory::

    index.html            short answers to Q1..Q10 and later questions (Q11..); what was measured, fitted, predicted
    NN-topic.html         one page per notebook: question, short answer, evidence, details
    sources.html          the bibliography (cmdqv_lab/report/sources.toml)
    provenance.html       environment and data manifests
    summary.txt           the answers as plain text (80 columns) for a mail to the list
    notebooks/*.ipynb     the executed notebooks (without the SVG copies of charts: see figures/)
    assets/vega.js        Vega + Vega-Lite + vega-embed (vl-convert's bundle), written once
    assets/report.js      draws the page's charts with it; assets/report.css
    manifest.json         environment and data manifests, answers, per-notebook timings

Pages with charts load ``assets/vega.js`` and ``assets/report.js`` once each, at the end of the
body; pages without charts load no script. Every page is checked for references that a browser
would fetch from the network (``src``/``href`` of scripts, images, stylesheets, frames, CSS
``url()`` and ``@import``); one fails the build.

The site is built in a hidden sibling directory ``.OUT.building-<pid>`` and swapped in by two
renames at the end, so a failed or interrupted build leaves the previous site as it was. Build
directories of builders that are no longer running (killed, power loss) are removed by the next
build, which says so. SIGTERM and SIGINT stop a build promptly: the notebook worker processes
are terminated (they also die with their parent), and their kernels exit with them. A failed
build copies the executed notebook to ``OUT.failed``; an existing ``OUT.failed`` is never deleted,
only named. The output directory must be empty, absent or a previous report (it holds the
marker file :data:`MARKER`); anything else is refused rather than deleted.
"""

from __future__ import annotations

import html
import json
import multiprocessing
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from cmdqv_lab.errors import ReportError, environment_error
from cmdqv_lab.report import manifest as _manifest
from cmdqv_lab.report.execute import Executed, discover, execute
from cmdqv_lab.report.pages import (
    QUESTIONS,
    NotebookPage,
    index_html,
    notebook_page_html,
    provenance_html,
    sources_html,
)
from cmdqv_lab.report.render import FIGURES_DIR, Page, pygments_css, render_notebook
from cmdqv_lab.report.summary_text import summary_text

__all__ = ["MARKER", "QUESTIONS", "NotebookPage", "build", "remote_references"]

#: File marking a directory as a cmdqv-lab report (so a rebuild may replace it).
MARKER = ".cmdqv-report"

#: Most parameter tables one page may show (issue: the same platform table four times).
MAX_PARAM_TABLES = 1


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(out: Path, log: Callable[[str], None] = lambda _m: None) -> list[Path]:
    """Remove ``.OUT.building-<pid>`` and ``.OUT.old-<pid>`` directories whose builder is gone."""
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(?:building|old)-(\d+)$")
    for d in out.parent.iterdir():
        m = pattern.match(d.name)
        if m and d.is_dir() and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
            log(f"removed {d}, left by build process {m.group(1)} that is no longer running")
    return removed


class BuildInterrupted(ReportError):
    """The build was stopped by SIGINT or SIGTERM."""


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into :class:`BuildInterrupted` in the main thread while building."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise BuildInterrupted(f"report build stopped by {signal.Signals(signum).name}")

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _worker_init() -> None:
    """In a notebook worker: die with the parent (Linux), and run cleanups on SIGTERM."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)

    def handler(signum: int, _frame: Any) -> None:
        # the build is stopping and the parent says so in one line: what the dying worker's event
        # loop and kernel client print on the way out (a dead-kernel task, its traceback) is noise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it terminates us


def _execute_task(task: tuple[Path, Path, bool, float | None, Path]) -> Executed | ReportError:
    """Run one notebook (in a worker process); an expected failure is returned, not raised."""
    src, dest, smoke, timeout, cwd = task
    try:
        return execute(src, dest, smoke=smoke, timeout=timeout, cwd=cwd)
    except ReportError as e:
        return e


def _figures(site: Path, pages: list[Page]) -> None:
    """Write every chart as SVG (the one the kernel rendered, else rendered here) and PNG.

    Both come from vl-convert, offline; an explorer is drawn at its controls' initial values.
    """
    from cmdqv_lab.plots.display import save_png, spec_to_svg

    d = site / FIGURES_DIR
    d.mkdir()
    for page in pages:
        for stem, spec, svg in page.figures:
            try:
                svg = svg if svg is not None else spec_to_svg(spec)
                _write(d / f"{stem}.svg", svg)
                save_png(spec, d / f"{stem}.png", scale=1.0, svg=svg)
            except Exception as e:  # vl-convert reports spec errors as plain exceptions
                raise ReportError(f"{stem}: the chart could not be exported as SVG/PNG: {e}") from None


def _slim_notebook(path: Path) -> None:
    """Drop the SVG copy of each chart from an executed notebook in the site (figures/ has it)."""
    import nbformat

    from cmdqv_lab.plots.display import CHART_MIMES

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if any(m in data for m in CHART_MIMES):
                data.pop("image/svg+xml", None)
    nbformat.write(nb, path)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued notebooks and terminate the running workers (their kernels exit with them)."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 10
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()


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
        Receives progress lines (one as each notebook starts and ends, with a count and a time).
    jobs
        Notebooks executed at the same time (each in its own worker process and kernel).

    Returns
    -------
    pathlib.Path
        ``out/index.html``.
    """
    import nbformat

    notebooks = discover(notebooks_dir)
    _check_out_dir(out, notebooks_dir)
    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out, log)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as e:
        if environment_error(e) is not None:  # a full disk or a refused write: said as such
            raise
        raise ReportError(
            f"--out {out}: cannot build the report there ({e.strerror or e}); choose another directory"
        ) from None
    failed = out.with_name(f"{out.name}.failed")
    if failed.exists():
        log(f"keeping {failed} from an earlier failed build (delete it when you are done with it)")
    total, t_build = len(notebooks), time.perf_counter()
    try:
        with _stop_on_signals():
            env = _manifest.environment(repo or notebooks_dir, smoke=smoke, command=command)
            data = _manifest.data_manifests(data_dir or notebooks_dir.parent / "data")
            done = 0

            def finished(src: Path, result: Executed | ReportError) -> Executed:
                nonlocal done
                dest = tmp / "notebooks" / f"{src.stem}.ipynb"
                if isinstance(result, ReportError):
                    msg = str(result)
                    if dest.exists():
                        failed.mkdir(exist_ok=True)
                        shutil.copy2(dest, failed / dest.name)
                        msg += f" (executed copy: {failed / dest.name})"
                    raise ReportError(msg)
                done += 1
                log(f"[{done}/{total}] {src.name}: ok in {result.seconds:.1f} s "
                    f"({time.perf_counter() - t_build:.0f} s so far)")  # fmt: skip
                return result

            tasks = [
                (src, tmp / "notebooks" / f"{src.stem}.ipynb", smoke, timeout, notebooks_dir)
                for src in notebooks
            ]
            results: dict[Path, Executed] = {}
            if jobs <= 1:
                for t in tasks:
                    log(f"running {t[0].name}")
                    results[t[0]] = finished(t[0], _execute_task(t))
            else:
                # one process per running notebook: papermill and the kernel client are not thread
                # safe, and execute() sets CMDQV_SMOKE in its process's environment
                ctx = multiprocessing.get_context("spawn")
                pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init)
                try:
                    futures: dict[Future[Executed | ReportError], Path] = {}
                    for t in tasks:
                        futures[pool.submit(_execute_task, t)] = t[0]
                    log(f"running {total} notebook{'s' if total != 1 else ''}, {min(jobs, total)} at a time")
                    pending = set(futures)
                    while pending:
                        ready, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                        for f in ready:
                            results[futures[f]] = finished(futures[f], f.result())
                finally:
                    _stop_pool(pool)
            pages: list[NotebookPage] = []
            for src in notebooks:
                dest = tmp / "notebooks" / f"{src.stem}.ipynb"
                nb = nbformat.read(dest, as_version=4)
                page = render_notebook(nb, slug=src.stem)
                page.title = page.title or src.stem
                if len(page.param_tables) > MAX_PARAM_TABLES:
                    raise ReportError(
                        f"notebook {src.name} shows {len(page.param_tables)} parameter tables "
                        f"({'; '.join(page.param_tables)}); a page shows at most {MAX_PARAM_TABLES} "
                        "(use result_table for results)"
                    )
                _slim_notebook(dest)
                pages.append(NotebookPage(results[src], page))
            log("writing pages and figures")
            _assets(tmp)
            _figures(tmp, [p.page for p in pages])
            for i, p in enumerate(pages):
                links = ['<a href="index.html">answers</a>']
                if i > 0:
                    links.append(f'<a href="{pages[i - 1].href}">← {html.escape(pages[i - 1].slug)}</a>')
                if i + 1 < len(pages):
                    links.append(f'<a href="{pages[i + 1].href}">{html.escape(pages[i + 1].slug)} →</a>')
                _write(tmp / p.href, notebook_page_html(p, env, " ".join(links)))
            _write(tmp / "index.html", index_html(pages, env))
            _write(tmp / "sources.html", sources_html())
            _write(tmp / "provenance.html", provenance_html(env, data))
            answers = [a for p in pages for a in p.page.answers]
            _write(tmp / "summary.txt", summary_text(answers, smoke=smoke, built=env["built_utc"]))
            for html_file in sorted(tmp.glob("*.html")):
                remote = remote_references(html_file.read_text(encoding="utf-8"))
                if remote:
                    raise ReportError(
                        f"page {html_file.name} would load {remote[0]} from the network; the report must work offline"
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
                        "parameter_tables": p.page.param_tables,
                        "cited": p.page.cited,
                    }
                    for p in pages
                ],
            }
            _write(tmp / "manifest.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
            _write(tmp / MARKER, "cmdqv-lab report; this directory is replaced by `cmdqv-lab report`\n")
            _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "index.html"
