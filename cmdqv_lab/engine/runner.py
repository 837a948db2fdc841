"""Python driver of the compiled engine: configuration, input rings, the run loop, results.

:func:`run_engine` takes an :class:`EngineConfig` (queues, processors, costs in ps) and one op
stream per CPU (:mod:`.stream`). Streams are pulled in chunks into fixed-size per-CPU rings, so a
run's memory does not grow with its length; the compiled loop pauses when a ring runs dry and the
driver refills it. Results are exact counters, streaming histograms and, optionally, per-command
and per-op records as polars frames (:data:`COMMAND_SCHEMA`, :data:`OP_SCHEMA`).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.dtypes import Dtypes
from cmdqv_lab.engine import layout as L
from cmdqv_lab.engine import load_numba_registries
from cmdqv_lab.engine.costs import Costs
from cmdqv_lab.engine.feed import (
    BAD_BATCH,
    BAD_KIND,
    BAD_LOCK,
    BAD_QUEUE,
    BAD_TIME,
    check_block,
    feed,
    feed_times,
)
from cmdqv_lab.engine.loop import run_loop
from cmdqv_lab.engine.mem import Memory
from cmdqv_lab.engine.sched import sched
from cmdqv_lab.engine.stats import bucket_of, hist_quantiles
from cmdqv_lab.engine.stream import CpuStream, IndependentStream, OpBlock
from cmdqv_lab.errors import DeadlockError, ParamError

if TYPE_CHECKING:
    import polars as pl

ERR_MODES = {"none": L.ERR_NONE, "fixup": L.ERR_FIXUP, "guest": L.ERR_GUEST}

#: Per-command records (times in integer ps; -1 where a stage never happened).
COMMAND_SCHEMA: Mapping[str, Any] = Dtypes(
    {
        "cmd_id": "Int64",
        "op_id": "Int64",
        "cpu": "Int32",
        "queue": "Int32",
        "slot": "Int64",  # monotonic queue counter (index = slot mod 2^LOG2SIZE)
        "opcode": "UInt8",
        "opcode_name": "String",
        "issue_ps": "Int64",  # the issuing CPU began this batch
        "reserved_ps": "Int64",  # its slots were reserved
        "written_ps": "Int64",  # its entries were written to queue memory
        "publish_ps": "Int64",  # the PROD write covering it landed
        "consume_start_ps": "Int64",
        "complete_ps": "Int64",
        "queue_wait_ps": "Int64",  # consume_start - publish
        "retries": "Int32",  # cmpxchg failures of its batch's reservation
        "ill": "Boolean",  # it raised ILL on its queue (and was rewritten to a CMD_SYNC)
    }
)
#: Per-op records.
OP_SCHEMA: Mapping[str, Any] = Dtypes(
    {
        "op_id": "Int64",
        "cpu": "Int32",
        "queue": "Int32",  # queue of the op's last batch
        "ready_ps": "Int64",  # arrival (open loop) or end of think time (closed loop)
        "complete_ps": "Int64",  # the CPU observed completion
        "sync_complete_ps": "Int64",  # the SMMU completed the op's last waited CMD_SYNC (-1: none)
        "latency_ps": "Int64",
        "cmds": "Int32",
        "batches": "Int32",
        "retries": "Int32",
    }
)


@dataclass(frozen=True)
class QueueSpec:
    """One command queue: size, submission algorithm, CMD_SYNC wait mode, serving processor."""

    log2size: int
    alg: str = "linux-lockfree"
    wait: str = "msi"
    proc: int = 0
    err: str = "none"  # what an illegal entry does: none, fixup (host emulates), guest (forwarded)
    vmm: bool = False  # emulated by a VMM (engine/vmm.py): consumed in the trapped PROD write, no processor
    bql: int = -1  # the VMM lock (lock id) its exits take; -1: none

    def __post_init__(self) -> None:
        if self.err not in ERR_MODES:
            raise ParamError(f"queue err={self.err!r} is not allowed: one of {', '.join(ERR_MODES)}")
        if self.alg not in L.ALG_NAMES:
            raise ParamError(f"submit={self.alg!r} is not allowed: one of {', '.join(L.ALG_NAMES)}")
        if self.wait not in L.WAIT_NAMES:
            raise ParamError(f"sync_wait={self.wait!r} is not allowed: one of {', '.join(L.WAIT_NAMES)}")
        if not 1 <= self.log2size <= 19:
            raise ParamError(f"log2size={self.log2size} is out of range: allowed 1 .. 19")


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs besides the op streams."""

    queues: tuple[QueueSpec, ...]
    n_cpus: int
    quotas: tuple[int, ...]
    costs: Costs = field(default_factory=Costs)
    n_procs: int = 1
    open_loop: bool = False
    record: bool = False
    record_limit: int = 2_000_000
    ring_ops: int = 2048
    ring_batches: int = 4096
    ring_cmds: int = 16384
    n_locks: int = 0  # FIFO mutexes used by lock/unlock steps
    irq_cpu: int = -1  # the CPU that is the host's CMDQV IRQ thread (its stream must be empty)
    fixup_queue: int = 0  # the host queue the IRQ thread emulates commands on
    #: (vCPU, its VMM thread) CPU pairs: the thread runs the emulation of the vCPU's exits (engine/vmm.py)
    vmm_threads: tuple[tuple[int, int], ...] = ()

    @property
    def n_issuing(self) -> int:
        """CPUs that run workload ops (not the IRQ thread nor VMM threads)."""
        return self.n_cpus - int(self.irq_cpu >= 0) - len(self.vmm_threads)

    def __post_init__(self) -> None:
        if self.irq_cpu >= self.n_cpus:
            raise ParamError(f"irq_cpu={self.irq_cpu} is out of range: allowed -1 .. {self.n_cpus - 1}")
        if any(q.err != "none" for q in self.queues):
            if self.irq_cpu < 0:
                raise ParamError("queues with err=fixup|guest need an IRQ thread CPU (irq_cpu)")
            n_err = sum(q.err != "none" for q in self.queues)
            if n_err > self.ring_ops or 5 * n_err > self.ring_batches:
                raise ParamError(
                    f"{n_err} error-raising queues exceed the IRQ thread's rings: raise ring_ops/ring_batches"
                )
        if self.n_cpus < 1 or self.n_procs < 1 or self.n_cpus + self.n_procs > L.MAX_ENTITIES:
            raise ParamError(f"cpus + processors must be in 2 .. {L.MAX_ENTITIES}")
        if len(self.quotas) != self.n_cpus:
            raise ParamError("one op quota per CPU is required")
        if not self.queues:
            raise ParamError("at least one queue is required")
        for q in self.queues:
            if not 0 <= q.proc < self.n_procs:
                raise ParamError(f"queue processor {q.proc} is out of range: allowed 0 .. {self.n_procs - 1}")
            if q.bql >= self.n_locks or (q.vmm and (q.alg not in ("linux-lockfree", "atomic-add")
                                                    or q.wait not in ("poll", "virq") or q.err != "none")):  # fmt: skip
                raise ParamError("an emulated queue needs a lock-free algorithm, wait=poll|virq, err=none "
                                 "and a lock id below n_locks")  # fmt: skip
        threads = [t for _, t in self.vmm_threads]
        vcpus = [v for v, _ in self.vmm_threads]
        cpus = set(range(self.n_cpus))
        if (len(set(threads + vcpus)) != 2 * len(threads) or not set(threads + vcpus) <= cpus
                or self.irq_cpu in threads + vcpus):  # fmt: skip
            raise ParamError("vmm_threads must pair distinct CPUs other than the IRQ thread")
        if any(q.vmm for q in self.queues) and not self.vmm_threads:
            raise ParamError("emulated queues need VMM threads (vmm_threads)")
        for name in ("ring_ops", "ring_batches", "ring_cmds"):
            v = getattr(self, name)
            if v < 2 or v & (v - 1):
                raise ParamError(f"{name}={v} must be a power of two >= 2")
        if (
            self.costs["excl_unlock"] != L.XU_NONE
            and min(self.costs["line_local"], self.costs["line_xfer"]) <= 0
        ):
            raise ParamError(
                "exclusive_unlock=set-zero|clear-sign needs line_local_ns and line_xfer_ns > 0: the exclusive trylock loop "
                "of a full queue would spin without time passing"
            )
        if (
            self.costs["topology"] == 1
            and min(self.costs["cluster_cpus"], self.costs["die_cpus"], self.costs["socket_cpus"]) < 1
        ):
            raise ParamError("topology=platform needs cluster_cpus, die_cpus and socket_cpus >= 1")
        if self.costs["line_arb"] == L.ARB_HOLDER_FIRST and self.costs["line_hold_max"] < 1:
            raise ParamError("line_arbitration=holder-first needs line_hold_max >= 1")
        pool = sum(1 << q.log2size for q in self.queues)
        if pool * L.SL_NF * 8 > 4 << 30:
            raise ParamError(
                f"queues need {pool} slots in total; more than 4 GiB of state: use smaller queues"
            )


