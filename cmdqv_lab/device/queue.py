"""One circular command queue: LOG2SIZE, PROD/CONS with wrap bits, CONS.ERR and the queue memory.

PROD and CONS are encoded as Linux and the architecture encode them: an index of LOG2SIZE bits and
a wrap bit just above it (``Q_IDX``, ``Q_WRP``; Linux's ``max_n_shift`` is LOG2SIZE). Indices equal
and wraps equal: empty; indices equal and wraps different: full. The helpers ``queue_full``,
``queue_empty``, ``queue_has_space``, ``queue_inc_prod_n``, ``queue_inc_cons`` and
``queue_consumed`` are transcriptions of the functions of the same name in ``arm-smmu-v3.c``
(including the overflow flag ``Q_OVF``, bit 31, which they carry through unchanged).

Memory is a ``(2^LOG2SIZE, 2)`` uint64 array, one row per 16-byte command, at DMA address ``base``.

>>> q = Queue(7)                       # 128 entries
>>> q.write(np.zeros((3, 2), dtype=np.uint64))
range(0, 3)
>>> q.prod, q.cons, q.queue_space(), q.queue_has_space(125), q.queue_has_space(126)
(3, 0, 125, True, False)
>>> hex(q.queue_inc_prod_n(126))       # index 1, wrap bit (bit 7) set
'0x81'

Geometries the Linux driver refuses, or the hardware cannot have, are refused:

>>> Queue(6)
Traceback (most recent call last):
...
cmdqv_lab.errors.QueueConfigError: LOG2SIZE=6 out of range: allowed 7 .. 19 (Linux refuses <= 64 entries)
>>> Queue(12, cmdqs=10)
Traceback (most recent call last):
...
cmdqv_lab.errors.QueueConfigError: LOG2SIZE=12 out of range: allowed 7 .. 10 (SMMU_IDR1.CMDQS=10)
"""

from __future__ import annotations

import numpy as np

from cmdqv_lab.device.commands import CMD_BYTES
from cmdqv_lab.device.regs import CMDQ_CONS_ERR, CMDQ_MAX_LOG2SIZE, Q_BASE_ADDR, Q_BASE_LOG2SIZE
from cmdqv_lab.errors import DeviceStateError, QueueConfigError

#: Linux refuses command queues of <= CMDQ_BATCH_ENTRIES (64) entries: LOG2SIZE must be >= 7.
LINUX_MIN_LOG2SIZE = 7
#: ``Q_OVERFLOW_FLAG``: bit 31 of PROD/CONS (used by event queues; carried through unchanged).
Q_OVERFLOW_FLAG = 1 << 31


def Q_IDX(shift: int, p: int) -> int:
    """Index part of a PROD/CONS value of a queue of ``2^shift`` entries."""
    return p & ((1 << shift) - 1)


def Q_WRP(shift: int, p: int) -> int:
    """Wrap bit of a PROD/CONS value, in place (``0`` or ``1 << shift``)."""
    return p & (1 << shift)


def Q_OVF(p: int) -> int:
    """Overflow flag of a PROD/CONS value, in place."""
    return p & Q_OVERFLOW_FLAG


