"""Routing policies: which queue each batch of a guest's command stream goes to (Q1-Q3).

A guest-owned VCMDQ accepts only some opcodes (default TLBI_NH_ASID, TLBI_NH_VA, ATC_INV and
CMD_SYNC) and only commands whose SID matches one of its VINTF's SID pairs; anything else raises ILL.
Commands the VCMDQ cannot take must go the trapped way (the emulated vSMMU, then the host). Policies:

``first-opcode``  the 2021 patch: ``cmds[0]`` decides for the whole batch; a lone CMD_SYNC (n = 0)
                  is looked up as CMD_SYNC, which the patch's switch did not list, so it is trapped
                  while a SYNC closing a TLBI batch stays on the VCMDQ (Robin Murphy's observation).
``scan``          the whole batch is checked; anything unsupported sends the whole batch the trapped way.
``split``         the batch is split at support boundaries; each part is closed by a CMD_SYNC.
``homogeneous``   the driver only builds single-type batches: split at every opcode-type change
                  (and support change), each part closed by a CMD_SYNC.
``rely-hw-sync``  as ``scan``, but VCMDQ parts drop their CMD_SYNC and rely on hardware-inserted SYNCs
                  (Q3: software cannot observe those).
``scan-fanout``   as ``scan``, and a CMD_SYNC the issuer waits on is also issued (and waited on) on every
                  other queue the issuer used since its previous one: a SYNC covers only its own queue
                  (Q2), so a batch issued without SYNC on one queue is completed by the SYNC that follows.
``all-trap``      everything trapped (the trap-and-emulate vSMMU).
``all-vcmdq``     everything to the VCMDQ, supported or not (the error-fix-up design, Q6).

:func:`route_frame` adds to a workload frame (:mod:`cmdqv_lab.workloads.stream`) the columns of
:data:`ROUTE_COLUMNS`; inserted SYNC rows have ``inserted`` set. Host rows (``vm == -1``) always
take the ``host`` path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from cmdqv_lab.device.commands import CFGI_OPCODES, TLBI_OPCODES, Opcode
from cmdqv_lab.errors import ParamError
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA

POLICIES = (
    "first-opcode",
    "scan",
    "split",
    "homogeneous",
    "rely-hw-sync",
    "all-trap",
    "all-vcmdq",
    "scan-fanout",
)
#: Current Linux guest-owned VCMDQ opcodes.
GUEST_ACCEPTED = frozenset(
    {Opcode.CMD_TLBI_NH_ASID, Opcode.CMD_TLBI_NH_VA, Opcode.CMD_ATC_INV, Opcode.CMD_SYNC}
)
#: The 2021 v3 patch's list (plus CMD_SYNC, which the hardware accepts).
GUEST_ACCEPTED_2021 = GUEST_ACCEPTED | {Opcode.CMD_TLBI_S12_VMALL, Opcode.CMD_TLBI_S2_IPA}
#: Opcodes whose SID a guest VINTF must match (else ILL).
SID_OPCODES = frozenset(
    {Opcode.CMD_ATC_INV, Opcode.CMD_PREFETCH_CONFIG, Opcode.CMD_PREFETCH_ADDR, Opcode.CMD_PRI_RESP,
     Opcode.CMD_RESUME, Opcode.CMD_STALL_TERM} | CFGI_OPCODES
)  # fmt: skip

#: Columns added by :func:`route_frame`.
ROUTE_COLUMNS = {
    "path": pl.String,  # vcmdq, trap or host
    "part": pl.Int32,  # part of its batch (0 unless split)
    "inserted": pl.Boolean,  # a CMD_SYNC the policy added
    "supported": pl.Boolean,  # the command is legal on a guest-owned VCMDQ (opcode and SID)
    "illegal": pl.Boolean,  # routed to a VCMDQ that will raise ILL on it
    "wait": pl.Boolean,  # per part: the issuer waits for the part's final CMD_SYNC
}

_SYNC = int(Opcode.CMD_SYNC)


def opcode_class(op: int) -> str:
    """Coarse command type used by the ``homogeneous`` policy."""
    o = Opcode(op)
    if o in TLBI_OPCODES:
        return "tlbi"
    if o in CFGI_OPCODES:
        return "cfgi"
    if o == Opcode.CMD_ATC_INV:
        return "atc"
    if o == Opcode.CMD_SYNC:
        return "sync"
    return "other"


_CLASS = {int(o): i for i, o in enumerate(Opcode)}
_CLASS_ID = {int(o): ["tlbi", "cfgi", "atc", "sync", "other"].index(opcode_class(int(o))) for o in Opcode}


def route_frame(
    df: pl.DataFrame,
    policy: str,
    *,
    accepted: Iterable[int] = GUEST_ACCEPTED,
    sids: Mapping[int, Iterable[int]] | None = None,
) -> pl.DataFrame:
    """Route every batch of ``df`` under ``policy``; returns rows in issue order with routing columns.

    ``sids[vm]`` are the guest SIDs matched by the VM's VINTF SID pairs (default: every SID matches).
    """
    if policy not in POLICIES:
        raise ParamError(f"policy={policy!r} is not allowed: one of {', '.join(POLICIES)}")
    acc = sorted({int(a) for a in accepted})
    acc_no_sync = [a for a in acc if a != _SYNC]
    sid_opcodes = [int(o) for o in SID_OPCODES]
    df = df.with_row_index("_row")
    if sids is not None:
        pairs = pl.DataFrame(
            sorted({(vm, int(s)) for vm, ss in sids.items() for s in ss}),  # a SID listed twice matches once
            schema={"vm": pl.Int32, "sid": pl.Int64},
            orient="row",
        ).with_columns(pl.lit(True).alias("_sid_ok"))
        df = df.join(pairs, on=["vm", "sid"], how="left").with_columns(pl.col("_sid_ok").fill_null(False))
        df = df.sort("_row")
    else:
        df = df.with_columns(pl.lit(True).alias("_sid_ok"))
    sid_ok = ~pl.col("opcode").is_in(sid_opcodes) | pl.col("_sid_ok")
    host = pl.col("vm") < 0
    key = ["cpu", "vm", "batch"]
    df = df.with_columns(
        (pl.col("opcode").is_in(acc) & sid_ok).alias("supported"),
        (pl.col("sync") & (pl.int_range(pl.len()).over(key) == pl.len().over(key) - 1)).alias("_tail"),
    )
    body_ok = (pl.col("supported") | pl.col("_tail")).all().over(key)
    first_ok = pl.col("opcode").is_in(acc_no_sync).first().over(key)  # the patch looked at the opcode only
    if policy in ("first-opcode",):
        to_vcmdq = first_ok
    elif policy in ("scan", "rely-hw-sync", "scan-fanout"):
        to_vcmdq = body_ok
    elif policy == "all-trap":
        to_vcmdq = pl.lit(False)
    elif policy == "all-vcmdq":
        to_vcmdq = pl.lit(True)
    else:
        to_vcmdq = pl.col("supported")  # per run, below
    df = df.with_columns(
        pl.when(host)
        .then(pl.lit("host"))
        .when(to_vcmdq)
        .then(pl.lit("vcmdq"))
        .otherwise(pl.lit("trap"))
        .alias("path")
    )
    if policy in ("split", "homogeneous"):
        df = _split(df, key, by_class=policy == "homogeneous")
    else:
        df = df.with_columns(
            pl.lit(0, pl.Int32).alias("part"), pl.lit(False).alias("inserted"), pl.col("sync").alias("wait")
        )
    if policy == "rely-hw-sync":  # VCMDQ parts drop their SYNC: nobody waits, completion unobservable
        drop = (pl.col("path") == "vcmdq") & pl.col("_tail")
        df = df.filter(~drop).with_columns(
            pl.when(pl.col("path") == "vcmdq").then(False).otherwise(pl.col("wait")).alias("wait")
        )
    if policy == "scan-fanout":
        df = _fanout(df)
    df = df.with_columns(((pl.col("path") == "vcmdq") & ~pl.col("supported")).alias("illegal"))
    cols = list(WORKLOAD_SCHEMA) + list(ROUTE_COLUMNS)
    types: dict[str, Any] = {**WORKLOAD_SCHEMA, **ROUTE_COLUMNS}
    return df.select([pl.col(c).cast(types[c]) for c in cols])


def _split(df: pl.DataFrame, key: list[str], by_class: bool) -> pl.DataFrame:
    """Split batches into runs (by support, and by type for ``homogeneous``); close runs with SYNCs."""
    cls = pl.col("opcode").replace_strict(_CLASS_ID, return_dtype=pl.Int8)
    # the trailing SYNC joins the run before it; a body SYNC (rare) forms runs like any command
    sig = (
        pl.when(pl.col("_tail"))
        .then(None)
        .otherwise(pl.col("supported").cast(pl.Int8) * 16 + (cls if by_class else pl.lit(0, pl.Int8)))
    )
    df = df.with_columns(sig.forward_fill().over(key).fill_null(-1).alias("_sig"))
    df = df.with_columns(
        (pl.col("_sig") != pl.col("_sig").shift(1).over(key))
        .fill_null(True)
        .cum_sum()
        .over(key)
        .cast(pl.Int32)
        .sub(1)
        .alias("part")
    )
    df = df.with_columns(
        pl.when(pl.col("vm") < 0)
        .then(pl.lit("host"))
        .when(pl.col("supported") | pl.col("_tail"))
        .then(pl.lit("vcmdq"))
        .otherwise(pl.lit("trap"))
        .alias("path"),
    )
    # a part's path is that of its first command (the tail SYNC follows its run)
    df = df.with_columns(pl.col("path").first().over([*key, "part"]).alias("path"))
    # every part followed by another part of its batch is closed by an inserted CMD_SYNC; the last
    # part keeps the batch's own trailing SYNC (if the batch had one)
    df = df.with_columns(
        pl.col("part").max().over(key).alias("_last"), pl.col("sync").any().over(key).alias("wait")
    )
    needs = (
        df.group_by([*key, "part"], maintain_order=True)
        .agg(
            pl.col("_row").max().alias("_after"),
            pl.all().exclude("_row", "_tail").last(),
        )
        .filter(pl.col("part") < pl.col("_last"))
    )
    ins = needs.with_columns(
        pl.col("_after").alias("_row"),
        pl.lit(_SYNC, pl.UInt8).alias("opcode"),
        pl.lit(True).alias("supported"),
        pl.lit(True).alias("_tail"),
        pl.lit(True).alias("inserted"),
        *[
            pl.lit(None, WORKLOAD_SCHEMA[c]).alias(c)
            for c in (
                "vmid",
                "asid",
                "sid",
                "ssid",
                "addr",
                "num",
                "scale",
                "tg",
                "ttl",
                "leaf",
                "size",
                "range",
            )
        ],
    ).drop("_after")
    df = df.with_columns(pl.lit(False).alias("inserted"))
    ins = ins.select(df.columns)
    out = pl.concat(
        [
            df.with_columns(pl.lit(0, pl.Int8).alias("_ord")),
            ins.with_columns(pl.lit(1, pl.Int8).alias("_ord")),
        ]
    )
    out = out.sort("_row", "_ord").drop("_ord")
    # per part: it ends with a CMD_SYNC unless it is the last part of a batch without one
    return out.with_columns((pl.col("part") < pl.col("_last")).or_(pl.col("wait")).alias("sync")).drop(
        "_last"
    )


def _fanout(df: pl.DataFrame) -> pl.DataFrame:
    """After each part that ends with a waited CMD_SYNC, insert a waited CMD_SYNC (one part each) on
    every other path the issuer used since its previous waited SYNC."""
    parts = (
        df.group_by(["vm", "cpu", "batch", "part"], maintain_order=True)
        .agg(
            pl.col("_row").max().alias("_after"),
            (pl.col("_tail") & pl.col("wait")).any().alias("_waited"),
            pl.all().exclude("_row", "_tail", "vm", "cpu", "batch", "part").last(),
        )
        .sort("_after")
    )
    extra: list[dict[str, object]] = []
    dirty: dict[tuple[int, int], set[str]] = {}
    for r in parts.iter_rows(named=True):
        used = dirty.setdefault((r["vm"], r["cpu"]), set())
        used.add(r["path"])
        if r["_waited"]:
            for i, other in enumerate(sorted(used - {r["path"]})):
                extra.append({**r, "path": other, "part": r["part"] + 1 + i})
            used.clear()
    if not extra:
        return df
    ins = pl.DataFrame(extra).with_columns(
        pl.col("_after").alias("_row"),
        pl.lit(_SYNC, pl.UInt8).alias("opcode"),
        pl.lit(True).alias("supported"),
        pl.lit(True).alias("_tail"),
        pl.lit(True).alias("inserted"),
        pl.lit(True).alias("sync"),
        pl.lit(True).alias("wait"),
        *[pl.lit(None, WORKLOAD_SCHEMA[c]).alias(c) for c in ("vmid", "asid", "sid", "ssid", "addr", "num", "scale",
                                                               "tg", "ttl", "leaf", "size", "range")],
    )  # fmt: skip
    ins = ins.select([pl.col(c).cast(df.schema[c]) for c in df.columns])
    out = pl.concat(
        [
            df.with_columns(pl.lit(0, pl.Int8).alias("_ord")),
            ins.with_columns(pl.lit(1, pl.Int8).alias("_ord")),
        ]
    )
    return out.sort("_row", "_ord", maintain_order=True).drop("_ord")
