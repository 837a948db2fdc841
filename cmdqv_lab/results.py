"""Sweep results out: find a sweep's results, load them, show them as a table, export them.

A *source* is a sweep directory (what ``cmdqv-lab sweep --out DIR`` wrote) or a sweep spec (its
name in ``data/specs``, or a spec file): its published results (``data/results/NAME``) if there are
any, else where ``cmdqv-lab sweep NAME`` writes (``.cache/sweeps/NAME``, then ``NAME-quick``).
Everything is read through :func:`cmdqv_lab.analysis.summary.load_sweep` (files verified).

>>> import tempfile
>>> from cmdqv_lab.experiments.spec import parse_spec
>>> from cmdqv_lab.experiments.sweep import run_sweep
>>> out = tempfile.mkdtemp()
>>> spec = 'scenario = "open-queue"\\ncount = 2000\\nreplicates = 2\\n[grid]\\nrate_mcmd_s = [2.0, 8.0]'
>>> _ = run_sweep(parse_spec(spec, "demo.toml"), out, workers=1, progress=False)
>>> load(out, params="grid").select("point", "rate_mcmd_s", "seed", "commands").rows()
[(0, 2.0, 0, 2000), (1, 2.0, 1, 2000), (2, 8.0, 0, 2000), (3, 8.0, 1, 2000)]
>>> show(out).columns
['point', 'rate_mcmd_s', 'seed', 'ops_per_s', 'op_latency_ns_mean', 'op_latency_ns_p99', 'queue_wait_ns_mean', 'smmu_busy_fraction']
"""

from __future__ import annotations

import io
import tomllib
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from cmdqv_lab.describe import KEY_METRICS
from cmdqv_lab.errors import CmdqvError, suggest

#: Formats ``export`` writes.
FORMATS = ("csv", "parquet", "json")


class ResultsError(CmdqvError, ValueError):
    """No results where a source points, or a bad export request."""


def _spec_name(path: Path) -> str:
    try:
        name = tomllib.loads(path.read_text()).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        name = None
    return name if isinstance(name, str) and name else path.stem


def candidates(name: str) -> list[Path]:
    """Where the results of sweep ``name`` may be, in order (published, then computed)."""
    from cmdqv_lab.experiments.cli import DEFAULT_OUT
    from cmdqv_lab.project import find_project

    root = find_project()  # published results and the sweep cache of the project run from
    project = [root / "data" / "results" / name] if root else []
    cache = [root / ".cache" / "sweeps" / name, root / ".cache" / "sweeps" / f"{name}-quick"] if root else []
    dirs = [*project, DEFAULT_OUT / name, DEFAULT_OUT / f"{name}-quick", *cache]
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def locate(source: str | Path) -> Path:
    """The sweep directory ``source`` names (see the module docstring)."""
    from cmdqv_lab.experiments.cli import resolve_spec, spec_names
    from cmdqv_lab.experiments.manifest import MANIFEST

    path = Path(source)
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise ResultsError(
                f"{path}: no {MANIFEST}: not a finished sweep (run or resume it with cmdqv-lab sweep)"
            )
        return path
    text = str(source)
    if not (text.endswith(".toml") or "/" in text) and text not in spec_names():
        names = spec_names()
        hint = suggest(text, names, see=f"the {len(names)} specs are in data/specs")
        raise ResultsError(f"{text!r} is neither a sweep directory nor a sweep spec; {hint}")
    spec = resolve_spec(text)
    name = _spec_name(spec)
    tried = candidates(name)
    for d in tried:
        if (d / MANIFEST).is_file():
            return d
    where = ", ".join(str(d) for d in tried[:3])
    raise ResultsError(f"no results of sweep {name} (looked in {where}): run cmdqv-lab sweep {text} first")


def load(source: str | Path, *, params: str = "all") -> pl.DataFrame:
    """A sweep's results, one row per point (:func:`~cmdqv_lab.analysis.summary.load_sweep`).

    ``params="all"``: every resolved parameter; ``"grid"``: only those the sweep varies.
    """
    from cmdqv_lab.analysis.summary import load_sweep

    return load_sweep(locate(source), params=params)


def key_metrics(df: pl.DataFrame) -> list[str]:
    """The :data:`~cmdqv_lab.describe.KEY_METRICS` a frame has with some non-zero value."""
    out = []
    for m in KEY_METRICS:
        if m in df.columns:
            col = df[m].drop_nulls()
            if col.len() and (col.dtype == pl.String or (col.cast(pl.Float64).fill_nan(0) != 0).any()):
                out.append(m)
    return out


def show(source: str | Path, metrics: Sequence[str] | None = None) -> pl.DataFrame:
    """One row per point: ``point``, the varied parameters, ``seed``, then ``metrics`` (default:
    :func:`key_metrics`)."""
    from cmdqv_lab.analysis.summary import sweep_grid_keys

    directory = locate(source)
    return shown_columns(load(directory, params="grid"), sweep_grid_keys(directory), metrics)


def shown_columns(
    df: pl.DataFrame, grid: Sequence[str], metrics: Sequence[str] | None = None
) -> pl.DataFrame:
    """What :func:`show` keeps of a ``params="grid"`` frame (unknown metrics get suggestions)."""
    if metrics:
        metric_cols = [c for c in df.columns if c not in ("point", "scenario", "seed", "count", *grid)]
        for m in metrics:
            if m not in metric_cols:
                raise ResultsError(f"unknown metric {m!r}: {suggest(m, metric_cols)}")
        chosen = list(metrics)
    else:
        chosen = key_metrics(df)
    return df.select("point", *grid, "seed", *chosen)


def export(source: str | Path, out: str | Path, fmt: str | None = None, *, params: str = "all") -> Path:
    """Write a sweep's results (one row per point: ids, parameters, seed, every metric) to ``out``
    as csv, parquet or json (``fmt``; default: ``out``'s suffix)."""
    return write(load(source, params=params), out, fmt)


def write(df: pl.DataFrame, out: str | Path, fmt: str | None = None) -> Path:
    """Write ``df`` to ``out`` (csv, parquet or json) atomically (temporary file, fsync, rename)."""
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ResultsError(f"format {fmt!r} is not allowed: {suggest(fmt, FORMATS)}")
    if out.is_dir():
        raise ResultsError(f"{out}: is a directory; give a file name")
    from cmdqv_lab.experiments.cache import atomic_write_bytes

    buf = io.BytesIO()
    if fmt == "csv":
        df.write_csv(buf)
    elif fmt == "parquet":
        df.write_parquet(buf)
    else:
        df.write_json(buf)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue())
    return out
