"""Sweep scaling: one sweep with 1 worker (in the sweep process) and with 2 (a spawn process pool).

    python benchmarks/bench_sweep.py                                # benchmarks/sweep-bench.toml, 2 repeats each
    python benchmarks/bench_sweep.py --spec data/specs/open-queue-rate.toml --repeats 2

Two serial runs are timed: the default (``1``), whose engine runs with an input thread that builds
multi-CPU points' streams on the other core, and ``1, one core`` (``CMDQV_LAB_INPUT_THREAD=0``), one
core's work; the 2-worker pool's workers run without input threads (they fill the cores). The
speed-up is printed against each.

Each run is a fresh subprocess writing to a fresh directory (nothing cached), so peak RSS is that
run's own; the runs alternate (1, 1 one core, 2, 1, ...) so that a change in machine load hits all. The
wall time is that of ``run_sweep`` (it includes starting the pool, not the interpreter); the peak
RSS is ``ru_maxrss`` of each process that computed points (the sweep process itself for 1 worker).
Every run must give the same combined content hash. The machine's load average is printed: other
processes on the machine inflate the 2-worker time first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402


def one_run(spec_path: str, workers: int, out: str) -> dict:  # type: ignore[type-arg]
    import time

    from cmdqv_lab.experiments.manifest import read_manifest
    from cmdqv_lab.experiments.spec import load_spec
    from cmdqv_lab.experiments.sweep import run_sweep

    spec = load_spec(spec_path)
    t = time.perf_counter()
    report = run_sweep(spec, out, workers=workers, progress=False)
    wall = time.perf_counter() - t
    return {
        "workers": workers,
        "points": report.points,
        "wall_s": wall,
        "rss_mb": sorted(kb / 1024 for kb in report.peak_rss_kb.values()),
        "sha": read_manifest(out)["combined_sha256"],
        "load": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--spec", default=str(ROOT / "benchmarks" / "sweep-bench.toml"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--one", nargs=2, metavar=("WORKERS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_run(args.spec, int(args.one[0]), args.one[1])))
        return

    print(describe())
    print(f"spec: {os.path.relpath(args.spec)}   load average before: {os.getloadavg()[0]:.2f}")
    # warm numba's on-disk cache once so no run pays the compilation
    subprocess.run(
        [sys.executable, "-c", "from cmdqv_lab.scenarios import simulate; simulate('open-queue', count=10)"],
        check=True,
    )
    # "1, one core": the serial run without its input thread (CMDQV_LAB_INPUT_THREAD=0), one core's
    # work; the default serial run builds multi-CPU points' input on the other core meanwhile
    configs = {"1": (1, "1"), "1, one core": (1, "0"), "2": (2, "1")}
    runs: dict[str, list[dict]] = {k: [] for k in configs}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for label, (w, thread) in configs.items():
                out = Path(tmp) / f"{label.replace(', ', '-').replace(' ', '')}-r{r}"
                p = subprocess.run(
                    [sys.executable, __file__, "--spec", args.spec, "--one", str(w), str(out)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "CMDQV_LAB_INPUT_THREAD": thread},
                )
                res = json.loads(p.stdout.strip().splitlines()[-1])
                runs[label].append(res)
                print(
                    f"  run {r + 1} workers={label}: {res['wall_s']:.2f} s, peak RSS per worker "
                    f"{', '.join(f'{x:.0f}' for x in res['rss_mb'])} MB (load {res['load']:.2f})"
                )
    shas = {x["sha"] for xs in runs.values() for x in xs}
    assert len(shas) == 1, f"runs disagree: {shas}"
    points = runs["1"][0]["points"]
    print(f"\n{points} points per run; every run gave the same combined result ({shas.pop()[:16]})\n")
    print(
        f"{'workers':>11}  {'wall min s':>10}  {'wall median s':>13}  {'points/s':>8}  {'speed-up':>8}  "
        f"{'vs one core':>11}  {'peak RSS/worker MB':>18}"
    )
    base = min(x["wall_s"] for x in runs["1"])
    core = min(x["wall_s"] for x in runs["1, one core"])
    for label, xs in runs.items():
        walls = [x["wall_s"] for x in xs]
        rss = max(max(x["rss_mb"]) for x in xs)
        print(
            f"{label:>11}  {min(walls):>10.2f}  {statistics.median(walls):>13.2f}  {points / min(walls):>8.1f}  "
            f"{base / min(walls):>8.2f}  {core / min(walls):>11.2f}  {rss:>18.0f}"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":  # the guard matters: the 2-worker pool spawns fresh interpreters
    main()
