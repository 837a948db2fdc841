"""Sweeps: identical results whatever the executor, caching, corruption detection, manifest, records."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab.analysis.summary import load_sweep, summarize_sweep, sweep_grid_keys
from cmdqv_lab.experiments.cache import (
    PointStore,
    ResultError,
    content_sha256,
    parquet_bytes,
    point_key,
)
from cmdqv_lab.experiments.executors import ExecutorError
from cmdqv_lab.experiments.manifest import load_records, read_manifest
from cmdqv_lab.experiments.spec import parse_spec
from cmdqv_lab.experiments.sweep import SweepError, make_tasks, run_point, run_sweep

SPEC = """
name = "t-host"
scenario = "host-map-unmap"
count = 3000
replicates = 2
[fixed]
platform = "d06"
[grid]
cpus = [1, 4]
submit = ["linux-lockfree", "spinlock"]
[quick]
count = 500
replicates = 1
"""


def spec(text: str = SPEC, quick: bool = False):  # type: ignore[no-untyped-def]
    return parse_spec(text, "t-host.toml", quick=quick)


@pytest.fixture(scope="module")
def serial_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serial")
    report = run_sweep(spec(), out, workers=1, progress=False)
    assert (report.computed, report.cached) == (8, 0)
    return out


def test_rows_have_seed_params_and_metrics_in_point_order(serial_dir: Path) -> None:
    df = load_sweep(serial_dir)
    assert df.height == 8
    assert df["point"].to_list() == list(range(8))
    assert df["seed"].to_list() == [0, 1] * 4
    assert df["cpus"].to_list() == [1, 1, 1, 1, 4, 4, 4, 4]
    assert (
        df["submit"].to_list()
        == ["linux-lockfree"] * 2 + ["spinlock"] * 2 + ["linux-lockfree"] * 2 + ["spinlock"] * 2
    )
    # every resolved parameter is a column (platform fields included), then the metrics
    for col in ("platform", "tlbis", "think_ns", "tlbi_service_ns", "ops", "ops_per_s", "op_latency_ns_p99"):
        assert col in df.columns
    assert (df["ops"] == 3000).all() and (df["count"] == 3000).all()
    assert "wall_s" not in df.columns
    assert load_sweep(serial_dir, params="grid").columns[:6] == [
        "point",
        "scenario",
        "seed",
        "count",
        "cpus",
        "submit",
    ]


def test_same_combined_result_with_two_local_workers(serial_dir: Path, tmp_path: Path) -> None:
    report = run_sweep(spec(), tmp_path, workers=2, progress=False)
    assert report.computed == 8 and report.workers == 2
    assert len(report.peak_rss_kb) >= 1  # results came from worker processes
    a, b = load_sweep(serial_dir), load_sweep(tmp_path)
    assert a.equals(b)
    assert content_sha256(a) == content_sha256(b)
    assert read_manifest(tmp_path)["combined_sha256"] == read_manifest(serial_dir)["combined_sha256"]
    assert sorted(p.name for p in (tmp_path / "points").iterdir()) == sorted(
        p.name for p in (serial_dir / "points").iterdir()
    )


def test_same_combined_result_through_a_dask_scheduler_on_loopback(serial_dir: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        report = run_sweep(spec(), tmp_path, scheduler=cluster.scheduler_address, progress=False)
        with distributed.Client(cluster.scheduler_address) as client:
            worker_pids = set(client.run(os.getpid).values())
            input_thread = set(client.run(lambda: os.environ.get("CMDQV_LAB_INPUT_THREAD")).values())
    assert report.computed == 8 and report.executor.startswith("dask.distributed at tcp://127.0.0.1:")
    assert set(report.peak_rss_kb) <= worker_pids and os.getpid() not in worker_pids
    # 2 one-thread workers on this host: no input threads when they fill its cores (as a local pool)
    assert input_thread == ({"0"} if (os.cpu_count() or 1) <= 2 else {None})
    assert load_sweep(tmp_path).equals(load_sweep(serial_dir))
    assert read_manifest(tmp_path)["combined_sha256"] == read_manifest(serial_dir)["combined_sha256"]


def test_rerun_skips_everything_and_changes_nothing(serial_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(serial_dir, out)
    before = {p.name: p.read_bytes() for p in (out / "points").iterdir()}
    report = run_sweep(spec(), out, workers=1, progress=False)
    assert (report.cached, report.computed, report.corrupt) == (8, 0, [])
    assert {p.name: p.read_bytes() for p in (out / "points").iterdir()} == before


def _tamper_value(path: Path) -> None:
    """Rewrite a point file with a changed metric (its index still holds the old checksums)."""
    df = pl.read_parquet(path).with_columns(pl.col("ops_per_s") * 1.0000001)
    path.write_bytes(parquet_bytes(df, small=True))


def dead_pid() -> int:
    """The pid of a process that has exited."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_corrupt_truncated_and_tampered_files_are_detected_and_recomputed(
    serial_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(serial_dir, out)
    files = sorted((out / "points").glob("*.parquet"))
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])  # truncated
    files[1].write_bytes(b"\x00" * len(files[1].read_bytes()))  # garbage
    _tamper_value(files[2])  # parses, wrong content
    files[3].with_suffix(".json").write_text("{")  # a damaged index
    files[4].with_suffix(".json").unlink()  # no index
    dead, alive = dead_pid(), os.getpid()
    (out / "points" / f".{files[5].name}.{dead}.deadbeef.tmp").write_bytes(b"partial")  # left by a kill
    (out / "points" / f".{files[5].name}.{alive}.deadbeef.tmp").write_bytes(b"busy")  # a live writer's
    with pytest.raises(ResultError, match=r"checksum|index|JSON|no such"):
        load_sweep(out)
    report = run_sweep(spec(), out, workers=1, progress=False)
    assert report.computed == 5 and report.cached == 3 and len(report.corrupt) == 5
    assert sum("bytes do not match their checksum" in r for r in report.corrupt) == 3
    assert all(r.startswith("point ") and "\n" not in r for r in report.corrupt)
    assert [p.name for p in (out / "points").glob(".*.tmp")] == [f".{files[5].name}.{alive}.deadbeef.tmp"]
    assert load_sweep(out).equals(load_sweep(serial_dir))


