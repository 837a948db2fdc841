"""`cmdqv-lab simulate` and `describe`: JSON contract, the configuration and units in the text output,
scoped help, and one-line errors (with suggestions) with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cmdqv_lab.cli import main
from cmdqv_lab.platform import read_preset
from tests.cli_helpers import run_cli as cli


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


def test_open_queue_counts_commands_and_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "simulate", "-s", "open-queue", "--commands", "5000", "--set", "service_dist=exponential"
    )
    assert code == 0 and "queue_wait_ns" in out and "5,000" in out


def test_text_output_starts_with_the_configuration_then_metrics_with_units(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(capsys, "simulate", "host-map-unmap", "--set", "cpus=4", "--set", "tlbi_service_ns=200",
                       "--ops", "2000", "--seed", "5")  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("host-map-unmap  seed 5  ops 2,000")
    config = "\n".join(lines[1:3])
    # every scenario parameter, the platform parameter set on the command line (marked), not the others
    for item in (
        "platform=d06",
        "cpus=4",
        "submit=linux-lockfree",
        "queues=main",
        "tlbi_service_ns=200 (set)",
    ):
        assert item in config
    assert "line_xfer_ns" not in out
    rows = {ln.split()[0]: ln for ln in lines if ln.startswith("  ") and not ln.startswith("  config")}
    assert " ops/s " in rows["ops_per_s"] and rows["op_latency_ns"].split()[-12] == "ns"
    assert "fraction" in rows["smmu_busy_fraction"]


def test_same_seed_same_json() -> None:
    a = json.loads(run("simulate", "-s", "guest-vcmdq", "--ops", "300", "--seed", "9", "--json").stdout)
    b = json.loads(run("simulate", "-s", "guest-vcmdq", "--ops", "300", "--seed", "9", "--json").stdout)
    assert a["metrics"] == b["metrics"]


def test_a_positional_scenario_is_the_same_as_dash_s(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--set", "cpus=2", "--ops", "500", "--json"]
    _, a, _ = cli(capsys, "simulate", "host-map-unmap", *args)
    _, b, _ = cli(capsys, "simulate", "-s", "host-map-unmap", *args)
    assert json.loads(a)["metrics"] == json.loads(b)["metrics"]


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
        (["simulate"], "give a scenario: cmdqv-lab simulate SCENARIO"),
        (["simulate", "open-queue", "-s", "host-map-unmap"], "two scenarios given"),
        (["simulate", "--bogus"], "No such option"),
        # suggestions: the closest valid names, not the whole list
        (
            ["simulate", "-s", "host-map-unmap", "--set", "cpu=8"],
            "unknown parameter 'cpu' for scenario host-map-unmap: did you mean cpus? "
            "(cmdqv-lab describe host-map-unmap lists all 75)",
        ),
        (
            ["simulate", "host-map-unmapp"],
            "unknown scenario 'host-map-unmapp': did you mean host-map-unmap? "
            "(cmdqv-lab simulate --list shows every scenario)",
        ),
        (
            ["simulate", "host-map-unmap", "--set", "platform=d6"],
            "platform='d6' is not allowed: did you mean d06?",
        ),
        (["simulate", "host-map-unmap", "--set", "submit=lockfree"], "did you mean linux-lockfree? (one of"),
        (
            ["simulate", "guest-vcmdq", "--set", "policy=scna"],
            "policy='scna' is not allowed: did you mean scan?",
        ),
        (
            ["simulate", "host-map-unmap", "--set", "hw_sync_insert=maybe"],
            "hw_sync_insert='maybe' is not true/false",
        ),
        (["describe", "host-map-unmp"], "did you mean host-map-unmap?"),
        (["params", "grac"], "platform='grac' is not allowed: did you mean grace?"),
    ],
)
def test_mistakes_are_one_line_with_status_2(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = cli(capsys, *args)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_mistakes_through_the_console_script_are_one_line() -> None:
    p = run("simulate", "-s", "host-map-unmap", "--set", "cpu=8")
    assert p.returncode == 2 and "did you mean cpus?" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_list_is_one_line_per_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    from cmdqv_lab.scenarios.base import scenario_names

    code, out, _ = cli(capsys, "simulate", "--list")
    assert code == 0
    listed = [ln.split()[0] for ln in out.splitlines()[1:] if ln.startswith("  ")]
    assert listed == scenario_names()
    assert "line_xfer_ns" not in out  # parameters are for --list -s NAME
    assert "[d06]" in out and "[grace]" in out  # each scenario's default platform preset
    assert main(["--version"]) in (0, None)
    assert "cmdqv-lab, version" in capsys.readouterr().out


def test_list_with_a_scenario_explains_each_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    from cmdqv_lab.platform import Platform
    from cmdqv_lab.scenarios.base import get_scenario

    code, out, _ = cli(capsys, "simulate", "--list", "-s", "host-map-unmap")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) <= 80  # a screen or two
    assert cli(capsys, "describe", "host-map-unmap")[1] == out
    text = {ln.split()[0]: ln for ln in lines if ln.startswith("  ") and ln.split()}
    for name in get_scenario("host-map-unmap").params.field_infos():
        assert name in text
    # the value each preset gives (the scenario's default preset first, marked), not the generic default
    head = next(ln for ln in lines if ln.split()[:2] == ["name", "d06*"])
    assert head.split()[:4] == ["name", "d06*", "generic", "grace"]
    d06, grace = (f"{read_preset(n).values['tlbi_service_ns']:g}" for n in ("d06", "grace"))
    assert text["tlbi_service_ns"].split()[1:5] == [d06, "(assumption)", "250", grace]
    assert "executing one TLBI" in text["tlbi_service_ns"]  # its description
    assert "0 .. 100000 ns" in text["tlbi_service_ns"] and "derived" in text["tlbi_service_ns"]
    assert "true/false" in text["hw_sync_insert"] and "inf" not in out
    assert "1 .. 4000 CPUs" in text["cpus"]
    # the guest-only costs are named once, explained, not listed as if they mattered
    assert "virtualisation (guest scenarios): not used by a host scenario" in out
    assert "trap_user_ns" in out and "trap_user_ns" not in text
    guest = cli(capsys, "describe", "guest-trap")[1]
    assert any(ln.split()[0] == "trap_user_ns" for ln in guest.splitlines() if ln.startswith("  "))
    # every platform parameter appears in both
    for name in Platform.field_infos():
        assert name in out and name in guest


def test_describe_sources_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    out = cli(capsys, "describe", "host-map-unmap", "--sources")[1]
    assert "source (d06): fitted to calibration.md C1 within [500, 4000]" in out  # think_ns
    rows = json.loads(cli(capsys, "describe", "host-map-unmap", "--json")[1])["params"]
    tlbi = next(r for r in rows if r["name"] == "tlbi_service_ns")
    assert tlbi["values"] == {n: read_preset(n).values["tlbi_service_ns"] for n in ("d06", "grace")} | {
        "generic": 250.0
    }
    assert tlbi["unit"] == "ns" and tlbi["doc"] and tlbi["provenance"].startswith("derived")


def test_params_shows_a_preset_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "params", "d06")
    assert code == 0
    row = next(ln for ln in out.splitlines() if ln.split()[:1] == ["tlbi_service_ns"])
    value = f"{read_preset('d06').values['tlbi_service_ns']:g}"
    assert row.split()[1:3] == [value, "0"] and "assumption" in row and "executing one TLBI" in row
    assert "fitted rows:" in out and "predictions (not fitted):" in out


def test_virtualisation_costs_do_not_change_host_scenarios() -> None:
    """What ``describe`` says when it folds the virtualisation group away for host scenarios."""
    from cmdqv_lab.describe import GUEST_GROUP, platform_rows
    from cmdqv_lab.scenarios import simulate

    virt = {r.name: r.values["generic"] for r in platform_rows(["generic"]) if r.group == GUEST_GROUP}
    assert "trap_user_ns" in virt and "irq_latency_ns" in virt
    from cmdqv_lab.platform import field_info

    def other(k: str, v: object) -> object:  # another allowed value of parameter k
        info = field_info(k)
        if isinstance(v, bool):
            return not v
        if isinstance(v, str):
            return next(c for c in info.choices or () if c != v)
        assert isinstance(v, (int, float))
        return v * 3 + 1 if info.hi is None or v * 3 + 1 <= info.hi else info.lo

    changed = {k: other(k, v) for k, v in virt.items()}
    for scenario, extra in [
        ("host-map-unmap", {"cpus": 4}),
        ("host-mixed", {"threads": 2}),
        ("trace-replay", {}),
    ]:
        a = simulate(scenario, extra, seed=1, count=300).metrics
        b = simulate(scenario, {**extra, **changed}, seed=1, count=300).metrics
        assert a == b, scenario
