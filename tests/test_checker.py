"""The correctness checker on hand-built streams with hazards planted and absent, and on guest-mixed."""

from __future__ import annotations

import polars as pl
import pytest

from cmdqv_lab.checker.check import CheckOptions, analyse, check, compare, plan_for, route
from cmdqv_lab.checker.replay import replay
from cmdqv_lab.checker.scenarios import Source, load_source
from cmdqv_lab.device.cmdqv import CmdqvParams
from cmdqv_lab.device.commands import Opcode as O
from cmdqv_lab.driver.routing import POLICIES
from cmdqv_lab.errors import ParamError
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, validate

T, CD, SYNC, ATC = O.CMD_TLBI_NH_VA, O.CMD_CFGI_CD, O.CMD_SYNC, O.CMD_ATC_INV
Batch = tuple[list[O], bool]


def stream(*ops: list[Batch], vm: int = 0, cpu: int = 0, sid: int = 8) -> pl.DataFrame:
    """One vCPU's stream: each op is a list of (opcodes, sync) batches."""
    recs, b = [], 0
    for i, batches in enumerate(ops):
        for opcodes, sync in batches:
            for o in opcodes:
                s = sid if o in (CD, ATC, O.CMD_CFGI_STE) else None
                recs.append(
                    dict(cpu=cpu, vm=vm, op=i, batch=b, t_ps=0, sync=sync, kind="t", opcode=int(o), sid=s)
                )
            b += 1
    df = pl.DataFrame(recs).with_columns(*[pl.lit(None).alias(c) for c in FIELD_COLUMNS if c != "sid"])
    return validate(df)


def source(*frames: pl.DataFrame, devices: list[int] | None = None) -> Source:
    df = pl.concat(frames)
    vms = sorted(set(df["vm"].to_list()) - {-1})
    return Source("t", "scenario", df, {vm: devices if devices is not None else [8] for vm in vms})


def kinds(src: Source, policy: str, **kw: object) -> list[tuple[str, str, int, int | None]]:
    r = check(src, policy, **kw)  # type: ignore[arg-type]
    assert r.disagreements == []
    return [(h.kind, h.opcode.removeprefix("CMD_"), h.batch, h.index) for h in r.hazards]


# ---------------------------------------------------------------- absent
@pytest.mark.parametrize("policy", [p for p in POLICIES if p != "rely-hw-sync"])
def test_plain_unmaps_are_clean(policy: str) -> None:
    src = source(stream([([T, T, SYNC], True)], [([T, ATC, SYNC], True)]))
    assert kinds(src, policy) == []


# ---------------------------------------------------------------- Q1: ILL on the VCMDQ
def test_first_opcode_sends_a_mixed_batch_to_the_vcmdq_and_the_model_raises_ill() -> None:
    src = source(stream([([T, CD, T, SYNC], True)]))
    r = check(src, "first-opcode")
    assert [(h.kind, h.opcode, h.op, h.batch, h.index, h.queue, h.pos) for h in r.hazards] == [
        ("ill", "CMD_CFGI_CD", 0, 0, 1, "vcmdq2", 1)
    ]
    assert "opcode not accepted by a guest-owned VINTF (guest_opcodes=linux)" in r.hazards[0].reason
    assert r.model["errors"] == {"ILL": 1} and r.model["irqs"] == 1 and r.model["recoveries"] == 1
    for policy in ("scan", "split", "homogeneous", "all-trap"):
        assert kinds(src, policy) == [], policy
    assert kinds(src, "all-vcmdq") == [("ill", "CFGI_CD", 0, 1)]


def test_the_ill_command_never_runs_and_the_stream_continues() -> None:
    src = source(stream([([T, CD, T, SYNC], True)], [([T, SYNC], True)]))
    params, options = CmdqvParams(), CheckOptions()
    cap, vms = plan_for(src, params, options)
    routed = route(src, "first-opcode", params, vms)
    rr = replay(routed, cap, params, vms)
    log = rr.smmu.log
    assert [e.detail["cerror"] for e in log.of("error")] == ["ILL"]
    assert [e.pos for e in log.of("skip_err", queue="vcmdq2")] == [1]
    ran = [e.opname for e in log.of("consume", queue="vcmdq2")]
    assert ran == ["CMD_TLBI_NH_VA", "CMD_SYNC", "CMD_TLBI_NH_VA", "CMD_SYNC", "CMD_TLBI_NH_VA", "CMD_SYNC"]
    assert len(log.of("isr")) == 1 and log.of("isr")[0].detail["action"] == "forwarded"
    hazards, disagree, model = analyse(routed, rr, params, vms)
    assert [h.kind for h in hazards] == ["ill"] and disagree == [] and model["hw_syncs"] == 3
    # the scheduler leaves the queue when it stops on the ILL (after 1 command), after the rest, after batch 1
    assert [e.pos for e in log.of("hw_sync")] == [1, 4, 6]


