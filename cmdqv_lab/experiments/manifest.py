"""``manifest.json``: what a finished sweep is made of, and loading it back as one frame.

A sweep directory holds ``points/<key>.parquet`` (see :mod:`.cache`) and, when every point is
done, ``manifest.json`` with:

- ``spec``: the spec file name, its SHA-256 and its text *verbatim*; ``resolved``: the spec with
  every choice explicit (seeds, count, fixed values, axes; see :meth:`.Spec.resolved`);
- ``seeds``; ``columns``: the id, parameter and metric columns of the rows;
- the code version (hash of the package sources), cmdqv-lab and dependency versions, Python,
  platform and machine, the git commit (and whether code was uncommitted), the executor, the wall
  time of the run that completed the sweep and the command that regenerates it;
- ``points``: per point its index, grid values, seed, key, file, the SHA-256 of its row's
  *content* (:func:`.cache.content_sha256`; Parquet bytes differ between polars versions) and of its
  records' content (``record = true``), and ``combined_sha256``, the content hash of the combined
  frame :func:`load_sweep` returns.

A published sweep (``data/results/<name>``) is the same manifest with a ``packed`` section and one
Parquet file instead of ``points/`` (:mod:`.packed`); :func:`publish` writes it from a finished sweep.

:func:`load_sweep` reads either form into one frame (one row per point, in point order, with a
``point`` column), verifying every file against its own checksum and the manifest.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.errors import CmdqvError
from cmdqv_lab.experiments.cache import (
    PointStore,
    ResultError,
    atomic_write_bytes,
    code_version,
    content_sha256,
    package_version,
)
from cmdqv_lab.experiments.spec import Spec
from cmdqv_lab.inputs import MAX_MANIFEST_BYTES, loads_json, read_bytes_capped

MANIFEST = "manifest.json"
POINTS_DIR = "points"
#: Version of the manifest layout.
MANIFEST_FORMAT = 1


def point_entry(
    task: dict[str, Any], content_sha: str, wall_s: float | None, records: dict[str, str] | None = None
) -> dict[str, Any]:
    """The manifest entry of one stored point (``records``: content hashes of its record frames)."""
    entry = {
        "index": task["index"],
        "values": task["values"],
        "seed": task["seed"],
        "key": task["key"],
        "file": f"{POINTS_DIR}/{task['key']}.parquet",
        "content_sha256": content_sha,
        "wall_s": wall_s,
    }
    if records:
        entry["records"] = dict(records)
    return entry


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def git_state(repo: Path) -> dict[str, Any] | None:
    """``{"commit", "branch", "dirty"}`` of ``repo``, or None outside git.

    ``dirty`` means uncommitted changes to tracked files *outside* ``data/results`` (regenerating
    one published sweep rewrites tracked result files, which says nothing about the code).
    """
    from cmdqv_lab.report.manifest import git_info

    return git_info(repo, exclude=("data/results",))


def build_manifest(
    spec: Spec,
    out: Path,
    entries: Sequence[dict[str, Any]],
    report: Any,
    command: Sequence[str],
    rows: Mapping[int, pl.DataFrame] | None = None,
) -> dict[str, Any]:
    """The manifest of a complete sweep (JSON-safe).

    ``rows``: the row frames of points this run computed and wrote, by point index (their content
    hash is the entry's): they are combined from memory instead of read back."""
    from cmdqv_lab.report.manifest import package_versions

    combined = _combine(out, entries, rows)
    ids, params, metrics = _column_groups(combined)
    return {
        "format": MANIFEST_FORMAT,
        "name": spec.name,
        "description": spec.description,
        "spec": {
            "file": spec.source,
            "sha256": hashlib.sha256(spec.text.encode()).hexdigest(),
            "quick": spec.quick,
            "text": spec.text,
        },
        "resolved": spec.resolved(),
        "seeds": list(spec.seeds),
        "columns": {"ids": ids, "params": params, "metrics": metrics},
        "code_version": code_version(),
        "cmdqv_lab": package_version(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "git": git_state(_repo_root()),
        "executor": report.executor,
        "workers": report.workers,
        "command": " ".join(command) if command else "",
        "finished_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": round(report.wall_s, 3),
        "compute_s": round(sum(e["wall_s"] or 0.0 for e in entries), 3),
        "counts": {
            "points": len(entries),
            "cached": report.cached,
            "computed": report.computed,
            "corrupt_recomputed": len(report.corrupt),
        },
        "combined_sha256": content_sha256(combined),
        "points": list(entries),
    }


def dumps_manifest(manifest: dict[str, Any]) -> str:
    """Indented JSON with one line per point (diffable, compact)."""
    head = json.dumps({k: v for k, v in manifest.items() if k != "points"}, indent=1)
    points = ",\n".join("  " + json.dumps(p) for p in manifest.get("points", []))
    return head[: -len("\n}")] + ',\n "points": [\n' + points + "\n ]\n}\n"


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write ``out/manifest.json`` atomically."""
    atomic_write_bytes(out / MANIFEST, dumps_manifest(manifest).encode())


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of a sweep directory (:class:`ResultError` if absent or bad)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ResultError(
            f"{path}: no manifest (the sweep has not finished: rerun `cmdqv-lab sweep` to complete it)"
        )
    try:
        m = loads_json(
            read_bytes_capped(path, MAX_MANIFEST_BYTES, ResultError, "manifest"), str(path), ResultError
        )
    except ResultError:
        raise
    except CmdqvError as e:  # too large, nested too deeply
        raise ResultError(str(e)) from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or not _valid_points(m.get("points")):
        raise ResultError(f"{path}: not a sweep manifest of format {MANIFEST_FORMAT}")
    return m


def _valid_points(points: Any) -> bool:
    """Whether ``points`` is a list of entries with the fields readers use, in point order."""
    if not isinstance(points, list):
        return False
    for i, e in enumerate(points):
        if not (
            isinstance(e, dict)
            and e.get("index") == i
            and isinstance(e.get("key"), str)
            and isinstance(e.get("content_sha256"), str)
            and isinstance(e.get("values"), dict)
            and isinstance(e.get("seed"), int)
        ):
            return False
    return True


def is_packed(m: dict[str, Any]) -> bool:
    """Whether a manifest is that of a packed (published) sweep."""
    return "packed" in m


def _column_groups(df: pl.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """Split the row columns into ids, parameters and metrics (parameters follow ``count``)."""
    from cmdqv_lab.experiments.tasks import get_task

    ids = ["point", "scenario", "seed", "count"]
    names = set(get_task(df["scenario"][0]).resolve({}))
    pcols = [c for c in df.columns if c in names]
    mcols = [c for c in df.columns if c not in names and c not in ids]
    return ids, pcols, mcols


def _combine(
    out: Path, entries: Sequence[dict[str, Any]], rows: Mapping[int, pl.DataFrame] | None = None
) -> pl.DataFrame:
    """The points' rows in entry order, each read from the store and checked against its entry's
    content hash, except those given in ``rows`` (written by this process; reading the 72 rows of
    the sweep benchmark back took 0.3 s)."""
    store = PointStore(Path(out) / POINTS_DIR)
    rows = rows or {}
    frames = []
    for e in entries:
        row = rows.get(e["index"])
        if row is None:
            sp = store.read(e["key"])
            if sp.meta["content_sha256"] != e["content_sha256"]:
                raise ResultError(f"{store.path(e['key'])}: content differs from the manifest's checksum")
            row = sp.row
        frames.append(row.with_columns(pl.lit(e["index"], pl.Int64).alias("point")))
    if not frames:
        raise ResultError(f"{out}: the manifest lists no points")
    df = pl.concat(frames, how="diagonal_relaxed")
    return df.select("point", *[c for c in df.columns if c != "point"])


def load_sweep(directory: str | Path, *, params: str = "all") -> pl.DataFrame:
    """The results of a finished sweep: one row per point, in point order, every file verified.

    ``directory`` is a sweep's output directory (``points/``) or a packed published one. Columns:
    ``point``, ``scenario``, ``seed``, ``count``, the parameters (``params="all"``: every resolved
    parameter; ``"grid"``: only the varied ones), then the flattened metrics.
    """
    from cmdqv_lab.experiments.packed import read_packed

    m = read_manifest(directory)
    if is_packed(m):
        df = read_packed(directory, m).frame
    else:
        df = _combine(Path(directory), m["points"])
        if content_sha256(df) != m.get("combined_sha256"):
            raise ResultError(f"{directory}: the points do not combine to the manifest's combined_sha256")
    if params == "grid":
        keep = set(m["resolved"]["grid_keys"])
        drop = [c for c in m["columns"]["params"] if c not in keep]
        df = df.drop(drop)
    elif params != "all":
        raise ValueError(f"params={params!r}: expected 'all' or 'grid'")
    return df


def load_records(directory: str | Path, point: int, kind: str = "ops") -> pl.DataFrame:
    """The per-op (``kind="ops"``) or per-command records of one point of a ``record = true`` sweep."""
    from cmdqv_lab.experiments.packed import read_packed_records

    m = read_manifest(directory)
    entries = [e for e in m["points"] if e["index"] == point]
    if not entries:
        raise ResultError(f"{directory}: no point {point} (the sweep has {len(m['points'])} points)")
    if is_packed(m):
        return read_packed_records(directory, m, point, kind)
    sp = PointStore(Path(directory) / POINTS_DIR).read(entries[0]["key"], with_records=True)
    if kind not in sp.records:
        raise ResultError(f"{directory}: point {point} has no {kind} records (the spec needs record = true)")
    return sp.records[kind]


def publish(out: str | Path, dest: str | Path, *, note: str | None = None) -> dict[str, Any]:
    """Pack the finished sweep in ``out`` (``points/`` + manifest) into ``dest``; return its manifest.

    Every point file is verified on the way; ``dest`` gets ``results.parquet`` (and record files)
    and ``manifest.json`` (:mod:`.packed`). ``note`` is recorded in the manifest's ``packed``
    section (e.g. how the directory was converted).
    """
    from cmdqv_lab.experiments.packed import pack

    m = read_manifest(out)
    if is_packed(m):
        raise ResultError(f"{out}: already packed")
    store = PointStore(Path(out) / POINTS_DIR)
    rows: list[pl.DataFrame] = []
    kinds = sorted({k for e in m["points"] for k in (e.get("records") or {})})
    records: dict[str, list[pl.DataFrame]] = {k: [] for k in kinds}
    entries = []
    for e in m["points"]:
        sp = store.read(e["key"], with_records=bool(kinds))
        if sp.meta["content_sha256"] != e["content_sha256"]:
            raise ResultError(f"{store.path(e['key'])}: content differs from the manifest's checksum")
        rows.append(sp.row)
        for k in kinds:
            if k not in sp.records:
                raise ResultError(f"{store.path(e['key'])}: no {k} records")
            records[k].append(sp.records[k])
        entries.append({**e, "records": sp.meta.get("records")} if kinds else e)
    return pack(Path(dest), {**m, "points": entries}, rows, records, note=note)