def test_manifest_records_spec_versions_and_content_hashes(serial_dir: Path) -> None:
    m = read_manifest(serial_dir)
    assert m["spec"]["text"] == SPEC and m["spec"]["sha256"] == hashlib.sha256(SPEC.encode()).hexdigest()
    assert m["resolved"]["seeds"] == [0, 1] and m["resolved"]["fixed"] == {"platform": "d06"}
    assert m["resolved"]["grid_keys"] == ["cpus", "submit"] and m["seeds"] == [0, 1]
    for key in ("code_version", "cmdqv_lab", "packages", "python", "platform", "machine", "git", "wall_s"):
        assert key in m
    assert "polars" in m["packages"]
    assert [e["index"] for e in m["points"]] == list(range(8))
    store = PointStore(serial_dir / "points")
    for e in m["points"]:
        df = pl.read_parquet(serial_dir / e["file"])
        assert content_sha256(df) == e["content_sha256"]
        assert df["seed"].item() == e["seed"]
        assert store.read(e["key"]).meta["content_sha256"] == e["content_sha256"]
    # the manifest is plain JSON
    assert json.loads((serial_dir / "manifest.json").read_text())["name"] == "t-host"


def test_keys_depend_on_code_version_params_seed_and_count() -> None:
    base = dict(scenario="s", params={"a": 1, "b": 0.5}, seed=0, count=10)
    k = point_key(**base, code="c1", version="1")  # type: ignore[arg-type]
    assert k == point_key(**{**base, "params": {"b": 0.5, "a": 1}}, code="c1", version="1")  # type: ignore[arg-type]
    for change in ({"seed": 1}, {"count": 11}, {"params": {"a": 1, "b": 0.25}}):
        assert point_key(**{**base, **change}, code="c1", version="1") != k  # type: ignore[arg-type]
    assert point_key(**base, code="c2", version="1") != k  # type: ignore[arg-type]
    assert point_key(**base, code="c1", version="2") != k  # type: ignore[arg-type]
    assert point_key(**base, record=True, code="c1", version="1") != k  # type: ignore[arg-type]


