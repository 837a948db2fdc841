"""Run a sweep: expand the spec, skip verified cached points, run the rest, write the manifest.

:func:`run_sweep` is what ``cmdqv-lab sweep`` calls. The output directory holds ``points/`` (the
cache, :mod:`.cache`) and, once every point is done, ``manifest.json`` (:mod:`.manifest`). The
parent process is the only writer: workers (:mod:`.executors`) return rows, the parent stores
each one atomically as it arrives. A sweep stopped at any moment (Ctrl-C, SIGKILL, a crash)
resumes where it stopped when run again: finished points are verified and skipped, corrupt or
truncated ones are recomputed, nothing is duplicated. One sweep at a time may write a directory
(an advisory lock, released by the kernel if the process dies).

Runs keep no per-command records unless the spec says ``record = true``, so a worker's memory is
the engine's fixed-size state plus one result row.

``publish=DIR`` packs the finished sweep into ``DIR`` (one Parquet file and a manifest,
:mod:`.packed`): that is how ``data/results`` is written, while the per-point files stay in the
cache directory. Failures of the machine (a full disk, a read-only directory, a worker killed
twice on the same point, out of memory) stop the sweep with a one-line error of their own class
(:mod:`cmdqv_lab.errors`); the points stored so far are kept.

>>> from cmdqv_lab.experiments.spec import parse_spec
>>> spec = parse_spec('scenario="open-queue"\\ncount=500\\nseeds=[3]\\n[grid]\\nburst=[1.0]', "d.toml")
>>> out = run_point(make_tasks(spec)[0])
>>> out["row"]["seed"], out["row"]["commands"], out["row"]["burst"]
(3, 500, 1.0)
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.errors import CmdqvError, environment_error
from cmdqv_lab.experiments.cache import (
    PointStore,
    ResultError,
    code_version,
    is_temporary,
    package_version,
    point_key,
    remove_stale_temporaries,
)
from cmdqv_lab.experiments.executors import ExecutorError, make_executor
from cmdqv_lab.experiments.spec import Spec

#: Row columns that come before the parameters.
ID_COLUMNS = ("scenario", "seed", "count")


class SweepError(CmdqvError, RuntimeError):
    """A sweep cannot start or a point failed (finished points are kept)."""


# ---------------------------------------------------------------------------------------- workers
def point_row(
    scenario: str, seed: int, count: int, params: dict[str, Any], metrics_row: dict[str, Any]
) -> dict[str, Any]:
    """One result row: ids, every resolved parameter, then the flattened metrics."""
    row: dict[str, Any] = {"scenario": scenario, "seed": seed, "count": count}
    for k, v in params.items():
        if k in row:
            raise RuntimeError(f"parameter {k!r} clashes with a result column of the same name")
        row[k] = v
    for k, v in metrics_row.items():
        if k in ("scenario", "seed"):
            continue
        if k in row:
            raise RuntimeError(f"metric {k!r} has the name of a parameter: rename one of them")
        row[k] = v.item() if hasattr(v, "item") else v
    return row


def row_frame(row: dict[str, Any]) -> pl.DataFrame:
    """A one-row frame with dtypes fixed by the value types (None -> Null)."""
    kinds = {bool: pl.Boolean, int: pl.Int64, float: pl.Float64, str: pl.String, type(None): pl.Null}
    schema = {k: kinds.get(type(v)) for k, v in row.items()}
    bad = [k for k, t in schema.items() if t is None]
    if bad:
        raise RuntimeError(f"result column {bad[0]!r} has unsupported type {type(row[bad[0]]).__name__}")
    return pl.DataFrame({k: [v] for k, v in row.items()}, schema=schema)


def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Run one point (in a worker; a simulation or another task); check its key against the caller's."""
    from cmdqv_lab.experiments.tasks import get_task

    t0 = time.perf_counter()
    try:
        res = get_task(task["scenario"]).run(task["overrides"], task["seed"], task["count"], task["record"])
    except CmdqvError as e:  # name the point; same type, so the caller still sees an expected error
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise type(e)(f"point {task['index']} ({task.get('label', '')}): {msg}") from None
    key = point_key(res.scenario, res.params, res.seed, task["count"], task["record"])
    if task.get("key") is not None and key != task["key"]:
        raise ExecutorError(
            f"worker pid {os.getpid()} computed key {key} for point {task['index']}, the client expected "
            f"{task['key']}: worker code version {code_version()} (cmdqv-lab {package_version()}) differs "
            "from the client's"
        )
    records = res.records
    return {
        "index": task["index"],
        "key": key,
        "row": point_row(res.scenario, res.seed, task["count"], res.params, res.metrics),
        "records": records,
        "wall_s": time.perf_counter() - t0,
        "pid": os.getpid(),
        "peak_rss_kb": _peak_rss_kb(),
    }


