"""``cmdqv-lab report``: execute the notebooks and build the offline report site.

>>> from click.testing import CliRunner
>>> "--smoke" in CliRunner().invoke(report, ["--help"]).output
True
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import click


@click.command()
@click.option(
    "--smoke", is_flag=True, help="Inject smoke=True: every notebook runs a reduced version quickly."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Site directory (replaced only when the whole build succeeds).",
)
@click.option(
    "--notebooks",
    "notebooks_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("notebooks"),
    show_default=True,
    help="Directory of NN-topic.py jupytext notebooks.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory searched for data manifests  [default: data beside the notebooks directory]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=None,
    help="Fail if one cell runs longer than this many seconds  [default: no limit]",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Notebooks executed at the same time  [default: the number of CPUs, at most 4]",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-notebook lines.")
def report(
    smoke: bool,
    out: Path,
    notebooks_dir: Path,
    data_dir: Path | None,
    timeout: float | None,
    jobs: int | None,
    quiet: bool,
) -> None:
    """Execute every notebook with papermill and write a static HTML report that needs no network.

    The index lists each design question's one-line answer and links to the notebooks' pages;
    each page shows the notebook's outputs, its parameter tables, the environment and data
    manifests. Open OUT/index.html in a browser (file:// works).
    """
    from cmdqv_lab.progress import bar
    from cmdqv_lab.report.execute import discover
    from cmdqv_lab.report.site import BuildInterrupted, build

    t0 = time.perf_counter()
    args = ["cmdqv-lab", "report", *(["--smoke"] if smoke else []), "--out", str(out)]
    args += ["--notebooks", str(notebooks_dir)] + (["--data", str(data_dir)] if data_dir else [])
    args += ["--timeout", f"{timeout:g}"] if timeout else []
    # one bar step per executed notebook ("[n/N] ..." lines), every message on stderr; --quiet: neither
    progress = bar(len(discover(notebooks_dir)), "report", unit=" notebook", enabled=False if quiet else None)

    def log(message: str) -> None:
        if message.startswith("["):
            progress.update(1)
        if not quiet:
            progress.write(f"report: {message}", file=sys.stderr)

    try:
        index = build(
            notebooks_dir,
            out,
            smoke=smoke,
            data_dir=data_dir,
            repo=Path.cwd(),
            timeout=timeout,
            command=shlex.join(args),
            log=log,
            jobs=jobs or min(4, os.cpu_count() or 1),
        )
    except BuildInterrupted as e:
        progress.close()
        click.echo(f"report: {e}; {out} is unchanged", err=True)
        sys.exit(130)
    finally:
        progress.close()
    click.echo(f"report: wrote {index} and {index.with_name('summary.txt')} in {time.perf_counter() - t0:.1f} s"
               + (" (smoke)" if smoke else ""))  # fmt: skip
