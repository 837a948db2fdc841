"""``cmdqv-lab reproduce``: the committed results reproduce; tampered copies are caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab.cli import main
from cmdqv_lab.experiments.cache import META_KEY, content_sha256, parquet_bytes
from cmdqv_lab.experiments.manifest import dumps_manifest, read_manifest
from cmdqv_lab.experiments.reproduce import published_dirs, quick_selection, reproduce
from cmdqv_lab.experiments.spec import parse_spec
from cmdqv_lab.experiments.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> int:
    try:
        rc = main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return int(rc or 0)


def test_every_spec_has_published_results_and_manifests_are_complete() -> None:
    dirs = published_dirs()
    assert len(dirs) >= 2
    assert {d.name for d in dirs} <= {p.stem for p in (ROOT / "data" / "specs").glob("*.toml")}
    for d in dirs:
        m = read_manifest(d)
        assert m["name"] == d.name and not m["spec"]["quick"]
        assert m["spec"]["text"] == (ROOT / "data" / "specs" / f"{d.name}.toml").read_text()
        assert m["command"].startswith(f"cmdqv-lab sweep data/specs/{d.name}.toml")
        assert m["git"] and len(m["git"]["commit"]) == 40 and not m["git"]["dirty"], (
            "made from uncommitted code"
        )
        files = sorted(p.name for p in (d / "points").glob("*.parquet"))
        assert files == sorted(Path(e["file"]).name for e in m["points"]), "stale or missing point files"
        for e in m["points"]:
            assert content_sha256(pl.read_parquet(d / e["file"])) == e["content_sha256"]


def test_quick_reproduce_passes_on_the_committed_results(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["reproduce", "--quick", "--workers", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for d in published_dirs():
        line = next(x for x in out.splitlines() if x.startswith(d.name + " "))
        n = len(read_manifest(d)["points"])
        assert line.split()[1:] == [str(n), "4", "4", "0", "0", "ok"], line


def _copy(tmp_path: Path) -> tuple[Path, dict, dict]:  # type: ignore[type-arg]
    src = published_dirs()[0]
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    m = read_manifest(dst)
    entry = m["points"][quick_selection(len(m["points"]))[1]]
    return dst, m, entry


def test_consistently_forged_result_is_reported_different(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d, m, entry = _copy(tmp_path)
    path = d / entry["file"]
    meta = json.loads(pl.read_parquet_metadata(path)[META_KEY])
    df = pl.read_parquet(path).with_columns(pl.col("ops_per_s") * 1.001)
    meta["content_sha256"] = entry["content_sha256"] = content_sha256(df)
    path.write_bytes(parquet_bytes(df, {META_KEY: json.dumps(meta)}))
    (d / "manifest.json").write_text(dumps_manifest(m))
    assert _run(["reproduce", "--quick", "--workers", "1", "--no-progress", str(d)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[3:] == ["3", "1", "0", "FAIL"]
    assert f"point {entry['index']} (" in out and "ops_per_s" in out


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_result_is_reported_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    d, _, entry = _copy(tmp_path)
    path = d / entry["file"]
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-50])
    else:
        path.unlink()
    assert _run(["reproduce", "--quick", "--workers", "1", "--no-progress", str(d)]) == 1
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[-2:] == ["1", "FAIL"] and row[3:5] == ["3", "0"]


def test_full_reproduce_of_a_fresh_sweep_is_identical_everywhere(tmp_path: Path) -> None:
    text = 'scenario = "open-queue"\ncount = 3000\nreplicates = 2\n[grid]\nburst = [1.0, 4.0]\nrate_mcmd_s = [2.0, 9.0]\n'
    run_sweep(parse_spec(text, "oq.toml"), tmp_path / "oq", workers=1, progress=False)
    (chk,) = reproduce([tmp_path / "oq"], workers=1, progress=False)
    assert (chk.points, chk.checked, chk.identical, chk.different, chk.missing) == (8, 8, 8, 0, 0)
    assert chk.ok


def test_not_a_sweep_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["reproduce", "--workers", "1", str(tmp_path)]) == 1
    assert "no manifest" in capsys.readouterr().out


def test_exit_status_of_the_command_line_program(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "cmdqv_lab.cli", "reproduce", str(tmp_path)], capture_output=True
    )
    assert r.returncode == 1 and b"FAIL" in r.stdout
