"""``cmdqv-lab sweep`` and ``cmdqv-lab reproduce``.

``sweep SPEC`` runs a spec (:mod:`.spec`) with :func:`~.sweep.run_sweep` and prints a one-line
summary (after one line on stderr per point it recomputed or retried); ``--publish DIR`` also packs
the result into DIR (:mod:`.packed`). ``reproduce [DIR ...]`` re-runs published sweeps
(:mod:`.reproduce`), prints a table and exits with status 1 if any point differs or is missing.
Mistakes (a bad spec, an unreachable scheduler, a directory holding another sweep) print one line
and exit with status 2; failures of the machine have their own status (:mod:`cmdqv_lab.errors`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

#: Where ``sweep`` writes when ``--out`` is not given (git-ignored).
DEFAULT_OUT = Path(".cache") / "sweeps"


@click.command("sweep")
@click.argument("spec_file", metavar="SPEC")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Result directory (default: .cache/sweeps/NAME, or NAME-quick with --quick).",
)
@click.option(
    "--workers", type=int, default=None, help="Local worker processes (default: one per CPU; 1: serial)."
)
@click.option(
    "--scheduler", metavar="tcp://HOST:PORT", default=None, help="Run on this dask.distributed cluster."
)
@click.option("--quick", is_flag=True, help="Run the spec's [quick] variant (seconds).")
@click.option("--prune", is_flag=True, help="Delete point files of --out that are not points of this sweep.")
@click.option(
    "--publish",
    type=click.Path(file_okay=False),
    default=None,
    help="Also write the packed result (one Parquet file + manifest.json) to this directory.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
def sweep(
    spec_file: str,
    out: str | None,
    workers: int | None,
    scheduler: str | None,
    quick: bool,
    prune: bool,
    publish: str | None,
    progress: bool | None,
) -> None:
    """Run every point of the sweep spec SPEC (a data/specs/*.toml file), resuming if interrupted.

    One Parquet file per point is stored under OUT/points, keyed by the point and the code
    version; finished points are skipped, damaged ones recomputed (one line each on stderr);
    OUT/manifest.json is written when all points are done. --publish DIR then packs the sweep
    into DIR (how data/results/NAME is made: `make results`).
    """
    from cmdqv_lab.experiments.spec import load_spec
    from cmdqv_lab.experiments.sweep import run_sweep

    spec = load_spec(spec_file, quick=quick)
    target = Path(out) if out else DEFAULT_OUT / (spec.name + ("-quick" if quick else ""))
    command = ["cmdqv-lab", "sweep", spec_file, *(["--quick"] if quick else []), "--out", str(target)]
    if publish:
        command += ["--publish", publish]
    report = run_sweep(
        spec,
        target,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        prune=prune,
        command=command,
        publish=publish,
    )
    for note in report.notes():
        click.echo(f"cmdqv-lab sweep: {note}", err=True)
    click.echo(report.summary())


@click.command("reproduce")
@click.argument("dirs", nargs=-1, metavar="[DIR ...]")
@click.option(
    "--quick", is_flag=True, help="Check 4 evenly spaced points per dataset (first and last included)."
)
@click.option("--workers", type=int, default=None, help="Local worker processes (default: one per CPU).")
@click.option(
    "--scheduler", metavar="tcp://HOST:PORT", default=None, help="Run on this dask.distributed cluster."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
def reproduce(
    dirs: tuple[str, ...],
    quick: bool,
    workers: int | None,
    scheduler: str | None,
    progress: bool | None,
) -> None:
    """Re-run the sweeps behind published results and compare them exactly with the stored ones.

    Every stored checksum is verified (all points, also with --quick); --quick re-simulates 4
    points per dataset. DIR defaults to every data/results/*/ with a manifest.json of the cmdqv-lab
    project the command is run from (the directory or a parent holding its pyproject.toml). Exits
    with status 1 if any point differs or is missing.
    """
    from cmdqv_lab.experiments.reproduce import default_dirs, format_table
    from cmdqv_lab.experiments.reproduce import reproduce as run

    paths: list[str | Path] = list(dirs)
    if not paths:
        results, found = default_dirs()
        paths = list(found)
        click.echo(f"reproduce: {len(paths)} published sweeps in {results}", err=True)
    checks = run(paths, quick=quick, workers=workers, scheduler=scheduler, progress=progress)
    click.echo(format_table(checks))
    if not all(c.ok for c in checks):
        # SystemExit, not ctx.exit: click (standalone_mode=False) would turn Exit into a return
        # value, which `python -m cmdqv_lab.cli` drops
        sys.exit(1)
