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
            if isinstance(ch, Chunk) and _runs(ch.rows.op):
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
    )


def sid_of_base(sid_base: int, vm: int) -> int:
    """SID of device 0 of ``vm`` (the generators' layout, :mod:`~cmdqv_lab.workloads.synthetic.common`)."""
    return sid_base + (vm + 1) * SID_STRIDE


def _inject_frame(
    df: pl.DataFrame, g: np.random.Generator, fraction: float, opcode: int, sid: int
) -> pl.DataFrame:
    if df.height == 0:
        return df
    df = df.with_row_index("_i")
    ops = df.group_by("op", maintain_order=True).agg(
        pl.col("_i").first().alias("_first"), pl.len().alias("_n")
    )
    chosen = ops.filter(pl.Series(g.random(ops.height) < fraction))
    if chosen.height == 0:
        return df.drop("_i")
    at = chosen.select("op", (pl.col("_first") + pl.min_horizontal(1, pl.col("_n") - 1)).alias("_i"))
    before = df.join(at.select("_i"), on="_i", how="semi")
    cfgi = (opcode == int(Opcode.CMD_CFGI_CD)) or (opcode == int(Opcode.CMD_CFGI_STE))
    new = before.select(
        "_i", "cpu", "vm", "op", "batch", "t_ps", "sync", "kind",
        pl.lit(opcode, pl.UInt8).alias("opcode"),
        *[pl.lit(None).alias(c) for c in ("vmid", "asid")],
        pl.lit(sid, pl.Int64).alias("sid"),
        pl.lit(0 if cfgi else None, pl.Int32).alias("ssid"),
        *[pl.lit(None).alias(c) for c in ("addr", "num", "scale", "tg", "ttl")],
        pl.lit(True).alias("leaf"),
        *[pl.lit(None).alias(c) for c in ("size", "range")],
    )  # fmt: skip
    out = pl.concat(
        [
            df.with_columns((pl.col("_i") * 2 + 1).alias("_k")),
            new.cast(df.schema).with_columns((pl.col("_i") * 2).alias("_k")),
        ]
    ).sort("_k")
    mixed = pl.col("op").is_in(chosen["op"].implode())
    return out.with_columns(
        pl.when(mixed).then(pl.lit("mixed")).otherwise(pl.col("kind")).alias("kind")
    ).drop("_i", "_k")


def _runs(op: np.ndarray) -> bool:
    """Each op's rows are one run (``op`` never decreases): ops are then counted as runs."""
    return bool(op.size < 2 or (np.diff(op) >= 0).all())


def _inject_rows(ch: Chunk, g: np.random.Generator, fraction: float, opcode: int, sid: int) -> Chunk:
    """:func:`_inject_frame` on a chunk's numpy rows (same draws, same rows, same kinds)."""
    rows = ch.rows
    n = rows.opcode.size
    if n == 0:
        return ch
    first = np.flatnonzero(np.r_[True, rows.op[1:] != rows.op[:-1]])
    count = np.diff(np.r_[first, n])
    chosen = g.random(first.size) < fraction
    if not chosen.any():
        return ch
    at = first[chosen] + np.minimum(1, count[chosen] - 1)  # the new row goes before this one
    kinds = rows.kinds if "mixed" in rows.kinds else (*rows.kinds, "mixed")
    mixed = kinds.index("mixed")
    in_chosen = np.repeat(chosen, count)
    dtype = rows.kind.dtype if np.iinfo(rows.kind.dtype).max >= mixed else np.int64
    kind = np.where(in_chosen, mixed, rows.kind).astype(dtype)
    cfgi = opcode in (int(Opcode.CMD_CFGI_CD), int(Opcode.CMD_CFGI_STE))
    # the new row's fields: (value, valid)
    new: dict[str, tuple[int, bool]] = {"sid": (sid, True), "ssid": (0, cfgi), "leaf": (1, True)}
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
            kind=np.insert(kind, at, mixed),
            kinds=kinds,
            fields=LazyFields(fields),
        ),
        ch.cpu,
        ch.vm,
        ch.op0,
        ch.batch0,
        ch.t_ps,
    )