def test_unmatched_sid_is_ill_on_the_vcmdq_and_trapped_by_scan() -> None:
    src = source(stream([([T, ATC, SYNC], True)], sid=0x88), devices=[0x88])
    narrow = CmdqvParams(sid_pairs_per_vintf=1)
    opts = CheckOptions(devices="8,0x88")  # the VM's first device takes the only pair
    r = check(src, "first-opcode", narrow, opts)
    assert [(h.kind, h.opcode, h.index) for h in r.hazards] == [("ill", "CMD_ATC_INV", 1)]
    assert "SID 0x88 matches none of VINTF1's 1 SID pairs" in r.hazards[0].reason
    assert r.capacity["vms"][0]["unfit_sids"] == [0x88]
    assert check(src, "scan", narrow, opts).ok and check(src, "first-opcode").ok


# ---------------------------------------------------------------- Q2: the covering SYNC on another queue
def test_first_opcode_traps_the_lone_sync_and_leaves_the_tlbis_uncovered() -> None:
    src = source(stream([([T, T], False), ([SYNC], True)]))  # the seed thread's Batch A / Batch B
    r = check(src, "first-opcode")
    assert [(h.kind, h.batch, h.index, h.queue) for h in r.hazards] == [
        ("q2", 0, 0, "vcmdq2"),
        ("q2", 0, 1, "vcmdq2"),
    ]
    assert "waits for the CMD_SYNC at cmdq@0 (batch 1), which covers only cmdq" in r.hazards[0].reason
    for policy in ("scan", "split", "homogeneous", "all-trap", "all-vcmdq"):
        assert kinds(src, policy) == [], policy


def test_a_lone_sync_after_a_trapped_batch_defeats_per_batch_policies() -> None:
    src = source(stream([([T, CD], False), ([SYNC], True)]))
    assert kinds(src, "scan") == [("q2", "TLBI_NH_VA", 0, 0), ("q2", "CFGI_CD", 0, 1)]
    assert kinds(src, "split") == [("q2", "CFGI_CD", 0, 1)]  # the TLBI part got its own SYNC
    assert kinds(src, "all-trap") == []


def test_a_sync_of_another_vcpu_on_the_same_vcmdq_does_not_count() -> None:
    a = stream([([T, T], False)], cpu=0)
    b = stream([([SYNC], True)], cpu=1)
    src = source(a, b)
    shared = CheckOptions(vcmdqs_per_vm=1)
    assert kinds(src, "scan", options=shared) == [("q3", "TLBI_NH_VA", 0, 0), ("q3", "TLBI_NH_VA", 0, 1)]
    assert kinds(src, "scan", params=CmdqvParams(hw_sync=False), options=shared) == [
        ("unsynced", "TLBI_NH_VA", 0, 0), ("unsynced", "TLBI_NH_VA", 0, 1)
    ]  # fmt: skip


# ---------------------------------------------------------------- Q3: hardware SYNCs only
def test_rely_hw_sync_is_q3_and_unsynced_without_hardware_syncs() -> None:
    src = source(stream([([T, T, SYNC], True)]))
    r = check(src, "rely-hw-sync")
    assert [h.kind for h in r.hazards] == ["q3", "q3"] and r.routed["dropped_syncs"] == 1
    assert "hardware-inserted SYNC (leave, event" in r.hazards[0].reason
    off = check(src, "rely-hw-sync", CmdqvParams(hw_sync=False))
    assert [h.kind for h in off.hazards] == ["unsynced", "unsynced"] and off.model["hw_syncs"] == 0
    small = check(src, "rely-hw-sync", CmdqvParams(cmd_batch=1))
    assert small.model["hw_syncs"] == 2 and "(cmd_batch, event" in small.hazards[0].reason


