"""``cmdqv-lab reproduce``: the committed results reproduce; tampered copies are caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab.cli import main
from cmdqv_lab.experiments.cache import content_sha256, file_digest, parquet_bytes
from cmdqv_lab.experiments.manifest import dumps_manifest, load_sweep, read_manifest
from cmdqv_lab.experiments.packed import RESULTS_FILE, unpack_rows
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
        # packed: one Parquet file and the manifest, nothing else (issue 12: at most a few files per sweep)
        assert sorted(p.name for p in d.iterdir()) == ["manifest.json", RESULTS_FILE]
        packed = pl.read_parquet(d / RESULTS_FILE)
        assert packed["point"].to_list() == [e["index"] for e in m["points"]]
        for row, e in zip(unpack_rows(packed, m["packed"]["schemas"]), m["points"]):
            assert content_sha256(row) == e["content_sha256"]
        assert content_sha256(load_sweep(d)) == m["combined_sha256"]


def test_quick_reproduce_passes_on_the_committed_results(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["reproduce", "--quick", "--workers", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for d in published_dirs():
        line = next(x for x in out.splitlines() if x.startswith(d.name + " "))
        n = len(read_manifest(d)["points"])
        assert line.split()[1:] == [str(n), str(n), "4", "4", "0", "0", "ok"], line


def _copy(tmp_path: Path) -> tuple[Path, dict, dict]:  # type: ignore[type-arg]
    src = published_dirs()[0]
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    m = read_manifest(dst)
    entry = m["points"][quick_selection(len(m["points"]))[1]]
    return dst, m, entry


def _forge(d: Path, m: dict, point: int, *, rehash: bool) -> None:  # type: ignore[type-arg]
    """Change ops_per_s of one point in results.parquet; update the manifest's byte checksum and
    (``rehash``) the point's content hashes and combined hash, as a careful forger would."""
    path = d / RESULTS_FILE
    packed = pl.read_parquet(path)
    packed = packed.with_columns(
        pl.when(pl.col("point") == point).then(pl.col("ops_per_s") * 1.001).otherwise(pl.col("ops_per_s"))
    )
    if rehash:
        row = unpack_rows(packed, m["packed"]["schemas"])[point]
        m["points"][point]["content_sha256"] = content_sha256(row)
        packed = packed.with_columns(
            pl.when(pl.col("point") == point)
            .then(pl.lit(content_sha256(row)))
            .otherwise(pl.col("content_sha256"))
            .alias("content_sha256")
        )
        m["combined_sha256"] = content_sha256(packed.drop("key", "content_sha256", "schema"))
    data = parquet_bytes(packed)
    path.write_bytes(data)
    m["packed"]["files"][RESULTS_FILE] = file_digest(data)
    (d / "manifest.json").write_text(dumps_manifest(m))


def test_consistently_forged_result_is_reported_different(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d, m, entry = _copy(tmp_path)
    _forge(d, m, entry["index"], rehash=True)
    assert _run(["reproduce", "--quick", "--workers", "1", "--no-progress", str(d)]) == 1
    out = capsys.readouterr().out
    n = str(len(m["points"]))
    assert out.splitlines()[1].split()[1:] == [n, n, "4", "3", "1", "0", "FAIL"]
    assert f"point {entry['index']} (" in out and "ops_per_s" in out


def test_a_changed_number_outside_the_quick_sample_is_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--quick re-simulates 4 points but verifies every stored checksum (issue 17, item 6)."""
    d, m, _ = _copy(tmp_path)
    victim = next(i for i in range(len(m["points"])) if i not in quick_selection(len(m["points"])))
    _forge(d, m, victim, rehash=False)  # the file's byte checksum updated, the point's content hash not
    assert _run(["reproduce", "--quick", "--workers", "1", "--no-progress", str(d)]) == 1
    out = capsys.readouterr().out
    n = len(m["points"])
    assert out.splitlines()[1].split()[1:] == [str(n), str(n - 1), "4", "4", "0", "1", "FAIL"]
    assert f"point {victim} does not match its content checksum" in out


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
def test_damaged_result_is_reported_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    d, m, _ = _copy(tmp_path)
    path = d / RESULTS_FILE
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[:-50])
    elif damage == "flip":
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    else:
        path.unlink()
    assert _run(["reproduce", "--quick", "--workers", "1", "--no-progress", str(d)]) == 1
    out = capsys.readouterr().out
    n = str(len(m["points"]))
    assert out.splitlines()[1].split()[1:] == [n, "0", "0", "0", "0", n, "FAIL"]
    assert ("missing" if damage == "delete" else "bytes do not match their checksum") in out


def test_full_reproduce_of_a_fresh_sweep_is_identical_everywhere(tmp_path: Path) -> None:
    text = 'scenario = "open-queue"\ncount = 3000\nreplicates = 2\n[grid]\nburst = [1.0, 4.0]\nrate_mcmd_s = [2.0, 9.0]\n'
    run_sweep(parse_spec(text, "oq.toml"), tmp_path / "oq", workers=1, progress=False)
    (chk,) = reproduce([tmp_path / "oq"], workers=1, progress=False)
    assert (chk.points, chk.verified, chk.checked, chk.identical, chk.different, chk.missing) == (
        8,
        8,
        8,
        8,
        0,
        0,
    )
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


def test_without_arguments_it_uses_the_project_it_runs_from(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "cmdqv_lab.cli", "reproduce", "--quick"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "not inside a cmdqv-lab checkout" in r.stderr
    assert r.stderr.count("\n") == 1
    # a project: a pyproject.toml naming cmdqv-lab, with a published sweep in data/results
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "cmdqv-lab"\n')
    src = published_dirs()[0]
    shutil.copytree(src, tmp_path / "data" / "results" / src.name)
    (tmp_path / "sub").mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "cmdqv_lab.cli", "reproduce", "--quick", "--workers", "1", "--no-progress"],
        capture_output=True,
        text=True,
        cwd=tmp_path / "sub",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"reproduce: 1 published sweeps in {tmp_path.resolve() / 'data' / 'results'}" in r.stderr
    assert r.stdout.splitlines()[1].startswith(src.name + " ")
