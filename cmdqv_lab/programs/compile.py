"""The compiler: a CPU's routed command stream -> engine op programs (:class:`OpBlock`).

Every scenario's stream reaches the engine through :func:`compile_streams`. A chunk of one CPU's
stream (:data:`~cmdqv_lab.workloads.stream.StreamChunk`) is routed (guests: :class:`Routing`, i.e.
:func:`~cmdqv_lab.driver.route_rows.route_rows` on one CPU's numpy rows, directly or, for a frame,
on each CPU's rows through :func:`~cmdqv_lab.driver.routing.route_columns`; host rows always take
the ``host`` path) and each op becomes a list of steps (:mod:`cmdqv_lab.engine.stream`). Each op
may start with ``prefix_ps`` of CPU work (e.g. ``guest_unmap_ns``: part of the measured unmap
latency); then each *part* of a batch becomes, by its path:

``host`` part
    one batch on the CPU's host queue (its :class:`~cmdqv_lab.programs.topology.Route`).
``vcmdq`` part (pass-through)
    one batch on the vCPU's VCMDQ, written by the guest's own driver with no exit; the guest waits
    for its CMD_SYNC by polling the VCMDQ's CONS (mapped into the guest). Entries the VCMDQ does not
    accept carry ``CMD_ILLEGAL``: the queue raises ILL and the host's CMDQV IRQ thread either fixes
    it up (guest-fixup) or forwards the error to the guest (guest-vcmdq).
``trap`` part (trap-and-emulate vSMMU)
    one batch on the VM's emulated vSMMU CMDQ (the route's ``trap_queue``), written by the guest's
    own driver (the same Linux algorithm); its PROD write and CONS reads exit to the VMM, which
    forwards the commands to the host main CMDQ under the VM's lock: the engine does all of it
    (:mod:`cmdqv_lab.engine.vmm`).

Each command's service time is drawn from the platform (its opcode's mean and ``service_dist``):
one draw per command in stream order from the CPU's own generator, so the engine and the SimPy
reference see identical inputs and a CPU's draws do not depend on chunk sizes. Chunks are compiled
with whole-array operations.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.driver.route_rows import PATH_CODES, PATH_TRAP, PATH_VCMDQ, applies, route_rows
from cmdqv_lab.driver.routing import route_columns
from cmdqv_lab.engine.layout import (
    CMD_ILLEGAL,
    CNT_NONE,
    STEP_BATCH,
    STEP_DELAY,
)
from cmdqv_lab.engine.stream import CpuStream, IndependentStream, OpBlock
from cmdqv_lab.errors import ParamError
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.topology import Route, Topology
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.workloads.stream import Chunk, Period, StreamChunk, Workload, as_frame

if TYPE_CHECKING:
    import polars as pl

SYNC = int(Opcode.CMD_SYNC)
#: Distributions of durations: name -> coefficient of variation.
DISTRIBUTIONS = {"deterministic": 0.0, "uniform": 1 / (2 * 3**0.5), "exponential": 1.0}


@dataclass(frozen=True)
class Routing:
    """How a guest's batches are routed: a policy, the opcodes its VCMDQs accept, each VM's SIDs."""

    policy: str
    accepted: frozenset[int]
    sids: Mapping[int, Sequence[int]] | None = None  # vm -> SIDs its VINTF's SID pairs match


@dataclass(frozen=True)
class Columns:
    """A routed chunk as numpy columns, one entry per command (inserted SYNCs included)."""

    op: np.ndarray  # op index (constant over an op's rows)
    t: np.ndarray  # the op's think gap or arrival (ps)
    opcode: np.ndarray
    part: np.ndarray  # part key: equal on the rows of one part of one batch
    path: np.ndarray  # PATH_*
    wait: np.ndarray  # the issuer waits for the part's final CMD_SYNC (read at the part's last row)
    illegal: np.ndarray  # raises ILL on the VCMDQ it is routed to

    @classmethod
    def of(cls, chunk: StreamChunk, routing: Routing | None) -> Columns:
        """Route ``chunk`` (host rows need no routing: their batches go whole to the host queue).

        A :class:`Chunk` whose batches are runs is routed on its numpy rows
        (:func:`~cmdqv_lab.driver.route_rows.route_rows`); a frame (or a chunk with batches not as
        runs) by :func:`~cmdqv_lab.driver.routing.route_columns` (route_rows on each CPU's rows)."""
        if isinstance(chunk, Chunk) and (routing is None or chunk.vm < 0 or chunk.height == 0):
            rows = chunk.rows
            n = rows.opcode.size
            op = (rows.op + chunk.op0).astype(np.int64, copy=False)
            batch = (rows.batch + chunk.batch0).astype(np.int64, copy=False)
            return cls(op, np.asarray(chunk.t_ps, np.int64)[rows.op], rows.opcode.astype(np.int64), batch,
                       np.zeros(n, np.int64), rows.sync(), np.zeros(n, bool))  # fmt: skip
        if isinstance(chunk, Chunk):
            assert routing is not None
            if applies(routing.policy, chunk.rows.batch):
                return cls._of_rows(chunk, routing)
        df = as_frame(chunk)
        host = routing is None or bool((df["vm"] < 0).all())
        if host:
            n = df.height
            return cls(df["op"].to_numpy(), df["t_ps"].to_numpy(), df["opcode"].to_numpy().astype(np.int64),
                       df["batch"].to_numpy(), np.zeros(n, np.int64), df["sync"].to_numpy(), np.zeros(n, bool))  # fmt: skip
        assert routing is not None
        r, _ = route_columns(df, routing.policy, accepted=routing.accepted, sids=routing.sids)
        import polars as pl

        batch = df["batch"].cast(pl.Int64).to_numpy()[r.take]
        return cls(df["op"].cast(pl.Int64).to_numpy()[r.take], df["t_ps"].cast(pl.Int64).to_numpy()[r.take],
                   r.opcode, (batch << 8) + r.part, r.path, r.wait, r.illegal)  # fmt: skip

    @classmethod
    def _of_rows(cls, chunk: Chunk, routing: Routing) -> Columns:
        """A guest chunk routed on its numpy rows (identical to routing its frame)."""
        rows = chunk.rows

        def sid() -> tuple[np.ndarray, np.ndarray]:
            if "sid" not in rows.fields:
                return np.zeros(rows.opcode.size, np.int64), np.zeros(rows.opcode.size, bool)
            return rows.fields["sid"]

        r = route_rows(rows.opcode, rows.batch, rows.sync(), routing.policy, vm=chunk.vm,
                       accepted=routing.accepted, sids=routing.sids, sid=sid)  # fmt: skip
        op = rows.op[r.take]
        batch = (rows.batch[r.take] + chunk.batch0).astype(np.int64)
        return cls((op + chunk.op0).astype(np.int64), np.asarray(chunk.t_ps, np.int64)[op], r.opcode,
                   (batch << 8) + r.part, r.path, r.wait, r.illegal)  # fmt: skip

    @classmethod
    def routed(cls, r: pl.DataFrame) -> Columns:
        """An already routed frame (:func:`~cmdqv_lab.driver.routing.route_frame` columns)."""
        import polars as pl

        return cls(
            r["op"].to_numpy(),
            r["t_ps"].to_numpy(),
            r["opcode"].to_numpy().astype(np.int64),
            (r["batch"].to_numpy() << 8) + r["part"].to_numpy(),
            r["path"].replace_strict(PATH_CODES, return_dtype=pl.Int64).to_numpy(),
            r["wait"].to_numpy(),
            r["illegal"].to_numpy(),
        )


def draw_service(rng: np.random.Generator, means_ns: np.ndarray, dist: str) -> np.ndarray:
    """One service time (ps) per entry of ``means_ns``, drawn in order (one draw each)."""
    if dist == "deterministic":
        return np.rint(means_ns * 1000).astype(np.int64)
    if dist == "uniform":
        return np.rint((0.5 + rng.random(means_ns.size)) * (means_ns * 1000.0)).astype(np.int64)
    return np.rint(rng.standard_exponential(means_ns.size) * (means_ns * 1000.0)).astype(np.int64)


def service_times(opcodes: np.ndarray, plat: Platform, rng: np.random.Generator) -> np.ndarray:
    """One service time (ps) per command: the platform's mean for its opcode, drawn from its
    distribution (one draw per command, in order)."""
    if opcodes.size == 0:
        return np.zeros(0, np.int64)
    return draw_service(rng, _service_means(plat)[opcodes], plat.service_dist)


@lru_cache(maxsize=16)
def _service_means(plat: Platform) -> np.ndarray:
    """The platform's mean service time (ns) of each opcode, indexed by opcode (read-only: every CPU
    of every run on the platform shares it)."""
    mean_of = np.zeros(256)
    for o in Opcode:
        mean_of[int(o)] = plat.service_ns(int(o))
    mean_of.flags.writeable = False
    return mean_of


def compile_chunk(
    chunk: StreamChunk,
    route: Route,
    plat: Platform,
    rng: np.random.Generator,
    *,
    routing: Routing | None = None,
    prefix_ps: int = 0,
) -> OpBlock:
    """One chunk of a CPU's stream as op programs (see the module docstring)."""
    if routing is None and isinstance(chunk, Chunk) and chunk.rows.period is not None:
        per = chunk.rows.period
        if per.rows.opcode.size and chunk.rows.opcode.size % per.rows.opcode.size == 0:
            return _compile_periodic(chunk, per, route, plat, rng, prefix_ps)
    return compile_columns(Columns.of(chunk, routing), route, plat, rng, prefix_ps=prefix_ps)


@lru_cache(maxsize=64)
def _period_program(per: Period, prefix_ps: int) -> tuple[OpBlock, np.ndarray]:
    """One instance's program (times and service times zero; every batch step on the host path, its
    queue index 0: :func:`_compile_periodic` puts the CPU's host queue there) and the instance's ops
    that have commands (an op without any is not a program). Cached per period, not per route: with
    a queue per CPU each of 64 CPUs has its own route."""
    rows = per.rows
    n = rows.opcode.size
    cols = Columns(rows.op, np.zeros(n, np.int64), rows.opcode.astype(np.int64), rows.batch,
                   np.zeros(n, np.int64), rows.sync(), np.zeros(n, bool))  # fmt: skip
    blk = _compile_vectorised(cols, np.zeros(n, np.int64), Route(host_queue=0), prefix_ps)
    # np.unique(rows.op), without its masked-array check: that imports numpy.ma (9-17 ms of a CLI run)
    ops = np.sort(rows.op)
    present = ops[np.concatenate(([True], ops[1:] != ops[:-1]))] if ops.size else ops
    return blk, present


def _compile_periodic(
    chunk: Chunk, per: Period, route: Route, plat: Platform, rng: np.random.Generator, prefix_ps: int
) -> OpBlock:
    """A chunk repeating one :class:`Period` (a generator's template, no routing): one instance is
    compiled and its program tiled; identical to compiling the chunk row by row."""
    blk, present = _period_program(per, prefix_ps)
    m = chunk.rows.opcode.size // per.rows.opcode.size
    t = np.asarray(chunk.t_ps, np.int64)
    if present.size != per.n_ops:
        t = t.reshape(m, per.n_ops)[:, present].reshape(-1)
    opc = chunk.rows.opcode.astype(np.int64)
    if plat.service_dist == "deterministic":  # no draws: one instance's times, tiled
        svc = _tile(service_times(blk.c_opc, plat, rng), m)
    else:
        svc = service_times(opc, plat, rng)
    # one op of one batch step, its times drawn for no command: every op is the first one's program
    uniform = blk.nb.size == 1 and blk.s_kind.size == 1 and plat.service_dist == "deterministic"
    s_c = blk.s_c if route.host_queue == 0 else np.where(blk.s_kind == STEP_BATCH, route.host_queue, 0)
    return OpBlock(t, _tile(blk.nb, m), _tile(blk.s_kind, m), _tile(blk.s_a, m), _tile(blk.s_b, m),
                   _tile(s_c, m), opc, svc, np.zeros(opc.size, np.int64), repeats_op0=uniform)  # fmt: skip


def _tile(a: np.ndarray, m: int) -> np.ndarray:
    """``np.tile(a, m)`` (a fill when ``a`` has one element: several times faster)."""
    return np.full(m, a[0], np.int64) if a.size == 1 else np.tile(a, m)


def compile_columns(
    cols: Columns, route: Route, plat: Platform, rng: np.random.Generator, *, prefix_ps: int = 0
) -> OpBlock:
    """Routed columns as op programs."""
    svc = service_times(cols.opcode, plat, rng)
    if (cols.path == PATH_TRAP).any() and route.trap_queue < 0:
        raise ParamError("a batch routed the trapped way on a topology without an emulated vSMMU queue")
    return _compile_vectorised(cols, svc, route, prefix_ps)


def _compile_vectorised(cols: Columns, svc: np.ndarray, route: Route, prefix_ps: int) -> OpBlock:
    """Every part is one batch step (whole-array operations)."""
    n = cols.opcode.size
    if n == 0:
        return OpBlock.empty()
    op, part, path = cols.op, cols.part, cols.path
    new_op = np.r_[True, op[1:] != op[:-1]]
    op_start = np.flatnonzero(new_op)
    part_start = np.flatnonzero(new_op | np.r_[True, (part[1:] != part[:-1]) | (path[1:] != path[:-1])])
    part_end = np.r_[part_start[1:], n]
    last = part_end - 1
    part_op = np.searchsorted(op_start, part_start, side="right") - 1
    parts_per_op = np.bincount(part_op, minlength=op_start.size).astype(np.int64)
    pre = int(prefix_ps > 0)
    total = part_start.size + pre * op_start.size
    is_batch = np.ones(total, bool)
    if pre:
        first_step = np.r_[0, np.cumsum(parts_per_op + 1)[:-1]]
        is_batch[first_step] = False
    kind = np.full(total, STEP_DELAY, np.int64)
    a = np.full(total, prefix_ps, np.int64)
    b = np.full(total, CNT_NONE, np.int64)
    c = np.zeros(total, np.int64)
    kind[is_batch] = STEP_BATCH
    a[is_batch] = part_end - part_start
    b[is_batch] = (cols.wait[last] & (cols.opcode[last] == SYNC)).astype(np.int64)
    pp = path[part_start]
    c[is_batch] = np.where(
        pp == PATH_VCMDQ, route.vcmdq, np.where(pp == PATH_TRAP, route.trap_queue, route.host_queue)
    )
    flags = np.where((path == PATH_VCMDQ) & cols.illegal, CMD_ILLEGAL, 0).astype(np.int64)
    return OpBlock(cols.t[op_start].astype(np.int64), parts_per_op + pre, kind, a, b, c,
                   cols.opcode, svc.astype(np.int64), flags)  # fmt: skip


def compile_streams(
    workload: Workload,
    topology: Topology,
    plat: Platform,
    *,
    seed: int,
    name: str,
    routing: Routing | None = None,
    prefix_ps: int = 0,
) -> list[CpuStream]:
    """Every issuing CPU's op-program stream (lazy), plus empty ones for the IRQ and VMM threads.

    CPU ``(vm, cpu)`` draws its service times from ``rng.stream(seed, name, "service", vm + 1, cpu)``.
    """

    def one(i: int, chunks: Iterator[StreamChunk]) -> CpuStream:
        vm, cpu = workload.cpus[i]
        rng = rng_stream(seed, name, "service", vm + 1, cpu)
        for ch in chunks:
            yield compile_chunk(ch, topology.routes[i], plat, rng, routing=routing, prefix_ps=prefix_ps)

    streams: list[CpuStream] = [one(i, it) for i, it in enumerate(workload.chunks)]
    if workload.independent:  # each has its own service-time generator too
        streams = [IndependentStream(s) for s in streams]
    # the IRQ thread and the VMM threads get their ops from the engine
    streams.extend(iter(()) for _ in range(topology.n_cpus - len(streams)))
    return streams
