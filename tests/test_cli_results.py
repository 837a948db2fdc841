"""Sweeps by spec name, results out (show / export / load), the reproduce verdict line, and progress
bars that ``--quiet`` silences."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab import results
from cmdqv_lab.cli import main
from cmdqv_lab.experiments.spec import parse_spec
from cmdqv_lab.experiments.sweep import run_sweep
from tests.cli_helpers import run_cli as cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cmdqv-lab sweep open-queue-rate --quick --out D``: a spec given by its name."""
    out = tmp_path_factory.mktemp("sweep") / "oq"
    main(["sweep", "open-queue-rate", "--quick", "--out", str(out), "--workers", "1", "--quiet"])
    return out


def test_sweep_by_name_then_export_csv(
    quick_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((quick_sweep / "manifest.json").read_text())
    assert manifest["name"] == "open-queue-rate" and manifest["spec"]["quick"]
    n = len(manifest["points"])
    code, out, _ = cli(
        capsys, "results", "export", str(quick_sweep), "--format", "csv", "-o", str(tmp_path / "r.csv")
    )
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'r.csv'}: {n} points x 40 columns"
    with open(tmp_path / "r.csv") as f:
        rows = list(csv.reader(f))
    assert (
        rows[0][:4] == ["point", "scenario", "seed", "count"]
        and "ops_per_s" in rows[0]
        and "rate_mcmd_s" in rows[0]
    )
    assert len(rows) == 1 + n
    assert [int(r[0]) for r in rows[1:]] == list(range(n))
    # the same numbers as the Python API
    df = results.load(quick_sweep)
    assert (
        pl.read_csv(tmp_path / "r.csv").equals(df, null_equal=True)
        or pl.read_csv(tmp_path / "r.csv")["ops_per_s"].to_list() == df["ops_per_s"].to_list()
    )


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_export_parquet_and_json(quick_sweep: Path, tmp_path: Path, fmt: str) -> None:
    path = results.export(quick_sweep, tmp_path / f"r.{fmt}")
    df = results.load(quick_sweep)
    back = pl.read_parquet(path) if fmt == "parquet" else pl.read_json(path)
    assert back.height == df.height and back["ops_per_s"].to_list() == df["ops_per_s"].to_list()
    grid = results.export(quick_sweep, tmp_path / "g.csv", params="grid")
    assert "service_ns" in df.columns and "service_ns" not in pl.read_csv(grid).columns
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed


def test_results_show_one_row_per_point(quick_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "results", "show", str(quick_sweep))
    from cmdqv_lab.analysis.summary import sweep_grid_keys

    df = results.load(quick_sweep, params="grid")
    grid = sweep_grid_keys(quick_sweep)
    assert grid == ["service_dist", "rate_mcmd_s"]
    lines = out.splitlines()
    assert code == 0
    assert (
        lines[0]
        == f"{quick_sweep}: {df.height} points of open-queue, count 20,000 (varied: service_dist, rate_mcmd_s; seeds 0, 1)"
    )
    header = [c.strip() for c in lines[2].strip("│").split("┆")]
    assert header == ["point", *grid, "seed", *results.key_metrics(df)]
    body = [ln for ln in lines if ln.startswith("│")][1:]
    assert len(body) == df.height
    first = [c.strip() for c in body[0].strip("│").split("┆")]
    assert first[:4] == ["0", "deterministic", "2", "0"] and first[4] == f"{df['ops_per_s'][0]:,.0f}"
    assert "columns:" in lines and any(ln.split()[:2] == ["ops_per_s", "ops/s"] for ln in lines)
    assert lines[-1] == f"every column: cmdqv-lab results export {quick_sweep} --format csv -o FILE"
    code, out, _ = cli(capsys, "results", "show", str(quick_sweep), "-m", "commands,offered_load")
    assert [c.strip() for c in out.splitlines()[2].strip("│").split("┆")][-2:] == ["commands", "offered_load"]


