"""Main command queue and its consumer: SYNC ordering and signalling, errors and Linux's recovery."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdqv_lab.device.cmdq import CError, CommandQueue
from cmdqv_lab.device.commands import CS_IRQ, CS_NONE, CS_SEV, Command, Opcode, sync_command
from cmdqv_lab.device.events import EventLog
from cmdqv_lab.device.queue import Queue
from cmdqv_lab.device.regs import CMDQ_CONS_ERR, GERROR_CMDQ_ERR, IDR0_COHACC, IDR0_MSI, IDR0_SEV, IDR1_CMDQS
from cmdqv_lab.device.smmu import SMMU, SmmuConfig
from cmdqv_lab.driver.recovery import (
    arm_smmu_cmdq_build_sync_cmd,
    arm_smmu_cmdq_skip_err,
    arm_smmu_gerror_handler,
    drain,
    sync_msi_done,
)
from cmdqv_lab.errors import DeviceStateError, ParamError, QueueConfigError

BAD_OPCODE = 0x7F


def tlbi(asid: int = 1) -> np.ndarray:
    return Command(Opcode.CMD_TLBI_NH_ASID, asid=asid).encode()


def bad() -> np.ndarray:
    row = tlbi()
    row[0] = (int(row[0]) & ~0xFF) | BAD_OPCODE
    return row


# ---------------------------------------------------------------- SMMU construction
def test_smmu_id_registers_and_msipoll() -> None:
    smmu = SMMU(cmdqs=15, sev=True, msi=False, cohacc=True)
    assert IDR1_CMDQS.get(smmu.idr1) == 15
    assert (IDR0_SEV.get(smmu.idr0), IDR0_MSI.get(smmu.idr0), IDR0_COHACC.get(smmu.idr0)) == (1, 0, 1)
    assert not smmu.msipoll
    assert SMMU(msi=True, cohacc=True).msipoll and not SMMU(msi=True, cohacc=False).msipoll
    q = SmmuConfig.qemu()
    assert (q.msi, q.sev, q.autoconsume, q.cmdqs) == (False, False, True, 19)


def test_smmu_refuses_bad_geometry() -> None:
    with pytest.raises(ParamError, match=re.escape("cmdqs=20 is out of range: allowed 0 .. 19")):
        SmmuConfig(cmdqs=20)
    with pytest.raises(QueueConfigError, match=re.escape("LOG2SIZE=12 out of range: allowed 7 .. 10")):
        SMMU(cmdqs=10, cmdq_log2size=12)


# ---------------------------------------------------------------- consumption and SYNC signalling
def test_consumes_in_order_and_sync_completes_after_earlier_commands() -> None:
    smmu = SMMU()
    cq = smmu.cmdq
    cq.submit(np.vstack([tlbi(1), tlbi(2), sync_command(cs=CS_SEV).encode(), tlbi(3)]))
    assert cq.step() is not None and cq.queue.cons == 1
    assert cq.consume_all(limit=1) == 1
    ev = cq.step()
    assert (
        ev is not None
        and ev.kind == "complete"
        and ev.opcode == Opcode.CMD_SYNC
        and ev.detail["cs"] == CS_SEV
    )
    assert cq.consume_all() == 1 and cq.step() is None
    assert [e.pos for e in smmu.log.of("complete")] == [0, 1, 2, 3]
    assert smmu.sev_events == 1


def test_msi_polled_sync_clears_its_own_slot() -> None:
    """Linux: MSIADDR = the SYNC's slot, MSIDATA = 0; the waiter polls the slot's first word."""
    smmu = SMMU(msi=True, cohacc=True)
    cq = smmu.cmdq
    cq.submit(tlbi())
    prod = cq.queue.prod
    sync = arm_smmu_cmdq_build_sync_cmd(cq, prod, msipoll=smmu.msipoll)
    assert Command.decode(sync)["cs"] == CS_IRQ and Command.decode(sync)["msiaddr"] == cq.queue.entry_addr(
        prod
    )
    cq.submit(sync)
    assert not sync_msi_done(cq, prod)
    cq.step()
    assert not sync_msi_done(cq, prod)  # the TLBI alone signals nothing
    cq.step()
    assert sync_msi_done(cq, prod) and int(cq.queue.mem[cq.queue.idx(prod), 0]) & 0xFFFFFFFF == 0
    (msi,) = smmu.log.of("msi")
    assert msi.detail == {"addr": cq.queue.entry_addr(prod), "data": 0}


def test_msi_to_plain_memory_and_without_msi_support() -> None:
    smmu = SMMU(msi=True)
    smmu.cmdq.submit(sync_command(cs=CS_IRQ, msiaddr=0x1000, msidata=0xABCD).encode())
    smmu.cmdq.consume_all()
    assert smmu.dma.read32(0x1000) == 0xABCD
    quiet = SMMU(msi=False, sev=False)
    quiet.cmdq.submit(np.vstack([sync_command(cs=CS_IRQ, msiaddr=0x1000, msidata=7).encode()] * 2))
    quiet.cmdq.submit(sync_command(cs=CS_SEV).encode())
    assert quiet.cmdq.consume_all() == 3
    assert quiet.dma.read32(0x1000) == 0 and quiet.sev_events == 0 and quiet.log.of("msi", "sev") == []


def test_sig_none_signals_nothing() -> None:
    smmu = SMMU()
    smmu.cmdq.submit(sync_command(cs=CS_NONE).encode())
    smmu.cmdq.consume_all()
    assert smmu.log.of("msi", "sev") == [] and smmu.cmdq.consumed(0)


# ---------------------------------------------------------------- errors
def test_ill_stops_queue_at_faulting_entry_and_toggles_gerror() -> None:
    smmu = SMMU()
    cq = smmu.cmdq
    cq.submit(np.vstack([tlbi(), bad(), sync_command(cs=CS_SEV).encode()]))
    assert cq.consume_all() == 1
    assert cq.stopped and cq.queue.cons == 1 and CMDQ_CONS_ERR.get(cq.cons_reg) == CError.ILL
    assert smmu.gerror ^ smmu.gerrorn == GERROR_CMDQ_ERR.mask
    assert cq.step() is None and cq.consume_all() == 0  # nothing runs while the error is active
    # acknowledging without fixing re-executes the bad entry: the error comes back (GERROR toggles again)
    smmu.write_gerrorn(smmu.gerror)
    assert not cq.stopped
    cq.consume_all()
    assert cq.stopped and smmu.gerror == 0 and smmu.gerrorn == 1
    assert [e.pos for e in smmu.log.of("error")] == [1, 1]
    # Linux: skip_err rewrites it into a CMD_SYNC, GERRORN = GERROR, then the rest completes
    assert arm_smmu_gerror_handler(smmu)
    assert not arm_smmu_gerror_handler(smmu)  # IRQ_NONE: nothing active
    assert cq.consume_all() == 2
    replaced = Command.decode(cq.queue.mem[1])
    assert (replaced.opcode, replaced["cs"], replaced["msh"], replaced["msiattr"]) == (
        Opcode.CMD_SYNC,
        CS_SEV,
        3,
        15,
    )
    assert [e.pos for e in smmu.log.of("complete")] == [0, 1, 2]


def test_reserved_cs_is_ill() -> None:
    smmu = SMMU()
    row = sync_command(cs=CS_NONE).encode()
    row[0] |= np.uint64(3 << 12)
    smmu.cmdq.submit(row)
    smmu.cmdq.consume_all()
    assert smmu.cmdq.stopped and smmu.cmdq.queue.err == CError.ILL


def test_abort_is_retried_unchanged() -> None:
    smmu = SMMU()
    cq = smmu.cmdq
    cq.submit(np.vstack([tlbi(1), tlbi(2)]))
    cq.inject_fault(1, CError.ABT, times=2)
    errors = drain(cq.consume_all, lambda: cq.stopped, lambda: arm_smmu_gerror_handler(smmu))
    assert errors == 2
    assert [e.detail["cerror"] for e in smmu.log.of("error")] == ["ABT", "ABT"]
    assert smmu.log.of("skip_err") == []  # ABT: the slot is left alone
    assert [(e.pos, e.opcode) for e in smmu.log.of("complete")] == [
        (0, Opcode.CMD_TLBI_NH_ASID),
        (1, Opcode.CMD_TLBI_NH_ASID),
    ]


def test_atc_inv_timeout_reported_at_following_sync_and_sync_retried() -> None:
    smmu = SMMU()
    cq = smmu.cmdq
    atc = Command(Opcode.CMD_ATC_INV, sid=4, size=52).encode()
    cq.submit(np.vstack([atc, tlbi(), sync_command(cs=CS_SEV).encode(), tlbi()]))
    cq.inject_fault(0, CError.ATC_INV_SYNC, times=2)
    assert cq.consume_all() == 2
    assert cq.stopped and cq.queue.cons == 2 and cq.queue.err == CError.ATC_INV_SYNC
    assert [e.pos for e in smmu.log.of("complete")] == [1]  # the ATC_INV has not completed
    assert arm_smmu_cmdq_skip_err(cq) is CError.ATC_INV_SYNC and smmu.log.of("skip_err") == []
    drain(cq.consume_all, lambda: cq.stopped, lambda: arm_smmu_gerror_handler(smmu))
    assert [e.pos for e in smmu.log.of("error")] == [2, 2]
    completes = smmu.log.of("complete")
    assert [e.pos for e in completes] == [1, 0, 2, 3]  # ATC_INV completes just before its SYNC
    assert Command.decode(cq.queue.mem[2]).opcode is Opcode.CMD_SYNC


def test_inject_fault_checks() -> None:
    cq = CommandQueue(Queue(7))
    with pytest.raises(DeviceStateError, match=re.escape("need ILL/ABT/ATC_INV_SYNC")):
        cq.inject_fault(0, CError.NONE)
    cq.submit(tlbi())
    cq.consume_all()
    with pytest.raises(DeviceStateError, match=re.escape("position 0 already consumed: allowed >= 1")):
        cq.inject_fault(0, CError.ILL)


def test_autoconsume_resumes_on_ack_like_qemu() -> None:
    smmu = SMMU(SmmuConfig.qemu())
    smmu.cmdq.submit(np.vstack([bad(), tlbi()]))
    assert smmu.cmdq.stopped
    arm_smmu_gerror_handler(smmu)
    assert not smmu.cmdq.stopped and smmu.cmdq.queue.queue_empty()
    assert [e.kind for e in smmu.log.of("error", "ack", "skip_err")] == ["error", "skip_err", "ack"]


def test_event_log_records() -> None:
    log = EventLog()
    cq = CommandQueue(Queue(7), log=log, name="q")
    cq.submit(tlbi(9))
    cq.consume_all()
    rows = log.records()
    assert [r["kind"] for r in rows] == ["submit", "consume", "complete"]
    assert rows[1]["opcode"] == "CMD_TLBI_NH_ASID" and rows[1]["queue"] == "q" and rows[1]["pos"] == 0


# ---------------------------------------------------------------- properties over random streams
KINDS = ["tlbi", "va", "ste", "atc", "sync_sev", "sync_irq", "sync_none", "bad"]


@dataclass
class Planned:
    kind: str
    fault: CError | None = None
    times: int = 0


def _row(cq: CommandQueue, p: Planned, prod: int) -> np.ndarray:
    if p.kind == "tlbi":
        return tlbi(3)
    if p.kind == "va":
        return Command(Opcode.CMD_TLBI_NH_VA, asid=3, addr=0x4000, leaf=1).encode()
    if p.kind == "ste":
        return Command(Opcode.CMD_CFGI_STE, sid=8, leaf=1).encode()
    if p.kind == "atc":
        return Command(Opcode.CMD_ATC_INV, sid=8, size=52).encode()
    if p.kind == "bad":
        return bad()
    if p.kind == "sync_irq":
        return arm_smmu_cmdq_build_sync_cmd(cq, prod, msipoll=True)
    return sync_command(cs=CS_SEV if p.kind == "sync_sev" else CS_NONE).encode()


@st.composite
def planned_streams(draw: st.DrawFn) -> list[Planned]:
    out = []
    n = draw(st.integers(1, 300))  # long enough to wrap a 128-entry queue
    for kind in draw(st.lists(st.sampled_from(KINDS), min_size=n, max_size=n)):
        p = Planned(kind)
        if kind == "atc" and draw(st.booleans()):
            p.fault, p.times = CError.ATC_INV_SYNC, draw(st.integers(1, 2))
        elif kind != "bad" and draw(st.integers(0, 9)) == 0:
            p.fault, p.times = draw(st.sampled_from([CError.ILL, CError.ABT])), draw(st.integers(1, 2))
        out.append(p)
    out.append(Planned("sync_sev"))  # a final SYNC observes every timed-out ATC_INV
    return out


def _run_random(data: st.DataObject, plan: list[Planned]) -> tuple[SMMU, list[int]]:
    """Submit in random chunks, consume random amounts, recover at random moments."""
    smmu = SMMU(cmdq_log2size=7, msi=True, sev=True)
    cq = smmu.cmdq
    opcodes: list[int] = []
    i = 0

    def submit(n: int) -> None:
        nonlocal i
        n = min(n, len(plan) - i, cq.queue.queue_space())
        if n <= 0:
            return
        rows = [_row(cq, plan[i + k], cq.queue.queue_inc_prod_n(k)) for k in range(n)]
        positions = cq.submit(np.vstack(rows))
        for k, pos in enumerate(positions):
            opcodes.append(int(rows[k][0]) & 0xFF)
            if plan[i + k].fault is not None:
                cq.inject_fault(pos, plan[i + k].fault, plan[i + k].times)  # type: ignore[arg-type]
        i += n

    for _ in range(data.draw(st.integers(0, 60))):
        action = data.draw(st.sampled_from(["submit", "step", "consume_all", "handle"]))
        if action == "submit":
            submit(data.draw(st.integers(1, 80)))
        elif action == "step":
            cq.step()
        elif action == "consume_all":
            cq.consume_all(limit=data.draw(st.integers(1, 50)))
        else:
            arm_smmu_gerror_handler(smmu)
    while i < len(plan) or not cq.queue.queue_empty() or cq.stopped:
        submit(len(plan))
        drain(cq.consume_all, lambda: cq.stopped, lambda: arm_smmu_gerror_handler(smmu))
    return smmu, opcodes


@settings(max_examples=120, deadline=None)
@given(plan=planned_streams(), data=st.data())
def test_errors_stop_and_recovery_resumes_with_nothing_lost_or_run_twice(
    plan: list[Planned], data: st.DataObject
) -> None:
    smmu, opcodes = _run_random(data, plan)
    log = smmu.log
    n = len(plan)
    completes = log.of("complete")
    # every position completed exactly once, and consumed (executed) exactly once
    assert sorted(e.pos for e in completes) == list(range(n))
    assert sorted(e.pos for e in log.of("consume")) == list(range(n))
    errors = log.of("error")
    ill_positions = {i for i, p in enumerate(plan) if p.kind == "bad" or p.fault is CError.ILL}
    by_pos = {e.pos: e for e in completes}
    for pos in range(n):
        want = Opcode.CMD_SYNC if pos in ill_positions else opcodes[pos]
        assert by_pos[pos].opcode == want, pos
    # error counts per position: bad opcodes once, injected ILL/ABT exactly `times`
    counts = Counter((e.pos, e.detail["cerror"]) for e in errors)
    for pos, p in enumerate(plan):
        if p.kind == "bad":
            assert counts[(pos, "ILL")] == 1
        elif p.fault in (CError.ILL, CError.ABT):
            assert counts[(pos, p.fault.name)] == p.times
    # ATC_INV_SYNC errors only at SYNC positions (original or rewritten)
    for e in errors:
        if e.detail["cerror"] == "ATC_INV_SYNC":
            assert by_pos[e.pos].opcode == Opcode.CMD_SYNC
    # nothing is consumed between an error and its acknowledgement
    stopped = False
    for e in log.of("error", "ack", "consume"):
        if e.kind == "error":
            assert not stopped
            stopped = True
        elif e.kind == "ack":
            stopped = False
        else:
            assert not stopped
    # one skip_err rewrite per ILL error, none for ABT/ATC_INV_SYNC
    assert len(log.of("skip_err")) == sum(1 for e in errors if e.detail["cerror"] == "ILL")


@settings(max_examples=120, deadline=None)
@given(plan=planned_streams(), data=st.data())
def test_sync_never_completes_before_an_earlier_command(plan: list[Planned], data: st.DataObject) -> None:
    smmu, _ = _run_random(data, plan)
    done: set[int] = set()
    for e in smmu.log.of("complete"):
        if e.opcode == Opcode.CMD_SYNC:
            assert done >= set(range(e.pos)), f"SYNC at {e.pos} completed before {set(range(e.pos)) - done}"
        done.add(e.pos)
    # every MSI of an MSI-polled SYNC hit that SYNC's own slot
    for e in smmu.log.of("msi"):
        assert e.detail["addr"] == smmu.cmdq.queue.base + 16 * e.index and e.detail["data"] == 0