def test_worker_with_other_code_refuses_the_point() -> None:
    task = make_tasks(spec(quick=True))[0]
    assert run_point(task)["key"] == task["key"]
    with pytest.raises(ExecutorError, match="differs from the client's"):
        run_point({**task, "key": "0" * 32})


def test_summaries_by_grid_keys(serial_dir: Path) -> None:
    assert sweep_grid_keys(serial_dir) == ["cpus", "submit"]
    out = summarize_sweep(serial_dir, ["ops_per_s", "op_latency_ns_p99"])
    assert out.columns == ["cpus", "submit", "metric", "mean", "std", "n", "ci_lo", "ci_hi"]
    assert out.height == 8 and (out["n"] == 2).all()
    df = load_sweep(serial_dir)
    one = df.filter((pl.col("cpus") == 4) & (pl.col("submit") == "spinlock"))["ops_per_s"]
    row = out.filter(
        (pl.col("cpus") == 4) & (pl.col("submit") == "spinlock") & (pl.col("metric") == "ops_per_s")
    )
    assert row["mean"].item() == pytest.approx(one.mean())
    assert row["ci_lo"].item() < row["mean"].item() < row["ci_hi"].item()


def test_records_only_when_asked_and_verified(tmp_path: Path) -> None:
    text = SPEC.replace("replicates = 2", "replicates = 1\nrecord = true").replace(
        "count = 3000", "count = 200"
    )
    run_sweep(spec(text), tmp_path, workers=1, progress=False)
    ops = load_records(tmp_path, 2, "ops")
    cmds = load_records(tmp_path, 2, "commands")
    assert ops.height == 200 and (ops["seed"] == 0).all() and cmds.height >= 200
    victim = next((tmp_path / "points").glob("*.commands.parquet"))
    victim.write_bytes(victim.read_bytes()[:100])
    report = run_sweep(spec(text), tmp_path, workers=1, progress=False)
    assert report.computed == 1 and len(report.corrupt) == 1


def test_no_records_without_record_flag(serial_dir: Path) -> None:
    assert not [p for p in (serial_dir / "points").iterdir() if p.name.count(".") > 1]
    with pytest.raises(ResultError, match="no ops records"):
        load_records(serial_dir, 0)


def test_failed_point_keeps_finished_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cmdqv_lab.scenarios.base as base
    from cmdqv_lab.errors import DeadlockError

    real = base.simulate

    def flaky(scenario, overrides, **kw):  # type: ignore[no-untyped-def]
        if overrides.get("cpus") == 1:  # the cheapest points: scheduled last (longest first)
            raise DeadlockError("no progress at t=5 us")
        return real(scenario, overrides, **kw)

    monkeypatch.setattr(base, "simulate", flaky)
    with pytest.raises(SweepError) as ei:
        run_sweep(spec(), tmp_path, workers=1, progress=False)
    msg = str(ei.value)
    assert (
        "\n" not in msg
        and "point 0 (cpus=1, submit=linux-lockfree, seed=0)" in msg
        and "DeadlockError" in msg
    )
    assert len(list((tmp_path / "points").glob("*.parquet"))) == 4
    assert not (tmp_path / "manifest.json").exists()
    monkeypatch.setattr(base, "simulate", real)
    report = run_sweep(spec(), tmp_path, workers=1, progress=False)
    assert (report.cached, report.computed) == (4, 4)


