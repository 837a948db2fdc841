"""ECMDQ: per-queue SYNC scope, per-queue errors with the ERRACK handshake, GERROR.CMDQP_ERR."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdqv_lab.device.cmdq import CError
from cmdqv_lab.device.commands import CS_SEV, Command, Opcode, sync_command
from cmdqv_lab.device.regs import (
    ECMDQ_CONS_ERR,
    ECMDQ_CONS_ERR_REASON,
    ECMDQ_PROD_EN,
    ECMDQ_PROD_ERRACK,
    GERROR_CMDQ_ERR,
    GERROR_CMDQP_ERR,
)
from cmdqv_lab.device.smmu import SMMU
from cmdqv_lab.driver.recovery import arm_smmu_ecmdq_skip_err, arm_smmu_gerror_handler


def tlbi(asid: int = 1) -> np.ndarray:
    return Command(Opcode.CMD_TLBI_NH_ASID, asid=asid).encode()


SYNC = sync_command(cs=CS_SEV).encode()


def bad() -> np.ndarray:
    row = tlbi()
    row[0] = (int(row[0]) & ~0xFF) | 0x7F
    return row


def _smmu(n: int = 3) -> SMMU:
    return SMMU(num_ecmdqs=n, ecmdq_log2size=7)


def test_sync_covers_its_own_queue_only() -> None:
    smmu = _smmu(2)
    ecmdqs = smmu.ecmdqs
    assert ecmdqs is not None
    b = ecmdqs[1].submit(np.vstack([tlbi(1), tlbi(2)]))  # queue B: TLBIs, never consumed here
    a = ecmdqs[0].submit(np.vstack([tlbi(3), SYNC]))  # queue A: TLBI + SYNC
    ecmdqs.step(0)
    ev = ecmdqs.step(0)
    assert ev is not None and ev.opcode == Opcode.CMD_SYNC and ev.kind == "complete" and ev.queue == "ecmdq0"
    assert ecmdqs[0].consumed(a[-1]) and not any(ecmdqs[1].consumed(p) for p in b)


def test_error_sets_cmdqp_err_and_queue_err_others_keep_going() -> None:
    smmu = _smmu(3)
    e = smmu.ecmdqs
    assert e is not None
    e[1].submit(np.vstack([tlbi(), bad(), SYNC]))
    e[2].submit(np.vstack([tlbi(), SYNC]))
    assert e.consume_all() == 3  # queue 1: one TLBI then stops; queue 2: both
    assert e.errored() == [1]
    q = e[1]
    assert ECMDQ_CONS_ERR.get(q.cons_reg) != ECMDQ_PROD_ERRACK.get(q.prod_reg)
    assert ECMDQ_CONS_ERR_REASON.get(q.cons_reg) == CError.ILL and q.queue.idx(q.queue.cons) == 1
    assert (smmu.gerror ^ smmu.gerrorn) == GERROR_CMDQP_ERR.mask  # not CMDQ_ERR: the main queue is fine
    assert not smmu.errors.active(GERROR_CMDQ_ERR.mask)
    # acknowledging GERROR alone does not restart the queue: ERRACK must match CONS.ERR
    smmu.write_gerrorn(smmu.gerror)
    assert e.step(1) is None and q.stopped
    # the ECMDQ walk fixes the slot and toggles ERRACK; the queue resumes
    assert arm_smmu_ecmdq_skip_err(e) == [1]
    assert not q.stopped and e.consume_all() == 2
    assert Command.decode(q.queue.mem[1]).opcode is Opcode.CMD_SYNC


def test_gerror_handler_recovers_ecmdq() -> None:
    smmu = _smmu(2)
    e = smmu.ecmdqs
    assert e is not None
    e[0].submit(np.vstack([bad(), tlbi()]))
    e[1].submit(np.vstack([tlbi(), bad(), SYNC]))
    e.consume_all()
    assert e.errored() == [0, 1]
    assert arm_smmu_gerror_handler(smmu)
    assert e.errored() == [] and smmu.gerror == smmu.gerrorn
    assert e.consume_all() == 4
    assert [ev.queue for ev in smmu.log.of("skip_err")] == ["ecmdq0", "ecmdq1"]
    assert len(smmu.log.of("ack", queue="gerror")) == 1


def test_errack_write_resumes_at_cons_and_refaults_unless_fixed() -> None:
    smmu = _smmu(1)
    q = smmu.ecmdqs[0]  # type: ignore[index]
    q.submit(bad())
    q.consume_all()
    assert q.stopped
    q.write_prod(ECMDQ_PROD_ERRACK.set(q.prod_reg, ECMDQ_CONS_ERR.get(q.cons_reg)))
    assert not q.stopped
    q.consume_all()
    assert q.stopped and [ev.pos for ev in smmu.log.of("error")] == [0, 0]
    assert [ev.kind for ev in smmu.log.of("ack")] == ["ack"]


def test_disabled_ecmdq_does_not_consume() -> None:
    smmu = _smmu(1)
    q = smmu.ecmdqs[0]  # type: ignore[index]
    q.write_prod(q.prod_reg & ~ECMDQ_PROD_EN.mask)
    q.submit(tlbi())
    assert q.step() is None
    q.write_prod(q.prod_reg | ECMDQ_PROD_EN.mask)
    assert q.consume_all() == 1


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_random_interleaving_with_errors(data: st.DataObject) -> None:
    nq = data.draw(st.integers(2, 4))
    smmu = _smmu(nq)
    e = smmu.ecmdqs
    assert e is not None
    kinds: list[list[str]] = [[] for _ in range(nq)]
    for k in range(nq):
        n = data.draw(st.integers(1, 100))
        plan = data.draw(st.lists(st.sampled_from(["tlbi", "sync", "bad", "abt"]), min_size=n, max_size=n))
        plan.append("sync")
        for kind in plan:
            row = {"tlbi": tlbi(k), "sync": SYNC, "bad": bad(), "abt": tlbi(k)}[kind]
            (pos,) = e[k].submit(row)
            if kind == "abt":
                e[k].inject_fault(pos, CError.ABT)
        kinds[k] = plan
    # interleave: consume queue k's next command in a random order, recover at random moments
    for _ in range(data.draw(st.integers(0, 400))):
        choice = data.draw(st.integers(-1, nq - 1))
        if choice < 0:
            arm_smmu_gerror_handler(smmu)
        else:
            e.step(choice)
    for _ in range(1000):
        e.consume_all()
        if not e.errored():
            break
        arm_smmu_gerror_handler(smmu)
    assert not e.errored()
    for k in range(nq):
        name = f"ecmdq{k}"
        completes = smmu.log.of("complete", queue=name)
        assert [c.pos for c in completes] == list(range(len(kinds[k])))  # in order, none lost or repeated
        errors = Counter((ev.pos, ev.detail["cerror"]) for ev in smmu.log.of("error", queue=name))
        for pos, kind in enumerate(kinds[k]):
            if kind == "bad":
                assert errors[(pos, "ILL")] == 1 and completes[pos].opcode == Opcode.CMD_SYNC
            elif kind == "abt":
                assert errors[(pos, "ABT")] == 1 and completes[pos].opcode == Opcode.CMD_TLBI_NH_ASID
            else:
                assert sum(errors[(pos, c.name)] for c in CError) == 0
