"""Transformations of a workload's streams (still in the one stream form).

:func:`inject` adds one command to a random fraction of the ops of every stream: the guest
scenarios use it to put a command a guest-owned VCMDQ rejects (CMD_CFGI_CD for one of the VM's
devices) into some unmap batches (Q1, Q6).

>>> from cmdqv_lab.workloads.registry import generate
>>> import polars as pl
>>> w = generate("dma-map", {"vms": 1, "ops": 50, "granule_kib": 8}, seed=1)
>>> w2 = inject(w, fraction=0.5, opcode=0x05, seed=1, name="demo")
>>> df = pl.concat(list(w2.streams[0]))
>>> int((df["opcode"] == 0x05).sum()) == df.filter(pl.col("kind") == "mixed")["op"].n_unique()
True
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, Chunk, Rows, StreamChunk, Workload, as_frame
from cmdqv_lab.workloads.synthetic.common import SID_STRIDE, LazyFields, TopologyParams, rng


def inject(w: Workload, *, fraction: float, opcode: int, seed: int, name: str) -> Workload:
    """Insert one ``opcode`` command into a ``fraction`` of each stream's ops.

    Each op draws one double from the stream's own generator (``(name, "inject", vm, cpu)``); a
    chosen op gets the command after its first command (before the SYNC of a SYNC-only op), in the
    same batch, addressed to the stream's VM's first device (SID, SSID 0, LEAF), and its ``kind``
    becomes ``mixed``. A zero fraction returns ``w`` unchanged. A :class:`Chunk` stays one (its rows
    get the new commands, so the chunk can still be routed without polars); a frame stays a frame.
    """
    if fraction <= 0:
        return w
    code = Opcode(opcode)
    sid_base = int(w.params.get("sid_base", TopologyParams().sid_base))

    def one(vm: int, cpu: int, chunks: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
        g = rng(seed, name, "inject", vm, cpu)
        sid = int(sid_of_base(sid_base, vm))
        for ch in chunks:
            if isinstance(ch, Chunk):
                yield _inject_rows(ch, g, fraction, int(code), sid)
            else:
                yield _inject_frame(as_frame(ch), g, fraction, int(code), sid)

    return Workload(
        name=w.name,
        cpus=w.cpus,
        chunks=tuple(one(vm, cpu, it) for (vm, cpu), it in zip(w.cpus, w.chunks)),
        open_loop=w.open_loop,
        params=w.params,
        ops=w.ops,
        independent=w.independent,  # each CPU's own inject generator
    )


def sid_of_base(sid_base: int, vm: int) -> int:
    """SID of device 0 of ``vm`` (the generators' layout, :mod:`~cmdqv_lab.workloads.synthetic.common`)."""
    return sid_base + (vm + 1) * SID_STRIDE


def _inject_points(
    op: np.ndarray, g: np.random.Generator, fraction: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Which ops get the command and where it goes (None: no op drawn).

    One draw per op, in the order of the ops' first rows; a chosen op gets the new row before the
    row after its first (its first, if it has one row). Returns the rows the new rows go before
    (``np.insert`` positions, ascending, each once) and, per row, whether its op was chosen."""
    n = op.size
    if _runs(op):
        first = np.flatnonzero(np.r_[True, op[1:] != op[:-1]])
        count = np.diff(np.r_[first, n])
        chosen = g.random(first.size) < fraction
        if not chosen.any():
            return None
        in_chosen = np.repeat(chosen, count)
    else:
        values, first, inverse, count = np.unique(
            op, return_index=True, return_inverse=True, return_counts=True
        )
        order = np.argsort(first, kind="stable")  # the ops in the order of their first rows
        first, count = first[order], count[order]
        chosen = np.zeros(values.size, bool)
        chosen[order] = g.random(values.size) < fraction
        if not chosen.any():
            return None
        in_chosen = chosen[inverse]
        chosen = chosen[order]
    # (ops that are not runs may pick the same row: it gets one new row)
    at = np.unique(first[chosen] + np.minimum(1, count[chosen] - 1))
    return at, in_chosen


def _new_fields(opcode: int, sid: int) -> dict[str, tuple[int, bool]]:
    """The inserted command's fields, ``(value, valid)``: the VM's first device (SID), SSID 0 for a
    CFGI, LEAF; the others are not set."""
    cfgi = opcode in (int(Opcode.CMD_CFGI_CD), int(Opcode.CMD_CFGI_STE))
    return {"sid": (sid, True), "ssid": (0, cfgi), "leaf": (1, True)}


def _inject_frame(
    df: pl.DataFrame, g: np.random.Generator, fraction: float, opcode: int, sid: int
) -> pl.DataFrame:
    """:func:`_inject_rows` on a frame (the same draws, rows, fields and kinds)."""
    if df.height == 0:
        return df
    points = _inject_points(df["op"].to_numpy(), g, fraction)
    if points is None:
        return df
    at, in_chosen = points
    src = np.insert(np.arange(df.height), at, at)  # a new row copies the row it goes before (its op)
    is_new = np.zeros(src.size, bool)
    is_new[at + np.arange(at.size)] = True
    new, mixed = pl.Series(is_new), pl.Series(np.insert(in_chosen, at, in_chosen[at]))
    fields = {f: v if ok else None for f, (v, ok) in _new_fields(opcode, sid).items()}
    out = df[src].with_columns(
        pl.when(new).then(pl.lit(opcode)).otherwise(pl.col("opcode")).alias("opcode"),
        pl.when(mixed).then(pl.lit("mixed")).otherwise(pl.col("kind")).alias("kind"),
        *[pl.when(new).then(pl.lit(fields.get(f))).otherwise(pl.col(f)).alias(f) for f in FIELD_COLUMNS],
    )
    return out.cast(df.schema)


def _runs(op: np.ndarray) -> bool:
    """Each op's rows are one run (``op`` never decreases): ops are then counted as runs."""
    return bool(op.size < 2 or (np.diff(op) >= 0).all())


def _inject_rows(ch: Chunk, g: np.random.Generator, fraction: float, opcode: int, sid: int) -> Chunk:
    """Insert the command into a ``fraction`` of the chunk's ops (:func:`_inject_points`), in its
    numpy rows."""
    rows = ch.rows
    n = rows.opcode.size
    if n == 0:
        return ch
    points = _inject_points(rows.op, g, fraction)
    if points is None:
        return ch
    at, in_chosen = points
    kinds = rows.kinds if "mixed" in rows.kinds else (*rows.kinds, "mixed")
    mixed = kinds.index("mixed")
    dtype = rows.kind.dtype if np.iinfo(rows.kind.dtype).max >= mixed else np.int64
    kind = np.where(in_chosen, mixed, rows.kind).astype(dtype)
    new = _new_fields(opcode, sid)
    dtypes = {"sid": np.int64, "ssid": np.int32, "leaf": np.bool_}
    old = rows.fields

    def fields() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for f in FIELD_COLUMNS:
            value, valid = new.get(f, (0, False))
            if f in old:
                vals, ok = old[f]
            elif valid:
                vals, ok = np.zeros(n, dtypes[f]), np.zeros(n, bool)
            else:
                continue
            out[f] = (np.insert(vals, at, value), np.insert(ok, at, valid))
        return out

    return Chunk(
        Rows(
            op=np.insert(rows.op, at, rows.op[at]),
            batch=np.insert(rows.batch, at, rows.batch[at]),
            opcode=np.insert(rows.opcode, at, opcode),
            kind=np.insert(kind, at, kind[at]),
            kinds=kinds,
            fields=LazyFields(fields),
        ),
        ch.cpu,
        ch.vm,
        ch.op0,
        ch.batch0,
        ch.t_ps,
    )