def test_directory_guards(serial_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SweepError, match="not a sweep directory"):
        run_sweep(spec(), tmp_path, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing left behind
    other = tmp_path / "other"
    shutil.copytree(serial_dir, other)
    with pytest.raises(SweepError, match=r"holds the results of sweep t-host, not t-host \(quick\)"):
        run_sweep(spec(quick=True), other, workers=1, progress=False)


def test_one_writer_per_directory(tmp_path: Path) -> None:
    import fcntl

    with open(tmp_path / ".sweep.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SweepError, match="another sweep is writing"):
            run_sweep(spec(), tmp_path, workers=1, progress=False)
        with pytest.raises(SweepError, match=r"another sweep is writing this directory \(waited 0.3 s\)"):
            run_sweep(spec(), tmp_path, workers=1, progress=False, wait_s=0.3)


def test_a_waiting_sweep_reuses_what_the_writer_stored(serial_dir: Path, tmp_path: Path) -> None:
    """Two processes wanting the same sweep: the second waits for the lock, then finds every point."""
    import fcntl
    import threading

    out = tmp_path / "shared"
    shutil.copytree(serial_dir, out)
    f = open(out / ".sweep.lock", "a+")  # noqa: SIM115 - released from the timer thread
    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    threading.Timer(0.5, f.close).start()  # closing the file releases the lock
    report = run_sweep(spec(), out, workers=1, progress=False, wait_s=30)
    assert (report.cached, report.computed) == (8, 0)


def test_prune_removes_point_files_of_other_versions(serial_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(serial_dir, out)
    stale = out / "points" / ("f" * 32 + ".parquet")
    shutil.copy(next((out / "points").glob("*.parquet")), stale)
    assert run_sweep(spec(), out, workers=1, progress=False).stale == 1
    assert run_sweep(spec(), out, workers=1, progress=False, prune=True).pruned == 1
    assert not stale.exists() and len(list((out / "points").glob("*.parquet"))) == 8


def test_summary_helpers_refuse_what_they_cannot_know(serial_dir: Path, tmp_path: Path) -> None:
    from cmdqv_lab.errors import FrameError

    with pytest.raises(FrameError, match="give by="):
        summarize_sweep(load_sweep(serial_dir), "ops_per_s")
    with pytest.raises(FrameError, match="missing column 'nope'"):
        summarize_sweep(serial_dir, "nope")
    with pytest.raises(ResultError, match="has not finished"):
        load_sweep(tmp_path)


def test_publish_packs_one_file_that_loads_the_same(serial_dir: Path, tmp_path: Path) -> None:
    from cmdqv_lab.experiments.manifest import publish
    from cmdqv_lab.experiments.packed import RESULTS_FILE

    pub = tmp_path / "pub"
    m = publish(serial_dir, pub)
    assert sorted(p.name for p in pub.iterdir()) == ["manifest.json", RESULTS_FILE]
    assert m["combined_sha256"] == read_manifest(serial_dir)["combined_sha256"]
    assert [e["content_sha256"] for e in m["points"]] == [
        e["content_sha256"] for e in read_manifest(serial_dir)["points"]
    ]
    assert load_sweep(pub).equals(load_sweep(serial_dir))
    assert load_sweep(pub, params="grid").equals(load_sweep(serial_dir, params="grid"))
    assert summarize_sweep(pub, "ops_per_s").equals(summarize_sweep(serial_dir, "ops_per_s"))
    data = bytearray((pub / RESULTS_FILE).read_bytes())
    data[len(data) // 3] ^= 1
    (pub / RESULTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ResultError, match=r"results.parquet: bytes do not match their checksum"):
        load_sweep(pub)
    with pytest.raises(SweepError, match=r"holds a published \(packed\) sweep; run into a cache directory"):
        run_sweep(spec(), pub, workers=1, progress=False)


def test_published_records_are_packed_and_verified(tmp_path: Path) -> None:
    text = SPEC.replace("replicates = 2", "replicates = 1\nrecord = true").replace(
        "count = 3000", "count = 200"
    )
    report = run_sweep(spec(text), tmp_path / "run", workers=1, progress=False, publish=tmp_path / "pub")
    assert report.published == tmp_path / "pub"
    pub = tmp_path / "pub"
    assert sorted(p.name for p in pub.iterdir()) == [
        "commands.parquet",
        "manifest.json",
        "ops.parquet",
        "results.parquet",
    ]
    for kind in ("ops", "commands"):
        assert load_records(pub, 2, kind).equals(load_records(tmp_path / "run", 2, kind))
    ops = pl.read_parquet(pub / "ops.parquet")
    ops.with_columns(pl.col("seed") + 1).write_parquet(pub / "ops.parquet")  # a changed record file
    with pytest.raises(ResultError, match=r"ops.parquet: bytes do not match their checksum"):
        load_records(pub, 2, "ops")
    with pytest.raises(ResultError, match=r"ops.parquet: bytes do not match"):
        load_sweep(pub)
