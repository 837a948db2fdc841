"""The checker on the real Linux 6.1 driver streams captured under QEMU (data/traces)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab.checker.check import CheckResult, check
from cmdqv_lab.checker.scenarios import Source, load_source
from cmdqv_lab.device.cmdqv import GUEST_OPCODES_LINUX
from cmdqv_lab.workloads.qemu_trace import parse_trace
from cmdqv_lab.workloads.trace_stream import num_scale, trace_frame

ROOT = Path(__file__).resolve().parents[1]
TRACES = sorted((ROOT / "data" / "traces").glob("*.log.gz"))
ACCEPTED = {o.name for o in GUEST_OPCODES_LINUX}
CLEAN = ("first-opcode", "scan", "split", "homogeneous", "all-trap")


@cache
def source(path: Path) -> Source:
    return load_source(str(path))


@cache
def result(path: Path, policy: str) -> CheckResult:
    return check(source(path), policy)


def test_there_are_traces() -> None:
    assert len(TRACES) >= 6


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name.removesuffix(".log.gz"))
@pytest.mark.parametrize("policy", CLEAN)
def test_linux_61_stream_is_clean_under_per_batch_policies(path: Path, policy: str) -> None:
    r = result(path, policy)
    assert r.ok, [(h.kind, h.where(), h.reason) for h in r.hazards[:3]]
    assert r.disagreements == [] and r.stream["commands"] == parse_trace(path).commands.height


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name.removesuffix(".log.gz"))
def test_rely_hw_sync_leaves_every_tlbi_to_hardware_syncs(path: Path) -> None:
    c = parse_trace(path).commands
    tlbis = c.filter(pl.col("opcode").is_in(["CMD_TLBI_NH_VA", "CMD_TLBI_NH_ASID"])).height
    r = result(path, "rely-hw-sync")
    assert r.counts == {"ill": 0, "q2": 0, "q3": tlbis, "unsynced": 0} and tlbis > 0


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name.removesuffix(".log.gz"))
def test_all_vcmdq_raises_ill_at_the_trace_lines_of_unsupported_commands(path: Path) -> None:
    c = parse_trace(path).commands
    bad = c.filter(~pl.col("opcode").is_in(list(ACCEPTED)))
    r = result(path, "all-vcmdq")
    assert {h.kind for h in r.hazards} == {"ill"}
    assert [(h.line, h.opcode) for h in r.hazards] == list(zip(bad["line"], bad["opcode"]))
    assert r.model["errors"] == {"ILL": bad.height} and r.model["recoveries"] == bad.height


def test_trace_positions_and_vcpus() -> None:
    path = ROOT / "data" / "traces" / "qemu-smmuv3-linux6.1-smp2-strict.log.gz"
    r = result(path, "all-vcmdq")
    first = r.hazards[0]
    assert (first.opcode, first.vm, first.cpu, first.op, first.batch, first.index, first.line) == (
        "CMD_CFGI_STE_RANGE",
        0,
        0,
        0,
        0,
        0,
        3,
    )
    assert r.stream["vcpus"] == {0: 2} and r.capacity["vms"][0]["matched_sids"] == [8, 16]


def test_trace_frame_ops_end_at_sync_doorbells() -> None:
    path = ROOT / "data" / "traces" / "qemu-smmuv3-linux6.1-smp2-strict.log.gz"
    df, skipped = trace_frame(parse_trace(path))
    assert skipped == 0 and df.height == 3742
    # doorbell 6 (PREFETCH_CONFIG, no SYNC) and doorbell 7 (TLBI_NH_ASID + SYNC) are one op
    rows = df.filter(pl.col("batch").is_in([6, 7])).select("op", "batch", "sync", "opcode").rows()
    assert rows == [(6, 6, False, 1), (6, 7, True, 17), (6, 7, True, 70)]
    rng = df.filter(pl.col("opcode") == 4).select("sid", "range").rows()
    assert rng == [(0, 31)]


@pytest.mark.parametrize("pages", [1, 2, 31, 32, 33, 63, 64, 65, 1000, 1 << 20])
def test_num_scale_covers_at_least_the_pages(pages: int) -> None:
    num, scale = (int(x[0]) for x in num_scale([pages]))  # type: ignore[arg-type]
    covered = (num + 1) << scale
    assert covered >= pages and 0 <= num <= 31
    assert scale == 0 or -(-pages // (1 << (scale - 1))) > 32  # the smallest SCALE that fits NUM <= 31
