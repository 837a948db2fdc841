"""``cmdqv-lab sweep`` and ``cmdqv-lab reproduce``.

``sweep SPEC`` runs a spec (:mod:`.spec`), given as a file or by the name of one in ``data/specs``,
with :func:`~.sweep.run_sweep` and prints a one-line summary (after one line on stderr per point it
recomputed or retried); ``--publish DIR`` also packs the result into DIR (:mod:`.packed`).
``reproduce [DIR ...]`` re-runs published sweeps (:mod:`.reproduce`), prints a table, notes and one
verdict line, and exits with status 1 if any point differs or is missing. Both show a progress bar
on a terminal or in Jupyter (``--quiet``: none). Mistakes (a bad spec, an unreachable scheduler, a
directory holding another sweep) print one line and exit with status 2; failures of the machine
have their own status (:mod:`cmdqv_lab.errors`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

#: Where ``sweep`` writes when ``--out`` is not given (git-ignored).
DEFAULT_OUT = Path(".cache") / "sweeps"


def spec_names() -> list[str]:
    """The sweep specs in ``data/specs`` (by name)."""
    from cmdqv_lab.project import builtin_data

    return sorted(p.stem for p in builtin_data("specs").glob("*.toml"))


def resolve_spec(arg: str) -> Path:
    """A spec file, or the ``data/specs`` spec of that name (``q9-host-cpus-submit``).

    >>> resolve_spec("q9-host-cpus-submit").name
    'q9-host-cpus-submit.toml'
    """
    from cmdqv_lab.errors import SpecError, suggest
    from cmdqv_lab.project import builtin_data

    SPECS = builtin_data("specs")

    path = Path(arg)
    if path.exists() and not path.is_dir():  # a file, or a device: load_spec checks it
        return path
    if arg.endswith(".toml") or "/" in arg:
        raise SpecError(f"{arg}: no such spec file")
    named = SPECS / f"{arg}.toml"
    if named.is_file():
        return named
    names = spec_names()
    raise SpecError(
        f"unknown sweep spec {arg!r}: {suggest(arg, names, see=f'{len(names)} specs in data/specs')}"
    )


def _progress(progress: bool | None, quiet: bool) -> bool | None:
    return False if quiet else progress


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
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal or in Jupyter)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def sweep(
    spec_file: str,
    out: str | None,
    workers: int | None,
    scheduler: str | None,
    quick: bool,
    prune: bool,
    publish: str | None,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Run every point of the sweep SPEC (a spec file, or the name of one in data/specs), resuming
    if interrupted.

    One Parquet file per point is stored under OUT/points, keyed by the point and the code
    version; finished points are skipped, damaged ones recomputed (one line each on stderr);
    OUT/manifest.json is written when all points are done. --publish DIR then packs the sweep
    into DIR (how data/results/NAME is made: `make results`). Look at the results with:
    cmdqv-lab results show OUT.
    """
    from cmdqv_lab.experiments.spec import load_spec
    from cmdqv_lab.experiments.sweep import run_sweep

    spec = load_spec(resolve_spec(spec_file), quick=quick)
    target = Path(out) if out else DEFAULT_OUT / (spec.name + ("-quick" if quick else ""))
    command = ["cmdqv-lab", "sweep", spec_file, *(["--quick"] if quick else []), "--out", str(target)]
    if publish:
        command += ["--publish", publish]
    report = run_sweep(
        spec,
        target,
        workers=workers,
        scheduler=scheduler,
        progress=_progress(progress, quiet),
        prune=prune,
        command=command,
        publish=publish,
    )
    for note in report.notes():
        click.echo(f"cmdqv-lab sweep: {note}", err=True)
    click.echo(report.summary())


def _points(notes: Sequence[str]) -> list[str]:
    out = []
    for n in notes:
        hit = re.match(r"point (\d+) ", n)
        if hit:
            out.append(hit.group(1))
    return out


def reproduce_report(checks: Sequence[Any]) -> str:
    """The table of :func:`~.reproduce.format_table` without its notes, the notes with those shared
    by every dataset said once, and one verdict line (n ok, n differ, which)."""
    from cmdqv_lab.experiments.reproduce import format_table

    lines = [format_table([replace(c, notes=[]) for c in checks])]
    shared = set.intersection(*(set(c.notes) for c in checks)) if len(checks) > 1 else set()
    for note in sorted(shared):
        lines.append(f"  all {len(checks)} datasets: {note}")
    for c in checks:
        lines += [f"  {c.name}: {n}" for n in c.notes if n not in shared]
    checked = sum(c.checked for c in checks)
    same = sum(c.identical for c in checks)
    differ = [c for c in checks if c.different]
    missing = [c for c in checks if c.missing]
    ok = [c for c in checks if c.ok]
    verdict = f"verdict: {len(ok)} of {len(checks)} datasets reproduce exactly ({same:,} of {checked:,} points identical)"
    if differ:
        which = "; ".join(f"{c.name} points {', '.join(_points(c.notes)) or '?'}" for c in differ)
        n = sum(c.different for c in differ)
        verdict += f"; {n:,} {'point differs' if n == 1 else 'points differ'} ({which})"
    if missing:
        verdict += f"; {sum(c.missing for c in missing):,} missing ({', '.join(c.name for c in missing)})"
    unchecked = [c for c in checks if not c.checked]
    if unchecked:
        verdict += f"; {len(unchecked)} unreadable ({', '.join(c.name for c in unchecked)})"
    lines.append(verdict)
    return "\n".join(lines)


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
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal or in Jupyter)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def reproduce(
    dirs: tuple[str, ...],
    quick: bool,
    workers: int | None,
    scheduler: str | None,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Re-run the sweeps behind published results and compare them exactly with the stored ones.

    Every stored checksum is verified (all points, also with --quick); --quick re-simulates 4
    points per dataset. DIR defaults to every data/results/*/ with a manifest.json of the cmdqv-lab
    project the command is run from (the directory or a parent holding its pyproject.toml). Ends
    with a verdict line; exits with status 1 if any point differs or is missing.
    """
    from cmdqv_lab.experiments.reproduce import default_dirs
    from cmdqv_lab.experiments.reproduce import reproduce as run

    paths: list[str | Path] = list(dirs)
    if not paths:
        results, found = default_dirs()
        paths = list(found)
        click.echo(f"reproduce: {len(paths)} published sweeps in {results}", err=True)
    checks = run(
        paths, quick=quick, workers=workers, scheduler=scheduler, progress=_progress(progress, quiet)
    )
    click.echo(reproduce_report(checks))
    if not all(c.ok for c in checks):
        # SystemExit, not ctx.exit: click (standalone_mode=False) would turn Exit into a return
        # value, which `python -m cmdqv_lab.cli` drops
        sys.exit(1)
