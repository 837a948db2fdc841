"""The parsed form of a real command stream: fixed polars schemas, :class:`Trace` and :class:`TraceMeta`.

A trace is three views of the same commands:

- ``commands``: one row per command the SMMU read, in the order it read them (:data:`COMMAND_SCHEMA`);
- ``doorbells``: one row per consume pass that read at least one command, i.e. one write of
  ``SMMU_CMDQ_PROD`` publishing a range of slots (:data:`DOORBELL_SCHEMA`);
- ``batches``: what each doorbell published, summarised (:data:`BATCH_SCHEMA`). A batch here is
  the published range, which may hold several CPUs' command lists gathered by Linux's lock-free
  owner (domain brief, section 3): the trace cannot see the boundaries inside it.

>>> t = Trace.empty("none.log")
>>> t.commands.schema == pl.Schema(COMMAND_SCHEMA), t.batches.height
(True, 0)
>>> sorted(t.summary())[:4]
['asids', 'batch_sizes', 'commands', 'doorbells']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

__all__ = ["BATCH_SCHEMA", "COMMAND_SCHEMA", "DOORBELL_SCHEMA", "Trace", "TraceMeta", "build_trace"]

#: One row per command QEMU read from the queue (one ``smmuv3_cmdq_opcode`` line), in file order.
#: Field columns are null where the trace does not give them (QEMU prints -1 for "not used").
COMMAND_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),  # 0-based position in the trace
    "line": pl.Int64(),  # 1-based line of the smmuv3_cmdq_opcode event
    "time_s": pl.Float64(),  # seconds since the first timestamped line (null without -msg timestamp=on)
    "time_us": pl.Int64(),  # host wall clock, microseconds since the epoch (null without timestamps)
    "pid": pl.Int64(),  # QEMU thread that ran the pass (a vCPU thread under MTTCG); null without prefix
    "doorbell": pl.Int64(),  # the doorbell (consume pass) that read it
    "index": pl.Int64(),  # position within its doorbell, 0-based
    "cons": pl.Int64(),  # queue index of its slot (CONS index bits, without the wrap bit)
    "cons_wrap": pl.Int64(),  # CONS wrap bit at that slot
    "opcode": pl.String(),  # spec name: CMD_TLBI_NH_VA, CMD_SYNC, ... (QEMU's UNKNOWN / INVALID kept)
    "opcode_value": pl.Int64(),  # dword0[7:0]; null for UNKNOWN / INVALID
    "vmid": pl.Int64(),
    "asid": pl.Int64(),
    "sid": pl.Int64(),  # StreamID (CFGI_STE, CFGI_CD, CFGI_CD_ALL) or first SID of a CFGI_STE_RANGE
    "sid_end": pl.Int64(),  # last SID of a CFGI_STE_RANGE (inclusive); null otherwise
    "addr": pl.UInt64(),  # first address of a range invalidation (TLBI_NH_VA/VAA, TLBI_S2_IPA)
    "num_pages": pl.UInt64(),  # pages invalidated: sum over QEMU's power-of-two splits
    "tg": pl.Int64(),  # TG field (0: single page, no range; 1: 4 KiB, 2: 16 KiB, 3: 64 KiB granule)
    "ttl": pl.Int64(),
    "leaf": pl.Boolean(),
    "stage": pl.Int64(),  # 1 or 2 (QEMU 10 range invalidations); null on QEMU 7/8
    "n_ranges": pl.Int64(),  # range-invalidation events QEMU split the command into (0: none)
    "error": pl.String(),  # CMDQ error it raised: ILL, ABT, ATC_INV_SYNC; null if none
}

#: One row per consume pass that read at least one command: a PROD write publishing a range.
DOORBELL_SCHEMA: dict[str, pl.DataType] = {
    "doorbell": pl.Int64(),  # 0-based id
    "line": pl.Int64(),  # first smmuv3_cmdq_consume line of the pass
    "line_end": pl.Int64(),  # its smmuv3_cmdq_consume_out line (null: the trace ended inside; lenient)
    "time_s": pl.Float64(),  # first consume line, seconds since the first timestamped line
    "time_end_s": pl.Float64(),  # consume_out line
    "time_us": pl.Int64(),  # first consume line, epoch microseconds
    "pid": pl.Int64(),  # thread that wrote PROD (ran the pass)
    "prod_before": pl.Int64(),  # PROD at the end of the previous pass (null for the first)
    "prod_before_wrap": pl.Int64(),
    "prod": pl.Int64(),  # PROD this doorbell wrote (constant during the pass)
    "prod_wrap": pl.Int64(),
    "cons_before": pl.Int64(),  # CONS when the pass started
    "cons_before_wrap": pl.Int64(),
    "cons_after": pl.Int64(),  # CONS when it ended (= prod unless an error stopped it)
    "cons_after_wrap": pl.Int64(),
    "n_commands": pl.Int64(),
    "first_seq": pl.Int64(),  # its commands are seq first_seq .. first_seq + n_commands - 1
    "error": pl.String(),  # error that stopped the pass; null if it consumed up to PROD
    "resumed": pl.Boolean(),  # the previous pass stopped on an error: this one resumes (GERRORN write)
}

#: One row per doorbell: the batch of commands it published (derived from ``commands``).
BATCH_SCHEMA: dict[str, pl.DataType] = {
    "batch": pl.Int64(),  # = doorbell id
    "size": pl.Int64(),
    "first_opcode": pl.String(),
    "last_opcode": pl.String(),
    "n_sync": pl.Int64(),
    "n_tlbi": pl.Int64(),
    "n_cfgi": pl.Int64(),
    "n_other": pl.Int64(),
    "ends_with_sync": pl.Boolean(),
    "mixed": pl.Boolean(),  # more than one distinct non-SYNC opcode
    "time_s": pl.Float64(),
    "pid": pl.Int64(),
}


@dataclass(frozen=True)
class TraceMeta:
    """What a parse saw besides the commands: the file, skipped and malformed lines, timing.

    ``format`` is ``"qemu-7/8"`` (``smmuv3_s1_range_inval``, argument-less ``smmuv3_cmdq_tlbi_nh``),
    ``"qemu-10"`` (``smmuv3_range_inval ... stage=``, ``smmuv3_cmdq_tlbi_nsnh``, ...), ``"mixed"``, or
    ``"unknown"`` when no version-specific event occurred. Timestamps are host wall-clock time of
    an emulator: order and batching are real, gaps are not hardware timing.
    """

    source: str
    lenient: bool = False
    n_lines: int = 0
    n_events: int = 0  # lines handled as SMMUv3 command-queue events
    skipped: dict[str, int] = field(default_factory=dict)  # other events and text lines, by name
    malformed: dict[str, int] = field(default_factory=dict)  # lenient: bad lines skipped, by kind
    format: str = "unknown"
    has_timestamps: bool = False
    t0_us: int | None = None  # epoch microseconds of the first timestamped event line (any event)
    duration_s: float | None = None  # first to last timestamped event line
    passes: int = 0  # consume passes that printed at least one smmuv3_cmdq_consume
    empty_passes: int = 0  # smmuv3_cmdq_consume_out alone: nothing to consume (e.g. CR0 writes)
    stalled_passes: int = 0  # passes that read no command (an error pending, or a fetch abort)
    unterminated_passes: int = 0  # lenient: passes whose smmuv3_cmdq_consume_out is missing
    queue_log2size: int | None = None  # inferred from a CONS wrap, if one occurred
    gzip: bool = False


@dataclass(frozen=True)
class Trace:
    """A parsed trace: ``commands`` and ``doorbells`` frames (fixed schemas) and :class:`TraceMeta`."""

    commands: pl.DataFrame
    doorbells: pl.DataFrame
    meta: TraceMeta

    @classmethod
    def empty(cls, source: str) -> Trace:
        return cls(
            pl.DataFrame(schema=COMMAND_SCHEMA), pl.DataFrame(schema=DOORBELL_SCHEMA), TraceMeta(source)
        )

    @property
    def batches(self) -> pl.DataFrame:
        """The batch each doorbell published, one row per doorbell (:data:`BATCH_SCHEMA`)."""
        op = pl.col("opcode")
        out = (
            self.commands.filter(pl.col("doorbell").is_not_null())
            .group_by("doorbell", maintain_order=True)
            .agg(
                pl.len().alias("size"),
                op.first().alias("first_opcode"),
                op.last().alias("last_opcode"),
                (op == "CMD_SYNC").sum().alias("n_sync"),
                op.str.starts_with("CMD_TLBI_").sum().alias("n_tlbi"),
                op.str.starts_with("CMD_CFGI_").sum().alias("n_cfgi"),
                op.filter(op != "CMD_SYNC").n_unique().alias("kinds"),
                pl.col("time_s").first(),
                pl.col("pid").first(),
            )
            .with_columns(
                (pl.col("size") - pl.col("n_sync") - pl.col("n_tlbi") - pl.col("n_cfgi")).alias("n_other"),
                (pl.col("last_opcode") == "CMD_SYNC").alias("ends_with_sync"),
                (pl.col("kinds") > 1).alias("mixed"),
            )
            .rename({"doorbell": "batch"})
        )
        return out.select([pl.col(k).cast(v) for k, v in BATCH_SCHEMA.items()])

    def summary(self) -> dict[str, Any]:
        """The counts a reader checks first (plain Python values, JSON-serialisable).

        Keys: file, format, lines, commands, opcodes (count per spec name, most frequent first),
        doorbells, batch_sizes (histogram: size -> doorbells), mean_batch, asids, vmids, sids
        (distinct exact StreamIDs; CFGI_STE_RANGE ranges are not listed), threads, errors,
        duration_s, passes, empty_passes, stalled_passes, queue_log2size, skipped, malformed.
        """
        c, d, m = self.commands, self.doorbells, self.meta
        opcodes = c.group_by("opcode").len().sort(["len", "opcode"], descending=[True, False])
        sizes = d.group_by("n_commands").len().sort("n_commands")
        exact = c.filter(pl.col("sid").is_not_null() & pl.col("sid_end").is_null())
        errors = c.filter(pl.col("error").is_not_null()).group_by("error").len().sort("error")
        return {
            "file": m.source,
            "format": m.format,
            "lines": m.n_lines,
            "commands": c.height,
            "opcodes": {str(k): int(v) for k, v in opcodes.iter_rows()},
            "doorbells": d.height,
            "batch_sizes": {int(k): int(v) for k, v in sizes.iter_rows()},
            "mean_batch": round(c.height / d.height, 4) if d.height else None,
            "asids": sorted(c["asid"].drop_nulls().unique().to_list()),
            "vmids": sorted(c["vmid"].drop_nulls().unique().to_list()),
            "sids": sorted(exact["sid"].unique().to_list()),
            "threads": c["pid"].drop_nulls().n_unique(),
            "errors": {str(k): int(v) for k, v in errors.iter_rows()},
            "duration_s": m.duration_s,
            "passes": m.passes,
            "empty_passes": m.empty_passes,
            "stalled_passes": m.stalled_passes,
            "queue_log2size": m.queue_log2size,
            "skipped": dict(sorted(m.skipped.items())),
            "malformed": dict(sorted(m.malformed.items())),
        }


#: Tuple layouts a parser hands to :func:`build_trace`.
ROW_FIELDS = ("line", "time_us", "pid", "index", "cons", "cons_wrap", "opcode", "opcode_value")
DETAIL_FIELDS = (
    "vmid",
    "asid",
    "sid",
    "sid_end",
    "addr",
    "num_pages",
    "tg",
    "ttl",
    "leaf",
    "stage",
    "n_ranges",
)
DOORBELL_ROW_FIELDS = (
    *("doorbell", "line", "line_end", "time_us", "time_end_us", "pid", "prod_before", "prod_before_wrap"),
    *("prod", "prod_wrap", "cons_before", "cons_before_wrap", "cons_after", "cons_after_wrap"),
    *("n_commands", "first_seq", "error", "resumed"),
)


def _frame(
    rows: list[tuple[Any, ...]], names: tuple[str, ...], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    cols: dict[str, Any] = dict(zip(names, zip(*rows))) if rows else {k: [] for k in names}
    return pl.DataFrame(cols, schema={k: schema.get(k, pl.Int64()) for k in names})


def build_trace(
    rows: list[tuple[Any, ...]],
    details: dict[int, list[Any]],
    errors: dict[int, str],
    doorbells: list[tuple[Any, ...]],
    meta: TraceMeta,
) -> Trace:
    """Assemble the frames from a parser's tuples (``ROW_FIELDS``, ``DETAIL_FIELDS`` per command row
    number, error per row, ``DOORBELL_ROW_FIELDS``); times become seconds since ``meta.t0_us``."""
    t0 = meta.t0_us or 0
    d = _frame(doorbells, DOORBELL_ROW_FIELDS, DOORBELL_SCHEMA).with_columns(
        ((pl.col("time_us") - t0) / 1e6).alias("time_s"),
        ((pl.col("time_end_us") - t0) / 1e6).alias("time_end_s"),
    )
    counts = d["n_commands"].to_numpy()
    det = _frame([(r, *v) for r, v in details.items()], ("seq", *DETAIL_FIELDS), COMMAND_SCHEMA)
    err = _frame(list(errors.items()), ("seq", "error"), COMMAND_SCHEMA)
    c = (
        _frame(rows, ROW_FIELDS, COMMAND_SCHEMA)
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("seq"),
            ((pl.col("time_us") - t0) / 1e6).alias("time_s"),
            pl.Series("doorbell", np.repeat(np.arange(len(counts), dtype=np.int64), counts)),
        )
        .join(det, on="seq", how="left")
        .join(err, on="seq", how="left")
        .with_columns(pl.col("n_ranges").fill_null(0))
    )
    return Trace(c.select(list(COMMAND_SCHEMA)), d.select(list(DOORBELL_SCHEMA)), meta)