@dataclass
class EngineResult:
    """Counters, histograms and optional records of one run."""

    config: EngineConfig
    g: np.ndarray
    hist_latency: np.ndarray
    hist_queue_wait: np.ndarray
    hist_fixup: np.ndarray
    hist_shared_lock: np.ndarray
    queues: np.ndarray
    procs: np.ndarray
    cpus: np.ndarray
    commands: pl.DataFrame | None
    ops: pl.DataFrame | None
    wall_s: float
    records_truncated: bool
    stopped_at_ps: int | None = None  # the run stopped at this simulated time limit with work left

    def shared_lock_wait(self) -> dict[str, float | None]:
        """``arm_smmu_cmdq_shared_lock`` durations (ns: mean, p50, p99, max), one per CMD_SYNC batch on a
        lock-free queue, from its ``atomic_fetch_inc`` to holding the lock. A run stopped at a time
        limit also counts the waits still in progress, up to the stop (a starved CPU's wait is the
        longest one, and it may never end)."""
        g = self.g
        h = self.hist_shared_lock.copy()
        total, mx, n = int(g[L.G_SLW_SUM]), int(g[L.G_SLW_MAX]), int(g[L.G_SLW_N])
        if self.stopped_at_ps is not None:
            waiting = np.isin(self.cpus[:, L.C_PC], _SHARED_LOCK_PCS)
            for t0 in self.cpus[waiting, L.C_SLW_T0]:
                w = self.stopped_at_ps - int(t0)
                h[bucket_of(w)] += 1
                total, mx, n = total + w, max(mx, w), n + 1
        return _dist(h, total, mx, n)

    def op_phases(self) -> dict[str, float | None]:
        """Mean time per op (ns) in each phase of its lock-free batches (linux-lockfree, atomic-add,
        cas-spinlock-fallback); they add up to the time its batches took. Phases in :data:`PHASES`:
        reserve (read llq, space check with the exclusive path, cmpxchg retries, slock), write (the
        entries; atomic-add: waiting for space; cas-spinlock-fallback: releasing slock), shared_lock,
        owner_gather (set_valid_map; the owner: owner_prod wait, gather, valid-map wait), publish (PROD
        write, owner_prod release), until_smmu_at_sync (the SMMU reaches the CMD_SYNC),
        sync_completion (its service and the CPU observing it), unlock (shared_tryunlock)."""
        ops = int(self.g[L.G_OPS_DONE])
        return {k: (int(self.g[i]) / ops / 1e3 if ops else None) for k, i in PHASES.items()}

    def cpus_in_retry_loop(self) -> float | None:
        """Time-averaged number of CPUs in the reservation loop (the reserve phase: llq reads, the
        space check, cmpxchg retries), by Little's law: total time spent there / simulated time."""
        t = int(self.g[L.G_NOW])
        return int(self.g[L.G_PH_RESERVE]) / t if t > 0 else None

    def metrics(self) -> dict[str, Any]:
        """The metric set every scenario reports (times in ns)."""
        g = self.g
        ops = int(g[L.G_OPS_DONE])
        cmds = int(g[L.G_CMDS_DONE])
        sim_ps = int(g[L.G_NOW])
        first = int(g[L.G_FIRST_FINISH])
        if not self.config.open_loop and first > 0:
            ops_per_s = int(g[L.G_WINDOW_OPS]) / (first / 1e12)
        else:
            ops_per_s = ops / (sim_ps / 1e12) if sim_ps > 0 else 0.0
        cas = int(g[L.G_CAS])
        lat = _dist(self.hist_latency, int(g[L.G_LAT_SUM]), int(g[L.G_LAT_MAX]), ops)
        qw = _dist(
            self.hist_queue_wait, int(g[L.G_QW_SUM]), int(g[L.G_QW_MAX]), int(self.hist_queue_wait.sum())
        )
        return {
            "ops": ops,
            "commands": cmds,
            "sim_time_ns": sim_ps / 1e3,
            "ops_per_s": ops_per_s,
            # per issuing CPU: the host's IRQ thread (a CPU of the engine) runs no workload ops
            "ops_per_s_per_cpu": ops_per_s / self.config.n_issuing,
            "commands_per_s": cmds / (sim_ps / 1e12) if sim_ps > 0 else 0.0,
            "op_latency_ns": lat,
            "queue_wait_ns": qw,
            "smmu_busy_fraction": int(g[L.G_BUSY_PS]) / (self.config.n_procs * sim_ps) if sim_ps > 0 else 0.0,
            "cas_success_ratio": (1.0 - int(g[L.G_CAS_FAIL]) / cas) if cas else None,
            "cas_attempts": cas,
            "doorbells": int(g[L.G_DOORBELLS]),
            "syncs": int(g[L.G_SYNCS]),
            "hw_syncs": int(g[L.G_HW_SYNCS]),
            "max_occupancy": int(self.queues[:, L.Q_MAX_OCC].max()),
            "exits": int(g[L.G_EXITS]),
            "guest_irqs": int(g[L.G_GUEST_IRQS]),
            "illegal_commands": int(g[L.G_ILLEGAL]),
            "fixups": int(g[L.G_FIXUPS]),
            "fixup_latency_ns": _dist(
                self.hist_fixup, int(g[L.G_FIX_LAT_SUM]), int(g[L.G_FIX_LAT_MAX]), int(g[L.G_FIX_OPS])
            ),
            "events": int(g[L.G_EVENTS]),
        }


