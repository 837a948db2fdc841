"""Routing policies on hand-written batches (Q1, Q2, Q3 corner cases from the 2021 thread)."""

from __future__ import annotations

import polars as pl
import pytest

from cmdqv_lab.device.commands import Opcode as O
from cmdqv_lab.driver.routing import POLICIES, route_frame
from cmdqv_lab.errors import ParamError
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, validate

MIXED = [O.CMD_TLBI_NH_VA, O.CMD_CFGI_CD, O.CMD_TLBI_NH_VA, O.CMD_SYNC]


def frame(batches: list[tuple[list[O], bool]], vm: int = 0) -> pl.DataFrame:
    recs = []
    for b, (ops, sync) in enumerate(batches):
        for o in ops:
            sid = 8 if o in (O.CMD_CFGI_CD, O.CMD_ATC_INV, O.CMD_CFGI_STE) else None
            recs.append(
                dict(cpu=0, vm=vm, op=b, batch=b, t_ps=0, sync=sync, kind="t", opcode=int(o), sid=sid)
            )
    df = pl.DataFrame(recs).with_columns(*[pl.lit(None).alias(c) for c in FIELD_COLUMNS if c != "sid"])
    return validate(df)


def paths(df: pl.DataFrame) -> list[tuple[str, str]]:
    return [(O(o).name.removeprefix("CMD_"), p) for o, p in zip(df["opcode"], df["path"])]


def test_first_opcode_sends_mixed_batch_to_vcmdq_and_flags_ill() -> None:
    r = route_frame(frame([(MIXED, True)]), "first-opcode")
    assert set(r["path"]) == {"vcmdq"}
    assert r["illegal"].to_list() == [False, True, False, False]


def test_first_opcode_traps_a_lone_sync_but_not_a_closing_one() -> None:
    r = route_frame(frame([([O.CMD_TLBI_NH_VA, O.CMD_SYNC], True), ([O.CMD_SYNC], True)]), "first-opcode")
    assert paths(r) == [("TLBI_NH_VA", "vcmdq"), ("SYNC", "vcmdq"), ("SYNC", "trap")]


def test_scan_traps_the_whole_mixed_batch() -> None:
    r = route_frame(frame([(MIXED, True)]), "scan")
    assert set(r["path"]) == {"trap"} and not r["illegal"].any()


@pytest.mark.parametrize("policy", ["split", "homogeneous"])
def test_split_closes_each_part_with_a_sync(policy: str) -> None:
    r = route_frame(frame([(MIXED, True)]), policy)
    assert paths(r) == [("TLBI_NH_VA", "vcmdq"), ("SYNC", "vcmdq"), ("CFGI_CD", "trap"), ("SYNC", "trap"),
                        ("TLBI_NH_VA", "vcmdq"), ("SYNC", "vcmdq")]  # fmt: skip
    assert r["inserted"].to_list() == [False, True, False, True, False, False]
    assert r["wait"].all() and not r["illegal"].any()


def test_homogeneous_also_splits_supported_types() -> None:
    r = route_frame(
        frame([([O.CMD_TLBI_NH_VA, O.CMD_ATC_INV, O.CMD_SYNC], True)]), "homogeneous", sids={0: [8]}
    )
    assert r["part"].to_list() == [0, 0, 1, 1] and r["inserted"].to_list() == [False, True, False, False]
    r2 = route_frame(frame([([O.CMD_TLBI_NH_VA, O.CMD_ATC_INV, O.CMD_SYNC], True)]), "split", sids={0: [8]})
    assert r2["part"].to_list() == [0, 0, 0] and not r2["inserted"].any()


def test_unmatched_sid_is_unsupported() -> None:
    df = frame([([O.CMD_ATC_INV, O.CMD_SYNC], True)])
    assert not route_frame(df, "first-opcode", sids={0: [8]})["illegal"].any()
    assert route_frame(df, "first-opcode", sids={0: [9]})["illegal"].to_list() == [True, False]


def test_rely_hw_sync_drops_vcmdq_syncs() -> None:
    r = route_frame(frame([([O.CMD_TLBI_NH_VA, O.CMD_SYNC], True)]), "rely-hw-sync")
    assert paths(r) == [("TLBI_NH_VA", "vcmdq")] and not r["wait"].any()


def test_host_rows_stay_on_the_host_and_unknown_policy_fails() -> None:
    r = route_frame(frame([(MIXED, True)], vm=-1), "first-opcode")
    assert set(r["path"]) == {"host"} and not r["illegal"].any()
    with pytest.raises(ParamError, match="policy='nope'"):
        route_frame(frame([(MIXED, True)]), "nope")
    assert len(POLICIES) == 8


def test_scan_fanout_completes_a_batch_issued_without_sync() -> None:
    # Q2: Batch A {TLBI, CFGI_CD} without SYNC goes the trapped way under scan; Batch B {SYNC} alone
    # goes to the VCMDQ and does not cover A. scan-fanout also issues a SYNC on the trapped path.
    df = frame([([O.CMD_TLBI_NH_VA, O.CMD_CFGI_CD], False), ([O.CMD_SYNC], True)])
    df = df.with_columns(pl.lit(0, pl.Int64).alias("op"))
    scan = route_frame(df, "scan")
    assert paths(scan) == [("TLBI_NH_VA", "trap"), ("CFGI_CD", "trap"), ("SYNC", "vcmdq")]
    fan = route_frame(df, "scan-fanout")
    assert paths(fan) == [("TLBI_NH_VA", "trap"), ("CFGI_CD", "trap"), ("SYNC", "vcmdq"), ("SYNC", "trap")]
    assert fan["inserted"].to_list() == [False, False, False, True] and fan["wait"][-1]
    # nothing is inserted when everything already shares a queue
    same = route_frame(
        frame([([O.CMD_TLBI_NH_VA], False), ([O.CMD_SYNC], True)]).with_columns(
            pl.lit(0, pl.Int64).alias("op")
        ),
        "scan-fanout",
    )
    assert not same["inserted"].any()
