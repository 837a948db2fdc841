"""mixed (Q1/Q2): unsupported fraction per command or batch, foreign SIDs, lone SYNCs, routing policies."""

from __future__ import annotations

import polars as pl
import pytest
from workload_helpers import ATC, NH_VA, SYNC, collect, per_op

from cmdqv_lab.driver.routing import route_frame
from cmdqv_lab.workloads.registry import generate
from cmdqv_lab.workloads.stream import validate
from cmdqv_lab.workloads.synthetic import vm_sids
from cmdqv_lab.workloads.synthetic.mixed import KINDS


def _mixed(**over: object) -> tuple[pl.DataFrame, dict[int, list[int]]]:
    w = generate("mixed", over, seed=2)
    return validate(collect(w)), vm_sids(w.params)


def _first_batch_body(df: pl.DataFrame) -> pl.DataFrame:
    """The commands of each op's first (TLBI) batch, without its SYNC."""
    first = pl.col("batch") == pl.col("batch").min().over("vm", "cpu", "op")
    return df.filter(first, pl.col("opcode") != SYNC)


@pytest.mark.parametrize("f", [0.0, 0.05, 0.3])
def test_per_command_fraction_of_unsupported_commands(f: float) -> None:
    df, _ = _mixed(ops=20_000, unsupported_fraction=f, tlbis=3, ats=False)
    body = _first_batch_body(df)
    inserted = body.filter(pl.col("opcode") != NH_VA).height
    assert body.filter(pl.col("opcode") == NH_VA).height == 3 * 20_000
    assert inserted / body.height == pytest.approx(f, abs=0.006)
    kinds = body.filter(pl.col("opcode") != NH_VA)["opcode"].value_counts()
    if f:  # every listed kind appears, about equally often
        assert kinds.height == 7 and kinds["count"].min() > 0.7 * inserted / 7  # type: ignore[operator]


def test_per_batch_fraction_and_positions() -> None:
    df, _ = _mixed(ops=20_000, unsupported_fraction=0.4, mix_per="batch", tlbis=2, ats=False)
    body = _first_batch_body(df)
    per = body.group_by("vm", "cpu", "op").agg(
        (pl.col("opcode") != NH_VA).sum().alias("bad"), (pl.col("opcode") != NH_VA).arg_max().alias("pos")
    )
    assert per["bad"].max() == 1
    mixed = per.filter(pl.col("bad") == 1)
    assert mixed.height / per.height == pytest.approx(0.4, abs=0.015)
    pos = mixed["pos"].value_counts().sort("pos")["count"].to_list()
    assert len(pos) == 3 and min(pos) > 0.9 * mixed.height / 3  # first, between the TLBIs, last


def test_only_listed_kinds_are_inserted() -> None:
    df, _ = _mixed(ops=3000, unsupported_fraction=0.5, unsupported="TLBI_NH_ALL, cfgi_all")
    extra = set(_first_batch_body(df)["opcode"]) - {NH_VA}
    assert extra == {int(KINDS["TLBI_NH_ALL"][0]), int(KINDS["CFGI_ALL"][0])}
    assert set(df.filter(pl.col("opcode") == int(KINDS["CFGI_ALL"][0]))["range"]) == {31}


def test_sids_stay_in_the_vm_set_except_the_foreign_fraction() -> None:
    df, sids = _mixed(ops=40_000, foreign_sid_fraction=0.1, unsupported="TLBI_NH_ALL", sids_per_vm=4, vms=3)
    atc = df.filter(pl.col("opcode") == ATC)
    own = pl.struct("vm", "sid").map_elements(lambda r: r["sid"] in sids[r["vm"]], return_dtype=pl.Boolean)
    atc = atc.with_columns(own.alias("own"))
    assert (~atc["own"]).mean() == pytest.approx(0.1, abs=0.01)
    # foreign SIDs are not some other VM's, and every device of every VM is used
    all_sids = {s for ss in sids.values() for s in ss}
    assert not set(atc.filter(~pl.col("own"))["sid"]) & all_sids
    assert set(atc.filter(pl.col("own"))["sid"]) == all_sids


def test_routing_sees_exactly_the_unsupported_commands() -> None:
    df, sids = _mixed(ops=5000, unsupported_fraction=0.1, foreign_sid_fraction=0.05, split_sync_fraction=0.0)
    r = route_frame(df, "first-opcode", sids=sids)
    ins = _first_batch_body(df).filter(pl.col("opcode") != NH_VA).height
    foreign_atc = df.filter(
        pl.col("opcode") == ATC, pl.col("batch") != pl.col("batch").min().over("vm", "cpu", "op")
    )
    foreign = foreign_atc.with_columns(
        pl.struct("vm", "sid")
        .map_elements(lambda x: x["sid"] not in sids[x["vm"]], return_dtype=pl.Boolean)
        .alias("f")
    )["f"].sum()
    assert (~r["supported"]).sum() == ins + foreign
    assert r["illegal"].sum() > 0  # first-opcode lets some reach the VCMDQ
    assert not route_frame(df, "scan", sids=sids)["illegal"].any()
    ops = per_op(df)
    bad_ops = r.filter(~pl.col("supported")).select("vm", "cpu", "op").unique().height
    assert (ops["kind"] == "mixed").sum() == bad_ops


def test_split_sync_fraction_gives_lone_syncs() -> None:
    df, _ = _mixed(ops=20_000, split_sync_fraction=0.25, unsupported_fraction=0)
    batches = df.group_by("vm", "cpu", "batch").agg(pl.col("opcode"), pl.col("sync").first())
    lone = batches.filter(pl.col("opcode") == [SYNC])
    assert lone.height / 20_000 == pytest.approx(0.25, abs=0.01)
    a = batches.filter(~pl.col("sync"))
    assert a.height == lone.height and set(map(tuple, a["opcode"].to_list())) == {(NH_VA, NH_VA)}
    # batch A {TLBI x2} stays on the VCMDQ, the lone SYNC is trapped (first-opcode, the 2021 patch)
    r = route_frame(df, "first-opcode")
    paths = (
        r.filter(pl.col("kind") == "unmap")
        .group_by("vm", "cpu", "batch")
        .agg(pl.col("path").first(), pl.col("opcode"))
    )
    assert set(paths.filter(pl.col("opcode") == [SYNC])["path"]) == {"trap"}


def test_atc_same_batch_is_mixed_but_supported() -> None:
    df, sids = _mixed(
        ops=100, atc_same_batch=True, unsupported_fraction=0, foreign_sid_fraction=0, split_sync_fraction=0
    )
    assert per_op(df)["opcodes"].to_list() == [[NH_VA, NH_VA, ATC, SYNC]] * 100
    assert route_frame(df, "scan", sids=sids)["path"].unique().to_list() == ["vcmdq"]
    h = route_frame(df, "homogeneous", sids=sids)
    assert h["inserted"].sum() == 100  # the homogeneous policy splits TLBIs from the ATC_INV
