"""``cmdqv-lab check``: exit codes (1 hazards, 0 clean, 2 usage), hazard lines, JSON, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cmdqv_lab.cli import main

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "data" / "traces" / "qemu-smmuv3-linux6.1-smp2-strict.log.gz"
SMALL = ("--set", "ops=400")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(["check", *args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_first_opcode_fails_with_positions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "guest-mixed", "--policy", "first-opcode", *SMALL)
    assert code == 1 and err == ""
    ill = re.findall(r"^ILL +vm\d cpu\d op \d+ batch \d+\[\d+\]  CMD_\w+ on vcmdq\d+@\d+: .+$", out, re.M)
    q2 = re.findall(
        r"^Q2 +vm\d cpu\d op \d+ batch \d+\[\d+\]  CMD_TLBI_NH_VA on vcmdq\d+@\d+: .+cmdq@\d+", out, re.M
    )
    assert ill and q2
    m = re.search(r"ILL on a guest-owned VCMDQ (\d+)  Q2 \(waited SYNC on another queue\) (\d+)", out)
    assert m and (int(m[1]), int(m[2])) == (len(ill), len(q2))
    assert out.rstrip().endswith("hazards under policy first-opcode") and "FAIL:" in out


@pytest.mark.parametrize("policy", ["scan", "split", "homogeneous", "all-trap"])
def test_safe_policies_pass(capsys: pytest.CaptureFixture[str], policy: str) -> None:
    code, out, _ = run(capsys, "guest-mixed", "--policy", policy, *SMALL)
    assert code == 0 and out.rstrip().endswith(f"clean: no ILL or SYNC hazard under policy {policy}")


def test_rely_hw_sync_fails_with_q3_and_limit(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "guest-mixed", "--policy", "rely-hw-sync", "--limit", "2", *SMALL)
    assert code == 1
    assert len(re.findall(r"^Q3 ", out, re.M)) == 2 and re.search(
        r"^\.\.\. [\d,]+ more hazards not shown", out, re.M
    )
    assert not re.findall(r"^(ILL|Q2) ", out, re.M)


def test_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "guest-mixed", "--policy", "first-opcode", "--json", *SMALL)
    d = json.loads(out)
    assert code == 1 and d["policy"] == "first-opcode" and not d["ok"]
    assert set(d["counts"]) == {"ill", "q2", "q3", "unsynced", "split_batches", "split_across_queues"}
    assert (
        len(d["hazards"])
        == d["counts"]["ill"] + d["counts"]["q2"] + d["counts"]["q3"] + d["counts"]["unsynced"]
    )
    h = d["hazards"][0]
    assert set(h) >= {"kind", "vm", "cpu", "op", "batch", "index", "line", "opcode", "queue", "pos", "reason"}
    assert (
        d["stream"]["commands"] > 0
        and d["disagreements"] == []
        and d["model"]["errors"]["ILL"] == d["counts"]["ill"]
    )


def test_trace_clean_and_all_vcmdq_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(TRACE), "--policy", "first-opcode")
    assert code == 0 and "3,742 commands" in out and "guests: vm0 x2 vCPUs" in out
    code, out, _ = run(capsys, str(TRACE), "--policy", "all-vcmdq")
    assert code == 1 and "ILL       vm0 cpu0 op 0 batch 0[0] line 3  CMD_CFGI_STE_RANGE on vcmdq2@0" in out


def test_policy_all_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "guest-mixed", "--policy", "all", "--json", *SMALL)
    rows = {r["policy"]: r for r in json.loads(out)["policies"]}
    assert code == 1 and set(rows) == {
        "first-opcode",
        "scan",
        "split",
        "homogeneous",
        "rely-hw-sync",
        "all-trap",
        "all-vcmdq",
        "scan-fanout",
    }
    assert rows["scan"]["ok"] and not rows["first-opcode"]["ok"] and rows["scan-fanout"]["ok"]


def test_policy_all_text_has_a_table_a_legend_and_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    from cmdqv_lab.checker.cli import COMPARE_COLUMNS

    code, out, _ = run(capsys, "guest-mixed", "--policy", "all", *SMALL)
    _, js, _ = run(capsys, "guest-mixed", "--policy", "all", "--json", *SMALL)
    rows = {r["policy"]: r for r in json.loads(js)["policies"]}
    lines = out.splitlines()
    assert code == 1 and lines[0] == "check guest-mixed: every routing policy"
    header = next(ln for ln in lines if "policy" in ln and "verdict" in ln)
    assert [c.strip() for c in header.strip("│").split("┆")] == [h for h, _, _ in COMPARE_COLUMNS]
    body = {
        ln.strip("│").split("┆")[0].strip(): ln for ln in lines if ln.startswith("│") and ln is not header
    }
    assert set(rows) <= set(body)
    for name, r in rows.items():
        cells = [c.strip().replace(",", "") for c in body[name].strip("│").split("┆")]
        assert cells[1] == ("clean" if r["ok"] else "FAIL")
        assert cells[2:6] == [str(r[k]) for k in ("ill", "q2", "q3", "unsynced")]
    # every column but the policy is explained once, in the legend
    legend = lines[lines.index("columns:") + 1 : -1]
    assert [ln.split()[0] for ln in legend] == [h for h, _, _ in COMPARE_COLUMNS[1:]]
    verdict = lines[-1]
    clean = [p for p, r in rows.items() if r["ok"]]
    assert verdict.startswith(f"verdict: {len(clean)} of {len(rows)} policies clean ({', '.join(clean)})")
    first = rows["first-opcode"]
    assert f"first-opcode ({first['ill']} ILL, {first['q2']} Q2)" in verdict


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--list")
    assert code == 0 and "guest-mixed" in out and "dma-map" in out and "sid_pairs_per_vintf" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["guest-mixed"], "--policy is required"),
        (["--policy", "scan"], "give a TRACE_FILE or SCENARIO"),
        (["guest-mixed", "--policy", "nope"], "--policy 'nope' is not allowed: one of first-opcode, scan"),
        (["guest-mixed", "--policy", "scna"], "--policy 'scna' is not allowed: did you mean scan? (one of"),
        (["guest-mixed", "--policy", "scan", "--set", "bogus=1"], "unknown parameter 'bogus'"),
        (["guest-mixed", "--policy", "scan", "--set", "oops"], "--set 'oops' is malformed"),
        (["guest-mixed", "--policy", "scan", "--set", "num_vintfs=3"], "num_vintfs=3 is not a power of two"),
        (
            ["guest-mixed", "--policy", "scan", "--set", "unsupported_frac=2"],
            "unsupported_frac=2",
        ),
        (["guest-mixed", "--policy", "scan", "--seed", "-1"], "--seed=-1 must be >= 0"),
        (
            ["no-such-scenario", "--policy", "scan"],
            "'no-such-scenario' is neither a trace file nor a scenario",
        ),
        (["/nonexistent/trace.log.gz", "--policy", "scan"], "/nonexistent/trace.log.gz"),
        ([str(TRACE), "--policy", "scan", "--set", "ops=3"], "unknown parameter 'ops' for a trace file"),
        (
            [str(TRACE), "--policy", "scan", "--set", "devices=8,x"],
            "devices='8,x' is not a comma-separated list",
        ),
    ],
)
def test_one_line_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_console_script_exit_status() -> None:
    exe = [sys.executable, "-m", "cmdqv_lab.cli", "check", "guest-mixed", *SMALL, "--limit", "1"]
    assert subprocess.run([*exe, "--policy", "first-opcode"], capture_output=True).returncode == 1
    assert subprocess.run([*exe, "--policy", "scan"], capture_output=True).returncode == 0