class Queue:
    """A circular queue of ``2^log2size`` 16-byte entries with PROD, CONS and CONS.ERR.

    Parameters
    ----------
    log2size
        LOG2SIZE (``SMMU_CMDQ_BASE[4:0]``, Linux's ``max_n_shift``).
    cmdqs
        The SMMU's ``IDR1.CMDQS``: the largest LOG2SIZE it supports (architectural maximum 19).
    min_log2size
        Smallest LOG2SIZE accepted; 7 is the Linux driver's rule (more than 64 entries).
        ``0`` models raw hardware, e.g. a queue register at its reset value.
    base
        DMA address of entry 0; must be aligned to the queue size (at least 32 bytes).
    name
        Name used in messages and events.
    """

    def __init__(
        self,
        log2size: int,
        *,
        cmdqs: int = CMDQ_MAX_LOG2SIZE,
        min_log2size: int = LINUX_MIN_LOG2SIZE,
        base: int = 0,
        name: str = "cmdq",
    ) -> None:
        if not 0 <= cmdqs <= CMDQ_MAX_LOG2SIZE:
            raise QueueConfigError(f"SMMU_IDR1.CMDQS={cmdqs} out of range: allowed 0 .. {CMDQ_MAX_LOG2SIZE}")
        lo = int(min_log2size)
        why_lo = "Linux refuses <= 64 entries" if lo == LINUX_MIN_LOG2SIZE else f"min_log2size={lo}"
        if lo > cmdqs:
            raise QueueConfigError(f"SMMU_IDR1.CMDQS={cmdqs} below the smallest LOG2SIZE {lo} ({why_lo})")
        if not lo <= log2size <= cmdqs:
            if log2size > cmdqs:
                why = f"SMMU_IDR1.CMDQS={cmdqs}" if cmdqs < CMDQ_MAX_LOG2SIZE else "architectural maximum 19"
            else:
                why = why_lo
            raise QueueConfigError(f"LOG2SIZE={log2size} out of range: allowed {lo} .. {cmdqs} ({why})")
        nbytes = CMD_BYTES << log2size
        align = max(32, nbytes)
        if base < 0 or base % align or base > Q_BASE_ADDR.mask:
            raise QueueConfigError(
                f"queue base 0x{base:x} not allowed: must be a 52-bit address aligned to 0x{align:x} bytes"
            )
        self.name = name
        self.max_n_shift = int(log2size)
        self.base = int(base)
        self.prod = 0
        self.cons = 0
        #: ``CONS.ERR``: the CERROR code of the last error (kept until the next error).
        self.err = 0
        #: Absolute positions: entries ever written / consumed (``pos`` in the event log).
        self.prod_pos = 0
        self.cons_pos = 0
        self.mem = np.zeros((1 << log2size, 2), dtype=np.uint64)

    # ------------------------------------------------------------ geometry
    @property
    def log2size(self) -> int:
        return self.max_n_shift

    @property
    def size(self) -> int:
        """Number of entries, ``2^LOG2SIZE``."""
        return 1 << self.max_n_shift

    def idx(self, p: int) -> int:
        """``Q_IDX`` for this queue."""
        return Q_IDX(self.max_n_shift, p)

    def wrp(self, p: int) -> int:
        """``Q_WRP`` for this queue (the wrap bit in place)."""
        return Q_WRP(self.max_n_shift, p)

    # ------------------------------------------------------------ arm-smmu-v3.c helpers
    def queue_full(self) -> bool:
        return self.idx(self.prod) == self.idx(self.cons) and self.wrp(self.prod) != self.wrp(self.cons)

    def queue_empty(self) -> bool:
        return self.idx(self.prod) == self.idx(self.cons) and self.wrp(self.prod) == self.wrp(self.cons)

    def queue_space(self) -> int:
        """Free entries, computed as ``queue_has_space`` does."""
        prod, cons = self.idx(self.prod), self.idx(self.cons)
        if self.wrp(self.prod) == self.wrp(self.cons):
            return (1 << self.max_n_shift) - (prod - cons)
        return cons - prod

    def queue_has_space(self, n: int) -> bool:
        return self.queue_space() >= n

    def occupancy(self) -> int:
        """Entries written and not yet consumed."""
        return self.size - self.queue_space()

    def queue_consumed(self, prod: int) -> bool:
        """Whether CONS has passed the entry at ``prod`` (``queue_consumed``)."""
        cons = self.cons
        same = self.wrp(cons) == self.wrp(prod)
        return (same and self.idx(cons) > self.idx(prod)) or (not same and self.idx(cons) <= self.idx(prod))

    def queue_inc_prod_n(self, n: int) -> int:
        """PROD advanced by ``n`` (not stored), as ``queue_inc_prod_n``."""
        prod = (self.wrp(self.prod) | self.idx(self.prod)) + n
        return Q_OVF(self.prod) | self.wrp(prod) | self.idx(prod)

    def queue_inc_cons(self) -> None:
        """Advance CONS by one (``queue_inc_cons``) and count the consumed position."""
        cons = (self.wrp(self.cons) | self.idx(self.cons)) + 1
        self.cons = Q_OVF(self.cons) | self.wrp(cons) | self.idx(cons)
        self.cons_pos += 1

    # ------------------------------------------------------------ registers
    @property
    def cons_reg(self) -> int:
        """The CONS register image: RD (index + wrap) and ERR [30:24]."""
        return CMDQ_CONS_ERR.prep(self.err) | (self.cons & ((2 << self.max_n_shift) - 1))

    @property
    def base_reg(self) -> int:
        """The ``SMMU_CMDQ_BASE`` image (ADDR | LOG2SIZE)."""
        return self.base | Q_BASE_LOG2SIZE.prep(self.max_n_shift)

    def set_prod(self, value: int) -> None:
        """A PROD register write: keep the index and wrap bits, count the newly produced positions."""
        new = value & ((2 << self.max_n_shift) - 1)
        delta = (new - (self.prod & ((2 << self.max_n_shift) - 1))) % (2 << self.max_n_shift)
        if delta > self.queue_space():
            raise DeviceStateError(
                f"{self.name}: PROD 0x{new:x} would hold {self.occupancy() + delta} entries: "
                f"allowed at most {self.size}"
            )
        self.prod = new
        self.prod_pos += delta

    # ------------------------------------------------------------ memory
    def entry_addr(self, p: int) -> int:
        """DMA address of the entry at PROD/CONS value ``p`` (``Q_ENT``)."""
        return self.base + self.idx(p) * CMD_BYTES

    def read_entry(self, p: int) -> np.ndarray:
        """A copy of the two dwords at ``p`` (``queue_read``)."""
        return self.mem[self.idx(p)].copy()

    def write_entry(self, p: int, dwords: np.ndarray) -> None:
        """Overwrite the entry at ``p`` (``queue_write``)."""
        self.mem[self.idx(p)] = np.asarray(dwords, dtype=np.uint64).reshape(2)

    def write(self, batch: np.ndarray) -> range:
        """Copy an ``(n, 2)`` batch to the slots at PROD and advance PROD: the producer's whole job.

        Returns the absolute positions of the new entries. Refuses a batch that does not fit.
        """
        b = np.asarray(batch, dtype=np.uint64).reshape(-1, 2)
        n = b.shape[0]
        if not self.queue_has_space(n):
            raise DeviceStateError(
                f"{self.name}: {n} commands do not fit: {self.queue_space()} free of {self.size}"
            )
        start = self.idx(self.prod)
        first = min(n, self.size - start)
        self.mem[start : start + first] = b[:first]
        self.mem[: n - first] = b[first:]
        start_pos = self.prod_pos
        self.prod = self.queue_inc_prod_n(n)
        self.prod_pos += n
        return range(start_pos, start_pos + n)