def _peak_rss_kb() -> int:
    """This process's peak resident set size in KiB (0 where unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # macOS reports bytes


def point_cost(task: Mapping[str, Any]) -> float:
    """A rough relative cost of a point for scheduling: its count times the issuing CPUs it runs."""
    res = task.get("resolved") or task.get("overrides") or {}
    cpus = 1
    for key in ("cpus", "threads", "vms"):
        v = res.get(key)
        if isinstance(v, int) and v > 0:
            cpus *= v
    count = task.get("count") or 1
    return float(count) * cpus


def make_tasks(spec: Spec) -> list[dict[str, Any]]:
    """One task per point, in point order, each with its cache key."""
    from cmdqv_lab.experiments.tasks import get_task

    scn = get_task(spec.scenario)
    tasks = []
    resolved: dict[int, dict[str, Any]] = {}
    for p in spec.points():
        overrides = spec.overrides(p)
        combo = p.index // len(spec.seeds)
        if combo not in resolved:
            resolved[combo] = scn.resolve(overrides)
        key = point_key(spec.scenario, resolved[combo], p.seed, spec.count, spec.record)
        tasks.append(
            {
                "index": p.index,
                "label": p.label(),
                "values": dict(p.values),
                "scenario": spec.scenario,
                "overrides": overrides,
                "seed": p.seed,
                "count": spec.count,
                "record": spec.record,
                "key": key,
            }
        )
    return tasks


# ---------------------------------------------------------------------------------------- the sweep
@dataclass
class SweepReport:
    """What a sweep did (returned by :func:`run_sweep`, summarised by the CLI)."""

    name: str
    out: Path
    points: int
    cached: int = 0
    computed: int = 0
    corrupt: list[str] = field(default_factory=list)  # "point N (label): reason", one per recomputed point
    retried: list[str] = field(default_factory=list)  # points whose worker died and were run again
    wall_s: float = 0.0
    executor: str = ""
    workers: int = 0
    peak_rss_kb: dict[int, int] = field(default_factory=dict)  # worker pid -> peak RSS
    stale: int = 0
    pruned: int = 0
    published: Path | None = None

    def notes(self) -> list[str]:
        """One line per point that was recomputed (damaged) or retried (its worker died)."""
        return [f"recomputed {c}" for c in self.corrupt] + list(self.retried)

    def summary(self) -> str:
        corrupt = f", {len(self.corrupt)} corrupt recomputed" if self.corrupt else ""
        stale = (
            f"; {self.stale} stale point files (not in this sweep; --prune deletes them)"
            if self.stale
            else ""
        )
        pruned = f"; pruned {self.pruned} stale point files" if self.pruned else ""
        published = f"; published (packed) in {self.published}" if self.published else ""
        return (
            f"{self.name}: {self.points} points ({self.cached} cached, {self.computed} computed{corrupt}) "
            f"in {self.wall_s:.1f} s on {self.executor}; results in {self.out}{stale}{pruned}{published}"
        )


@contextlib.contextmanager
def _locked(out: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold ``out/.sweep.lock``; wait up to ``wait_s`` seconds for another sweep to release it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    deadline = time.monotonic() + wait_s
    with open(out / ".sweep.lock", "a+") as f:
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    waited = f" (waited {wait_s:g} s)" if wait_s > 0 else ""
                    raise SweepError(f"{out}: another sweep is writing this directory{waited}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def run_sweep(
    spec: Spec,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | None = None,
    prune: bool = False,
    command: Sequence[str] = (),
    wait_s: float = 0.0,
    publish: str | Path | None = None,
) -> SweepReport:
    """Run every point of ``spec`` not already in ``out`` and write ``out/manifest.json``.

    ``workers`` (default: one per CPU; 1 runs in this process) or ``scheduler`` (a dask address)
    choose the executor; ``progress`` shows a bar (default: on a terminal or in Jupyter, :mod:`cmdqv_lab.progress`);
    ``prune`` deletes point files of ``out`` that are not points of this sweep (e.g. from older
    code versions); ``command`` is recorded in the manifest. If another process is writing ``out``,
    wait up to ``wait_s`` seconds for it (then the points it stored are reused), else fail.
    ``publish``: also pack the finished sweep into that directory (see the module docstring).
    """
    out = Path(out)
    report = SweepReport(spec.name, out, 0)
    try:
        return _run_sweep(spec, out, report, workers, scheduler, progress, prune, command, wait_s, publish)
    except (OSError, MemoryError) as e:
        env = environment_error(e, f"sweep {spec.name} into {out}")
        if env is None:
            raise
        done = report.cached + report.computed
        kept = f"; {done} of {report.points} points are stored and kept" if report.points else ""
        raise type(env)(f"{env}{kept}") from None


def _run_sweep(
    spec: Spec,
    out: Path,
    report: SweepReport,
    workers: int | None,
    scheduler: str | None,
    progress: bool | None,
    prune: bool,
    command: Sequence[str],
    wait_s: float,
    publish: str | Path | None,
) -> SweepReport:
    from cmdqv_lab.experiments import manifest as mf
    from cmdqv_lab.progress import bar as progress_bar

    t0 = time.perf_counter()
    executor = make_executor(workers, scheduler)
    if publish is not None and Path(publish).resolve() == out.resolve():
        raise SweepError(f"--publish {publish}: must differ from the sweep directory {out}")
    if out.exists():
        _check_sweep_dir(out)  # before the lock file is created in it
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out, wait_s):
        check_compatible(out, spec)
        store = PointStore(out / mf.POINTS_DIR)
        store.remove_temporaries()
        tasks = make_tasks(spec)
        report.points = len(tasks)
        entries: dict[int, dict[str, Any]] = {}
        rows: dict[int, pl.DataFrame] = {}  # computed here: combined from memory, not read back
        pending = []
        for t in tasks:
            try:
                sp = store.read(t["key"])
            except ResultError as e:
                if store.exists(t["key"]):
                    report.corrupt.append(f"point {t['index']} ({t['label']}): {e}")
                store.delete(t["key"])
                pending.append(t)
                continue
            entries[t["index"]] = mf.point_entry(
                t, sp.meta["content_sha256"], sp.meta.get("wall_s"), sp.meta.get("records")
            )
            report.cached += 1
        by_index = {t["index"]: t for t in tasks}
        # Longest first, so a slow point does not finish alone at the end; results do not depend
        # on the order (each point is keyed and stored on its own; the manifest is in point order).
        pending.sort(key=lambda t: (-point_cost(t), t["index"]))
        with executor as ex:
            report.executor, report.workers = ex.description, ex.n_workers
            bar = progress_bar(len(pending), spec.name, enabled=progress)
            try:
                for res in ex.imap_unordered(run_point, pending):
                    t = by_index[res["index"]]
                    meta = {
                        "wall_s": res["wall_s"],
                        "code_version": code_version(),
                        "cmdqv_lab": package_version(),
                    }
                    row = row_frame(res["row"])
                    sha = store.write(t["key"], row, meta, res["records"])
                    rows[t["index"]] = row
                    rec = store.read(t["key"]).meta.get("records") if res["records"] else None
                    entries[t["index"]] = mf.point_entry(t, sha, res["wall_s"], rec)
                    report.computed += 1
                    pid = int(res["pid"])
                    report.peak_rss_kb[pid] = max(report.peak_rss_kb.get(pid, 0), int(res["peak_rss_kb"]))
                    bar.update(1)
            except CmdqvError as e:
                report.retried = list(ex.retried)
                if e.exit_code != 2:  # the machine, not the input: keep its class and exit status
                    raise
                raise SweepError(_point_failure(spec, e, report)) from None
            finally:
                bar.close()
            report.retried = list(ex.retried)
        report.wall_s = time.perf_counter() - t0
        manifest = mf.build_manifest(
            spec, out, [entries[i] for i in range(len(tasks))], report, list(command), rows
        )
        mf.write_manifest(out, manifest)
        keep = {t["key"] for t in tasks}
        stale = [k for k in store.point_keys() if k not in keep]
        if prune:
            for k in stale:
                store.delete(k)
            report.pruned = len(stale)
        else:
            report.stale = len(stale)
        if publish is not None:
            mf.publish(out, publish)
            report.published = Path(publish)
    return report


def _point_failure(spec: Spec, e: CmdqvError, report: SweepReport) -> str:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, ExecutorError):
        return msg
    done = report.cached + report.computed
    return (
        f"{spec.source}: {msg} ({type(e).__name__}); {done} of {report.points} points are stored "
        "and kept, a rerun resumes"
    )


def _check_sweep_dir(out: Path) -> None:
    from cmdqv_lab.experiments import manifest as mf
    from cmdqv_lab.experiments.packed import RESULTS_FILE

    if not out.is_dir():
        raise SweepError(f"{out}: not a directory; choose another --out")
    remove_stale_temporaries(out)  # e.g. a manifest write killed before its rename
    allowed = {mf.POINTS_DIR, mf.MANIFEST, ".sweep.lock", ".gitignore"}
    others = sorted(p.name for p in out.iterdir() if p.name not in allowed and not is_temporary(p.name))
    if RESULTS_FILE in others:
        raise SweepError(
            f"{out}: holds a published (packed) sweep; run into a cache directory and use --publish {out}"
        )
    if others:
        raise SweepError(f"{out}: not a sweep directory (it holds {others[0]!r}); choose another --out")


def check_compatible(out: Path, spec: Spec) -> None:
    """Refuse to write into a directory that holds another sweep, or anything but a sweep."""
    from cmdqv_lab.experiments import manifest as mf

    _check_sweep_dir(out)
    path = out / mf.MANIFEST
    if not path.is_file():
        return
    try:
        old = mf.read_manifest(out)
    except ResultError:
        return  # unreadable: it is rewritten when this sweep finishes
    if old.get("name") != spec.name or bool(old.get("spec", {}).get("quick")) != spec.quick:
        what = f"{old.get('name')}{' (quick)' if old.get('spec', {}).get('quick') else ''}"
        mine = f"{spec.name}{' (quick)' if spec.quick else ''}"
        raise SweepError(f"{out}: holds the results of sweep {what}, not {mine}; choose another --out")
