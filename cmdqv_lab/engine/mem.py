"""The engine's flat memory: one ``int64`` array ``M`` holding every section of the state.

Compiled functions take ``M`` alone (passing many arrays or a tuple of arrays costs an atomic
reference-count update per array per call in numba, which dominated run time). Sections are
addressed through the header (:mod:`.layout`, ``H_*``) by the tiny accessors below, e.g.
``cget(M, c, C_PC)`` reads CPU ``c``'s program counter. The common ones are numba intrinsics
(:func:`_accessor`) that emit their loads and stores in place: as ordinary functions numba compiled
one specialisation per constant field argument (``Literal[int]``, about 550 compilations), and as
``inline="always"`` functions it copied and re-typed their IR at every use (about 1,600 copies, half of
the engine's first compile). :class:`Memory` allocates ``M`` and exposes numpy views of each
section to Python.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic

from cmdqv_lab.engine.layout import (
    C_NF,
    G_NF,
    H_CS,
    H_FIFO,
    H_G,
    H_HFIX,
    H_HLAT,
    H_HQW,
    H_HSLW,
    H_K,
    H_LEAVES,
    H_LFIFO,
    H_LOCKS,
    H_LS,
    H_NCPU,
    H_NLOCKS,
    H_NPROC,
    H_NQ,
    H_PQ,
    H_PQW,
    H_PS,
    H_QS,
    H_RB,
    H_RB_N,
    H_RC,
    H_RC_CAP,
    H_RCM,
    H_RCM_N,
    H_RO,
    H_RO_CAP,
    H_ROP,
    H_ROP_N,
    H_SL,
    H_TREE,
    H_WORDS,
    K_NF,
    L_NF,
    LINES_PER_Q,
    LOCK_NF,
    O_NF,
    P_NF,
    Q_NF,
    R_NF,
    SL_NF,
    TIME_NEVER,
)
from cmdqv_lab.engine.stats import N_BUCKETS

# ----------------------------------------------------------------------------- unmanaged view


@intrinsic
def _as_int64_ptr(typingctx, addr):
    sig = types.CPointer(types.int64)(types.intp)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.int64)))

    return sig, codegen


@njit(cache=True)
def unmanaged(M):
    """``M`` as a raw pointer to its first word, for the compiled loop and everything it calls.

    Every call that passes an array costs two calls into numba's reference counting (the argument's
    incref and decref) and the array's seven words of arguments; a pointer is one register and no
    reference count (``M`` itself stays alive in the caller for the whole run). The accessors below,
    ``M[i]`` and ``range(M[...])`` work on either.
    """
    return _as_int64_ptr(M.ctypes.data)  # type: ignore[call-arg]


# ----------------------------------------------------------------------------- raw loads and stores


def _data_ptr(context, builder, ty, val):
    """The ``int64*`` of an array or a pointer argument."""
    if isinstance(ty, types.CPointer):
        return val
    return context.make_array(ty)(context, builder, val).data


def _invariant(builder, instr):
    """Mark a load as reading a word no compiled code writes (LLVM ``!invariant.load``): the header
    (:func:`_hget`, the accessors' section starts) and the run's constants (``kget``).

    Every store into ``M`` could otherwise change them as far as LLVM knows, so each access
    reloaded its section's start after any store. Engine-only, the same inputs, alternated with
    the code before: d06 4*10^5 ops 1 CPU 7.12-7.19 -> 8.06-8.23 M commands/s, 16 CPUs 1.99 ->
    2.11-2.12, 64 CPUs (10^5 ops) 1.23-1.24 -> 1.28; open-queue 14.8-15.4 -> 17.8-18.2; results
    identical. ``tests/test_engine_invariant_loads.py`` checks that nothing compiled writes them."""
    instr.set_metadata("invariant.load", builder.module.add_metadata([]))
    return instr


@intrinsic
def _load(typingctx, arr, idx):
    """``arr[idx]`` without numba's negative-index wraparound (indices here are never negative)."""
    sig = types.int64(arr, idx)

    def codegen(context, builder, signature, args):
        data = _data_ptr(context, builder, signature.args[0], args[0])
        return builder.load(builder.gep(data, [args[1]], inbounds=True))

    return sig, codegen


@intrinsic
def _store(typingctx, arr, idx, val):
    """``arr[idx] = val`` without the wraparound check."""
    sig = types.void(arr, idx, val)

    def codegen(context, builder, signature, args):
        data = _data_ptr(context, builder, signature.args[0], args[0])
        builder.store(args[2], builder.gep(data, [args[1]], inbounds=True))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _hget(typingctx, arr, h):
    """Header word ``h`` of ``M`` (a section's start or a size): written by :class:`Memory` before
    any compiled code runs and never by it, so an invariant load (``!invariant.load``): LLVM reads
    it once per function, not again after every store into ``M``."""
    sig = types.int64(arr, h)

    def codegen(context, builder, signature, args):
        data = _data_ptr(context, builder, signature.args[0], args[0])
        return _invariant(builder, builder.load(builder.gep(data, [args[1]], inbounds=True)))

    return sig, codegen


#: Typed names for the intrinsics (the same objects; mypy cannot see through numba's decorator).
hget = cast("Callable[[Any, Any], Any]", _hget)
load = cast("Callable[[Any, Any], Any]", _load)
store = cast("Callable[[Any, Any, Any], None]", _store)


# ----------------------------------------------------------------------------- accessors

_INT_ARG = (types.Integer, types.IntegerLiteral, types.Boolean, types.BooleanLiteral)


def _field_ptr(context, builder, sig, args, header, stride):
    """``int64*`` of field ``args[-1]`` of row ``args[1]`` (when ``stride``) of the section whose
    start is in header word ``header``: ``M + M[header] + row * stride + field``.

    The header is written by :class:`Memory` before any compiled code runs, never by it: its load
    is invariant (:func:`_invariant`), so LLVM computes a section's start once per function
    instead of again after every store into ``M``."""
    i64 = llvm_ir.IntType(64)
    data = _data_ptr(context, builder, sig.args[0], args[0])
    idx = _invariant(builder, builder.load(builder.gep(data, [llvm_ir.Constant(i64, header)], inbounds=True)))
    if stride:
        row = context.cast(builder, args[1], sig.args[1], types.int64)
        idx = builder.add(idx, builder.mul(row, llvm_ir.Constant(i64, stride)))
    f = 2 if stride else 1
    idx = builder.add(idx, context.cast(builder, args[f], sig.args[f], types.int64))
    return builder.gep(data, [idx], inbounds=True)


def _accessor(name: str, header: int, stride: int, kind: str) -> Any:
    """An accessor of a section of ``M`` as a numba intrinsic: ``get(M, [row,] f)``, ``set(M, [row,]
    f, v)`` or ``add(M, [row,] f, v)`` (``stride`` 0: a section without rows, e.g. the globals).

    Emitted in place as the header load, the address arithmetic and the access, at no compile cost
    of its own (see the module docstring)."""
    n_index = 2 if stride else 1

    def typed(M, idx):
        if not all(isinstance(t, _INT_ARG) for t in idx):
            return None
        sig = (types.int64 if kind == "get" else types.void)(M, *idx)

        def codegen(context, builder, signature, args):
            ptr = _field_ptr(context, builder, signature, args[: n_index + 1], header, stride)
            if kind == "get":
                ld = builder.load(ptr)
                return _invariant(builder, ld) if header == H_K else ld  # nothing compiled writes K
            v = context.cast(builder, args[-1], signature.args[-1], types.int64)
            if kind == "add":
                v = builder.add(builder.load(ptr), v)
            builder.store(v, ptr)
            return context.get_dummy_value()

        return sig, codegen

    # numba types an intrinsic by its typer's own parameters (no *args): one per shape
    def get_row(typingctx, M, i, f):
        return typed(M, (i, f))

    def get_flat(typingctx, M, f):
        return typed(M, (f,))

    def set_row(typingctx, M, i, f, v):
        return typed(M, (i, f, v))

    def set_flat(typingctx, M, f, v):
        return typed(M, (f, v))

    typer: Callable[..., Any] = (
        (get_row if stride else get_flat) if kind == "get" else (set_row if stride else set_flat)
    )
    typer.__name__ = typer.__qualname__ = name
    return intrinsic(typer)


#: CPU ``c``'s field ``f``: ``cget(M, c, f)``, ``cset(M, c, f, v)``, ``cadd(M, c, f, v)``; likewise
#: queues (``q*``), command processors (``p*``), the globals (``g*``, no row), the run's constants
#: (``kget``), cache lines (``l*``), slot pool rows (``s*``, see :func:`cmdqv_lab.engine.slots.slot_row`),
#: command and op records (``rset``, ``oset``) and FIFO mutexes (``lock_*``: L_HOLDER, L_HEAD, L_TAIL).
cget = _accessor("cget", H_CS, C_NF, "get")
cset = _accessor("cset", H_CS, C_NF, "set")
cadd = _accessor("cadd", H_CS, C_NF, "add")
qget = _accessor("qget", H_QS, Q_NF, "get")
qset = _accessor("qset", H_QS, Q_NF, "set")
qadd = _accessor("qadd", H_QS, Q_NF, "add")
pget = _accessor("pget", H_PS, P_NF, "get")
pset = _accessor("pset", H_PS, P_NF, "set")
padd = _accessor("padd", H_PS, P_NF, "add")
gget = _accessor("gget", H_G, 0, "get")
gset = _accessor("gset", H_G, 0, "set")
gadd = _accessor("gadd", H_G, 0, "add")
kget = _accessor("kget", H_K, 0, "get")
lget = _accessor("lget", H_LS, L_NF, "get")
lset = _accessor("lset", H_LS, L_NF, "set")
sget = _accessor("sget", H_SL, SL_NF, "get")
sset = _accessor("sset", H_SL, SL_NF, "set")
rset = _accessor("rset", H_RC, R_NF, "set")
oset = _accessor("oset", H_RO, O_NF, "set")
lock_get = _accessor("lock_get", H_LOCKS, LOCK_NF, "get")
lock_set = _accessor("lock_set", H_LOCKS, LOCK_NF, "set")


@njit(cache=True, inline="always")
def pq_get(M, p, i):
    """The ``i``-th queue served by processor ``p``."""
    return load(M, hget(M, H_PQ) + p * hget(M, H_PQW) + i)


@njit(cache=True, inline="always")
def fifo_get(M, q, i):
    return load(M, hget(M, H_FIFO) + q * hget(M, H_NCPU) + i % hget(M, H_NCPU))


@njit(cache=True, inline="always")
def fifo_set(M, q, i, v):
    store(M, hget(M, H_FIFO) + q * hget(M, H_NCPU) + i % hget(M, H_NCPU), v)


@njit(cache=True, inline="always")
def ring_op(M, c, ctr, f):
    """Field ``f`` (0 time, 1 steps) of CPU ``c``'s op with ring counter ``ctr``."""
    n = hget(M, H_ROP_N)
    return load(M, hget(M, H_ROP) + (c * n + (ctr & (n - 1))) * 2 + f)


@njit(cache=True, inline="always")
def ring_op_set(M, c, ctr, f, v):
    n = hget(M, H_ROP_N)
    store(M, hget(M, H_ROP) + (c * n + (ctr & (n - 1))) * 2 + f, v)


@njit(cache=True, inline="always")
def ring_b(M, c, ctr, f):
    """Field ``f`` (0 kind, 1 a, 2 b, 3 c) of CPU ``c``'s step with ring counter ``ctr``."""
    n = hget(M, H_RB_N)
    return load(M, hget(M, H_RB) + (c * n + (ctr & (n - 1))) * 4 + f)


@njit(cache=True, inline="always")
def ring_b_set(M, c, ctr, f, v):
    n = hget(M, H_RB_N)
    store(M, hget(M, H_RB) + (c * n + (ctr & (n - 1))) * 4 + f, v)


@njit(cache=True, inline="always")
def ring_c(M, c, ctr, f):
    """Field ``f`` (0 opcode, 1 service ps, 2 flags) of CPU ``c``'s command with ring counter ``ctr``."""
    n = hget(M, H_RCM_N)
    return load(M, hget(M, H_RCM) + (c * n + (ctr & (n - 1))) * 3 + f)


@njit(cache=True, inline="always")
def ring_c_set(M, c, ctr, f, v):
    n = hget(M, H_RCM_N)
    store(M, hget(M, H_RCM) + (c * n + (ctr & (n - 1))) * 3 + f, v)


@njit(cache=True, inline="always")
def lfifo_get(M, lk, i):
    return load(M, hget(M, H_LFIFO) + lk * hget(M, H_NCPU) + i % hget(M, H_NCPU))


@njit(cache=True, inline="always")
def lfifo_set(M, lk, i, v):
    store(M, hget(M, H_LFIFO) + lk * hget(M, H_NCPU) + i % hget(M, H_NCPU), v)


# ----------------------------------------------------------------------------- Python side

#: Sections every run writes before reading them (input rings, records): a reused buffer keeps
#: its old contents there.
_WRITTEN_BEFORE_READ = frozenset({H_ROP, H_RB, H_RCM, H_RC, H_RO})
#: Buffers kept for reuse: at most two, of at most 64 MiB each (larger runs are not dominated by it).
_POOL_MAX_WORDS = 8 << 20
_pool: list[np.ndarray] = []
_pool_lock = threading.Lock()


#: Fresh buffers of at least this many words are mapped without transparent huge pages (:func:`_zeroed`).
_SMALL_PAGES_WORDS = 1 << 19


def _zeroed(words: int) -> np.ndarray:
    """``words`` zeroed int64 words, not yet touched.

    numpy asks the kernel for transparent huge pages for every array of 4 MiB or more, so the first
    write anywhere in a 2 MiB stretch made the kernel zero all of it. An engine run writes a small
    part of each CPU's input rings (64 CPUs x 1,563 ops: about 150 KB of each CPU's 544 KB), so a
    fresh 64-CPU run zeroed most of its 42 MB: ``feed`` took 1.7 ms per CPU on fresh memory, 0.04
    ms on reused memory, and a 64-CPU CLI run spent 0.31-0.33 s in the engine's ``wall_s`` against
    0.255 s without huge pages (measured in one session; 1 and 16 CPUs the same either way). Large
    buffers are therefore an anonymous mapping of ordinary pages (zero-filled by the kernel when
    first touched, page by page), told not to use huge pages where the kernel would anyway.
    """
    if words < _SMALL_PAGES_WORDS:
        return np.zeros(words, dtype=np.int64)
    try:
        mm = mmap.mmap(-1, words * 8)
    except OSError as e:  # ENOMEM: as np.zeros would say it (the CLI reports it as out of memory)
        if e.errno == errno.ENOMEM:
            raise MemoryError(f"cannot map {words * 8:,} bytes for the engine's state") from None
        raise
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        with contextlib.suppress(OSError):  # a kernel without huge pages refuses the advice
            mm.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(mm, dtype=np.int64)


def _storage(a: np.ndarray) -> np.ndarray:
    """The whole array ``a`` is a view of (itself if it owns its memory or maps it)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _pool_take(words: int) -> np.ndarray | None:
    with _pool_lock:
        for i, b in enumerate(_pool):
            if b.size >= words:
                return _pool.pop(i)
    return None


def _pool_give(buf: np.ndarray) -> None:
    """Keep ``buf`` if the pool has room, else in place of a smaller one (runs of a sweep grow)."""
    if buf.size <= _POOL_MAX_WORDS:
        with _pool_lock:
            if len(_pool) < 2:
                _pool.append(buf)
            else:
                i = min(range(len(_pool)), key=lambda k: _pool[k].size)
                if _pool[i].size < buf.size:
                    _pool[i] = buf


@dataclass
class Memory:
    """``M`` and numpy views of its sections (views share ``M``'s storage)."""

    M: np.ndarray
    cs: np.ndarray
    qs: np.ndarray
    ps: np.ndarray
    ls: np.ndarray
    g: np.ndarray
    k: np.ndarray
    tree: np.ndarray
    pq: np.ndarray
    sl: np.ndarray
    rc: np.ndarray
    ro: np.ndarray
    fifo: np.ndarray
    hlat: np.ndarray
    hqw: np.ndarray
    rop: np.ndarray
    rb: np.ndarray
    rcm: np.ndarray
    locks: np.ndarray
    hfix: np.ndarray
    hslw: np.ndarray

    @property
    def poolable(self) -> bool:
        """Whether :meth:`release` would keep ``M``'s storage for reuse."""
        return _storage(self.M).size <= _POOL_MAX_WORDS

    def release(self) -> None:
        """Give ``M``'s storage back for a later :meth:`allocate` with ``pooled`` (every view of this
        object is then invalid: call it only when the run's results have been copied out)."""
        _pool_give(_storage(self.M))

    @classmethod
    def allocate(
        cls,
        *,
        n_cpus: int,
        n_procs: int,
        n_queues: int,
        pq_width: int,
        slots: int,
        record_cap: int,
        ring_ops: int,
        ring_batches: int,
        ring_cmds: int,
        n_locks: int = 0,
        pooled: bool = False,
    ) -> Memory:
        """``M`` and its views; with ``pooled``, ``M`` may be a buffer an earlier run gave back
        (:meth:`release`), cleared where it must be: allocating fresh memory made the kernel fault
        in and zero every page, tens of ms of a short run with many CPUs (a widget's)."""
        leaves = 1
        while leaves < n_procs + n_cpus:
            leaves *= 2
        sizes = [
            (H_CS, n_cpus * C_NF),
            (H_QS, n_queues * Q_NF),
            (H_PS, n_procs * P_NF),
            (H_LS, n_queues * LINES_PER_Q * L_NF),
            (H_G, G_NF),
            (H_K, K_NF),
            (H_TREE, 2 * leaves),
            (H_PQ, n_procs * pq_width),
            (H_SL, slots * SL_NF),
            (H_RC, record_cap * R_NF),
            (H_RO, record_cap * O_NF),
            (H_FIFO, n_queues * n_cpus),
            (H_HLAT, N_BUCKETS),
            (H_HQW, N_BUCKETS),
            (H_ROP, n_cpus * ring_ops * 2),
            (H_RB, n_cpus * ring_batches * 4),
            (H_RCM, n_cpus * ring_cmds * 3),
            (H_LOCKS, max(n_locks, 1) * LOCK_NF),
            (H_LFIFO, max(n_locks, 1) * n_cpus),
            (H_HFIX, N_BUCKETS),
            (H_HSLW, N_BUCKETS),
        ]
        total = H_WORDS + sum(s for _, s in sizes)
        buf = _pool_take(total) if pooled else None
        if buf is None:
            M = _zeroed(total)
        else:  # a used buffer: zero all but the input rings and records (written before they are read)
            M = buf[:total]
            off = H_WORDS
            M[:off] = 0
            for h, s in sizes:
                if h not in _WRITTEN_BEFORE_READ:
                    M[off : off + s] = 0
                off += s
        off = H_WORDS
        views: dict[int, np.ndarray] = {}
        for h, s in sizes:
            M[h] = off
            views[h] = M[off : off + s]
            off += s
        M[H_LEAVES] = leaves
        M[H_PQW] = pq_width
        M[H_RC_CAP] = record_cap
        M[H_RO_CAP] = record_cap
        M[H_ROP_N] = ring_ops
        M[H_RB_N] = ring_batches
        M[H_RCM_N] = ring_cmds
        M[H_NCPU] = n_cpus
        M[H_NPROC] = n_procs
        M[H_NQ] = n_queues
        M[H_NLOCKS] = n_locks
        views[H_TREE][:] = TIME_NEVER
        locks = views[H_LOCKS].reshape(max(n_locks, 1), LOCK_NF)
        locks[:, 0] = -1  # L_HOLDER: free
        return cls(
            M=M,
            cs=views[H_CS].reshape(n_cpus, C_NF),
            qs=views[H_QS].reshape(n_queues, Q_NF),
            ps=views[H_PS].reshape(n_procs, P_NF),
            ls=views[H_LS].reshape(n_queues * LINES_PER_Q, L_NF),
            g=views[H_G],
            k=views[H_K],
            tree=views[H_TREE],
            pq=views[H_PQ].reshape(n_procs, pq_width),
            sl=views[H_SL].reshape(slots, SL_NF),
            rc=views[H_RC].reshape(record_cap, R_NF),
            ro=views[H_RO].reshape(record_cap, O_NF),
            fifo=views[H_FIFO].reshape(n_queues, n_cpus),
            hlat=views[H_HLAT],
            hqw=views[H_HQW],
            rop=views[H_ROP].reshape(n_cpus, ring_ops, 2),
            rb=views[H_RB].reshape(n_cpus, ring_batches, 4),
            rcm=views[H_RCM].reshape(n_cpus, ring_cmds, 3),
            locks=locks,
            hfix=views[H_HFIX],
            hslw=views[H_HSLW],
        )
