"""The op-stream form the engine consumes: per CPU, ops made of steps.

Every scenario produces, per issuing CPU, a sequence of :class:`OpBlock` chunks. An op is a list of
*steps*: a *batch* (one driver submission, ``arm_smmu_cmdq_issue_cmdlist``: ``n`` entries to one
queue, the last a CMD_SYNC the CPU waits for when ``sync``), a *delay* (CPU busy, optionally counted
as a guest exit or interrupt), a *lock*/*unlock* of a FIFO mutex (e.g. a VMM's big lock), or a
*resume* of a halted queue. Each entry has an opcode, a service time (ps, drawn when the stream was
generated, so the engine and the SimPy reference see identical inputs) and flags (``CMD_ILLEGAL``:
raises ILL on its queue).

>>> import numpy as np
>>> b = OpBlock.uniform(n_ops=3, t=np.array([10, 20, 30]), opcodes=[0x12, 0x46], svc=[300, 100],
...                     sync=True, queue=0)
>>> b.n_ops, b.n_steps, b.n_cmds
(3, 3, 6)
>>> head, tail = b.split(2)
>>> head.n_ops, tail.n_ops, tail.t.tolist()
(2, 1, [30])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.engine.layout import STEP_BATCH


@dataclass(frozen=True)
class OpBlock:
    """A chunk of one CPU's op stream (int64 arrays).

    ``t``: per op, the think gap before it (closed loop) or its absolute arrival (open loop), ps.
    ``nb``: per op, number of steps. ``s_kind``/``s_a``/``s_b``/``s_c``: per step (see
    :mod:`.layout` ``STEP_*``). ``c_opc``/``c_svc``/``c_flags``: per entry of the batch steps.
    """

    t: np.ndarray
    nb: np.ndarray
    s_kind: np.ndarray
    s_a: np.ndarray
    s_b: np.ndarray
    s_c: np.ndarray
    c_opc: np.ndarray
    c_svc: np.ndarray
    c_flags: np.ndarray
    #: every op is op 0's program (its steps and commands, one batch step); only ``t`` differs. Said by
    #: the generator that built the block (:mod:`cmdqv_lab.programs.compile`'s tiling) and verified
    #: by :class:`~cmdqv_lab.engine.runner._Rings`, which then refills the rings by writing the times
    #: alone once they hold that program in every slot.
    repeats_op0: bool = False

    def __post_init__(self) -> None:
        if self.t.shape != self.nb.shape:
            raise ValueError("t and nb must have one entry per op")
        if int(self.nb.sum()) != self.s_kind.size or not (
            self.s_a.size == self.s_b.size == self.s_c.size == self.s_kind.size
        ):
            raise ValueError("step arrays must have sum(nb) entries")
        # a block of batches only (the usual case) needs no per-step mask
        only_batches = not (self.s_kind != STEP_BATCH).any()
        n_cmds = int(self.s_a.sum()) if only_batches else int(self.step_cmds.sum())
        if n_cmds != self.c_opc.size or not (self.c_svc.size == self.c_flags.size == self.c_opc.size):
            raise ValueError("command arrays must have one entry per command of the batch steps")

    @cached_property
    def step_cmds(self) -> np.ndarray:
        """Entries of each step (0 for non-batch steps)."""
        return np.where(self.s_kind == STEP_BATCH, self.s_a, 0)

    @property
    def n_ops(self) -> int:
        return int(self.t.size)

    @property
    def n_steps(self) -> int:
        return int(self.s_kind.size)

    @property
    def n_cmds(self) -> int:
        return int(self.c_opc.size)

    @classmethod
    def empty(cls) -> OpBlock:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z, z, z, z, z, z)

    @classmethod
    def uniform(
        cls,
        *,
        n_ops: int,
        t: np.ndarray,
        opcodes: Sequence[int],
        svc: np.ndarray | Sequence[int],
        sync: bool,
        queue: int | np.ndarray,
    ) -> OpBlock:
        """``n_ops`` ops of one batch each, all with the same opcode list.

        ``svc`` is either one service time per opcode (broadcast) or an ``(n_ops, len(opcodes))``
        array; ``queue`` a scalar or one queue per op.
        """
        k = len(opcodes)
        svc_arr = np.asarray(svc, dtype=np.int64)
        if svc_arr.ndim == 1:
            svc_arr = np.broadcast_to(svc_arr, (n_ops, k))
        ones = np.ones(n_ops, dtype=np.int64)
        return cls(
            t=np.asarray(t, dtype=np.int64),
            nb=ones,
            s_kind=np.zeros(n_ops, dtype=np.int64),
            s_a=ones * k,
            s_b=ones * int(sync),
            s_c=np.broadcast_to(np.asarray(queue, dtype=np.int64), (n_ops,)).copy(),
            c_opc=np.tile(np.asarray(opcodes, dtype=np.int64), n_ops),
            c_svc=np.ascontiguousarray(svc_arr, dtype=np.int64).reshape(-1),
            c_flags=np.zeros(n_ops * k, dtype=np.int64),
        )

    def split(self, k: int) -> tuple[OpBlock, OpBlock]:
        """The first ``k`` ops and the rest."""
        if k >= self.n_ops:
            return self, OpBlock.empty()
        k = max(0, k)
        ns = int(self.nb[:k].sum())
        nc = int(self.step_cmds[:ns].sum())
        s_ops, s_steps, s_cmds = slice(None, k), slice(None, ns), slice(None, nc)
        r_ops, r_steps, r_cmds = slice(k, None), slice(ns, None), slice(nc, None)
        head = OpBlock(*(getattr(self, f)[sl] for f, sl in zip(_FIELDS, _slices(s_ops, s_steps, s_cmds))))
        tail = OpBlock(*(getattr(self, f)[sl] for f, sl in zip(_FIELDS, _slices(r_ops, r_steps, r_cmds))))
        return head, tail

    def fit(self, op_room: int, step_room: int, cmd_room: int) -> int:
        """How many leading ops fit in the given ring space."""
        k = min(op_room, self.n_ops)
        if k == 0:
            return 0
        scum = np.cumsum(self.nb[:k])
        k = min(k, int(np.searchsorted(scum, step_room, side="right")))
        if k == 0:
            return 0
        ns = int(scum[k - 1])
        ccum = np.concatenate([[0], np.cumsum(self.step_cmds[:ns])])
        used = ccum[scum[:k]]  # commands used by the first i+1 ops
        return min(k, int(np.searchsorted(used, cmd_room, side="right")))

    @staticmethod
    def concat(blocks: Sequence[OpBlock]) -> OpBlock:
        blocks = [b for b in blocks if b.n_ops]
        if not blocks:
            return OpBlock.empty()
        if len(blocks) == 1:
            return blocks[0]
        cols: dict[str, Any] = {f: np.concatenate([getattr(b, f) for b in blocks]) for f in _FIELDS}
        return OpBlock(**cols)

    def opcode_counts(self) -> dict[str, int]:
        """Count of each opcode (by spec name) in the block."""
        vals, counts = np.unique(self.c_opc, return_counts=True)
        return {Opcode(int(v)).name: int(n) for v, n in zip(vals, counts)}


_FIELDS = ("t", "nb", "s_kind", "s_a", "s_b", "s_c", "c_opc", "c_svc", "c_flags")


def _slices(ops: slice, steps: slice, cmds: slice) -> tuple[slice, ...]:
    return (ops, ops, steps, steps, steps, steps, cmds, cmds, cmds)


#: A CPU's stream: an iterator of blocks (finite: the CPU stops when it is exhausted).
CpuStream = Iterator[OpBlock]


class IndependentStream(Iterator[OpBlock]):
    """A CPU's stream whose blocks depend on nothing that another CPU's stream changes (its own
    generators only), so they are the same in whatever order the streams are read: the runner may
    read several such streams ahead, in a thread of its own, while the engine runs."""

    def __init__(self, blocks: Iterator[OpBlock]):
        self._blocks = blocks

    def __iter__(self) -> IndependentStream:
        return self

    def __next__(self) -> OpBlock:
        return next(self._blocks)
