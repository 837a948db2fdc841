"""What one unmap or flush issues: TLBIs per unmap, RIL NUM/SCALE, CMDQ_MAX_TLBI_OPS, ATS order, stage 2."""

from __future__ import annotations

import itertools

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from workload_helpers import ATC, NH_ASID, NH_VA, SYNC, gen, per_op

from cmdqv_lab.device.commands import Opcode, field_of
from cmdqv_lab.workloads.stream import encode
from cmdqv_lab.workloads.synthetic.inval import atc_span, ril_ranges


def _linux_ril(num_pages: int) -> list[tuple[int, int]]:
    """__arm_smmu_tlb_inv_range's loop, transcribed: (cmd->tlbi.num, cmd->tlbi.scale) per command."""
    out = []
    while num_pages:
        scale = (num_pages & -num_pages).bit_length() - 1  # __ffs
        num = (num_pages >> scale) & 31  # CMDQ_TLBI_RANGE_NUM_MAX
        out.append((num - 1, scale))
        num_pages -= num << scale
    return out


@given(st.integers(1, 1 << 40))
def test_ril_ranges_cover_the_range_five_bits_at_a_time(pages: int) -> None:
    r = ril_ranges(pages)
    assert [(n, s) for n, s, _ in r] == _linux_ril(pages)
    assert sum(c for _, _, c in r) == pages
    assert all(0 <= n <= 30 and c == (n + 1) << s for n, s, c in r)
    # each command takes the 5 bits from the lowest set bit left: NUM+1 is odd, scales 5 or more apart
    assert all((n + 1) % 2 == 1 for n, _, _ in r)
    assert all(b[1] >= a[1] + 5 for a, b in itertools.pairwise(r))
    assert len(r) <= (pages.bit_length() + 4) // 5 + 1


@pytest.mark.parametrize(
    ("pages", "cmds"),
    [(1, 1), (31, 1), (32, 1), (33, 2), (62, 1), (63, 2), (512, 1), (1023, 2), (1024, 1), (1025, 2)],
)
def test_ril_boundaries(pages: int, cmds: int) -> None:
    df = gen("dma-map", ops=3, granule_kib=4 * pages, ril=True)
    ops = per_op(df)
    assert ops["opcodes"].to_list() == [[NH_VA] * cmds + [SYNC]] * 3
    tlbi = df.filter(pl.col("opcode") == NH_VA)
    enc = encode(tlbi)
    num, scale = field_of(enc, "num"), field_of(enc, "scale")
    assert [(int(n), int(s)) for n, s in zip(num[:cmds], scale[:cmds])] == _linux_ril(pages)
    assert set(field_of(enc, "tg").tolist()) == {1} and set(field_of(enc, "ttl").tolist()) == {3}
    # addresses walk through the range
    addr = tlbi["addr"].to_list()[:cmds]
    steps = [((n + 1) << s) * 4096 for n, s in _linux_ril(pages)]
    assert [a - addr[0] for a in addr] == [sum(steps[:i]) for i in range(cmds)]


@pytest.mark.parametrize(("kib", "n_va"), [(4, 1), (8, 2), (64, 16), (2044, 511)])
def test_without_ril_one_tlbi_per_4k_page(kib: int, n_va: int) -> None:
    df = gen("dma-map", ops=4, granule_kib=kib, threads=2)
    ops = per_op(df)
    assert ops["opcodes"].list.len().to_list() == [n_va + 1] * 4
    tlbi = df.filter(pl.col("opcode") == NH_VA)
    assert tlbi["num"].unique().to_list() == [0] and tlbi["tg"].unique().to_list() == [0]  # no RIL: no TG/TTL
    first = tlbi.filter(pl.col("op") == 0, pl.col("cpu") == 0)["addr"].to_list()
    assert [a - first[0] for a in first] == [4096 * k for k in range(n_va)]


def test_cmdq_max_tlbi_ops_boundary() -> None:
    """Without RIL, 512 TLBIs (2 MiB) or more become one TLBI_NH_ASID (size >= CMDQ_MAX_TLBI_OPS pages)."""
    assert per_op(gen("dma-map", ops=1, granule_kib=2044))["opcodes"][0].to_list() == [NH_VA] * 511 + [SYNC]
    for kib in (2048, 2052, 1 << 16):
        df = gen("dma-map", ops=2, granule_kib=kib)
        assert per_op(df)["opcodes"].to_list() == [[NH_ASID, SYNC]] * 2
        assert df.filter(pl.col("opcode") == NH_ASID)["asid"].to_list() == [1, 1]
    assert per_op(gen("dma-map", ops=1, granule_kib=2048, max_tlbi_ops=513))["opcodes"][0].len() == 513
    assert per_op(gen("dma-map", ops=1, granule_kib=16, max_tlbi_ops=4))["opcodes"][0].to_list() == [
        NH_ASID,
        SYNC,
    ]
    # with RIL Linux never falls back: 2 MiB is one range TLBI (NUM=0, SCALE=9)
    df = gen("dma-map", ops=1, granule_kib=2048, ril=True, max_tlbi_ops=1)
    assert df.filter(pl.col("opcode") == NH_VA).select("num", "scale").rows() == [(0, 9)]


