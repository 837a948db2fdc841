"""Tegra241 CMDQV: one test per rule of the model."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cmdqv_lab.device.cmdq import CError
from cmdqv_lab.device.cmdqv import GUEST_OPCODES_2021, GUEST_OPCODES_LINUX, Cmdqv, CmdqvParams, Vcmdq
from cmdqv_lab.device.commands import CS_NONE, LAYOUT, Command, Opcode, sync_command
from cmdqv_lab.device.regs import (
    CMDQV_CMDQ_ALLOC,
    CMDQV_NUM_SID_PER_VM_LOG2,
    CMDQV_NUM_VCMDQ_LOG2,
    CMDQV_NUM_VINTF_LOG2,
    CMDQV_PARAM,
    SID_MATCH_VIRT_SID,
    VCMDQ_ENABLED,
    VCMDQ_LOG2SIZE,
    VINTF_CONFIG,
    VINTF_ENABLED,
)
from cmdqv_lab.driver.recovery import guest_handle_vevent, tegra241_cmdqv_isr
from cmdqv_lab.errors import DeviceStateError, ParamError, QueueConfigError

SYNC = sync_command(cs=CS_NONE).encode()


def small(**kw: object) -> Cmdqv:
    return Cmdqv(CmdqvParams(num_vintfs=4, num_vcmdqs=8, **kw))  # type: ignore[arg-type]


def guest_queue(cmdqv: Cmdqv, *, vintf: int = 1, q: int = 2, vmid: int = 9) -> Vcmdq:
    vi = cmdqv.vintfs[vintf]
    vi.configure(en=True, vmid=vmid, hyp_own=False)
    vi.set_sid_pair(0, vsid=0x8, psid=0x108)
    vi.set_sid_pair(1, vsid=0x10, psid=0x110)
    return cmdqv.setup_lvcmdq(q=q, vintf=vintf, lidx=0, log2size=7)


def host_queue(cmdqv: Cmdqv, *, q: int = 0) -> Vcmdq:
    cmdqv.vintfs[0].configure(en=True, vmid=0, hyp_own=True)
    return cmdqv.setup_lvcmdq(q=q, vintf=0, lidx=len(cmdqv.vintfs[0].lvcmdqs), log2size=7)


def executed(vq: Vcmdq) -> list[Command]:
    return [Command.decode(e.detail["executed"]) for e in vq.log.of("consume", queue=vq.name)]


def exact(msg: str) -> str:
    return re.escape(msg)


# ---------------------------------------------------------------- geometry
def test_geometry_defaults_and_param_register() -> None:
    p = CmdqvParams()
    assert (p.num_vintfs, p.num_vcmdqs, p.sid_pairs_per_vintf, p.cmd_batch) == (64, 128, 16, 32)
    reg = CMDQV_PARAM.decode(p.param_reg)
    assert reg[CMDQV_NUM_VINTF_LOG2.name] == 6
    assert reg[CMDQV_NUM_VCMDQ_LOG2.name] == 7
    assert reg[CMDQV_NUM_SID_PER_VM_LOG2.name] == 4
    c = Cmdqv()
    assert len(c.vintfs) == 64 and len(c.vcmdqs) == 128 and len(c.vintfs[0].sid_match) == 16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_vintfs": 128}, "num_vintfs=128 is out of range: allowed 1 .. 64 VINTFs"),
        ({"num_vcmdqs": 256}, "num_vcmdqs=256 is out of range: allowed 1 .. 128 VCMDQs"),
        ({"sid_pairs_per_vintf": 32}, "sid_pairs_per_vintf=32 is out of range: allowed 1 .. 16 pairs"),
        ({"num_vintfs": 48}, "num_vintfs=48 is not a power of two: allowed 1, 2, 4 .. 64"),
        ({"num_vcmdqs": 0}, "num_vcmdqs=0 is out of range: allowed 1 .. 128 VCMDQs"),
        ({"guest_opcodes": "all"}, "guest_opcodes='all' is not allowed: one of linux, v3-2021"),
    ],
)
def test_geometry_limits(kwargs: dict, message: str) -> None:
    with pytest.raises(ParamError, match=exact(message)):
        CmdqvParams(**kwargs)


def test_indices_beyond_geometry_refused() -> None:
    c = small()
    with pytest.raises(DeviceStateError, match=exact("VINTF 4 out of range: allowed 0 .. 3")):
        c.alloc_lvcmdq(0, vintf=4, lidx=0)
    with pytest.raises(DeviceStateError, match=exact("VCMDQ 8 out of range: allowed 0 .. 7")):
        c.alloc_lvcmdq(8, vintf=0, lidx=0)
    with pytest.raises(DeviceStateError, match=exact("VINTF1: SID pair 16 out of range: allowed 0 .. 15")):
        c.vintfs[1].set_sid_pair(16, vsid=1, psid=2)
    with pytest.raises(QueueConfigError, match=exact("LOG2SIZE=20 out of range: allowed 7 .. 19")):
        c.setup_lvcmdq(q=0, vintf=0, lidx=0, log2size=20)


# ---------------------------------------------------------------- CMDQ_ALLOC order
def test_alloc_must_be_ascending_per_vintf() -> None:
    c = small()
    with pytest.raises(DeviceStateError, match=exact("ascending order: expected LVCMDQ0, got LVCMDQ1")):
        c.alloc_lvcmdq(3, vintf=2, lidx=1)
    c.alloc_lvcmdq(3, vintf=2, lidx=0)
    c.alloc_lvcmdq(6, vintf=1, lidx=0)  # another VINTF has its own order
    c.alloc_lvcmdq(1, vintf=2, lidx=1)
    with pytest.raises(DeviceStateError, match=exact("expected LVCMDQ2, got LVCMDQ5")):
        c.alloc_lvcmdq(0, vintf=2, lidx=5)
    with pytest.raises(DeviceStateError, match=exact("CMDQ_ALLOC(3): already VINTF2 LVCMDQ0: free it first")):
        c.alloc_lvcmdq(3, vintf=3, lidx=0)
    assert CMDQV_CMDQ_ALLOC.decode(c.cmdq_alloc[1]) == {
        "CMDQV_CMDQ_ALLOC_VINTF": 2,
        "CMDQV_CMDQ_ALLOC_LVCMDQ": 1,
        "CMDQV_CMDQ_ALLOCATED": 1,
    }
    assert {k: v.idx for k, v in c.vintfs[2].lvcmdqs.items()} == {0: 3, 1: 1}


def test_free_must_be_descending_per_vintf() -> None:
    c = small()
    for lidx, q in enumerate([5, 2, 7]):
        c.alloc_lvcmdq(q, vintf=3, lidx=lidx)
    with pytest.raises(
        DeviceStateError, match=exact("descending order: expected LVCMDQ2 (VCMDQ 7), got LVCMDQ0")
    ):
        c.free_lvcmdq(5)
    c.free_lvcmdq(7)
    with pytest.raises(DeviceStateError, match=exact("expected LVCMDQ1 (VCMDQ 2), got LVCMDQ0")):
        c.free_lvcmdq(5)
    c.free_lvcmdq(2)
    c.free_lvcmdq(5)
    assert c.vintfs[3].lvcmdqs == {} and c.cmdq_alloc[5] == 0
    with pytest.raises(DeviceStateError, match=exact("VCMDQ 5 is not allocated: nothing to free")):
        c.free_lvcmdq(5)


def test_free_of_enabled_vcmdq_refused_and_base_write_while_enabled_refused() -> None:
    c = small()
    vq = host_queue(c, q=4)
    with pytest.raises(DeviceStateError, match=exact("VCMDQ 4 is enabled: clear CONFIG.EN before freeing")):
        c.free_lvcmdq(4)
    with pytest.raises(DeviceStateError, match=exact("vcmdq4: BASE written while CONFIG.EN=1")):
        vq.write_base(0x100000 | VCMDQ_LOG2SIZE.prep(7))
    vq.write_config(0)
    c.free_lvcmdq(4)


def test_vcmdq_consumes_only_when_enabled_allocated_and_vintf_enabled() -> None:
    c = small()
    vq = host_queue(c, q=1)
    assert VCMDQ_ENABLED.get(vq.status) and VINTF_ENABLED.get(c.vintfs[0].status)
    c.vintfs[0].configure(en=False, hyp_own=True)
    vq.submit(SYNC)
    assert not VCMDQ_ENABLED.get(vq.status) and vq.step() is None and c.schedule() == 0
    c.vintfs[0].configure(en=True, hyp_own=True)
    assert c.schedule() == 1
    never_based = c.vcmdqs[6]
    c.alloc_lvcmdq(6, vintf=0, lidx=1)
    never_based.write_config(1)
    assert not VCMDQ_ENABLED.get(never_based.status)


# ---------------------------------------------------------------- guest rewriting and ILL
def test_guest_vintf_rewrites_vmid() -> None:
    c = small()
    vq = guest_queue(c, vmid=9)
    vq.submit(
        np.vstack(
            [
                Command(Opcode.CMD_TLBI_NH_ASID, asid=4, vmid=3).encode(),
                Command(Opcode.CMD_TLBI_NH_VA, asid=4, vmid=0, addr=0x5000, leaf=1).encode(),
                SYNC,
            ]
        )
    )
    assert vq.consume_all() == 3
    ex = executed(vq)
    assert [cmd["vmid"] for cmd in ex[:2]] == [9, 9]
    assert [cmd["asid"] for cmd in ex[:2]] == [4, 4] and ex[1]["addr"] == 0x5000
    assert Command.decode(vq.queue.mem[0])["vmid"] == 3  # queue memory (guest's) is not modified


def test_guest_vintf_matches_and_replaces_sids() -> None:
    c = small()
    vq = guest_queue(c)
    vq.submit(np.vstack([Command(Opcode.CMD_ATC_INV, sid=s, size=52).encode() for s in (0x10, 0x8)]))
    assert vq.consume_all() == 2
    assert [cmd["sid"] for cmd in executed(vq)] == [0x110, 0x108]


def test_unmatched_sid_is_ill() -> None:
    c = small()
    vq = guest_queue(c)
    c.vintfs[1].write_sid_match(1, SID_MATCH_VIRT_SID.prep(0x10))  # pair 1 disabled: EN=0
    vq.submit(np.vstack([Command(Opcode.CMD_ATC_INV, sid=s, size=52).encode() for s in (0x8, 0x9, 0x10)]))
    assert vq.consume_all() == 1
    (err,) = c.log.of("error")
    assert (err.pos, err.detail["cerror"], err.opcode) == (1, "ILL", Opcode.CMD_ATC_INV)
    vq.write_gerrorn(vq.gerror)  # retry without fixing: still unmatched
    vq.consume_all()
    assert [e.pos for e in c.log.of("error")] == [1, 1]


@pytest.mark.parametrize(
    "op",
    [
        Opcode.CMD_TLBI_NH_ALL,
        Opcode.CMD_CFGI_CD,
        Opcode.CMD_TLBI_S2_IPA,
        Opcode.CMD_TLBI_S12_VMALL,
        Opcode.CMD_PRI_RESP,
    ],
)
def test_opcode_outside_guest_set_is_ill(op: Opcode) -> None:
    c = small()
    vq = guest_queue(c)
    fields = {f.name: 0x8 if f.name == "sid" else 0 for f in LAYOUT[op]}
    vq.submit(Command(op, **fields).encode())
    assert vq.consume_all() == 0
    assert vq.stopped and vq.queue.err == CError.ILL and c.log.of("error")[0].opcode == op


def test_2021_opcode_set_accepted_when_configured() -> None:
    assert {Opcode.CMD_TLBI_S12_VMALL, Opcode.CMD_TLBI_S2_IPA} == GUEST_OPCODES_2021 - GUEST_OPCODES_LINUX
    c = small(guest_opcodes="v3-2021")
    vq = guest_queue(c, vmid=11)
    vq.submit(
        np.vstack(
            [
                Command(Opcode.CMD_TLBI_S12_VMALL, vmid=1).encode(),
                Command(Opcode.CMD_TLBI_S2_IPA, vmid=1, ipa=0x8000).encode(),
                SYNC,
                Command(Opcode.CMD_CFGI_STE, sid=0x8).encode(),
            ]
        )
    )
    assert vq.consume_all() == 3
    assert [cmd["vmid"] for cmd in executed(vq)[:2]] == [11, 11]
    assert vq.stopped and c.log.of("error")[0].opcode == Opcode.CMD_CFGI_STE


def test_host_owned_vintf_accepts_every_opcode_unchanged() -> None:
    c = small()
    vq = host_queue(c)
    batch = np.vstack(
        [Command(op, **{f.name: (f.mask if f.in_place else 1) for f in LAYOUT[op]}).encode() for op in Opcode]
    )
    vq.submit(batch)
    assert vq.consume_all() == len(Opcode)
    assert c.log.of("error") == []
    assert np.array_equal(
        np.array([e.detail["executed"] for e in c.log.of("consume")], dtype=np.uint64), batch
    )


# ---------------------------------------------------------------- errors, maps, interrupt
def test_error_sets_the_three_maps_and_clears_on_gerrorn() -> None:
    c = Cmdqv(CmdqvParams(num_vintfs=4, num_vcmdqs=128))
    vi = c.vintfs[2]
    vi.configure(en=True, vmid=1, hyp_own=False)
    c.setup_lvcmdq(q=3, vintf=2, lidx=0, log2size=7)
    vq = c.setup_lvcmdq(q=100, vintf=2, lidx=1, log2size=7)  # a CMDQ_ERR_MAP bit above 64
    vq.submit(Command(Opcode.CMD_CFGI_STE, sid=0x8).encode())
    c.schedule()
    assert c.vintf_err_map == 1 << 2
    assert c.cmdq_err_map == 1 << 100
    assert vi.lvcmdq_err_map == 1 << 1
    assert c.vintfs[0].lvcmdq_err_map == 0
    vq.write_gerrorn(vq.gerror)
    assert c.vintf_err_map == c.cmdq_err_map == vi.lvcmdq_err_map == 0


def test_error_raises_the_cmdqv_interrupt() -> None:
    c = small()
    vq = guest_queue(c)
    assert not c.irq_pending and c.irq_count == 0
    vq.submit(Command(Opcode.CMD_CFGI_STE, sid=0x8).encode())
    c.schedule()
    assert c.irq_pending and c.irq_count == 1
    (irq,) = c.log.of("irq")
    assert irq.detail == {"vcmdq": 2, "vintf": 1, "lidx": 0, "cerror": "ILL"}
    assert vq.gerror ^ vq.gerrorn == 1


def test_host_vintf0_recovery_in_the_isr() -> None:
    c = small()
    vq = host_queue(c, q=5)
    row = Command(Opcode.CMD_TLBI_NH_ASID, asid=1).encode()
    row[0] = (int(row[0]) & ~0xFF) | 0x7F  # an opcode the hardware does not know: ILL even for the host
    vq.submit(np.vstack([row, SYNC]))
    c.schedule()
    assert vq.stopped and c.irq_pending
    assert tegra241_cmdqv_isr(c) == []  # nothing forwarded
    assert not c.irq_pending and not vq.stopped
    fixed = Command.decode(vq.queue.mem[0])
    assert fixed.opcode is Opcode.CMD_SYNC and fixed["cs"] == CS_NONE  # busy-polling queue: CS=NONE
    assert c.schedule() == 2
    assert [e.pos for e in c.log.of("complete")] == [0, 1]


def test_guest_error_forwarded_as_vevent_and_not_fixed_by_host() -> None:
    c = small()
    vq = guest_queue(c, vintf=3, q=6)
    vq.submit(np.vstack([Command(Opcode.CMD_CFGI_STE, sid=0x8).encode(), SYNC]))
    c.schedule()
    vevents: list[dict] = []
    assert tegra241_cmdqv_isr(c, vevents) == vevents == [{"vintf": 3, "lvcmdq_err_map": [1, 0]}]
    assert vq.stopped and Command.decode(vq.queue.mem[0]).opcode is Opcode.CMD_CFGI_STE
    assert c.log.of("skip_err") == []
    # the guest's own driver recovers through its mapped VCMDQ page
    assert guest_handle_vevent(c, vevents[0]) == [0]
    assert c.schedule() == 2


# ---------------------------------------------------------------- hardware-inserted SYNCs
def test_hw_sync_inserted_per_turn_visible_but_not_signalled() -> None:
    c = small(cmd_batch=32)
    a = host_queue(c, q=0)
    b = host_queue(c, q=1)
    tlbis = np.vstack([Command(Opcode.CMD_TLBI_NH_ASID, asid=i).encode() for i in range(40)])
    a.submit(tlbis)
    b.submit(tlbis[:5])
    mem_before = (a.queue.mem.copy(), b.queue.mem.copy())
    assert c.schedule() == 45
    hw = [(e.queue, e.pos, e.detail["commands"], e.detail["reason"]) for e in c.log.of("hw_sync")]
    assert hw == [("vcmdq0", 32, 32, "cmd_batch"), ("vcmdq1", 5, 5, "leave"), ("vcmdq0", 40, 8, "leave")]
    # no software-visible completion signal: no SYNC completes, no MSI, no SEV, memory untouched
    assert [e for e in c.log.of("complete") if e.opcode == Opcode.CMD_SYNC] == []
    assert c.log.of("msi", "sev") == [] and c.signals.sev_events == 0
    assert np.array_equal(a.queue.mem, mem_before[0]) and np.array_equal(b.queue.mem, mem_before[1])
    # CONS moved only over consumed entries
    assert (a.queue.cons_pos, b.queue.cons_pos) == (40, 5)
    assert len(c.log.of("consume")) == 45


def test_hw_sync_can_be_switched_off_and_limits_respected() -> None:
    c = small(hw_sync=False, cmd_batch=4)
    a = host_queue(c, q=0)
    a.submit(np.vstack([SYNC] * 10))
    assert c.schedule(max_commands=6) == 6
    assert c.log.of("hw_sync") == [] and a.queue.cons_pos == 6
    assert c.schedule() == 4


def test_vintf_config_register_round_trip() -> None:
    c = small()
    vi = c.vintfs[1]
    vi.write_config(VINTF_CONFIG.encode(VINTF_HYP_OWN=1, VINTF_VMID=0xBEEF, VINTF_EN=1) | (1 << 30))
    assert (vi.enabled, vi.hyp_own, vi.vmid) == (True, True, 0xBEEF)
    assert vi.config == VINTF_CONFIG.encode(
        VINTF_HYP_OWN=1, VINTF_VMID=0xBEEF, VINTF_EN=1
    )  # RES0 bits dropped
