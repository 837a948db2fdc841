"""Hostile and oversized input (issue 17): one line on stderr and a distinct exit status, at once.

Exit statuses (README, "The command line"): 2 bad input, 3 a worker died twice, 4 disk full,
5 read-only output, 6 out of memory, 7 input nested too deeply, 8 input too large.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cmdqv_lab.errors import SpecError
from cmdqv_lab.experiments.cache import ResultError
from cmdqv_lab.experiments.manifest import load_sweep
from cmdqv_lab.experiments.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmdqv_lab.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def one_line(r: subprocess.CompletedProcess[str], status: int, fragment: str) -> None:
    assert r.returncode == status, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert fragment in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("value", "hint"),
    [("４", ""), ("0x10", "; write 16"), ("1_6", "; write 16"), ("4.0", "; write 4"), ("9" * 5000, "")],
)
def test_integers_are_plain_ascii_decimal(value: str, hint: str) -> None:
    r = cli("simulate", "-s", "host-map-unmap", "--set", f"cpus={value}", "--ops", "100")
    shown = value if len(value) <= 40 else value[:37] + "..."
    one_line(
        r, 2, f"cpus={shown!r} is not an integer: allowed 1 .. 4000 CPUs (plain decimal digits 0-9{hint})"
    )


def test_platform_names_are_preset_names_not_paths_into_the_package() -> None:
    r = cli("simulate", "-s", "host-map-unmap", "--set", "platform=../calibration/d06", "--ops", "100")
    one_line(r, 2, "platform='../calibration/d06' is not allowed: one of d06, generic, grace")


def test_too_many_entities_are_refused_before_anything_is_built() -> None:
    r = cli("simulate", "-s", "guest-wl-fio", "--set", "vms=1024", "--set", "threads=4096")
    one_line(r, 8, "vms=1024 x threads=4096 = 4194304 issuing CPUs")


def test_a_spec_that_is_a_device_a_bomb_or_too_deep(tmp_path: Path) -> None:
    one_line(
        cli("sweep", "/dev/zero", "--quick"), 8, "/dev/zero: larger than the 1 MiB limit for a spec file"
    )
    bomb = tmp_path / "bomb.toml"
    bomb.write_bytes(gzip.compress(b"a = 1\n" * (1 << 20)))
    one_line(cli("sweep", str(bomb)), 2, "bomb.toml: not UTF-8 text")
    deep = tmp_path / "deep.toml"
    deep.write_text("scenario = " + "[" * 20000 + "]" * 20000 + "\n")
    one_line(cli("sweep", str(deep)), 7, "deep.toml: nested too deeply to parse")


def test_grid_size_and_duplicates_are_checked_before_expansion() -> None:
    from cmdqv_lab.errors import InputTooLargeError

    head = 'scenario = "open-queue"\ncount = 100\nseeds = [0]\n[grid]\n'
    big = head + "rate_mcmd_s = [" + ", ".join(f"{i}.5" for i in range(200_000)) + "]\n"  # 1.6 MB
    with pytest.raises(InputTooLargeError, match=r"big.toml: larger than the 1 MiB limit"):
        parse_spec(big, "big.toml")
    axes = ", ".join(f"{i}.5" for i in range(500))
    wide = head + f"rate_mcmd_s = [{axes}]\nburst = [{axes}]\n"  # 250,000 combinations
    with pytest.raises(SpecError, match=r"wide.toml: grid: more than 100000 points \(the limit\)"):
        parse_spec(wide, "wide.toml")
    dup = head + "rate_mcmd_s = [" + ", ".join(f"{i}.5" for i in range(90_000)) + ", 3.5]\n"
    with pytest.raises(SpecError, match=r"grid.rate_mcmd_s: value 3.5 appears twice"):
        parse_spec(dup, "dup.toml")
    zipped = head + "[[grid.zip]]\nburst = [1.0, 2.0, 1.0]\nrate_mcmd_s = [1.0, 2.0, 1.0]\n"
    with pytest.raises(
        SpecError, match=r"grid.zip\[0\]: row 2 \{'burst': 1.0, 'rate_mcmd_s': 1.0\} appears twice"
    ):
        parse_spec(zipped, "zip.toml")


def test_a_trace_line_with_a_5000_digit_integer(tmp_path: Path) -> None:
    p = tmp_path / "big.log"
    p.write_text("smmuv3_cmdq_consume prod=" + "9" * 5000 + " cons=0 prod.wrap=0 cons.wrap=0\n")
    one_line(cli("trace", "summary", str(p)), 2, f"{p}:1: line longer than 4096 bytes")
    p.write_text("smmuv3_cmdq_consume prod=" + "9" * 4000 + " cons=0 prod.wrap=0 cons.wrap=0\n")
    one_line(
        cli("trace", "summary", str(p)),
        2,
        f"{p}:1: smmuv3_cmdq_consume: prod=99999999...(4000 digits) out of",
    )


def test_a_trace_that_is_a_device_or_a_bomb(tmp_path: Path) -> None:
    one_line(cli("trace", "summary", "/dev/zero"), 2, "/dev/zero: binary file (NUL byte at offset 0)")
    one_line(cli("check", "/dev/null", "--policy", "scan"), 2, "/dev/null: empty trace (no lines)")
    bomb = tmp_path / "bomb.log.gz"
    bomb.write_bytes(gzip.compress(b"\n" * (256 << 20), compresslevel=9))
    one_line(cli("trace", "summary", str(bomb)), 8, "gzip data inflating more than 100 times")


def test_a_damaged_manifest_is_a_result_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ResultError, match=r"manifest.json: nested too deeply to parse"):
        load_sweep(tmp_path)
    (tmp_path / "manifest.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ResultError, match=r"manifest.json: not valid JSON"):
        load_sweep(tmp_path)


OOM = """
import resource, sys
import numpy, polars, numba
import cmdqv_lab.scenarios.host, cmdqv_lab.engine.runner  # the engine, loaded before the limit
from cmdqv_lab.cli import main
size = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + (600 << 20), size + (600 << 20)))
main(sys.argv[1:])
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_out_of_memory_is_one_line() -> None:
    """An address-space limit 600 MB above what is loaded; 4,000 CPUs need ~2 GB of engine state."""
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            OOM,
            "simulate",
            "-s",
            "host-map-unmap",
            "--set",
            "cpus=4000",
            "--ops",
            "10000",
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )
    one_line(r, 6, "cmdqv-lab: error: out of memory")