@pytest.mark.parametrize("name", ["dma-map", "fio", "netperf"])
@pytest.mark.parametrize("mode", ["strict", "lazy"])
@pytest.mark.parametrize("ats", [False, True])
def test_atc_inv_present_iff_ats_in_its_own_batch_after_the_tlbi_sync(
    name: str, mode: str, ats: bool
) -> None:
    df = gen(name, ops=600, mode=mode, ats=ats, fq_entries=16, sids_per_vm=2, threads=2)
    ops = per_op(df)
    if not ats:
        assert ATC not in df["opcode"].to_list()
        assert ops["batches"].unique().to_list() == [1]
        return
    # TLBI batch + SYNC, then ATC_INV + SYNC (arm_smmu_tlb_inv_range_domain / arm_smmu_tlb_inv_context)
    assert ops["batches"].unique().to_list() == [2]
    for seq in ops["opcodes"].to_list():
        assert seq[-2:] == [ATC, SYNC] and seq[-3] == SYNC and ATC not in seq[:-2]
    atc = df.filter(pl.col("opcode") == ATC)
    assert atc.group_by("cpu").agg(pl.col("sid").unique()).sort("cpu")["sid"].to_list() == [[256], [257]]
    assert set(atc["ssid"]) == {0}
    if mode == "lazy":
        assert set(atc["size"]) == {52} and set(atc["addr"]) == {0}


@pytest.mark.parametrize("kib", [4, 8, 12, 20, 64, 1024, 2044])
def test_atc_inv_covers_the_unmapped_range_with_the_smallest_aligned_span(kib: int) -> None:
    df = gen("dma-map", ops=3, granule_kib=kib, ats=True, ril=True)
    tlbi = df.filter(pl.col("opcode") == NH_VA).group_by("op").agg(pl.col("addr").min()).sort("op")
    atc = df.filter(pl.col("opcode") == ATC).sort("op")
    for start, a, size in zip(tlbi["addr"], atc["addr"], atc["size"]):
        span = 4096 << size
        assert a % span == 0 and a <= start and start + kib * 1024 <= a + span
        assert size == 0 or start < a + span // 2 < start + kib * 1024  # no aligned half-span holds it
    assert atc_span(kib // 4) == atc["size"][0]
    enc = encode(atc)
    assert field_of(enc, "size").tolist() == atc["size"].to_list()
    assert field_of(enc, "addr").tolist() == atc["addr"].to_list()
    assert field_of(enc, "ssv").tolist() == [0, 0, 0] and field_of(enc, "global_").tolist() == [0, 0, 0]


def test_whole_asid_fallback_sends_a_whole_atc_invalidation() -> None:
    df = gen("dma-map", ops=1, granule_kib=4096, ats=True)
    assert per_op(df)["opcodes"][0].to_list() == [NH_ASID, SYNC, ATC, SYNC]
    assert df.filter(pl.col("opcode") == ATC)["size"].to_list() == [52]


def test_stage2_uses_s2_ipa_and_s12_vmall() -> None:
    s2ipa, vmall = int(Opcode.CMD_TLBI_S2_IPA), int(Opcode.CMD_TLBI_S12_VMALL)
    df = gen("fio", ops=4, bs_kib=8, stage="s2", sids_per_vm=2, threads=2, vmid_base=5)
    assert per_op(df)["opcodes"].to_list() == [[s2ipa, s2ipa, SYNC]] * 4
    assert df.filter(pl.col("opcode") == s2ipa).group_by("cpu").agg(pl.col("vmid").unique()).sort("cpu")[
        "vmid"
    ].to_list() == [[5], [6]]
    assert df["asid"].null_count() == df.height
    lazy = gen("fio", ops=40, stage="s2", mode="lazy", fq_entries=10)
    assert set(per_op(lazy)["opcodes"].list.first()) == {vmall}
    assert per_op(gen("fio", ops=1, bs_kib=4096, stage="s2"))["opcodes"][0].to_list() == [vmall, SYNC]


def test_s2_ipa_address_is_encoded() -> None:
    df = gen("fio", ops=1, stage="s2")
    s2 = df.filter(pl.col("opcode") == int(Opcode.CMD_TLBI_S2_IPA))
    assert field_of(encode(s2), "ipa").tolist() == s2["addr"].to_list()