#: op_phase_ns: phase -> engine counter (sums over lock-free batches, ps).
PHASES = {
    "reserve": L.G_PH_RESERVE,
    "write": L.G_PH_WRITE,
    "shared_lock": L.G_PH_LOCK,
    "owner_gather": L.G_PH_OWNER,
    "publish": L.G_PH_PUBLISH,
    "until_smmu_at_sync": L.G_PH_TO_SYNC,
    "sync_completion": L.G_PH_SYNC,
    "unlock": L.G_PH_UNLOCK,
}

#: Program counters of a CPU inside arm_smmu_cmdq_shared_lock.
_SHARED_LOCK_PCS = np.array([L.PC_LF_SHLOCK, L.PC_SH_WAIT, L.PC_SH_READ, L.PC_SH_CAS], dtype=np.int64)


def _dist(h: np.ndarray, total: int, mx: int, n: int) -> dict[str, float | None]:
    if n == 0:
        return {"mean": None, "p50": None, "p99": None, "max": None}
    # a bucket's midpoint can lie above the largest value seen in it: the exact max bounds them
    p50, p99 = (min(q, float(mx)) for q in hist_quantiles(h, [0.5, 0.99]))
    return {"mean": total / n / 1e3, "p50": p50 / 1e3, "p99": p99 / 1e3, "max": mx / 1e3}


