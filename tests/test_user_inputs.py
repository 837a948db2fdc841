"""Your own inputs: a platform preset file (``--set platform=FILE.toml``) and workloads of your own
(a TOML file, ``module.py:function``, an entry point), with file:key errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab.cli import main
from cmdqv_lab.errors import ParamError
from cmdqv_lab.platform import load_platform, read_preset
from cmdqv_lab.scenarios import simulate
from cmdqv_lab.workloads.registry import generate, get_workload
from cmdqv_lab.workloads.stream import validate

ROOT = Path(__file__).resolve().parents[1]


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    main([*args, "--json"])
    return json.loads(capsys.readouterr().out)


def cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err.strip()


# ----------------------------------------------------------------------------- platform files
def test_a_copy_of_d06_gives_the_metrics_of_d06(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "data" / "params" / "d06.toml", tmp_path / "mybox.toml")
    monkeypatch.chdir(tmp_path)
    args = ["simulate", "host-map-unmap", "--set", "cpus=4", "--ops", "3000", "--seed", "2"]
    mine = cli_json(capsys, *args, "--set", "platform=mybox.toml")
    d06 = cli_json(capsys, *args, "--set", "platform=d06")
    assert mine["metrics"] == d06["metrics"]
    assert mine["params"]["platform"] == "mybox.toml"
    assert {k: v for k, v in mine["params"].items() if k != "platform"} == {
        k: v for k, v in d06["params"].items() if k != "platform"
    }
    # and a changed value in the file changes the run
    text = re.sub(
        r"(?m)^tlbi_service_ns = .*$",
        "tlbi_service_ns = 300.0",
        (tmp_path / "mybox.toml").read_text(),
        count=1,
    )
    (tmp_path / "slow.toml").write_text(text)
    slow = cli_json(capsys, *args, "--set", "platform=slow.toml")
    assert slow["params"]["tlbi_service_ns"] == 300.0 and slow["metrics"] != d06["metrics"]


def test_preset_files_by_path_and_in_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sub" / "box.toml"
    path.parent.mkdir()
    path.write_text(
        '[preset]\nname = "box"\n[values]\nline_xfer_ns = 60.0\n[provenance]\nline_xfer_ns = "measured"\n'
    )
    assert load_platform(str(path)).line_xfer_ns == 60.0
    assert read_preset(str(path)).name == "box"
    main(["params", str(path)])
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.split()[:1] == ["line_xfer_ns"])
    assert row.split()[1] == "60" and "measured" in row


#: A preset file with a mistake: (its text, the error).
BAD_PRESETS = [
        ("[values]\ntlbi_servce_ns = 1.0\n", "bad.toml:values.tlbi_servce_ns: unknown platform parameter; did you mean tlbi_service_ns?"),
        ("[values]\ntlbi_service_ns = -5.0\n", "bad.toml:values.tlbi_service_ns: tlbi_service_ns=-5 is out of range: allowed 0 .. 100000 ns"),
        ("[values]\nhw_sync_insert = 1\n", "bad.toml:values.hw_sync_insert: hw_sync_insert=1 is not true/false"),
        ("[values]\nsync_wait = \"irq\"\n", "bad.toml:values.sync_wait: sync_wait='irq' is not allowed: one of msi, sev, poll, busy"),
        ("[provenance]\ncmd_write_ns = \"guess\"\n", "bad.toml:provenance.cmd_write_ns: 'guess' is not one of measured"),
        ("[sources]\nnope_ns = \"x\"\n", "bad.toml:sources.nope_ns: unknown platform parameter"),
        ("values = 3\n", "bad.toml:values: must be a table"),
        ("[values\n", "bad.toml: not valid TOML"),
]  # fmt: skip


def test_missing_preset_file_and_lookalike_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamError, match=re.escape("platform='mine.toml': no such preset file")):
        read_preset("mine.toml")
    # a value with a path separator is a file, relative to the current directory, never a lookup
    # elsewhere in the package
    with pytest.raises(
        ParamError,
        match=re.escape(
            "platform='../calibration/d06' is not allowed: one of d06, generic, grace, or a preset file"
        ),
    ):
        read_preset("../calibration/d06")


# ----------------------------------------------------------------------------- TOML workloads
#: The README's example workload (threads = 4, ops = 20000, 9 unmaps : 1 detach), copied and
#: run from a temporary directory.
WORKLOAD = (ROOT / "examples" / "my-unmap.toml").read_text()


@pytest.fixture
def workload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "my.toml").write_text(WORKLOAD)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_toml_workload_generates_its_shapes(workload_dir: Path) -> None:
    w = generate("my.toml", {"threads": 3, "ops": 400}, seed=4)
    assert len(w.streams) == 3 and w.cpus == ((-1, 0), (-1, 1), (-1, 2)) and not w.open_loop
    df = validate(pl.concat([pl.concat(list(s)) for s in w.streams]))
    ops = df.group_by("cpu", "op").agg(pl.col("kind").first(), pl.col("opcode"), pl.col("batch").n_unique())
    assert ops.height == 400
    unmaps = ops.filter(pl.col("kind") == "unmap")
    detaches = ops.filter(pl.col("kind") == "detach")
    assert 0.05 < detaches.height / ops.height < 0.2  # weight 1 of 10
    assert unmaps["opcode"][0].to_list() == [18, 18, 18, 18, 70] and set(unmaps["batch"]) == {1}
    assert detaches["opcode"][0].to_list() == [5, 70, 17, 70] and set(detaches["batch"]) == {2}
    # consecutive TLBIs of an unmap hit consecutive pages; every batch waits for its SYNC
    first = df.filter((pl.col("cpu") == 0) & (pl.col("op") == 0) & (pl.col("opcode") == 18))["addr"].to_list()
    assert [a - first[0] for a in first] == [0, 4096, 8192, 12288] or unmaps.height == 0
    assert df["sync"].all()
    # think gaps: uniform around 1500 ns, in ps
    gaps = df.group_by("cpu", "op").agg(pl.col("t_ps").first())["t_ps"]
    assert gaps.min() >= 750_000 and gaps.max() < 2_250_000 and abs(gaps.mean() - 1.5e6) < 1e5


def test_same_seed_same_workload_and_chunks_do_not_matter(workload_dir: Path) -> None:
    def frame(**kw: object) -> pl.DataFrame:
        w = generate("my.toml", {"ops": 400, **kw}, seed=7)
        return pl.concat([pl.concat(list(s)) for s in w.streams])

    assert frame().equals(frame())
    assert frame(chunk=7).equals(frame(chunk=4096))
    assert not frame().equals(generate_other_seed())


def generate_other_seed() -> pl.DataFrame:
    w = generate("my.toml", {"ops": 400}, seed=8)
    return pl.concat([pl.concat(list(s)) for s in w.streams])


def test_a_toml_workload_runs_on_host_and_guests(
    workload_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = cli_json(capsys, "simulate", "host-my.toml", "--set", "threads=4", "--ops", "800")
    assert host["metrics"]["ops"] == 800 and host["params"]["threads"] == 4
    assert host["params"]["definition"].startswith("sha256:")
    guest = cli_json(capsys, "simulate", "guest-wl-my.toml", "--set", "vms=2", "--ops", "400")
    assert guest["metrics"]["ops"] == 400 and guest["metrics"]["exits"] > 0  # CFGI_CD traps (policy scan)
    out = capsys.readouterr().out
    main(["describe", "host-my.toml"])
    out = capsys.readouterr().out
    assert out.startswith("host-my.toml: the my-unmap workload (strict 4-page unmaps")
    assert any(ln.split()[:2] == ["threads", "4"] for ln in out.splitlines())  # the file's default


def test_an_edited_workload_file_is_reread_and_changes_its_definition(workload_dir: Path) -> None:
    a = simulate("host-my.toml", {}, seed=1, count=200)
    (workload_dir / "my.toml").write_text(WORKLOAD.replace('"4 CMD_TLBI_NH_VA"', '"8 CMD_TLBI_NH_VA"'))
    import os

    os.utime(workload_dir / "my.toml", (1, 1))  # a new mtime even on a coarse clock
    b = simulate("host-my.toml", {}, seed=1, count=200)
    assert a.params["definition"] != b.params["definition"]
    assert b.metrics["commands"] > a.metrics["commands"]


#: A workload file with a mistake: (its text, the error).
BAD_WORKLOADS = [
        ("[workload]\nops = 1\n", "bad.toml:op: no [[op]] shapes"),
        ("[[op]]\nbatches = [[\"CMD_TLBI_NH_VX\"]]\n", "bad.toml:op[0].batches[0][0]: unknown opcode 'CMD_TLBI_NH_VX'; did you mean CMD_TLBI_NH_VA"),
        ("[[op]]\nbatches = [[\"x2 CMD_SYNC\"]]\n", "bad.toml:op[0].batches[0][0]: 'x2 CMD_SYNC' is not \"OPCODE\" or \"N OPCODE\""),
        ("[[op]]\nbatch = [[\"CMD_SYNC\"]]\n", "bad.toml:op[0].batch: unknown key; did you mean batches?"),
        ("[[op]]\nweight = 0\nbatches = [[\"CMD_SYNC\"]]\n", "bad.toml:op[0].weight: 0 must be a number > 0"),
        ("[[op]]\nbatches = []\n", "bad.toml:op[0].batches: must be a non-empty list"),
        ("[workload]\nthread = 2\n[[op]]\nbatches = [[\"CMD_SYNC\"]]\n", "bad.toml:workload.thread: unknown key; did you mean threads?"),
        ("[workload]\nthreads = 0\n[[op]]\nbatches = [[\"CMD_SYNC\"]]\n", "bad.toml:workload.threads: threads=0 is out of range"),
        ("[workload]\nthink_dist = \"gauss\"\n[[op]]\nbatches = [[\"CMD_SYNC\"]]\n", "bad.toml:workload.think_dist: think_dist='gauss' is not allowed"),
        ("[workloads]\n", "bad.toml:workloads: unknown table; did you mean workload?"),
]  # fmt: skip
USE_PRESET = ("simulate", "host-map-unmap", "--set", "platform=bad.toml", "--ops", "10")
USE_WORKLOAD = ("simulate", "host-bad.toml", "--ops", "10")


@pytest.mark.parametrize(
    ("use", "text", "message"),
    [(USE_PRESET, t, m) for t, m in BAD_PRESETS] + [(USE_WORKLOAD, t, m) for t, m in BAD_WORKLOADS],
)
def test_bad_files_name_file_and_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    use: tuple[str, ...],
    text: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text(text)
    assert message in cli_error(capsys, *use)


def test_unknown_workload_names_get_suggestions() -> None:
    with pytest.raises(ParamError, match=r"unknown workload 'dma-mapp': did you mean dma-map\?"):
        get_workload("dma-mapp")
    with pytest.raises(ParamError, match=re.escape("workload 'nothere.toml': no such file nothere.toml")):
        get_workload("nothere.toml")
    with pytest.raises(ParamError, match=r"'thread' for scenario host-dma-map: did you mean threads\?"):
        simulate("host-dma-map", {"thread": "2"})


def test_the_definition_cannot_be_set(workload_dir: Path) -> None:
    with pytest.raises(ParamError, match="definition='sha256:0' is not allowed: one of sha256:"):
        simulate("host-my.toml", {"definition": "sha256:0"}, count=10)


# ----------------------------------------------------------------------------- functions
FUNCTION = '''\
"""A workload function: every op one TLBI_NH_ASID + SYNC."""
import polars as pl


def asid_flush(p, seed):
    """one TLBI_NH_ASID + CMD_SYNC per op, on every CPU"""
    n = p.ops // p.threads
    rows = []
    for cpu in range(p.threads):
        for op in range(n):
            rows += [(cpu, op, op, 17, 1), (cpu, op, op, 70, None)]
    return pl.DataFrame(rows, schema=["cpu", "op", "batch", "opcode", "asid"], orient="row").with_columns(
        pl.lit(int(p.think_ns * 1000)).alias("t_ps")
    )
'''


def test_a_function_by_path_runs_as_a_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_wl.py").write_text(FUNCTION)
    monkeypatch.chdir(tmp_path)
    r = simulate("host-my_wl.py:asid_flush", {"threads": 2}, seed=0, count=100)
    assert r.metrics["ops"] == 100 and r.metrics["commands"] == 200 and r.metrics["syncs"] == 100
    spec = get_workload("my_wl.py:asid_flush")
    assert spec.doc == "one TLBI_NH_ASID + CMD_SYNC per op, on every CPU"
    with pytest.raises(ParamError, match=re.escape("my_wl.py has no 'asid_flsh'; did you mean asid_flush?")):
        get_workload("my_wl.py:asid_flsh")


def test_an_entry_point_workload(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An installed package's ``cmdqv_lab.workloads`` entry point names a workload (faked here)."""
    from importlib.metadata import EntryPoint

    from cmdqv_lab.workloads import registry

    (tmp_path / "plugin_wl.py").write_text(FUNCTION)
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint("asid-flush", "plugin_wl:asid_flush", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"asid-flush": ep})
    monkeypatch.setattr(registry, "WORKLOADS", dict(registry.WORKLOADS))
    assert "asid-flush" in registry.plugin_names()
    r = simulate("host-asid-flush", {"threads": 1}, seed=0, count=50)
    assert r.metrics["commands"] == 100
    broken = EntryPoint("broken", "no_such_module_xyz:f", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"broken": broken})
    with pytest.raises(ParamError, match=r"workload entry point 'broken' .* cannot load"):
        get_workload("broken")


def test_the_example_files_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/ holds the README's own-workload examples; they run as their comments say."""
    monkeypatch.chdir(ROOT)
    r = simulate("host-examples/my-unmap.toml", {"threads": 8}, count=800)
    assert r.metrics["ops"] == 800 and r.params["threads"] == 8
    r = simulate("guest-wl-examples/my-unmap.toml", {"vms": 2}, count=400)
    assert r.metrics["ops"] == 400
    r = simulate("host-examples/my_workload.py:asid_flush", {"threads": 4}, count=400)
    assert r.metrics["commands"] == 800
