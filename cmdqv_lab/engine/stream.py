"""The command-stream form the engine consumes.

Every workload (synthetic generators, trace replay) produces, per issuing CPU, a sequence of
:class:`OpBlock` chunks. An op is a list of batches; a batch is one driver submission
(``arm_smmu_cmdq_issue_cmdlist``) of ``n`` entries to one queue, whose last entry is a CMD_SYNC the
CPU waits for when ``sync`` is set; each entry has an opcode and a service time (ps) drawn when the
stream was generated, so the engine and the SimPy reference see identical inputs.

>>> import numpy as np
>>> b = OpBlock.uniform(n_ops=3, t=np.array([10, 20, 30]), opcodes=[0x12, 0x46], svc=[300, 100],
...                     sync=True, queue=0)
>>> b.n_ops, b.n_batches, b.n_cmds
(3, 3, 6)
>>> head, tail = b.split(2)
>>> head.n_ops, tail.n_ops, tail.t.tolist()
(2, 1, [30])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from cmdqv_lab.device.commands import Opcode


@dataclass(frozen=True)
class OpBlock:
    """A chunk of one CPU's op stream (all arrays int64 except ``c_opc``).

    ``t``: per op, the think gap before it (closed loop) or its absolute arrival (open loop), ps.
    ``nb``: per op, number of batches. ``b_n`` / ``b_sync`` / ``b_q``: per batch, entries, whether
    it ends with a waited CMD_SYNC, target queue. ``c_opc`` / ``c_svc``: per entry, opcode and
    service time (ps).
    """

    t: np.ndarray
    nb: np.ndarray
    b_n: np.ndarray
    b_sync: np.ndarray
    b_q: np.ndarray
    c_opc: np.ndarray
    c_svc: np.ndarray

    def __post_init__(self) -> None:
        if self.t.shape != self.nb.shape:
            raise ValueError("t and nb must have one entry per op")
        if (
            int(self.nb.sum()) != self.b_n.size
            or self.b_sync.size != self.b_n.size
            or self.b_q.size != self.b_n.size
        ):
            raise ValueError("batch arrays must have sum(nb) entries")
        if int(self.b_n.sum()) != self.c_opc.size or self.c_svc.size != self.c_opc.size:
            raise ValueError("command arrays must have sum(b_n) entries")

    @property
    def n_ops(self) -> int:
        return int(self.t.size)

    @property
    def n_batches(self) -> int:
        return int(self.b_n.size)

    @property
    def n_cmds(self) -> int:
        return int(self.c_opc.size)

    @classmethod
    def empty(cls) -> OpBlock:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z, z, np.zeros(0, dtype=np.uint8), z)

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
            b_n=ones * k,
            b_sync=ones * int(sync),
            b_q=np.broadcast_to(np.asarray(queue, dtype=np.int64), (n_ops,)).copy(),
            c_opc=np.tile(np.asarray(opcodes, dtype=np.uint8), n_ops),
            c_svc=np.ascontiguousarray(svc_arr, dtype=np.int64).reshape(-1),
        )

    def split(self, k: int) -> tuple[OpBlock, OpBlock]:
        """The first ``k`` ops and the rest."""
        k = max(0, min(k, self.n_ops))
        nbat = int(self.nb[:k].sum())
        ncmd = int(self.b_n[:nbat].sum())
        head = OpBlock(
            self.t[:k], self.nb[:k], self.b_n[:nbat], self.b_sync[:nbat], self.b_q[:nbat],
            self.c_opc[:ncmd], self.c_svc[:ncmd],
        )  # fmt: skip
        tail = OpBlock(
            self.t[k:], self.nb[k:], self.b_n[nbat:], self.b_sync[nbat:], self.b_q[nbat:],
            self.c_opc[ncmd:], self.c_svc[ncmd:],
        )  # fmt: skip
        return head, tail

    def fit(self, op_room: int, batch_room: int, cmd_room: int) -> int:
        """How many leading ops fit in the given ring space."""
        k = min(op_room, self.n_ops)
        if k == 0:
            return 0
        bcum = np.cumsum(self.nb[:k])
        k = min(k, int(np.searchsorted(bcum, batch_room, side="right")))
        if k == 0:
            return 0
        nbat = int(bcum[k - 1])
        ccum = np.cumsum(self.b_n[:nbat])
        # ops end at batch boundaries bcum[i]-1; commands used up to that batch
        used = ccum[bcum[:k] - 1]
        return min(k, int(np.searchsorted(used, cmd_room, side="right")))

    @staticmethod
    def concat(blocks: Sequence[OpBlock]) -> OpBlock:
        blocks = [b for b in blocks if b.n_ops]
        if not blocks:
            return OpBlock.empty()
        if len(blocks) == 1:
            return blocks[0]
        return OpBlock(*(np.concatenate([getattr(b, f) for b in blocks]) for f in _FIELDS))

    def opcode_counts(self) -> dict[str, int]:
        """Count of each opcode (by spec name) in the block."""
        vals, counts = np.unique(self.c_opc, return_counts=True)
        return {Opcode(int(v)).name: int(n) for v, n in zip(vals, counts)}


_FIELDS = ("t", "nb", "b_n", "b_sync", "b_q", "c_opc", "c_svc")

#: A CPU's stream: an iterator of blocks (finite: the CPU stops when it is exhausted).
CpuStream = Iterator[OpBlock]
