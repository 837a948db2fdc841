"""The workload command stream: operations -> batches -> commands, per issuing CPU and VM.

Every workload (synthetic generators, real traces) produces this one form: polars frames with
:data:`WORKLOAD_SCHEMA`, one row per command, in issue order per CPU. An *op* is one driver-level
operation (an unmap, a flush-queue flush, an attach); a *batch* is one driver submission
(``arm_smmu_cmdq_issue_cmdlist``) whose last command is a CMD_SYNC the CPU waits for if ``sync`` is
set. Fields the command does not have are null. ``t_ps`` is per op (repeated on its rows): the think
gap before the op (closed loop) or its absolute arrival time (open loop).

The timing engine consumes it through :func:`cmdqv_lab.driver.route_rows.route_rows` (which queue
each batch goes to; on a :class:`Chunk`'s rows, or each CPU's rows of a frame through
:func:`~cmdqv_lab.driver.routing.route_columns`) and the scenario builders; the correctness checker consumes it through the
functional device model (:func:`encode`).

>>> import polars as pl
>>> df = unmap_frame(cpu=0, vm=-1, n_ops=2, t_ps=1000, tlbis=1, asid=1, base_addr=0x1000)
>>> df.select("op", "batch", "opcode", "sync").to_dicts()[:2]
[{'op': 0, 'batch': 0, 'opcode': 18, 'sync': True}, {'op': 0, 'batch': 0, 'opcode': 70, 'sync': True}]
>>> validate(df).height
4
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from cmdqv_lab.device.commands import LAYOUT, Opcode, encode_batch
from cmdqv_lab.dtypes import Dtypes
from cmdqv_lab.errors import ParamError

if TYPE_CHECKING:
    import polars as pl

#: One row per command.
WORKLOAD_SCHEMA: Mapping[str, Any] = Dtypes(
    {
        "cpu": "Int32",  # issuing CPU (host) or vCPU index within its VM
        "vm": "Int32",  # -1: host; else the VM index
        "op": "Int64",  # op index in this CPU's stream (monotonic)
        "batch": "Int64",  # batch index in this CPU's stream (monotonic)
        "t_ps": "Int64",  # per op: think gap (closed loop) or arrival time (open loop)
        "sync": "Boolean",  # per batch: ends with a CMD_SYNC the issuer waits for
        "kind": "String",  # per op: unmap, flush, attach, detach, atc, pri, mixed, ...
        "opcode": "UInt8",
        "vmid": "Int32",
        "asid": "Int32",
        "sid": "Int64",
        "ssid": "Int32",
        "addr": "UInt64",
        "num": "Int16",
        "scale": "Int16",
        "tg": "Int8",
        "ttl": "Int8",
        "leaf": "Boolean",
        "size": "Int16",  # CMD_ATC_INV SIZE / CMD_PREFETCH SIZE
        "range": "Int16",  # CMD_CFGI_STE_RANGE RANGE
    }
)
FIELD_COLUMNS = ("vmid", "asid", "sid", "ssid", "addr", "num", "scale", "tg", "ttl", "leaf", "size", "range")


def empty() -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(schema=WORKLOAD_SCHEMA)


def validate(df: pl.DataFrame, where: str = "workload") -> pl.DataFrame:
    """Check columns, types and structure; returns ``df`` cast to the schema.

    Structure: within each CPU (a ``(vm, cpu)`` pair: vCPU numbers repeat across VMs), ``op`` and
    ``batch`` never decrease; every batch belongs to one op; a batch with ``sync`` ends with CMD_SYNC;
    ``t_ps`` and ``kind`` are constant within an op.
    """
    import polars as pl

    missing = [c for c in WORKLOAD_SCHEMA if c not in df.columns]
    if missing:
        raise ParamError(f"{where}: missing columns {', '.join(missing)}")
    try:
        df = df.select([pl.col(c).cast(t) for c, t in WORKLOAD_SCHEMA.items()])
    except pl.exceptions.PolarsError as e:
        raise ParamError(
            f"{where}: column types do not fit the workload schema: {str(e).splitlines()[0]}"
        ) from None
    if df.height == 0:
        return df
    bad_op = set(df["opcode"].unique().to_list()) - {int(o) for o in Opcode}
    if bad_op:
        raise ParamError(f"{where}: unknown opcode values {sorted(bad_op)}")
    per_cpu = df.group_by("vm", "cpu", maintain_order=True).agg(
        (pl.col("op").diff().fill_null(0) < 0).any().alias("op_back"),
        (pl.col("batch").diff().fill_null(0) < 0).any().alias("batch_back"),
    )
    if per_cpu["op_back"].any() or per_cpu["batch_back"].any():
        raise ParamError(f"{where}: op and batch indices must not decrease within a CPU")
    per_batch = df.group_by("vm", "cpu", "batch", maintain_order=True).agg(
        pl.col("op").n_unique().alias("ops"),
        pl.col("sync").first(),
        pl.col("sync").n_unique().alias("syncs"),
        pl.col("opcode").last().alias("last"),
    )
    if (per_batch["ops"] > 1).any():
        raise ParamError(f"{where}: a batch spans two ops")
    if (per_batch["syncs"] > 1).any():
        raise ParamError(f"{where}: sync must be constant within a batch")
    bad = per_batch.filter(pl.col("sync") & (pl.col("last") != int(Opcode.CMD_SYNC)))
    if bad.height:
        raise ParamError(
            f"{where}: batch {bad['batch'][0]} of CPU {bad['cpu'][0]} has sync but does not end with CMD_SYNC"
        )
    per_op = df.group_by("vm", "cpu", "op").agg(
        pl.col("t_ps").n_unique().alias("t"), pl.col("kind").n_unique().alias("k")
    )
    if (per_op["t"] > 1).any() or (per_op["k"] > 1).any():
        raise ParamError(f"{where}: t_ps and kind must be constant within an op")
    if (df["t_ps"] < 0).any():
        raise ParamError(f"{where}: t_ps must be >= 0")
    return df


#: Workload column holding a command field, where the names differ (a stage-2 TLBI's IPA is ``addr``).
_SYNC = int(Opcode.CMD_SYNC)
_FIELD_COLUMN = {"ipa": "addr"}


def encode(df: pl.DataFrame) -> np.ndarray:
    """The commands of ``df`` as an ``(n, 2)`` uint64 batch (null fields encode as zero)."""
    import polars as pl

    out = np.zeros((df.height, 2), dtype=np.uint64)
    opc = df["opcode"].to_numpy()
    for op in np.unique(opc):
        sel = opc == op
        code = Opcode(int(op))
        fields: dict[str, Any] = {}
        for f in LAYOUT[code]:
            col = _FIELD_COLUMN.get(f.name, f.name)
            if col in df.columns:
                vals = df[col].filter(pl.Series(sel)).fill_null(0).cast(pl.UInt64).to_numpy()
                fields[f.name] = vals
        out[sel] = (
            encode_batch(code, **fields) if fields else encode_batch(code, **{})[:1].repeat(int(sel.sum()), 0)
        )
    return out


def unmap_frame(
    *,
    cpu: int,
    vm: int,
    n_ops: int,
    t_ps: int | np.ndarray,
    tlbis: int,
    asid: int,
    base_addr: int,
    vmid: int = 0,
    op0: int = 0,
    batch0: int = 0,
    kind: str = "unmap",
) -> pl.DataFrame:
    """``n_ops`` strict unmaps: ``tlbis`` CMD_TLBI_NH_VA (consecutive 4 KiB pages) + CMD_SYNC each."""
    import polars as pl

    per = tlbis + 1
    n = n_ops * per
    op = np.repeat(np.arange(op0, op0 + n_ops, dtype=np.int64), per)
    codes = [int(Opcode.CMD_TLBI_NH_VA)] * tlbis + [int(Opcode.CMD_SYNC)]
    page = np.tile(np.arange(per, dtype=np.uint64), n_ops)
    base = pl.DataFrame(
        {
            "cpu": np.full(n, cpu, np.int32),
            "vm": np.full(n, vm, np.int32),
            "op": op,
            "batch": op - op0 + batch0,
            "t_ps": np.repeat(np.broadcast_to(np.asarray(t_ps, dtype=np.int64), (n_ops,)), per),
            "sync": np.ones(n, bool),
            "kind": np.full(n, kind, dtype=object),
            "opcode": np.tile(np.array(codes, dtype=np.uint8), n_ops),
            "page": page,
        }
    )
    tlbi = pl.col("opcode") == int(Opcode.CMD_TLBI_NH_VA)

    def only_tlbi(value: Any, dtype: Any) -> pl.Expr:
        return pl.when(tlbi).then(value).otherwise(None).cast(dtype)

    return base.select(
        "cpu", "vm", "op", "batch", "t_ps", "sync", "kind", "opcode",
        only_tlbi(pl.lit(vmid), pl.Int32).alias("vmid"),
        only_tlbi(pl.lit(asid), pl.Int32).alias("asid"),
        pl.lit(None, pl.Int64).alias("sid"),
        pl.lit(None, pl.Int32).alias("ssid"),
        only_tlbi(pl.lit(base_addr, pl.UInt64) + pl.col("page") * 4096, pl.UInt64).alias("addr"),
        only_tlbi(pl.lit(0), pl.Int16).alias("num"),
        only_tlbi(pl.lit(0), pl.Int16).alias("scale"),
        only_tlbi(pl.lit(1), pl.Int8).alias("tg"),
        only_tlbi(pl.lit(3), pl.Int8).alias("ttl"),
        only_tlbi(pl.lit(True), pl.Boolean).alias("leaf"),
        pl.lit(None, pl.Int16).alias("size"),
        pl.lit(None, pl.Int16).alias("range"),
    ).cast(WORKLOAD_SCHEMA)  # type: ignore[arg-type]  # fmt: skip


@dataclass(frozen=True, eq=False)
class Period:
    """The rows of one instance of a pattern that a chunk repeats (a generator's op template):
    ``rows`` has local ``op``/``batch`` from 0 and ``n_ops``/``n_batches`` are the instance's op and
    batch counts (an op may have no command). Instance ``i`` of the chunk is ``rows`` with ``op +
    i * n_ops`` and ``batch + i * n_batches``; only the command fields differ between instances."""

    rows: Rows
    n_ops: int
    n_batches: int


@dataclass(frozen=True)
class Rows:
    """Commands of a chunk as numpy columns (the stream form before it becomes a polars frame).

    ``op`` and ``batch`` are local (from 0), ``kind`` indexes ``kinds``, ``fields[name]`` is
    ``(values, valid)`` (invalid entries become nulls); a generator may give a mapping that computes
    them on first access, since only the frame needs them. ``period``: set when the rows are
    repetitions of one :class:`Period` (the compile stage then builds one instance's program and
    tiles it).
    """

    op: np.ndarray
    batch: np.ndarray
    opcode: np.ndarray
    kind: np.ndarray
    kinds: tuple[str, ...]
    fields: Mapping[str, tuple[np.ndarray, np.ndarray]]  # name -> (values, valid)
    period: Period | None = None

    def sync(self) -> np.ndarray:
        """Per row: its batch ends with a CMD_SYNC (a batch is a run of equal ``batch`` values)."""
        n = self.opcode.size
        if n == 0:
            return np.zeros(0, bool)
        last = np.ones(n, bool)
        last[:-1] = self.batch[1:] != self.batch[:-1]
        first = np.ones(n, bool)
        first[1:] = last[:-1]
        run = np.cumsum(first) - 1
        return (self.opcode[last] == _SYNC)[run]

    def frame(self, *, cpu: int, vm: int, op0: int, batch0: int, t_ps: np.ndarray) -> pl.DataFrame:
        """The rows as a :data:`WORKLOAD_SCHEMA` frame; ``t_ps`` has one value per local op."""
        import polars as pl

        n = self.opcode.size
        if n == 0:
            return pl.DataFrame(schema=WORKLOAD_SCHEMA)
        data: dict[str, np.ndarray] = {
            "op": self.op + op0,
            "batch": self.batch + batch0,
            "t_ps": np.asarray(t_ps, np.int64)[self.op],
            "sync": self.sync(),
            "_kind": self.kind,
            "opcode": self.opcode.astype(np.uint8),
        }
        exprs: list[pl.Expr] = [
            pl.lit(cpu, pl.Int32).alias("cpu"),
            pl.lit(vm, pl.Int32).alias("vm"),
            pl.col("op"),
            pl.col("batch"),
            pl.col("t_ps"),
            pl.col("sync"),
            pl.col("_kind")
            .replace_strict(list(range(len(self.kinds))), list(self.kinds), return_dtype=pl.String)
            .alias("kind"),
            pl.col("opcode"),
        ]  # fmt: skip
        for f in FIELD_COLUMNS:
            dtype = WORKLOAD_SCHEMA[f]
            if f not in self.fields:
                exprs.append(pl.lit(None, dtype).alias(f))
                continue
            vals, ok = self.fields[f]
            data[f] = vals
            if ok.all():
                exprs.append(pl.col(f).cast(dtype))
            else:
                data["_ok_" + f] = ok
                exprs.append(pl.when(pl.col("_ok_" + f)).then(pl.col(f).cast(dtype)).alias(f))
        return pl.DataFrame(data).select(exprs)


@dataclass(frozen=True)
class Chunk:
    """A chunk of one CPU's stream held as :class:`Rows` (numpy), turned into a frame on demand.

    Generators yield these so that a consumer needing only the structure (the compile stage of a
    host run) never builds a polars frame; :func:`as_frame` gives the :data:`WORKLOAD_SCHEMA` frame.
    """

    rows: Rows
    cpu: int
    vm: int
    op0: int
    batch0: int
    t_ps: np.ndarray  # per local op

    def frame(self) -> pl.DataFrame:
        return self.rows.frame(cpu=self.cpu, vm=self.vm, op0=self.op0, batch0=self.batch0, t_ps=self.t_ps)

    @property
    def height(self) -> int:
        return int(self.rows.opcode.size)


#: What a workload stream yields: a frame, or rows that become one.
StreamChunk: TypeAlias = "pl.DataFrame | Chunk"


def as_frame(chunk: StreamChunk) -> pl.DataFrame:
    """The chunk as a :data:`WORKLOAD_SCHEMA` frame."""
    return chunk.frame() if isinstance(chunk, Chunk) else chunk


@dataclass(frozen=True)
class Workload:
    """A workload: one chunk iterator per issuing CPU, and how to read ``t_ps``.

    ``chunks`` yield :data:`StreamChunk` values; ``streams`` are the same iterators seen as polars
    frames (the two share their position: use one or the other). ``ops`` (when known) is each
    stream's op count: a closed-loop run measures throughput until the first CPU finishes its own.
    """

    name: str
    cpus: tuple[tuple[int, int], ...]  # (vm, cpu) of each stream, in stream order
    chunks: tuple[Iterator[StreamChunk], ...]
    open_loop: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    ops: tuple[int, ...] | None = None  # ops of each stream, when the generator knows them
    #: each stream's chunks come from that stream's own state alone (its own generators), so the
    #: streams may be read in any order: the engine's input thread then builds them all ahead
    independent: bool = False
    streams: tuple[Iterator[pl.DataFrame], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "streams", tuple(map(as_frame, it) for it in self.chunks))
