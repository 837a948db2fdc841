"""config-churn: commands per attach/detach, device rotation, options, cycle rate."""

from __future__ import annotations

import polars as pl
import pytest
from workload_helpers import ATC, NH_ASID, SYNC, gen, per_op

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.driver.routing import route_frame
from cmdqv_lab.workloads.registry import generate
from cmdqv_lab.workloads.synthetic import vm_sids

CD, CD_ALL, STE = int(Opcode.CMD_CFGI_CD), int(Opcode.CMD_CFGI_CD_ALL), int(Opcode.CMD_CFGI_STE)
PRE, VMALL = int(Opcode.CMD_PREFETCH_CONFIG), int(Opcode.CMD_TLBI_S12_VMALL)


def test_default_cycle_matches_the_linux_sequence() -> None:
    ops = per_op(gen("config-churn", cycles=2))
    assert ops["kind"].to_list() == ["attach", "detach"] * 2
    attach = [CD, SYNC, CD, SYNC, STE, SYNC, STE, SYNC, PRE]
    detach = [STE, SYNC, STE, SYNC, PRE, CD, SYNC, NH_ASID, SYNC]
    assert ops["opcodes"].to_list() == [attach, detach] * 2
    assert ops["batches"].to_list() == [5, 5] * 2


def test_options_change_the_sequence() -> None:
    ops = per_op(
        gen("config-churn", cycles=1, ats=True, cd_all=True, ste_writes=3, cd_writes=1, free_domain=False)
    )
    assert ops["opcodes"].to_list() == [
        [CD, SYNC, STE, SYNC, STE, SYNC, STE, SYNC, PRE, ATC, SYNC],
        [STE, SYNC, STE, SYNC, STE, SYNC, PRE, ATC, SYNC, CD_ALL, SYNC],
    ]
    s2 = per_op(gen("config-churn", cycles=1, stage="s2", prefetch=False, ste_writes=1))
    assert s2["opcodes"].to_list() == [[STE, SYNC], [STE, SYNC, VMALL, SYNC]]


def test_prefetch_is_a_batch_without_sync() -> None:
    df = gen("config-churn", cycles=3)
    pre = df.filter(pl.col("opcode") == PRE)
    assert not pre["sync"].any()
    assert (
        df.group_by("batch").len().filter(pl.col("batch").is_in(pre["batch"].implode()))["len"].to_list()
        == [1] * 6
    )


def test_devices_rotate_and_ids_belong_to_the_vm() -> None:
    w = generate("config-churn", {"cycles": 24, "vms": 2, "threads": 2, "sids_per_vm": 3}, seed=0)
    df = pl.concat([pl.concat(list(s)) for s in w.streams])
    sids = vm_sids(w.params)
    for (vm, cpu), part in df.filter(pl.col("sid").is_not_null()).group_by("vm", "cpu"):
        per = part.group_by("op", maintain_order=True).agg(pl.col("sid").unique())["sid"].to_list()
        assert all(len(s) == 1 for s in per)
        k = [sids[vm].index(s[0]) for s in per]
        assert k[::2] == [
            (cpu + c * 2) % 3 for c in range(len(k) // 2)
        ]  # attach c uses device (cpu + 2c) % 3
        assert k[::2] == k[1::2]  # its detach the same device
    tl = df.filter(pl.col("opcode") == NH_ASID)
    assert tl.group_by("vm").agg(pl.col("vmid").unique()).sort("vm")["vmid"].to_list() == [[1], [2]]
    assert set(tl["asid"]) == {1, 2, 3}
    # a guest's configuration commands are not for its VCMDQ: every batch but the TLBI ones is trapped
    r = route_frame(df, "scan", sids=sids)
    assert set(r.filter(pl.col("opcode") == NH_ASID)["path"]) == {"vcmdq"}
    assert set(r.filter(pl.col("opcode").is_in([CD, STE, PRE]))["path"]) == {"trap"}


@pytest.mark.parametrize(("rate_hz", "hold_us"), [(1000.0, 200.0), (50.0, 5000.0)])
def test_cycle_rate_and_hold_time(rate_hz: float, hold_us: float) -> None:
    ops = per_op(gen("config-churn", cycles=20_000, rate_hz=rate_hz, hold_us=hold_us, threads=2))
    mean = ops.group_by("kind").agg(pl.col("t_ps").mean()).sort("kind")["t_ps"].to_list()
    idle_ps = (1e6 / rate_hz - hold_us) * 1e6
    assert mean[0] == pytest.approx(idle_ps, rel=0.03) and mean[1] == pytest.approx(hold_us * 1e6, rel=0.03)
    assert (mean[0] + mean[1]) == pytest.approx(1e12 / rate_hz, rel=0.03)