Cols = tuple[np.ndarray, ...]
#: a uniform block's op program: (steps, kind, commands, sync, queue, commands per op, opcodes,
#: service times, flags) of its op 0, which every op repeats (:meth:`_Rings.uniform_program`)
Program = tuple[Any, ...]
Prepared = tuple[Cols, Program | None]


class _Rings:
    """Feeds each CPU's input rings (in the engine memory) from its stream (:mod:`.feed`).

    A block's columns are made int64 and checked once (:meth:`prepare`), then copied in as often as
    the rings have room. The streams of the CPUs in ``prefetch`` are read by a thread of their own
    a few blocks ahead (:class:`_Prefetch`): building the input then overlaps the compiled loop,
    which runs without the GIL."""

    def __init__(
        self,
        mem: Memory,
        streams: Sequence[CpuStream],
        n_queues: int,
        n_locks: int,
        prefetch: Sequence[int] = (),
        engine_fed: Sequence[int] = (),
    ):
        self.mem = mem
        self.n_queues = n_queues
        self.n_locks = n_locks
        self.sources: list[Iterator[Prepared]] = [
            map(partial(self.prepare, c), s) for c, s in enumerate(streams)
        ]
        self.prefetcher: _Prefetch | None = None
        if prefetch:
            self.prefetcher = _Prefetch([self.sources[c] for c in prefetch])
            for k, c in enumerate(prefetch):
                self.sources[c] = self.prefetcher.reader(k)
        #: per CPU: the block being loaded (its int64 columns and uniform program) and the position reached
        self.pending: list[tuple[Cols, Program | None, int, int, int] | None] = [None] * len(self.sources)
        #: per CPU: the uniform program its rings were last filled with, and how many ops in a row of it
        #: (once they cover every ring slot, a refill writes the times alone: :func:`.feed.feed_times`)
        self.lap: list[tuple[Program | None, int]] = [(None, 0)] * len(self.sources)
        #: CPUs whose rings the engine itself appends to (the IRQ thread, VMM threads): never shortcut
        self.engine_fed = frozenset(engine_fed)

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()

    def fill(self, c: int) -> None:
        """Top up CPU ``c``'s rings from its stream; clear its MORE flag at the end of the stream."""
        cs = self.mem.cs
        while True:
            cur = self.pending[c]
            if cur is None or cur[2] == cur[0][0].size:
                nxt = next(self.sources[c], None)
                if nxt is None:
                    cs[c, L.C_MORE] = 0
                    self.pending[c] = None
                    return
                cols, prog = nxt
                cur = (cols, None if c in self.engine_fed else prog, 0, 0, 0)
                if cols[0].size == 0:
                    self.pending[c] = cur
                    continue
            cols, prog, i, j, k = cur
            t, nb, s_kind, s_a, s_b, s_c, c_opc, c_svc, c_flags = cols
            lap_prog, lap_ops = self.lap[c]
            if prog is not None and prog == lap_prog and lap_ops >= self._full_lap(prog):
                i2, j2, k2 = feed_times(self.mem.M, c, t, i, prog[0], prog[5])
            else:
                i2, j2, k2 = feed(self.mem.M, c, t, nb, s_kind, s_a, s_b, s_c, c_opc, c_svc, c_flags, i, j, k)
            if prog is not None and prog == lap_prog:
                self.lap[c] = (prog, lap_ops + i2 - i)
            else:
                self.lap[c] = (prog, i2 - i)
            self.pending[c] = (cols, prog, i2, j2, k2)
            cs[c, L.C_MORE] = 1
            if i2 == i:
                if cs[c, L.C_OPTAIL] == cs[c, L.C_OPHEAD]:
                    r_b, r_c = self.mem.rb.shape[1], self.mem.rcm.shape[1]
                    raise ParamError(
                        f"an op of CPU {c} needs more than the input ring holds "
                        f"({r_b} steps, {r_c} commands): raise ring_batches/ring_cmds"
                    )
                return
            if i2 < cols[0].size:
                return

    def _full_lap(self, prog: Program) -> int:
        """Ops of program ``prog`` in a row that write every slot of the three rings."""
        ns, nc = prog[0], prog[5]
        rb, rc = self.mem.rb.shape[1], self.mem.rcm.shape[1]
        return max(self.mem.rop.shape[1], -(-rb // ns) if ns else 0, -(-rc // nc) if nc else 0)

    @staticmethod
    def uniform_program(cols: Cols) -> Program | None:
        """Op 0's program if every op of the block repeats it (one batch step), else None."""
        t, nb, s_kind, s_a, s_b, s_c, c_opc, c_svc, c_flags = cols
        n = t.size
        if n == 0 or nb[0] != 1 or s_kind[0] != L.STEP_BATCH:
            return None
        nc = int(s_a[0])
        if nb.size != n or s_kind.size != n or c_opc.size != n * nc:
            return None
        for a in (nb, s_kind, s_a, s_b, s_c):
            if not (a == a[0]).all():
                return None
        for a in (c_opc, c_svc, c_flags):
            if not (a.reshape(n, nc) == a[:nc]).all():
                return None
        return (1, int(s_kind[0]), nc, int(s_b[0]), int(s_c[0]), nc,
                tuple(int(x) for x in c_opc[:nc]), tuple(int(x) for x in c_svc[:nc]),
                tuple(int(x) for x in c_flags[:nc]))  # fmt: skip

    def prepare(self, c: int, blk: OpBlock) -> Prepared:
        """CPU ``c``'s block as contiguous int64 columns, checked for this run, with its program if the
        block says it is uniform (:attr:`.OpBlock.repeats_op0`, verified here)."""
        cols = tuple(np.ascontiguousarray(getattr(blk, f), dtype=np.int64) for f in _BLOCK_FIELDS)
        t, _nb, s_kind, s_a, _s_b, s_c, _opc, c_svc, _flags = cols
        err = check_block(self.n_queues, self.n_locks, t, s_kind, s_a, s_c, c_svc)
        if err == BAD_QUEUE:
            raise ParamError(f"CPU {c}: step queue out of range 0 .. {self.n_queues - 1}")
        if err == BAD_TIME:
            raise ParamError(f"CPU {c}: negative time in the op stream")
        if err == BAD_BATCH:
            raise ParamError(f"CPU {c}: a batch must have at least one entry")
        if err == BAD_LOCK:
            raise ParamError(f"CPU {c}: lock id out of range 0 .. {self.n_locks - 1}")
        if err == BAD_KIND:
            raise ParamError(f"CPU {c}: unknown step kind")
        return cols, (self.uniform_program(cols) if blk.repeats_op0 else None)


class _Prefetch:
    """Items of several sources computed by one daemon thread, at most ``depth`` ahead of the reader
    on each and ``ahead`` on all of them together (:meth:`reader` is source ``i`` as an iterator);
    an exception of a source is raised to the reader at its position in that stream. The thread
    serves the source the reader waits for first (whatever the total), else the next one with room,
    in turn. The sources must not share state (the order in which the thread reads them is not the
    engine's). The total bound keeps memory flat with thousands of CPUs: 64 blocks of 4096 ops are
    about 25 MB, where two per CPU would be gigabytes."""

    def __init__(self, sources: Sequence[Iterator[Prepared]], depth: int = 2, ahead: int = 64):
        self._sources = list(sources)
        self._depth = depth
        self._ahead = ahead
        self._n_ready = 0  # items ready on all sources
        self._ready: list[collections.deque[tuple[Prepared | None, BaseException | None]]] = [
            collections.deque() for _ in self._sources
        ]
        self._ended = [False] * len(self._sources)
        self._want = -1  # the source the reader waits for
        self._turn = 0
        self._stop = False
        self._cv = threading.Condition()
        threading.Thread(target=self._run, name="cmdqv-lab-input", daemon=True).start()

    def _pick(self) -> int:
        """The source to read next (under the lock), -1 if none has room."""
        w = self._want
        if w >= 0 and not self._ended[w] and len(self._ready[w]) < self._depth:
            return w
        if self._n_ready >= self._ahead:
            return -1
        n = len(self._sources)
        for k in range(n):
            i = (self._turn + k) % n
            if not self._ended[i] and len(self._ready[i]) < self._depth:
                self._turn = (i + 1) % n
                return i
        return -1

    def _run(self) -> None:
        while True:
            with self._cv:
                i = self._pick()
                while i < 0 and not self._stop:
                    self._cv.wait()
                    i = self._pick()
                if self._stop:
                    return
            item: Prepared | None = None
            exc: BaseException | None = None
            try:
                item = next(self._sources[i], None)
            except BaseException as e:  # handed to the reader
                exc = e
            with self._cv:
                self._ready[i].append((item, exc))
                self._n_ready += 1
                self._ended[i] = item is None
                self._cv.notify_all()

    def take(self, i: int) -> tuple[Prepared | None, BaseException | None]:
        """Source ``i``'s next item (None at its end, with the exception that ended it, if any)."""
        with self._cv:
            while not self._ready[i]:
                self._want = i
                self._cv.notify_all()
                self._cv.wait()
            if self._want == i:
                self._want = -1
            out = self._ready[i].popleft()
            self._n_ready -= 1
            self._cv.notify_all()
            return out

    def reader(self, i: int) -> Iterator[Prepared]:
        """Source ``i`` as an iterator (its exception, if it ends with one, raised at that point)."""
        while True:
            item, exc = self.take(i)
            if exc is not None:
                raise exc
            if item is None:
                return
            yield item

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()


_BLOCK_FIELDS = ("t", "nb", "s_kind", "s_a", "s_b", "s_c", "c_opc", "c_svc", "c_flags")


def home_die(k: np.ndarray) -> tuple[int, int]:
    """The die whose memory homes the contended lines (``line_home``) and its socket, numbered as
    ``C_DIE`` and ``C_SOCKET`` (``-1, -1`` with ``line_home = near``): :func:`.lines.xfer_cost` puts a
    CPU on that die at distance 2 from it, on its socket at 3, elsewhere at 4."""
    home = int(k[L.K_LINE_HOME])
    if home == L.HOME_NEAR:
        return -1, -1
    die_cpus, socket_cpus = max(1, int(k[L.K_DIE_CPUS])), max(1, int(k[L.K_SOCKET_CPUS]))
    die = 1 if home == L.HOME_OTHER_DIE else socket_cpus // die_cpus
    return die, (die * die_cpus) // socket_cpus


def build_memory(cfg: EngineConfig) -> Memory:
    """Allocate and initialise the engine memory for ``cfg`` (no input loaded yet)."""
    C, P, Q = cfg.n_cpus, cfg.n_procs, len(cfg.queues)
    pq_lists: list[list[int]] = [[] for _ in range(P)]
    for i, qspec in enumerate(cfg.queues):
        if not qspec.vmm:  # an emulated queue is consumed by its VMM, never by a processor
            pq_lists[qspec.proc].append(i)
    mem = Memory.allocate(
        n_cpus=C,
        n_procs=P,
        n_queues=Q,
        pq_width=max(1, max(len(x) for x in pq_lists)),
        slots=sum(1 << q.log2size for q in cfg.queues),
        record_cap=cfg.record_limit if cfg.record else 0,
        ring_ops=cfg.ring_ops,
        ring_batches=cfg.ring_batches,
        ring_cmds=cfg.ring_cmds,
        n_locks=cfg.n_locks,
        pooled=True,
    )
    cs = mem.cs
    cs[:, L.C_PC] = L.PC_NEXT_OP
    cs[:, L.C_QUOTA] = np.asarray(cfg.quotas, dtype=np.int64)
    cs[:, L.C_OPEN] = int(cfg.open_loop)
    cs[:, L.C_SPACE_Q] = -1
    cs[:, L.C_SYNC_DONE] = -1
    cs[:, L.C_VMM] = -1
    cs[:, L.C_LOCK_Q] = -1
    cs[:, L.C_LLQ_Q] = -1
    cs[:, L.C_POLL_T0] = -1
    cs[:, L.C_LREQ_LINE] = -1
    cs[:, L.C_LGRANT] = -1
    cs[:, L.C_LNEXT] = -1
    cs[:, L.C_LPREV] = -1
    base = 0
    for i, qspec in enumerate(cfg.queues):
        row = mem.qs[i]
        row[L.Q_LOG2] = qspec.log2size
        row[L.Q_ALG] = L.ALG_NAMES[qspec.alg]
        row[L.Q_WAIT] = L.WAIT_NAMES[qspec.wait]
        row[L.Q_PROC] = qspec.proc
        row[L.Q_SLOT_BASE] = base
        row[L.Q_LOCK] = -1 if qspec.alg == "spinlock" else 0
        row[L.Q_SLOCK] = -1
        row[L.Q_OWNER_WAITER] = -1
        row[L.Q_VALID_WAITER] = -1
        row[L.Q_ERR] = ERR_MODES[qspec.err]
        row[L.Q_VMM] = int(qspec.vmm)
        row[L.Q_BQL] = qspec.bql
        base += 1 << qspec.log2size
    # the slot pool stays as allocated (zeros, see layout.SL_NF): a large queue's pages are then
    # touched only as far as the queue fills (log2size 19 is 46 MB, 0.1-0.15 s to fill with -1)
    mem.ps[:, L.P_CUR] = -1
    for p, lst in enumerate(pq_lists):
        mem.ps[p, L.P_NQ] = max(1, len(lst))
        mem.pq[p, : len(lst)] = lst
        mem.ps[p, L.P_RR] = max(1, len(lst)) - 1  # the first search starts at position 0
    mem.ls[:, L.L_OWNER] = -1
    mem.ls[:, L.L_ARB] = -1
    mem.ls[:, L.L_RESV] = -1
    mem.ls[:, L.L_ROUND] = -1
    mem.ls[:, L.L_WHEAD] = -1
    mem.ls[:, L.L_WTAIL] = -1
    mem.g[L.G_FIRST_FINISH] = -1
    mem.k[:] = cfg.costs.vector(cfg.record)
    mem.k[L.K_IRQ_CPU] = cfg.irq_cpu
    mem.k[L.K_HOST_QUEUE] = cfg.fixup_queue
    mem.k[L.K_SCAN_WAITERS] = CLUSTER_SCAN_WAITERS * max(1, int(mem.k[L.K_CLUSTER_CPUS]))
    ids = np.arange(C, dtype=np.int64)  # each CPU's cluster, die and socket (lines.distance compares them)
    cs[:, L.C_CLUSTER] = ids // max(1, int(mem.k[L.K_CLUSTER_CPUS]))
    cs[:, L.C_DIE] = ids // max(1, int(mem.k[L.K_DIE_CPUS]))
    cs[:, L.C_SOCKET] = ids // max(1, int(mem.k[L.K_SOCKET_CPUS]))
    mem.k[L.K_HOME_DIE], mem.k[L.K_HOME_SOCKET] = home_die(mem.k)
    if cfg.irq_cpu >= 0:
        cs[cfg.irq_cpu, L.C_IRQ] = 1
        cs[cfg.irq_cpu, L.C_OPEN] = 1  # its ops arrive when errors are raised
        cs[cfg.irq_cpu, L.C_QUOTA] = np.iinfo(np.int64).max
    for v, t in cfg.vmm_threads:
        cs[v, L.C_VMM], cs[t, L.C_VMM] = t, v
        cs[t, L.C_IRQ] = 2
        cs[t, L.C_OPEN] = 1  # its ops arrive when its vCPU exits
        cs[t, L.C_QUOTA] = np.iinfo(np.int64).max
    return mem


#: holder-first arbitration looks up the owner's cluster CPU by CPU (instead of walking the waiters
#: until one of them) when this many times as many CPUs as a cluster has are waiting
#: (``K_SCAN_WAITERS``, :func:`.lines._line_grant`). A speed choice, both find the same CPU: on d06
#: the look-up pays at 64 CPUs (engine 0.68 -> 0.80 M commands/s) and cost 5 % at 16 when made at
#: every arbitration.
CLUSTER_SCAN_WAITERS = 4

#: Ops per issuing CPU (on average) below which a run reads its streams itself, not by the input thread.
PREFETCH_MIN_OPS = 1 << 14


def run_engine(
    cfg: EngineConfig,
    streams: Sequence[CpuStream],
    *,
    event_limit: int | None = None,
    until_ps: int | None = None,
) -> EngineResult:
    """Run the engine to completion (or ``event_limit`` steps, or simulated time ``until_ps``: the run
    then stops with work left, ``stopped_at_ps`` set) and return its result."""
    if until_ps is not None and not 0 < until_ps <= L.MAX_TIME_PS:
        raise ParamError(
            f"until={until_ps / 1e3:g} ns is out of range: allowed 0 .. {L.MAX_TIME_PS / 1e3:.0f} ns"
        )
    t_wall = time.perf_counter()
    load_numba_registries()
    if len(streams) != cfg.n_cpus:
        raise ParamError(f"expected {cfg.n_cpus} CPU streams, got {len(streams)}")
    mem = build_memory(cfg)
    # Long streams are built by a thread while the engine runs: one issuing CPU's, or several that
    # share no state (IndependentStream; else they are read in the order the engine asks, as
    # generators may share state). Short ones, a widget's or many CPUs' of a few blocks each, are
    # not worth the thread's hand-offs: the engine needs every CPU's first block before it can run.
    # CMDQV_LAB_INPUT_THREAD=0: no thread (a process pool's workers, one per core, set it).
    issuing = [c for c in range(cfg.n_cpus) if c != cfg.irq_cpu and all(c not in p for p in cfg.vmm_threads)]
    thread = os.environ.get("CMDQV_LAB_INPUT_THREAD", "1")
    if thread not in ("0", "1"):
        raise ParamError(
            f"CMDQV_LAB_INPUT_THREAD={thread!r} is not allowed: 0 (no input thread) or 1 (the default)"
        )
    if (
        thread == "0"
        or sum(cfg.quotas[c] for c in issuing) < PREFETCH_MIN_OPS * len(issuing)
        or (len(issuing) > 1 and not all(isinstance(streams[c], IndependentStream) for c in issuing))
    ):
        issuing = []
    engine_fed = [cfg.irq_cpu] if cfg.irq_cpu >= 0 else []
    engine_fed += [t for _, t in cfg.vmm_threads]
    rings = _Rings(
        mem,
        streams,
        len(cfg.queues),
        cfg.n_locks,
        prefetch=issuing,
        engine_fed=engine_fed,
    )
    try:
        return _run(cfg, mem, rings, t_wall, event_limit, until_ps)
    finally:
        rings.close()
        if mem.poolable:  # the result holds copies only (records are copied below)
            mem.release()


def _run(
    cfg: EngineConfig,
    mem: Memory,
    rings: _Rings,
    t_wall: float,
    event_limit: int | None,
    until_ps: int | None,
) -> EngineResult:
    if not getattr(run_loop, "signatures", ()):
        from cmdqv_lab.engine import announce_compile

        announce_compile()
        # load (or compile) the loop now, while the input thread builds the first block: with
        # nothing scheduled yet, the call returns at once and changes nothing
        run_loop(mem.M, 0, 0)
    for c in range(cfg.n_cpus):
        rings.fill(c)
        _sched_py(mem, cfg.n_procs + c, 0)
    ev_limit = event_limit if event_limit is not None else np.iinfo(np.int64).max
    t_limit = L.MAX_TIME_PS if until_ps is None else until_ps
    stopped = None
    done_before = -1
    while True:
        remaining = ev_limit - int(mem.g[L.G_EVENTS])
        chunk = min(remaining, WATCH_EVENTS)
        status = run_loop(mem.M, t_limit, chunk)
        if status == L.ST_NEED_INPUT:
            rings.fill(int(mem.g[L.G_NEED_CPU]))
            continue
        if status == L.ST_EVENT_LIMIT and chunk < remaining:  # the watchdog's slice, not the caller's limit
            done = int(mem.g[L.G_CMDS_DONE])
            if done == done_before:
                _livelocked(mem, cfg)
            done_before = done
            continue
        if status == L.ST_TIME_LIMIT:
            if until_ps is None:
                raise ParamError(f"simulated time exceeded {L.MAX_TIME_PS / 1e12:.0f} s: use fewer ops")
            stopped = until_ps
            mem.g[L.G_NOW] = until_ps
        break
    g = mem.g
    if stopped is None:
        _check_progress(mem, cfg)
    truncated = cfg.record and (g[L.G_REC_CMDS] >= cfg.record_limit or g[L.G_REC_OPS] >= cfg.record_limit)
    return EngineResult(
        config=cfg,
        g=g.copy(),
        hist_latency=mem.hlat.copy(),
        hist_queue_wait=mem.hqw.copy(),
        hist_fixup=mem.hfix.copy(),
        hist_shared_lock=mem.hslw.copy(),
        queues=mem.qs.copy(),
        procs=mem.ps.copy(),
        cpus=mem.cs.copy(),
        commands=_command_frame(_own(mem, mem.rc[: g[L.G_REC_CMDS]])) if cfg.record else None,
        ops=_op_frame(_own(mem, mem.ro[: g[L.G_REC_OPS]])) if cfg.record else None,
        wall_s=time.perf_counter() - t_wall,
        records_truncated=bool(truncated),
        stopped_at_ps=stopped,
    )


def _own(mem: Memory, a: np.ndarray) -> np.ndarray:
    """``a`` copied if ``mem``'s storage goes back to the pool (frames must not share it)."""
    return a.copy() if mem.poolable else a


_PC_NAMES = {v: k for k, v in vars(L).items() if k.startswith("PC_") and isinstance(v, int)}
#: A run whose CPUs take this many events without the SMMU completing a single command is livelocked
#: (spinning: e.g. set-zero's shared_lock starvation, which nothing in a deterministic model breaks).
#: The loop runs in slices of this many events; slicing changes no result (the loop stops before an
#: event and resumes with it).
WATCH_EVENTS = 5_000_000


def _livelocked(mem: Memory, cfg: EngineConfig) -> None:
    busy = [c for c in range(cfg.n_cpus) if mem.cs[c, L.C_PC] != L.PC_DONE]
    where = ", ".join(
        f"CPU {c} at {_PC_NAMES.get(int(mem.cs[c, L.C_PC]), mem.cs[c, L.C_PC])}" for c in busy[:4]
    )
    raise DeadlockError(
        f"simulation livelocked at t={int(mem.g[L.G_NOW]) / 1e3:.0f} ns: no command completed in the last "
        f"{WATCH_EVENTS:,} events ({where or 'no CPU busy'}); on a nearly full queue this is set-zero's "
        "shared_lock starvation (exclusive_unlock=clear-sign is the 2026 fix)"
    )


def _check_progress(mem: Memory, cfg: EngineConfig) -> None:
    """Every CPU finished and every command written was consumed, or the run deadlocked."""
    stuck = [
        c
        for c in range(cfg.n_cpus)
        if mem.cs[c, L.C_PC] != L.PC_DONE
        and not (mem.cs[c, L.C_IRQ] > 0 and mem.cs[c, L.C_OPHEAD] == mem.cs[c, L.C_OPTAIL])
    ]
    written, done = int(mem.g[L.G_CMDS]), int(mem.g[L.G_CMDS_DONE])
    if stuck or written != done:
        where = ", ".join(
            f"CPU {c} at {_PC_NAMES.get(int(mem.cs[c, L.C_PC]), mem.cs[c, L.C_PC])}" for c in stuck[:4]
        )
        algs = sorted({q.alg for q in cfg.queues})
        raise DeadlockError(
            f"simulation deadlocked at t={int(mem.g[L.G_NOW]) / 1e3:.0f} ns with {written - done} commands "
            f"unconsumed ({where or 'no CPU blocked'}; submit={','.join(algs)}): "
            "with atomic-add, queues must hold every CPU's concurrent reservation"
        )


def _sched_py(mem: Memory, e: int, t: int) -> None:
    sched(mem.M, e, t)


_OPCODE_NAMES = {int(op): op.name for op in Opcode}


def _command_frame(rc: np.ndarray) -> pl.DataFrame:
    import polars as pl

    opc = rc[:, L.R_OPCODE]
    names = np.array([_OPCODE_NAMES.get(int(v), f"0x{int(v):02x}") for v in range(256)], dtype=object)
    wait = np.where(rc[:, L.R_CSTART] >= 0, rc[:, L.R_CSTART] - rc[:, L.R_PUBLISH], -1)
    df = pl.DataFrame(
        {
            "cmd_id": np.arange(rc.shape[0], dtype=np.int64),
            "op_id": rc[:, L.R_OP],
            "cpu": rc[:, L.R_CPU],
            "queue": rc[:, L.R_QUEUE],
            "slot": rc[:, L.R_SLOT],
            "opcode": opc,
            "opcode_name": names[opc.astype(np.int64) & 0xFF].tolist() if rc.shape[0] else [],
            "issue_ps": rc[:, L.R_ISSUE],
            "reserved_ps": rc[:, L.R_RESERVED],
            "written_ps": rc[:, L.R_WRITTEN],
            "publish_ps": rc[:, L.R_PUBLISH],
            "consume_start_ps": rc[:, L.R_CSTART],
            "complete_ps": rc[:, L.R_COMPLETE],
            "queue_wait_ps": wait,
            "retries": rc[:, L.R_RETRIES],
            "ill": rc[:, L.R_ILL] == 1,
        },
        schema=COMMAND_SCHEMA,
    )
    return df


def _op_frame(ro: np.ndarray) -> pl.DataFrame:
    import polars as pl

    df = pl.DataFrame(
        {
            "op_id": ro[:, L.O_ID],
            "cpu": ro[:, L.O_CPU],
            "queue": ro[:, L.O_QUEUE],
            "ready_ps": ro[:, L.O_READY],
            "complete_ps": ro[:, L.O_COMPLETE],
            "sync_complete_ps": ro[:, L.O_SYNC_COMPLETE],
            "latency_ps": ro[:, L.O_COMPLETE] - ro[:, L.O_READY],
            "cmds": ro[:, L.O_CMDS],
            "batches": ro[:, L.O_BATCHES],
            "retries": ro[:, L.O_RETRIES],
        },
        schema=OP_SCHEMA,
    )
    return df.sort("op_id")
