"""ECMDQ (SMMUv3.3 Enhanced Command Queues): one command queue per CPU, each with its own consumer.

Modelled after Zhen Lei's (later Marvell's) Linux series, which never reached mainline; the register
bit positions it uses are kept in :mod:`cmdqv_lab.device.regs` ("ECMDQ" block) and are unverified.

* Each ECMDQ has its own PROD/CONS/ERR. ``ECMDQ_PROD`` carries EN (bit 31) and ERRACK (bit 23);
  ``ECMDQ_CONS`` carries ENACK (bit 31), ERR_REASON [30:24] (the CERROR code, read by Linux's
  ``__arm_smmu_cmdq_skip_err`` as ``CMDQ_CONS_ERR``) and ERR (bit 23).
* **A CMD_SYNC covers its own ECMDQ only**: consuming queue A's SYNC does not wait for queue B.
* An error toggles the queue's ``ECMDQ_CONS.ERR`` and sets ``GERROR.CMDQP_ERR`` (toggled if not
  already active: assumption). The queue is stopped while ``CONS.ERR != PROD.ERRACK``; software
  acknowledges by writing PROD with ERRACK equal to CONS.ERR. In the series this write is done on
  the owning CPU (an IPI, later a lock around the shadow PROD): a driver detail, not modelled here.
  Writing an ERRACK that differs from CONS.ERR when no error is pending stops the queue in this
  model (the handshake is defined only by the two bits; what hardware does then is unknown).
* Whether the SMMU consumes several ECMDQs in parallel is implementation defined; here consumption
  order is whatever the caller asks for (:meth:`EcmdqSet.step` on queue k), so tests can interleave
  queues arbitrarily.

>>> from cmdqv_lab.device.commands import Opcode, encode_batch, sync_command, CS_NONE
>>> from cmdqv_lab.device.cmdq import ErrorRegs
>>> ecmdqs = EcmdqSet(2, 7, errors=ErrorRegs())
>>> _ = ecmdqs[1].submit(encode_batch(Opcode.CMD_TLBI_NH_ASID, asid=5))      # queue B: not consumed
>>> _ = ecmdqs[0].submit(sync_command(cs=CS_NONE).encode())                 # queue A: a lone SYNC
>>> ecmdqs.step(0).kind, ecmdqs[0].consumed(0), ecmdqs[1].consumed(0)
('complete', True, False)
"""

from __future__ import annotations

from typing import Any

from cmdqv_lab.device.cmdq import CError, CommandQueue, ErrorRegs, SyncSignals
from cmdqv_lab.device.events import Event, EventLog
from cmdqv_lab.device.queue import LINUX_MIN_LOG2SIZE, Queue
from cmdqv_lab.device.regs import (
    CMDQ_MAX_LOG2SIZE,
    ECMDQ_CONS_ENACK,
    ECMDQ_CONS_ERR,
    ECMDQ_CONS_ERR_REASON,
    ECMDQ_PROD_EN,
    ECMDQ_PROD_ERRACK,
    GERROR_CMDQP_ERR,
)
from cmdqv_lab.errors import QueueConfigError


class Ecmdq(CommandQueue):
    """One ECMDQ: a :class:`CommandQueue` whose error handshake is CONS.ERR / PROD.ERRACK."""

    def __init__(self, queue: Queue, *, owner: EcmdqSet, cpu: int, **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.owner = owner
        self.cpu = cpu
        #: ``ECMDQ_CONS.ERR``, toggled by the hardware on each error.
        self.cons_err = 0
        #: ``ECMDQ_PROD.ERRACK``, written by software.
        self.errack = 0

    @property
    def prod_reg(self) -> int:
        """``ECMDQ_PROD``: EN | ERRACK | WR."""
        q = self.queue
        return ECMDQ_PROD_EN.prep(int(self.enabled)) | ECMDQ_PROD_ERRACK.prep(self.errack) | q.prod

    @property
    def cons_reg(self) -> int:
        """``ECMDQ_CONS``: ENACK | ERR_REASON | ERR | RD (ENACK follows EN at once)."""
        q = self.queue
        return (
            ECMDQ_CONS_ENACK.prep(int(self.enabled))
            | ECMDQ_CONS_ERR_REASON.prep(q.err)
            | ECMDQ_CONS_ERR.prep(self.cons_err)
            | (q.cons & ((2 << q.max_n_shift) - 1))
        )

    def error_active(self) -> bool:
        return self.cons_err != self.errack

    def _signal_error(self, code: CError) -> None:
        self.cons_err ^= 1
        self.owner.report_cmdqp_err()

    def write_prod(self, value: int) -> None:
        """Software writes ``ECMDQ_PROD``: EN, ERRACK and the WR pointer."""
        was_active = self.error_active()
        self.enabled = bool(ECMDQ_PROD_EN.get(value))
        self.errack = ECMDQ_PROD_ERRACK.get(value)
        wr = value & ((2 << self.queue.max_n_shift) - 1)
        if wr != self.queue.prod:
            super().write_prod(wr)
        if was_active and not self.error_active():
            self.on_ack()


class EcmdqSet:
    """N ECMDQs sharing an SMMU's GERROR, event log and MSI/SEV sink.

    Parameters
    ----------
    n
        Number of ECMDQs (Linux uses them only if there is at least one per CPU: queue k is CPU k's).
    log2size
        LOG2SIZE of every ECMDQ.
    errors
        The SMMU's GERROR/GERRORN pair (``GERROR.CMDQP_ERR`` is set there).
    """

    def __init__(
        self,
        n: int,
        log2size: int,
        *,
        errors: ErrorRegs,
        log: EventLog | None = None,
        signals: SyncSignals | None = None,
        cmdqs: int = CMDQ_MAX_LOG2SIZE,
        autoconsume: bool = False,
    ) -> None:
        if n < 1:
            raise QueueConfigError(f"number of ECMDQs={n} out of range: allowed >= 1")
        self.errors = errors
        self.log = log if log is not None else EventLog()
        self.signals = signals if signals is not None else SyncSignals()
        self.queues: list[Ecmdq] = []
        for k in range(n):
            base = self.signals.dma.alloc(16 << log2size)
            q = Queue(log2size, cmdqs=cmdqs, min_log2size=LINUX_MIN_LOG2SIZE, base=base, name=f"ecmdq{k}")
            self.queues.append(
                Ecmdq(q, owner=self, cpu=k, log=self.log, signals=self.signals, autoconsume=autoconsume)
            )

    def __len__(self) -> int:
        return len(self.queues)

    def __getitem__(self, k: int) -> Ecmdq:
        return self.queues[k]

    def report_cmdqp_err(self) -> None:
        """A queue stopped: set GERROR.CMDQP_ERR unless it is already active."""
        if not self.errors.active(GERROR_CMDQP_ERR.mask):
            self.errors.toggle(GERROR_CMDQP_ERR.mask)

    def step(self, k: int) -> Event | None:
        """Consume queue ``k``'s next command (None if it is empty, disabled or stopped)."""
        return self.queues[k].step()

    def consume_all(self) -> int:
        """Round robin, one command per queue per turn, until no queue can run; returns the count."""
        n = 0
        progress = True
        while progress:
            progress = False
            for q in self.queues:
                if q.can_consume():
                    before = q.queue.cons_pos
                    q.step()
                    if q.queue.cons_pos != before:
                        n += 1
                        progress = True
        return n

    def errored(self) -> list[int]:
        """Indices of the queues with an unacknowledged error."""
        return [k for k, q in enumerate(self.queues) if q.error_active()]
