"""Re-run published sweeps and compare them with the stored results, exactly.

For each sweep directory (default: every ``data/results/*/manifest.json`` of the project the
command runs from, :func:`default_dirs`) :func:`reproduce` first verifies *every* stored checksum:
the bytes of the packed file (or of each point file), every point's content hash and the combined
hash, against the manifest; a point whose stored data is absent or damaged counts as *missing*,
wherever it is. It then re-runs points from the manifest's own record of the spec (scenario,
fixed values, the point's grid values, seed, count) with the code installed now, and compares the
new row with the stored one column by column, bit for bit: the resolved parameters (so a changed
default or platform preset shows up) and every metric. Engine metrics are deterministic given the
seed; wall-clock columns (:data:`NONDETERMINISTIC`) are left out of the comparison. Nothing is
written: new results stay in memory.

With ``quick`` only :func:`quick_selection` of each sweep's points is re-run (the checksums of all
are still verified): four evenly spaced points, always including the first and the last (all
points of a sweep with four or fewer).

>>> quick_selection(54), quick_selection(3), quick_selection(1)
([0, 18, 35, 53], [0, 1, 2], [0])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.experiments.cache import PointStore, ResultError, code_version, content_sha256
from cmdqv_lab.experiments.executors import make_executor
from cmdqv_lab.experiments.manifest import POINTS_DIR, is_packed, read_manifest
from cmdqv_lab.experiments.sweep import row_frame, run_point
from cmdqv_lab.project import ProjectError, find_project

#: Published results of a project: ``<project>/data/results/<name>/manifest.json``.
RESULTS_SUBDIR = Path("data") / "results"
#: Columns that measure the host, not the model: never compared.
NONDETERMINISTIC: tuple[str, ...] = ("wall_s",)


def quick_selection(n: int) -> list[int]:
    """Point indices ``--quick`` checks: 4 evenly spaced, including the first and the last."""
    return sorted({round(i * (n - 1) / 3) for i in range(4)}) if n > 0 else []


@dataclass
class DatasetCheck:
    """The outcome for one sweep directory."""

    name: str
    directory: Path
    points: int = 0
    verified: int = 0  # points whose stored checksums all hold
    checked: int = 0
    identical: int = 0
    different: int = 0
    missing: int = 0
    notes: list[str] = field(default_factory=list)

    intact: bool = True  # no damage found outside single points (file, combined hash)

    @property
    def ok(self) -> bool:
        return (
            self.intact
            and self.points > 0
            and self.verified == self.points
            and self.checked > 0
            and self.identical == self.checked
        )


def results_dir(start: Path | None = None) -> Path:
    """``data/results`` of the project the command runs from (:class:`ProjectError` outside one)."""
    root = find_project(start)
    if root is None:
        raise ProjectError(
            f"{(start or Path.cwd()).resolve()}: not inside a cmdqv-lab checkout (no pyproject.toml naming "
            "cmdqv-lab here or above): run reproduce from the checkout or give the result directories"
        )
    return root / RESULTS_SUBDIR


def published_dirs(results: Path | None = None) -> list[Path]:
    """Every directory under ``results`` (default: :func:`results_dir`) with a manifest, sorted."""
    base = results_dir() if results is None else results
    return sorted(p.parent for p in base.glob("*/manifest.json"))


def default_dirs(start: Path | None = None) -> tuple[Path, list[Path]]:
    """``(results directory, its published sweeps)`` of the current project; ResultError if none."""
    base = results_dir(start)
    dirs = published_dirs(base)
    if not dirs:
        raise ResultError(f"no published results under {base} (no */manifest.json)")
    return base, dirs


def _fmt(v: Any) -> str:
    if isinstance(v, float) and not math.isnan(v):
        return repr(v)
    return str(v)


def _differences(new: pl.DataFrame, old: pl.DataFrame, limit: int = 3) -> str:
    cols = [*dict.fromkeys([*old.columns, *new.columns])]
    out = []
    for c in cols:
        if c not in old.columns or c not in new.columns:
            out.append(f"{c} {'added' if c in new.columns else 'gone'}")
        else:
            a, b = old[c][0], new[c][0]
            same = (a == b and str(old[c].dtype) == str(new[c].dtype)) or (
                isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
            )
            if not same:
                out.append(f"{c} {_fmt(a)} -> {_fmt(b)}")
    return "; ".join(out[:limit]) + (f"; +{len(out) - limit} more" if len(out) > limit else "")


def _comparable(df: pl.DataFrame) -> pl.DataFrame:
    return df.drop([c for c in NONDETERMINISTIC if c in df.columns])


def reproduce(
    dirs: Sequence[str | Path] | None = None,
    *,
    quick: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | None = None,
) -> list[DatasetCheck]:
    """Check each sweep directory (see the module docstring); one :class:`DatasetCheck` each."""
    from cmdqv_lab.progress import bar as progress_bar

    paths = [Path(d) for d in dirs] if dirs else default_dirs()[1]
    checks: list[DatasetCheck] = []
    tasks: list[dict[str, Any]] = []
    stored: dict[int, tuple[DatasetCheck, pl.DataFrame, dict[str, Any]]] = {}
    for d in paths:
        chk = DatasetCheck(d.name, d)
        checks.append(chk)
        try:
            m = read_manifest(d)
        except ResultError as e:
            chk.notes.append(str(e))
            chk.intact = False
            continue
        chk.name = str(m.get("name", d.name))
        if m.get("code_version") != code_version():
            chk.notes.append(f"stored with code version {m.get('code_version')}, checking {code_version()}")
        entries = m["points"]
        chk.points = len(entries)
        rows = _verified_rows(d, m, chk)
        chk.verified = sum(r is not None for r in rows)
        chk.missing = chk.points - chk.verified
        selected = quick_selection(len(entries)) if quick else list(range(len(entries)))
        res = m["resolved"]
        for i in selected:
            entry = entries[i]
            label = ", ".join([*(f"{k}={v}" for k, v in entry["values"].items()), f"seed={entry['seed']}"])
            row = rows[i]
            if row is None:
                continue
            chk.checked += 1
            uid = len(tasks)
            tasks.append(
                {
                    "index": uid,
                    "label": label,
                    "values": entry["values"],
                    "scenario": res["scenario"],
                    "overrides": {**res["fixed"], **entry["values"]},
                    "seed": entry["seed"],
                    "count": res["count"],
                    "record": bool(res.get("record")),
                    "key": None,  # the code version may differ: compare content, not keys
                }
            )
            stored[uid] = (
                chk,
                row,
                {"point": entry["index"], "label": label, "records": entry.get("records")},
            )
    if tasks:
        with make_executor(workers, scheduler) as ex:
            bar = progress_bar(len(tasks), "reproduce", enabled=progress)
            try:
                for out in ex.imap_unordered(run_point, tasks):
                    chk, old, info = stored[out["index"]]
                    new = row_frame(out["row"])
                    same = content_sha256(_comparable(new)) == content_sha256(_comparable(old))
                    for kind, frame in out["records"].items():
                        same = same and content_sha256(frame) == (info["records"] or {}).get(kind)
                    if same:
                        chk.identical += 1
                    else:
                        chk.different += 1
                        chk.notes.append(f"point {info['point']} ({info['label']}): {_differences(new, old)}")
                    bar.update(1)
            finally:
                bar.close()
    for chk in checks:
        chk.notes.sort(key=_note_order)
    return checks


def _verified_rows(d: Path, m: dict[str, Any], chk: DatasetCheck) -> list[pl.DataFrame | None]:
    """Every point's stored row if all its checksums hold, else None (with a note saying why)."""
    from cmdqv_lab.experiments.packed import verify_packed

    if is_packed(m):
        rows, frame, problems = verify_packed(d, m)
        chk.notes.extend(problems)
        chk.intact = frame is not None and not (problems and all(r is not None for r in rows))
        return rows
    store = PointStore(d / POINTS_DIR)
    out: list[pl.DataFrame | None] = []
    for entry in m["points"]:
        try:
            sp = store.read(entry["key"])
            if sp.meta["content_sha256"] != entry["content_sha256"]:
                raise ResultError(f"{store.path(entry['key'])}: content differs from the manifest's checksum")
            if (sp.meta.get("records") or None) != (entry.get("records") or None):
                raise ResultError(f"{store.path(entry['key'])}: records differ from the manifest's checksums")
            out.append(sp.row)
        except ResultError as err:
            chk.notes.append(f"point {entry['index']}: {err}")
            out.append(None)
    return out


def _note_order(note: str) -> tuple[int, str]:
    if note.startswith("point "):
        head = note.split(" ", 2)[1]
        return (int(head) if head.isdigit() else 0, note)
    return (-1, note)


def format_table(checks: Sequence[DatasetCheck]) -> str:
    """One line per dataset, then the notes (differences, damaged files, version changes).

    ``verified``: points whose stored checksums hold; ``checked``: points re-simulated;
    ``missing``: points whose stored data is absent or damaged.
    """
    head = ("dataset", "points", "verified", "checked", "identical", "different", "missing", "result")
    rows = [
        (
            c.name,
            c.points,
            c.verified,
            c.checked,
            c.identical,
            c.different,
            c.missing,
            "ok" if c.ok else "FAIL",
        )
        for c in checks
    ]
    w0 = max(len(head[0]), *(len(str(r[0])) for r in rows))
    lines = [f"{head[0]:<{w0}}  " + "  ".join(f"{h:>9}" for h in head[1:])]
    for r in rows:
        lines.append(f"{r[0]:<{w0}}  " + "  ".join(f"{v!s:>9}" for v in r[1:]))
    for c in checks:
        for n in c.notes:
            lines.append(f"  {c.name}: {n}")
    return "\n".join(lines)
