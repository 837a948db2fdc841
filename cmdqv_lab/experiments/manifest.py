"""``manifest.json``: what a finished sweep is made of, and loading it back as one frame.

A sweep directory holds ``points/<key>.parquet`` (see :mod:`.cache`) and, when every point is
done, ``manifest.json`` with:

- ``spec``: the spec file name, its SHA-256 and its text *verbatim*; ``resolved``: the spec with
  every choice explicit (seeds, count, fixed values, axes; see :meth:`.Spec.resolved`);
- ``seeds``; ``columns``: the id, parameter and metric columns of the rows;
- the code version (hash of the package sources), cmdqv-lab and dependency versions, Python,
  platform and machine, the git commit (and whether code was uncommitted), the executor, the wall
  time of the run that completed the sweep and the command that regenerates it;
- ``points``: per point its index, grid values, seed, key, file, and the SHA-256 of the file's
  *content* (:func:`.cache.content_sha256`; Parquet bytes differ between polars versions), and
  ``combined_sha256``, the content hash of the combined frame :func:`load_sweep` returns.

:func:`load_sweep` reads a directory into one frame (one row per point, in point order, with a
``point`` column), verifying every file against its own checksum and the manifest.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.experiments.cache import (
    PointStore,
    ResultError,
    atomic_write_bytes,
    code_version,
    content_sha256,
    package_version,
)
from cmdqv_lab.experiments.spec import Spec

MANIFEST = "manifest.json"
POINTS_DIR = "points"
#: Version of the manifest layout.
MANIFEST_FORMAT = 1


def point_entry(task: dict[str, Any], content_sha: str, wall_s: float | None) -> dict[str, Any]:
    """The manifest entry of one stored point."""
    return {
        "index": task["index"],
        "values": task["values"],
        "seed": task["seed"],
        "key": task["key"],
        "file": f"{POINTS_DIR}/{task['key']}.parquet",
        "content_sha256": content_sha,
        "wall_s": wall_s,
    }


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
    spec: Spec, out: Path, entries: Sequence[dict[str, Any]], report: Any, command: Sequence[str]
) -> dict[str, Any]:
    """The manifest of a complete sweep (JSON-safe)."""
    from cmdqv_lab.report.manifest import package_versions

    combined = _combine(out, entries)
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
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or not isinstance(m.get("points"), list):
        raise ResultError(f"{path}: not a sweep manifest of format {MANIFEST_FORMAT}")
    return m


def _column_groups(df: pl.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """Split the row columns into ids, parameters and metrics (parameters follow ``count``)."""
    from cmdqv_lab.scenarios.base import get_scenario, resolve

    ids = ["point", "scenario", "seed", "count"]
    scenario = df["scenario"][0]
    params, plat = resolve(get_scenario(scenario), {})
    names = {*(plat.to_dict() if plat else {}), *params.to_dict()}
    pcols = [c for c in df.columns if c in names]
    mcols = [c for c in df.columns if c not in names and c not in ids]
    return ids, pcols, mcols


def _combine(out: Path, entries: Sequence[dict[str, Any]]) -> pl.DataFrame:
    store = PointStore(Path(out) / POINTS_DIR)
    frames = []
    for e in entries:
        sp = store.read(e["key"])
        if sp.meta["content_sha256"] != e["content_sha256"]:
            raise ResultError(f"{store.path(e['key'])}: content differs from the manifest's checksum")
        frames.append(sp.row.with_columns(pl.lit(e["index"], pl.Int64).alias("point")))
    if not frames:
        raise ResultError(f"{out}: the manifest lists no points")
    df = pl.concat(frames, how="diagonal_relaxed")
    return df.select("point", *[c for c in df.columns if c != "point"])


def load_sweep(directory: str | Path, *, params: str = "all") -> pl.DataFrame:
    """The results of a finished sweep: one row per point, in point order, every file verified.

    Columns: ``point``, ``scenario``, ``seed``, ``count``, the parameters (``params="all"``: every
    resolved parameter; ``"grid"``: only the varied ones), then the flattened metrics.
    """
    m = read_manifest(directory)
    df = _combine(Path(directory), m["points"])
    if params == "grid":
        keep = set(m["resolved"]["grid_keys"])
        drop = [c for c in m["columns"]["params"] if c not in keep]
        df = df.drop(drop)
    elif params != "all":
        raise ValueError(f"params={params!r}: expected 'all' or 'grid'")
    return df


def load_records(directory: str | Path, point: int, kind: str = "ops") -> pl.DataFrame:
    """The per-op (``kind="ops"``) or per-command records of one point of a ``record = true`` sweep."""
    m = read_manifest(directory)
    entries = [e for e in m["points"] if e["index"] == point]
    if not entries:
        raise ResultError(f"{directory}: no point {point} (the sweep has {len(m['points'])} points)")
    sp = PointStore(Path(directory) / POINTS_DIR).read(entries[0]["key"], with_records=True)
    if kind not in sp.records:
        raise ResultError(f"{directory}: point {point} has no {kind} records (the spec needs record = true)")
    return sp.records[kind]
