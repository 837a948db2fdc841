"""Fault injection on sweeps (issue 17): damaged files, kills at any instant, dead workers, the OS.

Each test damages a finished or running sweep the way the world does and checks that a rerun gives
the same results (content hashes equal to an undisturbed run), with one line per recomputed point,
or that the failure is one line with its own exit status:

* the polars reader-panic file and the 2^61-byte-allocation file (``tests/data/point-*.parquet``, bit
  flips of a real point file) dropped into a sweep;
* random bit flips over point files and their indexes, the sweep rerun after each (25 here, 200
  under ``slow``);
* SIGKILL at random instants, and just before the rename of the manifest, a point file or an index;
* a pool worker killed (retried once; a point that kills its worker twice is named);
* a full disk (a small tmpfs) and a read-only directory (a tmpfs remounted read-only).

Counts of tried / recovered / clean errors are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_helpers import KILL_IN_RENAME, alive, can_mount, children, remount, square_or_die, tmpfs

from cmdqv_lab.analysis.summary import load_sweep
from cmdqv_lab.errors import WorkerDiedError
from cmdqv_lab.experiments.cache import ResultError, parse_parquet
from cmdqv_lab.experiments.executors import ProcessExecutor
from cmdqv_lab.experiments.manifest import read_manifest
from cmdqv_lab.experiments.spec import parse_spec
from cmdqv_lab.experiments.sweep import run_sweep

DATA = Path(__file__).resolve().parent / "data"
SPEC = """
name = "faults"
scenario = "open-queue"
count = 4000
replicates = 2
[grid]
rate_mcmd_s = [1.0, 3.0, 5.0, 7.0, 9.0]
burst = [1.0, 4.0]
"""
N_POINTS = 20
needs_mount = pytest.mark.skipif(
    not can_mount(), reason="needs root to mount a tmpfs (make test runs as root)"
)


def spec():  # type: ignore[no-untyped-def]
    return parse_spec(SPEC, "faults.toml")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "faults"
    run_sweep(spec(), out, workers=1, progress=False)
    return out


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    p = tmp_path / "faults.toml"
    p.write_text(SPEC)
    return p


def combined(d: Path) -> str:
    return str(read_manifest(d)["combined_sha256"])


def cli(
    *args: str, env: dict[str, str] | None = None, script: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "cmdqv_lab.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)


def sweep_args(spec_file: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", str(spec_file), "--out", str(out), "--workers", "1", "--no-progress", *extra]


def temporaries(out: Path) -> list[str]:
    return sorted(p.name for d in (out, out / "points") if d.is_dir() for p in d.glob(".*.tmp"))


# ----------------------------------------------------------------------------- damaged point files
def test_the_reader_panic_file_is_corruption_not_a_crash() -> None:
    with pytest.raises(ResultError, match=r"^p: unreadable \(PanicException\)$"):
        parse_parquet((DATA / "point-panic.parquet").read_bytes(), "p")


def test_the_abort_file_kills_a_process_that_parses_it_unchecked() -> None:
    """Why bytes are checked before parsing: this file makes polars abort the whole process."""
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, polars; polars.read_parquet(sys.argv[1])",
            str(DATA / "point-abort.parquet"),
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode == 0:
        pytest.skip("this polars version reads the file without aborting")
    if r.returncode == 1 and "polars.exceptions" in r.stderr:  # e.g. polars 2.2: a ComputeError
        pytest.skip("this polars version rejects the file with an exception instead of aborting")
    assert (
        r.returncode in (-signal.SIGABRT, 134)
        and "memory allocation of 2305843009213693952 bytes" in r.stderr
    )


@pytest.mark.parametrize("name", ["point-panic.parquet", "point-abort.parquet"])
def test_a_sweep_whose_point_file_would_crash_the_reader_reruns(
    reference: Path, tmp_path: Path, spec_file: Path, name: str
) -> None:
    out = tmp_path / "faults"
    shutil.copytree(reference, out)
    victim = sorted((out / "points").glob("*.parquet"))[3]
    victim.write_bytes((DATA / name).read_bytes())
    r = cli(*sweep_args(spec_file, out))  # a process of its own: an abort would show as its exit status
    assert r.returncode == 0, r.stderr
    notes = r.stderr.splitlines()
    assert len(notes) == 1 and notes[0].startswith("cmdqv-lab sweep: recomputed point ")
    assert f"{victim}: bytes do not match their checksum" in notes[0]
    assert f"({N_POINTS - 1} cached, 1 computed, 1 corrupt recomputed)" in r.stdout
    assert combined(out) == combined(reference) and load_sweep(out).equals(load_sweep(reference))


def _flips(reference: Path, tmp_path: Path, n: int, seed: int) -> None:
    out = tmp_path / "faults"
    shutil.copytree(reference, out)
    rng = random.Random(seed)
    recomputed = harmless = 0
    for i in range(n):
        files = sorted(p for p in (out / "points").iterdir() if not p.name.startswith("."))
        victim = rng.choice(files)
        data = bytearray(victim.read_bytes())
        bit = rng.randrange(len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
        victim.write_bytes(bytes(data))
        report = run_sweep(spec(), out, workers=1, progress=False)
        assert combined(out) == combined(reference), f"flip {i}: bit {bit} of {victim.name}"
        assert len(report.corrupt) <= 1 and all("\n" not in c for c in report.corrupt)
        if report.corrupt:
            recomputed += 1
            assert report.corrupt[0].startswith("point ") and victim.name.split(".")[0] in report.corrupt[0]
        else:  # only a point's index can take a flip that changes nothing checked (e.g. its wall time)
            harmless += 1
            assert victim.suffix == ".json", f"flip {i}: a damaged {victim.name} was not recomputed"
    assert load_sweep(out).equals(load_sweep(reference))
    print(f"\nbit flips: {n} tried, {recomputed} recomputed, {harmless} harmless (index metadata), 0 errors")


def test_bit_flips_over_point_files_rerun_to_the_same_results(reference: Path, tmp_path: Path) -> None:
    _flips(reference, tmp_path, 25, seed=1)


@pytest.mark.slow
def test_200_bit_flips_over_point_files_rerun_to_the_same_results(reference: Path, tmp_path: Path) -> None:
    _flips(reference, tmp_path, 200, seed=2)


# ----------------------------------------------------------------------------- kills
@pytest.mark.parametrize("target", ["/manifest.json", ".parquet", ".json"])
def test_killed_just_before_a_rename_then_resumed(
    reference: Path, tmp_path: Path, spec_file: Path, target: str
) -> None:
    out = tmp_path / "faults"
    r = cli(*sweep_args(spec_file, out), env={"KILL_AT": target}, script=KILL_IN_RENAME)
    assert r.returncode == -signal.SIGKILL, r.stderr
    left = temporaries(out)
    assert len(left) == 1, left  # the file whose rename was killed
    if target == "/manifest.json":
        assert left[0].startswith(".manifest.json.") and not (out / "manifest.json").exists()
    r = cli(*sweep_args(spec_file, out))
    assert r.returncode == 0, r.stderr  # no "not a sweep directory": the dead writer's file is recognised
    assert temporaries(out) == [] and combined(out) == combined(reference)


def _kills(reference: Path, tmp_path: Path, spec_file: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    out = tmp_path / "faults"
    cmd = [sys.executable, "-m", "cmdqv_lab.cli", *sweep_args(spec_file, out)]
    t0 = time.monotonic()
    subprocess.run(
        [*cmd[:-4], str(tmp_path / "timing"), "--workers", "1", "--no-progress"],
        check=True,
        capture_output=True,
    )
    full_s = time.monotonic() - t0
    killed = finished = 0
    for _ in range(n):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            p.wait(timeout=rng.uniform(0.2, full_s))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=60)
        if p.returncode == -signal.SIGKILL:
            killed += 1
        else:
            assert p.returncode == 0, err.decode()
            finished += 1
    r = cli(*sweep_args(spec_file, out))
    assert r.returncode == 0, r.stderr
    assert temporaries(out) == [] and combined(out) == combined(reference)
    print(
        f"\nSIGKILLs: {n} runs, {killed} killed at random instants, {finished} finished first; resumed identically"
    )


def test_sigkill_at_random_instants_then_resume(reference: Path, tmp_path: Path, spec_file: Path) -> None:
    _kills(reference, tmp_path, spec_file, 5, seed=3)


@pytest.mark.slow
def test_30_sigkills_at_random_instants_then_resume(reference: Path, tmp_path: Path, spec_file: Path) -> None:
    _kills(reference, tmp_path, spec_file, 30, seed=4)


# ----------------------------------------------------------------------------- dead workers
def _tasks(n: int = 8) -> list[dict[str, object]]:
    return [{"index": i, "label": f"t{i}"} for i in range(n)]


def test_a_dead_workers_tasks_are_retried_once(tmp_path: Path) -> None:
    tasks = _tasks()
    tasks[3].update(die=True, marker=str(tmp_path / "died"))  # dies on its first attempt only
    with ProcessExecutor(2) as ex:
        results = sorted(ex.imap_unordered(square_or_die, tasks))
    assert results == [i * i for i in range(8)]
    assert any(r.startswith("point 3 (t3): worker process died") for r in ex.retried), ex.retried


def test_a_task_that_kills_its_worker_twice_is_named() -> None:
    tasks = _tasks()
    tasks[5]["die"] = True
    with (
        pytest.raises(WorkerDiedError, match=r"^point 5 \(t5\): its worker process died twice") as e,
        ProcessExecutor(2) as ex,
    ):
        list(ex.imap_unordered(square_or_die, tasks))
    assert e.value.exit_code == 3 and "\n" not in str(e.value)


HEAVY = SPEC.replace("count = 4000", "count = 400000").replace('name = "faults"', 'name = "faults-heavy"')


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_sweep_survives_a_killed_worker(tmp_path: Path) -> None:
    """A pool worker killed while it computes a point (as the OOM killer would): the points in flight
    are retried, the sweep ends normally and its results equal a serial run's. The points are heavy
    enough (400,000 commands each) that tasks are still in flight after the first point is written
    (with 4,000 commands the other 19 points could all finish within one poll, and a kill with nothing
    in flight breaks no task)."""
    spec_file = tmp_path / "heavy.toml"
    spec_file.write_text(HEAVY)
    out = tmp_path / "heavy"
    cmd = [
        sys.executable,
        "-m",
        "cmdqv_lab.cli",
        *sweep_args(spec_file, out)[:-3],
        "--workers",
        "2",
        "--no-progress",
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and p.poll() is None:
        points = list((out / "points").glob("*.parquet")) if (out / "points").is_dir() else []
        workers = [c for c in children(p.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        if points and workers:  # workers are computing: kill one
            victim = workers[0]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.005)
    _, err = p.communicate(timeout=300)
    assert victim is not None, "the sweep finished before a worker could be killed"
    assert not alive(victim)
    assert p.returncode == 0, err
    assert "worker process died" in err and "retried" in err
    serial = tmp_path / "serial"
    run_sweep(parse_spec(HEAVY, "heavy.toml"), serial, workers=1, progress=False)
    assert combined(out) == combined(serial)


# ----------------------------------------------------------------------------- the operating system
@needs_mount
def test_a_full_disk_is_one_line_and_a_rerun_finishes(
    reference: Path, tmp_path: Path, spec_file: Path
) -> None:
    with tmpfs(tmp_path / "small", "64k") as disk:
        out = disk / "faults"
        r = cli(*sweep_args(spec_file, out))
        assert r.returncode == 4, r.stderr
        assert r.stderr.count("\n") == 1 and "no space left on the device" in r.stderr
        assert "points are stored and kept" in r.stderr
        stored = len(list((out / "points").glob("*.parquet")))
        assert 0 < stored < N_POINTS and temporaries(out) == []
        remount(disk, "size=8m")
        r = cli(*sweep_args(spec_file, out))
        assert r.returncode == 0, r.stderr
        assert f"({stored} cached, {N_POINTS - stored} computed)" in r.stdout
        assert combined(out) == combined(reference)
    with tmpfs(tmp_path / "tiny", "8k") as disk:  # the packed file does not fit
        r = cli(*sweep_args(spec_file, out := tmp_path / "faults", "--publish", str(disk / "published")))
        assert r.returncode == 4 and r.stderr.count("\n") == 1 and "no space left" in r.stderr, r.stderr
        assert temporaries(disk / "published") == [] and not (disk / "published" / "manifest.json").exists()
        assert combined(out) == combined(reference)  # the sweep itself is complete
    print("\nfull disk: 2 tried, 2 clean errors (exit 4), 1 rerun recovered after freeing space")


@needs_mount
def test_a_read_only_directory_is_one_line(reference: Path, tmp_path: Path, spec_file: Path) -> None:
    with tmpfs(tmp_path / "ro", "8m") as disk:
        out = disk / "faults"
        shutil.copytree(reference, out)  # every point cached
        remount(disk, "ro")
        r = cli(*sweep_args(spec_file, out))
        assert r.returncode == 5, r.stderr
        assert r.stderr.count("\n") == 1 and "cannot write (read-only file system)" in r.stderr
        r = cli(*sweep_args(spec_file, tmp_path / "rw", "--publish", str(disk / "published")))
        assert r.returncode == 5 and "read-only file system" in r.stderr, r.stderr
        assert load_sweep(out).equals(load_sweep(reference))  # reading needs no write
        r = cli("reproduce", "--quick", "--workers", "1", "--no-progress", str(out))
        assert r.returncode == 0, r.stdout + r.stderr
    print("\nread-only output: 2 tried, 2 clean errors (exit 5); reading and reproduce still work")


def test_pool_workers_skip_the_interpreter_teardown_but_not_exit_handlers(tmp_path: Path) -> None:
    """A pool worker ends with ``os._exit`` after its exit handlers (the teardown cost the pool's
    shutdown 0.2-0.25 s a sweep): handlers a task registered still run and stdout is flushed, but
    nothing is freed at the end. A plain spawn pool, as the control, does tear its workers down."""
    import concurrent.futures as cf
    import multiprocessing

    from fault_helpers import mark_exit

    fast, plain = tmp_path / "fast", tmp_path / "plain"
    for d in (fast, plain):
        d.mkdir()
    code = (
        "import sys, concurrent.futures as cf, multiprocessing\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from fault_helpers import mark_exit\n"
        "from cmdqv_lab.experiments.executors import ProcessExecutor\n"
        "if __name__ == '__main__':\n"
        "    tasks = [{'index': i, 'dir': sys.argv[2]} for i in range(4)]\n"
        "    with ProcessExecutor(2) as ex:\n"
        "        list(ex.imap_unordered(mark_exit, tasks))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(fast)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        list(pool.map(mark_exit, [{"index": i, "dir": str(plain)} for i in range(4)]))
    pids = sorted(p.name.split("-")[1] for p in fast.glob("atexit-*"))
    assert pids and all(f"unflushed {pid}" in out for pid in pids), (pids, out)
    assert not list(fast.glob("teardown-*"))
    assert list(plain.glob("atexit-*")) and list(plain.glob("teardown-*"))
