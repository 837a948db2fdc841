"""`cmdqv-lab simulate`: JSON contract, readable table, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cmdqv_lab.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cmdqv_lab.cli", *args], capture_output=True, text=True)


def test_json_has_every_documented_key() -> None:
    p = run(
        "simulate",
        "--scenario",
        "host-map-unmap",
        "--set",
        "cpus=4",
        "--ops",
        "2000",
        "--seed",
        "3",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert {"scenario", "seed", "params", "metrics", "wall_s"} <= set(out)
    assert out["seed"] == 3 and out["params"]["cpus"] == 4 and out["params"]["platform"] == "d06"
    m = out["metrics"]
    for key in ("ops", "commands", "sim_time_ns", "ops_per_s", "ops_per_s_per_cpu", "smmu_busy_fraction",
                "cas_success_ratio", "events"):  # fmt: skip
        assert key in m
    for key in ("op_latency_ns", "queue_wait_ns"):
        assert set(m[key]) == {"mean", "p50", "p99", "max"}
    assert m["ops"] == 2000 and m["commands"] == 4000


def test_open_queue_counts_commands_and_table_output() -> None:
    p = run("simulate", "-s", "open-queue", "--commands", "5000", "--set", "service_dist=exponential")
    assert p.returncode == 0 and "queue_wait_ns" in p.stdout and "5,000" in p.stdout


def test_same_seed_same_json() -> None:
    a = json.loads(run("simulate", "-s", "guest-vcmdq", "--ops", "300", "--seed", "9", "--json").stdout)
    b = json.loads(run("simulate", "-s", "guest-vcmdq", "--ops", "300", "--seed", "9", "--json").stdout)
    assert a["metrics"] == b["metrics"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["simulate", "-s", "nope"], "unknown scenario 'nope'"),
        (["simulate", "-s", "host-map-unmap", "--set", "bogus=1"], "unknown parameter 'bogus'"),
        (["simulate", "-s", "host-map-unmap", "--set", "cpus"], "malformed"),
        (["simulate", "-s", "host-map-unmap", "--set", "cpus=0"], "cpus=0 is out of range"),
        (["simulate", "-s", "host-map-unmap", "--set", "cpus=two"], "is not an integer"),
        (["simulate", "-s", "host-map-unmap", "--set", "submit=fast"], "submit='fast' is not allowed"),
        (["simulate", "-s", "host-map-unmap", "--ops", "-5"], "--ops=-5 must be a positive integer"),
        (["simulate", "-s", "open-queue", "--ops", "10"], "counts commands"),
        (["simulate", "-s", "host-map-unmap", "--set", "platform=nope"], "platform='nope' is not allowed"),
        (["simulate"], "--scenario is required"),
        (["simulate", "--bogus"], "No such option"),
    ],
)
def test_mistakes_are_one_line_with_status_2(args: list[str], needle: str) -> None:
    p = run(*args)
    assert p.returncode == 2
    assert needle in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_list_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    main(["simulate", "--list"])
    out = capsys.readouterr().out
    for name in ("open-queue", "host-map-unmap", "guest-trap", "guest-vcmdq", "guest-fixup", "trace-replay"):
        assert f"{name}:" in out
    assert "line_xfer_ns" in out and "ns" in out
    assert main(["--version"]) in (0, None)
    assert "cmdqv-lab, version" in capsys.readouterr().out