def test_results_of_a_published_spec_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert results.locate("q9-host-cpus-submit") == ROOT / "data" / "results" / "q9-host-cpus-submit"
    assert results.locate(str(ROOT / "data" / "specs" / "q9-host-cpus-submit.toml")) == results.locate(
        "q9-host-cpus-submit"
    )
    df = results.show("q9-host-cpus-submit")
    assert df.columns[:4] == ["point", "cpus", "submit", "seed"] and df.height == 63


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["results", "show", "q9-host-cpus"], "'q9-host-cpus' is neither a sweep directory nor a sweep spec; did you mean q9-host-cpus-submit?"),
        (["results", "show", "."], ".: no manifest.json: not a finished sweep"),
        (["results", "export", "q9-host-cpus-submit", "-o", "r.xlsx"], "format 'xlsx' is not allowed: one of csv, parquet, json"),
        (["results", "show", "q9-host-cpus-submit", "-m", "ops_per_sec"], "unknown metric 'ops_per_sec': did you mean ops_per_s?"),
        (["sweep", "open-queue-rat", "--quick"], "unknown sweep spec 'open-queue-rat': did you mean open-queue-rate?"),
        (["sweep", "nope.toml"], "nope.toml: no such spec file"),
    ],
)  # fmt: skip
def test_one_line_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = cli(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_results_of_a_spec_not_run_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "never-run.toml"
    spec.write_text('scenario = "open-queue"\ncount = 100\nseeds = [0]\n[grid]\nburst = [1.0]\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(results.ResultsError, match=r"no results of sweep never-run .*run cmdqv-lab sweep"):
        results.locate(str(spec))


# ----------------------------------------------------------------------------- reproduce
def test_reproduce_ends_with_one_verdict_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = 'scenario = "open-queue"\ncount = 2000\nreplicates = 2\n[grid]\nrate_mcmd_s = [2.0, 8.0]\n'
    for name in ("a", "b"):
        run_sweep(parse_spec(text, f"{name}.toml"), tmp_path / name, workers=1, progress=False)
    code, out, _ = cli(capsys, "reproduce", str(tmp_path / "a"), str(tmp_path / "b"), "--workers", "1", "-q")
    assert code == 0
    assert out.splitlines()[-1] == "verdict: 2 of 2 datasets reproduce exactly (8 of 8 points identical)"
    # tamper with one stored point: its dataset differs, and the verdict says which point
    from cmdqv_lab.experiments.cache import content_sha256, file_digest, parquet_bytes
    from cmdqv_lab.experiments.manifest import dumps_manifest, read_manifest

    m = read_manifest(tmp_path / "b")
    entry = m["points"][2]
    path = tmp_path / "b" / entry["file"]
    df = pl.read_parquet(path).with_columns(pl.col("ops_per_s") * 1.001)
    data = parquet_bytes(df, small=True)
    index_path = path.with_suffix(".json")
    index = json.loads(index_path.read_text())  # a careful forger updates every checksum
    index["content_sha256"] = entry["content_sha256"] = content_sha256(df)
    index["files"][path.name] = file_digest(data)
    index_path.write_text(json.dumps(index, sort_keys=True, indent=1))
    path.write_bytes(data)
    (tmp_path / "b" / "manifest.json").write_text(dumps_manifest(m))
    shutil.rmtree(tmp_path / "a" / "points")
    code, out, _ = cli(capsys, "reproduce", str(tmp_path / "a"), str(tmp_path / "b"), "--workers", "1", "-q")
    assert code == 1
    assert out.splitlines()[-1] == (
        "verdict: 0 of 2 datasets reproduce exactly (3 of 4 points identical); 1 point differs (b points 2); "
        "4 missing (a); 1 unreadable (a)"
    )


def test_notes_every_dataset_shares_are_said_once() -> None:
    from cmdqv_lab.experiments.cli import reproduce_report
    from cmdqv_lab.experiments.reproduce import DatasetCheck

    note = "stored with code version 1111, checking 2222"
    checks = [
        DatasetCheck(f"d{i}", Path(f"d{i}"), points=4, verified=4, checked=4, identical=4, notes=[note])
        for i in range(27)
    ]
    text = reproduce_report(checks)
    assert text.count("code version") == 1 and f"  all 27 datasets: {note}" in text
    assert (
        text.splitlines()[-1] == "verdict: 27 of 27 datasets reproduce exactly (108 of 108 points identical)"
    )


# ----------------------------------------------------------------------------- progress
def test_progress_shows_on_request_and_quiet_silences_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cmdqv_lab import progress

    text = 'scenario = "open-queue"\ncount = 500\nseeds = [0]\n[grid]\nrate_mcmd_s = [2.0, 4.0]\n'
    (tmp_path / "s.toml").write_text(text)
    spec = str(tmp_path / "s.toml")
    cli(capsys, "sweep", spec, "--out", str(tmp_path / "o1"), "--workers", "1", "--progress")
    _, _, err = cli(capsys, "sweep", spec, "--out", str(tmp_path / "o2"), "--workers", "1", "--progress")
    assert "s: 100%" in err and "2/2" in err
    _, _, err = cli(
        capsys, "sweep", spec, "--out", str(tmp_path / "o3"), "--workers", "1", "--progress", "-q"
    )
    assert err == ""
    # default: a bar on a terminal or in Jupyter, nothing in a pipe or a file (as here)
    assert not progress.shown(None)
    monkeypatch.setattr(progress, "in_jupyter", lambda: True)
    assert progress.shown(None) and not progress.shown(False)


def test_calibrate_reports_progress_unless_quiet(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """calibrate counts its evaluations on a bar (a stand-in fit here: a real one takes a minute)."""
    from cmdqv_lab import progress
    from cmdqv_lab.analysis import calibrate as cal

    def fake_fit(spec, *, maxiter, count, progress, **_):  # type: ignore[no-untyped-def]
        for i, value in enumerate([0.09, 0.04, 0.0049], 1):
            progress(i, value)
        values = {k: v[2] for k, v in spec.params.items()}
        return cal.FitResult(values, [], [], 3, 0.0049, [0.09, 0.04, 0.0049])

    monkeypatch.setattr(cal, "fit", fake_fit)
    monkeypatch.setattr(progress, "shown", lambda enabled: enabled is not False)
    code, out, err = cli(capsys, "calibrate", "d06", "--no-intervals")  # the profiles refit for real
    assert code == 0 and "(3 evaluations)" in out
    assert "calibrate d06: 3 eval" in err and "rms log error 0.070" in err and "fitting think_ns" in err
    code, out, err = cli(capsys, "calibrate", "d06", "--quiet", "--no-intervals")
    assert code == 0 and err == ""
