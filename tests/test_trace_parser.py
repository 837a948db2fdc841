"""The QEMU trace parser on real traces: every summary count equals an independent count of raw lines."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab.workloads.qemu_trace import (
    BATCH_SCHEMA,
    COMMAND_SCHEMA,
    DOORBELL_SCHEMA,
    parse_text,
    parse_trace,
)

ROOT = Path(__file__).resolve().parents[1]
TRACES = sorted((ROOT / "data" / "traces").glob("*.log.gz"))
SAMPLE = ROOT / "data" / "traces" / "qemu-smmuv3-linux6.1-smp2-strict.log.gz"
SHARED_SAMPLE = ROOT.parent / "shared" / "traces" / SAMPLE.name


def raw_counts(path: Path) -> dict:
    """Count the raw lines without the parser: opcode lines per name, passes, ASIDs, SIDs, times."""
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rt") as f:
        lines = f.read().splitlines()
    ops: Counter[str] = Counter()
    sizes: Counter[int] = Counter()
    asids, sids, times, skipped = set(), set(), [], Counter()
    in_pass = 0
    for line in lines:
        m = re.match(r"(\d+)@(\d+)\.(\d+):(.*)", line)
        body = m.group(4) if m else line
        if m:
            times.append(int(m.group(2)) + int(m.group(3)) / 1e6)
        name = body.split(" ", 1)[0]
        if name == "smmuv3_cmdq_opcode":
            ops["CMD_" + body.split("<--- SMMU_CMD_")[1].strip()] += 1
            in_pass += 1
        elif name == "smmuv3_cmdq_consume_out":
            if in_pass:
                sizes[in_pass] += 1
            in_pass = 0
        elif name in ("smmuv3_cmdq_tlbi_nh_asid", "smmuv3_s1_range_inval", "smmuv3_range_inval"):
            a = int(re.search(r"asid=(-?\d+)", body).group(1))
            if a >= 0:
                asids.add(a)
        elif name == "smmuv3_cmdq_cfgi_ste":
            sids.add(int(body.split("streamid= ")[1], 16))
        elif not name.startswith("smmuv3_cmdq_"):
            skipped[name] += 1
    return {
        "lines": len(lines),
        "opcodes": dict(ops),
        "commands": sum(ops.values()),
        "doorbells": sum(sizes.values()),
        "batch_sizes": dict(sizes),
        "asids": sorted(asids),
        "sids": sorted(sids),
        "duration_s": max(times) - min(times) if times else None,
        "skipped": {
            k: v for k, v in skipped.items() if k not in ("smmuv3_s1_range_inval", "smmuv3_range_inval")
        },
    }


def test_there_are_traces_to_check() -> None:
    names = {p.name for p in TRACES}
    assert SAMPLE.name in names
    for want in ("smp1-strict", "smp1-lazy", "smp4-strict", "smp4-lazy"):
        assert any(want in n for n in names), f"no *{want}* trace in data/traces"


def test_sample_is_the_shared_file() -> None:
    if not SHARED_SAMPLE.exists():
        pytest.skip("the shared directory is not on this machine")
    assert SAMPLE.read_bytes() == SHARED_SAMPLE.read_bytes()


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_summary_equals_raw_line_counts(path: Path) -> None:
    s = parse_trace(path).summary()
    raw = raw_counts(path)
    assert s["lines"] == raw["lines"]
    assert s["opcodes"] == raw["opcodes"]
    assert s["commands"] == raw["commands"]
    assert s["doorbells"] == raw["doorbells"]
    assert s["batch_sizes"] == raw["batch_sizes"]
    assert s["asids"] == raw["asids"]
    assert set(raw["sids"]) <= set(s["sids"])  # CFGI_CD lines also name SIDs
    assert s["duration_s"] == pytest.approx(raw["duration_s"], abs=2e-6)
    assert s["skipped"] == raw["skipped"]
    assert s["malformed"] == {}
    assert s["format"] == "qemu-7/8"  # Debian 12's QEMU 7.2 and the 7.x/8.x sample


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_frames_have_fixed_schemas_and_agree(path: Path) -> None:
    t = parse_trace(path)
    c, d, b = t.commands, t.doorbells, t.batches
    assert c.schema == pl.Schema(COMMAND_SCHEMA)
    assert d.schema == pl.Schema(DOORBELL_SCHEMA)
    assert b.schema == pl.Schema(BATCH_SCHEMA)
    assert c["seq"].to_list() == list(range(c.height))
    assert d["n_commands"].sum() == c.height == b["size"].sum()
    # each doorbell's commands are contiguous, numbered 0.., and sit in consecutive slots
    per = c.group_by("doorbell").agg(
        pl.col("seq").min().alias("first"), pl.len().alias("n"), pl.col("index").max().alias("last_index")
    )
    joined = d.join(per, on="doorbell")
    assert (joined["first"] == joined["first_seq"]).all() and (joined["n"] == joined["n_commands"]).all()
    assert (joined["last_index"] == joined["n_commands"] - 1).all()
    no_error = d.filter(pl.col("error").is_null())
    assert (no_error["cons_after"] == no_error["prod"]).all()
    assert (
        (no_error["cons_after"] - no_error["cons_before"]) == no_error["n_commands"]
    ).all()  # no wrap here
    assert (d["prod_before"].drop_nulls() == d["cons_before"].filter(d["prod_before"].is_not_null())).all()
    assert (c.filter(pl.col("opcode") == "CMD_SYNC")["n_ranges"] == 0).all()
    tlbi = c.filter(pl.col("opcode") == "CMD_TLBI_NH_VA")
    assert tlbi["addr"].null_count() == 0 and (tlbi["num_pages"] >= 1).all() and (tlbi["n_ranges"] >= 1).all()
    assert (b["ends_with_sync"] == (b["last_opcode"] == "CMD_SYNC")).all()
    assert c["time_s"].null_count() == 0 and (c["time_s"].diff().drop_nulls() >= 0).all()


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_provenance_matches_trace(path: Path) -> None:
    prov_path = path.with_name(path.name.removesuffix(".log.gz") + ".json")
    assert prov_path.exists(), f"{path.name} has no provenance JSON"
    prov = json.loads(prov_path.read_text())
    assert prov["trace"] == path.name
    assert prov["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for key in ("kernel", "qemu", "kernel_command_line", "workload", "vcpus", "invalidation", "captured_utc"):
        assert key in prov, f"{prov_path.name}: no {key}"
    assert f"smp{prov['vcpus']}-{prov['invalidation']}" in path.name
    if prov["kernel_command_line"] is not None:  # the shared sample's was not recorded
        strict = "iommu.strict=1" in prov["kernel_command_line"]
        assert strict == (prov["invalidation"] == "strict")
    if "summary" in prov:
        s = parse_trace(path).summary()
        assert prov["summary"]["commands"] == s["commands"] and prov["summary"]["opcodes"] == s["opcodes"]


def test_sample_details() -> None:
    t = parse_trace(SAMPLE)
    c = t.commands
    first = c.row(0, named=True)
    assert (first["opcode"], first["opcode_value"], first["sid"], first["sid_end"]) == (
        "CMD_CFGI_STE_RANGE", 0x04, 0, 0xFFFFFFFF,
    )  # fmt: skip
    va = c.filter(pl.col("opcode") == "CMD_TLBI_NH_VA").row(0, named=True)
    assert (va["asid"], va["vmid"], va["addr"], va["tg"], va["ttl"], va["leaf"]) == (
        2,
        0,
        0xFFFF6000,
        1,
        3,
        True,
    )
    assert t.meta.has_timestamps and t.meta.gzip and t.meta.empty_passes == 3
    assert set(c["pid"].unique()) == {18239, 18240}


def test_strict_traces_pair_each_tlbi_with_a_sync_and_lazy_ones_flush_by_asid() -> None:
    for path in TRACES:
        ops = parse_trace(path).summary()["opcodes"]
        if "strict" in path.name:
            assert ops.get("CMD_TLBI_NH_VA", 0) > 100
        if "lazy" in path.name:
            assert ops.get("CMD_TLBI_NH_VA", 0) == 0 and ops["CMD_TLBI_NH_ASID"] > 10


def test_plain_and_gzip_and_prefixless_give_the_same_commands(tmp_path: Path) -> None:
    text = gzip.decompress(SAMPLE.read_bytes()).decode()
    plain = tmp_path / "s.log"
    plain.write_text(text)
    bare = tmp_path / "bare.log"
    bare.write_text(re.sub(r"(?m)^\d+@\d+\.\d+:", "", text))
    a, b, c = parse_trace(SAMPLE), parse_trace(plain), parse_trace(bare)
    assert a.commands.equals(b.commands)
    cols = [k for k in COMMAND_SCHEMA if k not in ("time_s", "time_us", "pid")]
    assert a.commands.select(cols).equals(c.commands.select(cols))
    assert c.commands["time_s"].null_count() == c.commands.height and c.meta.duration_s is None


def test_crlf_lines_parse_like_lf() -> None:
    text = gzip.decompress(SAMPLE.read_bytes()).decode()
    assert parse_text(text.replace("\n", "\r\n")).commands.equals(parse_text(text).commands)


def test_mixed_line_ends() -> None:
    text = gzip.decompress(SAMPLE.read_bytes()).decode()
    lines = text.split("\n")
    mixed = "\n".join(x + ("\r" if i % 3 == 1 else "") for i, x in enumerate(lines))
    assert parse_text(mixed).commands.equals(parse_text(text).commands)
