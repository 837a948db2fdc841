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
from cmdqv_lab.workloads.stream import StreamChunk, Workload, as_frame
from cmdqv_lab.workloads.synthetic.common import SID_STRIDE, TopologyParams, rng


def inject(w: Workload, *, fraction: float, opcode: int, seed: int, name: str) -> Workload:
    """Insert one ``opcode`` command into a ``fraction`` of each stream's ops.

    Each op draws one double from the stream's own generator (``(name, "inject", vm, cpu)``); a
    chosen op gets the command after its first command (before the SYNC of a SYNC-only op), in the
    same batch, addressed to the stream's VM's first device (SID, SSID 0, LEAF), and its ``kind``
    becomes ``mixed``. A zero fraction returns ``w`` unchanged.
    """
    if fraction <= 0:
        return w
    code = Opcode(opcode)
    sid_base = int(w.params.get("sid_base", TopologyParams().sid_base))

    def one(vm: int, cpu: int, chunks: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
        g = rng(seed, name, "inject", vm, cpu)
        sid = int(sid_of_base(sid_base, vm))
        for ch in chunks:
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
