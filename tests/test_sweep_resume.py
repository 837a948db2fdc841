"""A sweep killed with SIGKILL midway resumes with nothing lost, duplicated or different."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_helpers import alive, children

from cmdqv_lab.analysis.summary import load_sweep
from cmdqv_lab.experiments.manifest import read_manifest
from cmdqv_lab.experiments.spec import load_spec
from cmdqv_lab.experiments.sweep import run_sweep

SPEC = """
scenario = "host-map-unmap"
count = 60000
replicates = 4
[grid]
cpus = [1, 2, 3, 4, 5, 6, 7, 8]
submit = ["linux-lockfree", "spinlock"]
"""
N_POINTS = 8 * 2 * 4


def _point_files(out: Path) -> list[Path]:
    d = out / "points"
    return sorted(d.glob("*.parquet")) if d.is_dir() else []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sigkill_midway_then_resume(tmp_path: Path) -> None:
    spec_file = tmp_path / "kill.toml"
    spec_file.write_text(SPEC)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "cmdqv_lab.cli", "sweep", str(spec_file), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while len(_point_files(out)) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sweep produced no points in time"
            workers = children(proc.pid) or workers
            time.sleep(0.01)
        workers = children(proc.pid) or workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # pool workers notice their parent is gone and exit by themselves
        deadline = time.monotonic() + 30
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(w) for w in workers), "orphaned workers kept running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()

    done_before = len(_point_files(out))
    assert 3 <= done_before < N_POINTS, f"kill did not land midway ({done_before} of {N_POINTS} points)"
    assert not (out / "manifest.json").exists()

    spec = load_spec(spec_file)
    report = run_sweep(spec, out, workers=2, progress=False)
    assert report.corrupt == []
    assert report.cached == done_before and report.computed == N_POINTS - done_before
    files = _point_files(out)
    assert len(files) == N_POINTS and not list((out / "points").glob(".*.tmp"))
    m = read_manifest(out)
    assert len({e["key"] for e in m["points"]}) == N_POINTS

    reference = tmp_path / "uninterrupted"
    run_sweep(spec, reference, workers=1, progress=False)
    assert load_sweep(out).equals(load_sweep(reference))
    assert m["combined_sha256"] == read_manifest(reference)["combined_sha256"]
