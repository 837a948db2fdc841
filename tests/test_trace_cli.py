"""``cmdqv-lab trace``: exit codes, JSON keys, one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cmdqv_lab.cli import main
from cmdqv_lab.workloads.qemu_trace import parse_trace

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "traces" / "qemu-smmuv3-linux6.1-smp2-strict.log.gz"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "trace", "summary", str(SAMPLE))
    assert code == 0 and err == ""
    assert "commands   3742" in out
    assert "doorbells  1874" in out
    assert "CMD_TLBI_NH_VA" in out and "CMD_SYNC" in out
    assert "ASIDs      1, 2" in out and "SIDs       0x8, 0x10" in out


def test_summary_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "trace", "summary", "--json", str(SAMPLE))
    assert code == 0
    s = json.loads(out)
    for key in ("commands", "opcodes", "doorbells", "batch_sizes", "asids", "sids", "duration_s"):
        assert key in s, key
    want = parse_trace(SAMPLE).summary()
    assert s["commands"] == want["commands"] == sum(s["opcodes"].values())
    assert s["opcodes"]["CMD_TLBI_NH_VA"] == 1860 and s["opcodes"]["CMD_SYNC"] == 1872
    assert {int(k): v for k, v in s["batch_sizes"].items()} == want["batch_sizes"]
    assert s["doorbells"] == sum(s["batch_sizes"].values())


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    msg = one_line_error(*run(capsys, "trace", "summary", str(tmp_path / "none.log.gz")))
    assert msg == f"cmdqv-lab: error: {tmp_path / 'none.log.gz'}: no such file"


def test_binary_file_and_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)))
    assert "binary file" in one_line_error(*run(capsys, "trace", "summary", "--json", str(binary)))
    assert "is a directory" in one_line_error(*run(capsys, "trace", "summary", str(tmp_path)))


def test_malformed_line_and_lenient(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.log"
    bad.write_text("smmuv3_cmdq_consume prod=1 cons=0 prod.wrap=0 cons.wrap=0\nsmmuv3_cmdq_opcode <--- SMMU_CMD_SYNC\n"
                   "smmuv3_cmdq_opcode <--- SMMU_CMD_SYNC\n"
                   "smmuv3_cmdq_consume_out prod:1, cons:1, prod_wrap:0, cons_wrap:0 \n")  # fmt: skip
    msg = one_line_error(*run(capsys, "trace", "summary", str(bad)))
    assert msg.startswith(f"cmdqv-lab: error: {bad}:3: smmuv3_cmdq_opcode with no preceding")
    code, out, _ = run(capsys, "trace", "summary", "--json", "--lenient", str(bad))
    assert code == 0
    s = json.loads(out)
    assert s["commands"] == 1 and s["malformed"] == {"sequence": 1}
    code, out, _ = run(capsys, "trace", "summary", "--lenient", str(bad))
    assert code == 0 and "malformed 1" in out and "sequence" in out


def test_trace_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "trace", "--help")
    assert code == 0 and "summary" in out and "capture" in out
    code, out, _ = run(capsys, "trace", "capture", "--help")
    assert code == 0 and "--vcpus" in out and "--mode" in out and "--timeout" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--vcpus", "0"], "vcpus=0 out of range 1 .. 16"),
        (["--mode", "fast"], "'fast' is not one of 'strict', 'lazy'"),
        (["--bytes", "1X"], "size '1X': expected a number"),
        (["--block-size", "1000"], "block_sizes=1000 out of range"),
        (["--jobs", "100"], "jobs=100 out of range 1 .. 64"),
    ],
)
def test_capture_rejects_bad_options_before_doing_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], fragment: str
) -> None:
    msg = one_line_error(
        *run(capsys, "trace", "capture", "--out", str(tmp_path), "--qemu", "/nonexistent", *args)
    )
    assert fragment in msg
    assert list(tmp_path.iterdir()) == []


def test_capture_says_what_is_missing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    msg = one_line_error(*run(capsys, "trace", "capture", "--out", str(tmp_path), "--qemu", "no-such-qemu-binary",
                              "--no-install"))  # fmt: skip
    assert "no-such-qemu-binary not found on PATH" in msg and "qemu-system-arm" in msg


def test_console_entry_point_prints_one_line(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "cmdqv_lab.cli", "trace", "summary", str(tmp_path / "x.log")],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip() == f"cmdqv-lab: error: {tmp_path / 'x.log'}: no such file"