# ---------------------------------------------------------------- capacity shortfalls
def test_a_vm_without_a_vintf_is_trapped_and_host_rows_use_the_main_queue() -> None:
    src = source(stream([([T, CD, SYNC], True)], vm=0), stream([([T, CD, SYNC], True)], vm=1),
                 stream([([T, CD, SYNC], True)], vm=-1))  # fmt: skip
    r = check(src, "first-opcode", CmdqvParams(num_vintfs=2, num_vcmdqs=4))
    assert [(h.kind, h.vm) for h in r.hazards] == [("ill", 0)]
    assert r.capacity["vms"][1]["vintf"] is None and r.routed["paths"] == {"vcmdq": 3, "trap": 3, "host": 3}
    assert "2 VMs need 3 VINTFs" in r.capacity["problems"][0]


def test_split_counts_batches_across_queues() -> None:
    src = source(stream([([T, CD, T, SYNC], True)], [([T, ATC, SYNC], True)]))
    assert check(src, "split").split == {"batches": 1, "across_queues": 1}
    assert check(src, "homogeneous").split == {"batches": 2, "across_queues": 1}
    assert check(src, "scan").split == {"batches": 0, "across_queues": 0}


# ---------------------------------------------------------------- guest-mixed
@pytest.fixture(scope="module")
def mixed() -> pl.DataFrame:
    return compare(load_source("guest-mixed", {"ops": 800}, seed=7))


def test_guest_mixed_fails_first_opcode_and_passes_scan_split_homogeneous(mixed: pl.DataFrame) -> None:
    by = {r["policy"]: r for r in mixed.to_dicts()}
    assert not by["first-opcode"]["ok"] and by["first-opcode"]["ill"] > 0 and by["first-opcode"]["q2"] > 0
    for policy in ("scan", "split", "homogeneous", "all-trap"):
        assert by[policy]["ok"], policy
    rely = by["rely-hw-sync"]
    assert not rely["ok"] and rely["q3"] > 0 and rely["ill"] == rely["q2"] == rely["unsynced"] == 0
    assert by["all-vcmdq"]["ill"] > by["first-opcode"]["ill"] and by["all-vcmdq"]["q2"] == 0
    assert by["split"]["split_across_queues"] > 0 and by["homogeneous"]["split"] >= by["split"]["split"]
    assert mixed["disagreements"].sum() == 0


def test_guest_mixed_builtin_is_deterministic_and_has_unmatched_sids() -> None:
    a = check(load_source("guest-mixed", {"ops": 400}, seed=1), "first-opcode")
    b = check(load_source("guest-mixed", {"ops": 400}, seed=1), "first-opcode")
    c = check(load_source("guest-mixed", {"ops": 400}, seed=2), "first-opcode")
    assert a.hazards == b.hazards and a.hazards != c.hazards
    assert any("matches none of VINTF" in h.reason for h in a.hazards)
    assert a.stream["generator"] == "scenario:guest-mixed" and a.stream["vcpus"] == {0: 2, 1: 2}


def test_registry_mixed_issued_by_a_guest_uses_the_declared_devices() -> None:
    """The registry's ``mixed`` host stream issued by guest VM 0 (``guest-wl-mixed``, ``as_guest``)."""
    src = load_source("guest-wl-mixed", {"as_guest": "true", "ops": 2000}, seed=0)
    assert src.info["generator"] == "scenario:guest-wl-mixed" and set(src.frame["vm"].unique()) == {0}
    assert list(src.devices) == [0] and len(src.devices[0]) == src.info["params"]["sids_per_vm"]
    by = {r["policy"]: r for r in compare(src, ("first-opcode", "scan", "all-trap")).to_dicts()}
    assert by["first-opcode"]["ill"] > 0 and by["all-trap"]["ok"]
    # its lone SYNCs also follow batches that scan traps: a Q2 hazard of scan itself
    assert by["scan"]["q2"] > 0 and by["scan"]["ill"] == 0


def test_guest_mixed_rejects_an_unknown_parameter() -> None:
    with pytest.raises(ParamError, match="unknown parameter 'impl'"):
        load_source("guest-mixed", {"impl": "auto"})
