"""A command queue and its consumer: the SMMU command processor for one queue, with no time.

Consumption happens when a method is called: :meth:`CommandQueue.step` executes the command at
CONS, :meth:`CommandQueue.consume_all` runs until the queue is empty or stopped (QEMU does the
latter synchronously inside the trapped PROD write; ``autoconsume=True`` models that).

Rules (SMMUv3 architecture, as the Linux driver relies on them):

* Commands are consumed in order from CONS to PROD. A non-SYNC command completes when consumed.
* A CMD_SYNC completes only when every earlier command *of the same queue* has completed; it then
  signals per its CS field: SIG_NONE nothing, SIG_IRQ an MSI write of MSIDATA to MSIADDR (when
  ``IDR0.MSI``), SIG_SEV an event (when ``IDR0.SEV``).
* Errors (``CONS.ERR``, :class:`CError`): ILL for an opcode the queue does not accept (or an
  injected fault), ABT for an injected fetch abort, ATC_INV_SYNC at the first CMD_SYNC after an
  ATC_INV marked as timing out. The queue stops with CONS *at* the faulting entry (at the SYNC for
  ATC_INV_SYNC), CONS.ERR holds the code and the error bit of GERROR toggles. The error is active
  while GERROR and GERRORN differ in that bit; writing GERRORN to match acknowledges it and
  consumption resumes at CONS, so the faulting entry executes again unless software fixed it.

Modelling choices (assumptions, not architecture text): CS=0b11 (reserved) is ILL; with
``IDR0.MSI=0`` a SIG_IRQ SYNC completes without any write; a timed-out ATC_INV is reported by
``times`` consecutive SYNC attempts, then counts as complete; an ATC timeout injected on any
other opcode has no effect.

>>> from cmdqv_lab.device.commands import Opcode, encode_batch, sync_command, CS_SEV
>>> from cmdqv_lab.device.queue import Queue
>>> cq = CommandQueue(Queue(7))
>>> batch = np.vstack([encode_batch(Opcode.CMD_TLBI_NH_ASID, asid=[1, 2]), sync_command(cs=CS_SEV).encode()])
>>> cq.submit(batch)
range(0, 3)
>>> cq.consume_all(), cq.queue.cons, cq.signals.sev_events
(3, 3, 1)
>>> [e.kind for e in cq.log.of("consume", "complete")][-2:]
['consume', 'complete']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from cmdqv_lab.device.commands import (
    CS_IRQ,
    CS_SEV,
    SYNC_CS,
    SYNC_MSIADDR,
    SYNC_MSIDATA,
    Field,
    Opcode,
)
from cmdqv_lab.device.events import Event, EventLog
from cmdqv_lab.device.memory import DmaMemory
from cmdqv_lab.device.queue import Queue
from cmdqv_lab.device.regs import GERROR_CMDQ_ERR
from cmdqv_lab.errors import DeviceStateError

_KNOWN_OPCODES = frozenset(int(op) for op in Opcode)
_CS_RESERVED = 3


class CError(IntEnum):
    """``CONS.ERR`` codes (Linux ``CMDQ_ERR_CERROR_*_IDX``)."""

    NONE = 0
    ILL = 1
    ABT = 2
    ATC_INV_SYNC = 3


class ErrorRegs:
    """A GERROR / GERRORN register pair. Hardware toggles GERROR; software writes GERRORN.

    >>> r = ErrorRegs(); r.toggle(1); r.active(1)
    True
    >>> r.write_gerrorn(r.gerror), r.active(1)
    (1, False)
    """

    def __init__(self) -> None:
        self.gerror = 0
        self.gerrorn = 0

    def active(self, mask: int) -> bool:
        """Whether any error bit in ``mask`` is active (GERROR != GERRORN)."""
        return bool((self.gerror ^ self.gerrorn) & mask)

    def toggle(self, mask: int) -> None:
        """The hardware reports an error: flip the GERROR bits in ``mask``."""
        self.gerror ^= mask

    def write_gerrorn(self, value: int) -> int:
        """Software writes GERRORN; returns the mask of errors this write acknowledged."""
        before = self.gerror ^ self.gerrorn
        self.gerrorn = int(value)
        return before & ~(self.gerror ^ self.gerrorn)


@dataclass
class SyncSignals:
    """Where CMD_SYNC completions go: MSI writes into DMA memory, SEV events (shared per SMMU)."""

    dma: DmaMemory = field(default_factory=DmaMemory)
    msi: bool = True
    sev: bool = True
    sev_events: int = 0


@dataclass
class _Fault:
    code: CError
    times: int


class CommandQueue:
    """A :class:`~cmdqv_lab.device.queue.Queue` plus the SMMU's consumer for it.

    Parameters
    ----------
    queue
        The queue (geometry, PROD/CONS, memory).
    log
        Event log shared with the rest of the device (a fresh one if omitted).
    signals
        MSI/SEV sink shared per SMMU (a fresh one if omitted). The queue memory is mapped into its
        DMA memory so an MSI aimed at a slot clears that slot's first word.
    errors, err_mask
        The GERROR/GERRORN pair this queue reports to and its bit (``GERROR_CMDQ_ERR``). The main
        CMDQ shares the SMMU's pair; a VCMDQ has its own.
    autoconsume
        Consume everything available inside each PROD write and each acknowledgement (QEMU).
    name
        Queue name in events (default: the queue's name).
    map_memory
        Map the queue memory into the DMA memory (not for a queue register at its reset value).
    """

    def __init__(
        self,
        queue: Queue,
        *,
        log: EventLog | None = None,
        signals: SyncSignals | None = None,
        errors: ErrorRegs | None = None,
        err_mask: int = GERROR_CMDQ_ERR.mask,
        autoconsume: bool = False,
        name: str | None = None,
        map_memory: bool = True,
    ) -> None:
        self.log = log if log is not None else EventLog()
        self.signals = signals if signals is not None else SyncSignals()
        self.errors = errors if errors is not None else ErrorRegs()
        self.err_mask = err_mask
        self.autoconsume = autoconsume
        self.name = name or queue.name
        self.enabled = True
        #: Callbacks run after the queue stopped on an error (hooks for checkers and experiments).
        self.on_error: list[Callable[[CommandQueue, CError], None]] = []
        self._faults: dict[int, _Fault] = {}
        self._atc_pending: dict[int, int] = {}
        self.queue = queue
        self.attach(queue, map_memory=map_memory)

    def attach(self, queue: Queue, *, map_memory: bool = True) -> None:
        """Use ``queue`` (a BASE register write) and map its memory for MSI writes."""
        self.queue = queue
        if map_memory:
            self.signals.dma.map(queue.base, queue.mem)
        self._atc_pending.clear()

    # ------------------------------------------------------------ software (producer) side
    def submit(self, batch: np.ndarray) -> range:
        """Write an ``(n, 2)`` batch at PROD and write PROD once; returns the entries' positions."""
        positions = self.queue.write(batch)
        self._after_prod_write(len(positions))
        return positions

    def write_prod(self, value: int) -> None:
        """A PROD register write after software filled the slots itself (``queue_write``)."""
        before = self.queue.prod_pos
        self.queue.set_prod(value)
        self._after_prod_write(self.queue.prod_pos - before)

    def _after_prod_write(self, n: int) -> None:
        self.log.add("submit", self.name, pos=self.queue.prod_pos - n, n=n, prod=self.queue.prod)
        if self.autoconsume:
            self.consume_all()

    def write_gerrorn(self, value: int) -> None:
        """Software writes this queue's GERRORN; acknowledging the error lets consumption resume."""
        if self.errors.write_gerrorn(value) & self.err_mask:
            self.on_ack()

    def on_ack(self) -> None:
        """The error was acknowledged (by whichever register): log it; QEMU resumes at once."""
        q = self.queue
        self.log.add("ack", self.name, index=q.idx(q.cons), pos=q.cons_pos, cerror=CError(q.err).name)
        if self.autoconsume:
            self.consume_all()

    def inject_fault(self, pos: int, code: CError, times: int = 1) -> None:
        """Make the entry at absolute position ``pos`` fault ``times`` times when consumed.

        ``ILL`` and ``ABT`` fire when the entry is fetched; ``ATC_INV_SYNC`` marks an ATC_INV as
        timing out: the next ``times`` attempts of the following CMD_SYNC report the error.
        """
        if code is CError.NONE or times < 1:
            raise DeviceStateError(
                f"inject_fault: code {code.name}, times {times}: need ILL/ABT/ATC_INV_SYNC, times >= 1"
            )
        if pos < self.queue.cons_pos:
            raise DeviceStateError(
                f"inject_fault: position {pos} already consumed: allowed >= {self.queue.cons_pos}"
            )
        self._faults[pos] = _Fault(code, times)

    # ------------------------------------------------------------ hardware state
    def error_active(self) -> bool:
        """Whether this queue's error is active (its GERROR bit differs from GERRORN)."""
        return self.errors.active(self.err_mask)

    def _signal_error(self, code: CError) -> None:
        """Report an error in the registers (overridden by ECMDQ)."""
        self.errors.toggle(self.err_mask)

    @property
    def stopped(self) -> bool:
        """Stopped on an unacknowledged error."""
        return self.error_active()

    def is_enabled(self) -> bool:
        """Whether the consumer runs for this queue (CR0.CMDQEN, ECMDQ_PROD.EN, VCMDQ_STATUS.ENABLED)."""
        return self.enabled

    @property
    def cons_reg(self) -> int:
        """The CONS register image (RD and ERR)."""
        return self.queue.cons_reg

    def can_consume(self) -> bool:
        return self.is_enabled() and not self.error_active() and not self.queue.queue_empty()

    def consumed(self, pos: int) -> bool:
        """Whether CONS has passed absolute position ``pos`` (what a CONS-polling waiter sees)."""
        return pos < self.queue.cons_pos

    def admit(self, row: np.ndarray) -> tuple[CError, np.ndarray]:
        """Check (and, for a VCMDQ, rewrite) the entry about to execute. ILL for unknown opcodes."""
        op = int(row[0]) & 0xFF
        if op not in _KNOWN_OPCODES:
            return CError.ILL, row
        if op == Opcode.CMD_SYNC and _get(SYNC_CS, int(row[0])) == _CS_RESERVED:
            return CError.ILL, row
        return CError.NONE, row

    # ------------------------------------------------------------ consumer
    def _take_fault(self, pos: int, code: CError) -> int:
        f = self._faults.get(pos)
        if f is None or f.code is not code:
            return 0
        f.times -= 1
        if f.times == 0:
            del self._faults[pos]
        return 1

    def _pending_fault(self, pos: int) -> CError | None:
        f = self._faults.get(pos)
        return None if f is None else f.code

    def step(self) -> Event | None:
        """Execute the entry at CONS. Returns its last event, or None if nothing could run."""
        if not self.can_consume():
            return None
        q = self.queue
        pos, index = q.cons_pos, q.idx(q.cons)
        row = q.read_entry(q.cons)
        op = int(row[0]) & 0xFF
        if self._take_fault(pos, CError.ABT):
            return self._stop(CError.ABT, pos, index, op)
        code, executed = self.admit(row)
        if code is CError.NONE and self._take_fault(pos, CError.ILL):
            code = CError.ILL
        if code is not CError.NONE:
            return self._stop(code, pos, index, op)
        if op == Opcode.CMD_SYNC and any(left > 0 for left in self._atc_pending.values()):
            for k in self._atc_pending:
                self._atc_pending[k] = max(0, self._atc_pending[k] - 1)
            return self._stop(CError.ATC_INV_SYNC, pos, index, op)

        self.log.add("consume", self.name, index=index, pos=pos, opcode=op, executed=_dwords(executed))
        if op == Opcode.CMD_SYNC:
            for atc_pos in sorted(self._atc_pending):
                self.log.add("complete", self.name, pos=atc_pos, opcode=Opcode.CMD_ATC_INV, late=True)
            self._atc_pending.clear()
            cs = _get(SYNC_CS, int(executed[0]))
            ev = self.log.add("complete", self.name, index=index, pos=pos, opcode=op, cs=cs)
            self._signal_sync(executed, index, pos)
        elif op == Opcode.CMD_ATC_INV and self._pending_fault(pos) is CError.ATC_INV_SYNC:
            self._atc_pending[pos] = self._faults[pos].times
            ev = self.log[-1]
        else:
            ev = self.log.add("complete", self.name, index=index, pos=pos, opcode=op)
        self._faults.pop(pos, None)
        q.queue_inc_cons()
        return ev

    def consume_all(self, limit: int | None = None) -> int:
        """Consume until empty, stopped, or ``limit`` entries; returns the entries consumed."""
        n = 0
        while (limit is None or n < limit) and self.can_consume():
            before = self.queue.cons_pos
            self.step()
            if self.queue.cons_pos == before:
                break
            n += 1
        return n

    def _signal_sync(self, executed: np.ndarray, index: int, pos: int) -> None:
        d0, d1 = int(executed[0]), int(executed[1])
        cs = _get(SYNC_CS, d0)
        sig = self.signals
        if cs == CS_IRQ and sig.msi:
            addr, data = d1 & SYNC_MSIADDR.mask, _get(SYNC_MSIDATA, d0)
            sig.dma.write32(addr, data)
            self.log.add("msi", self.name, index=index, pos=pos, opcode=Opcode.CMD_SYNC, addr=addr, data=data)
        elif cs == CS_SEV and sig.sev:
            sig.sev_events += 1
            self.log.add("sev", self.name, index=index, pos=pos, opcode=Opcode.CMD_SYNC)

    def _stop(self, code: CError, pos: int, index: int, op: int) -> Event:
        q = self.queue
        q.err = int(code)
        ev = self.log.add(
            "error", self.name, index=index, pos=pos, opcode=op, cerror=code.name, cons=q.cons_reg
        )
        self._signal_error(code)
        for callback in self.on_error:
            callback(self, code)
        return ev


def _get(f: Field, word: int) -> int:
    """A command field's value from its dword (in-place fields keep their position)."""
    return (word & f.mask) if f.in_place else (word & f.mask) >> f.lo


def _dwords(row: np.ndarray) -> tuple[int, int]:
    return int(row[0]), int(row[1])
