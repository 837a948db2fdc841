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
take the ``host`` path. The routing itself is :func:`~cmdqv_lab.driver.route_rows.route_rows`, on
each issuing CPU's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cmdqv_lab.driver.route_rows import (
    GUEST_ACCEPTED,
    GUEST_ACCEPTED_2021,
    PATH_CODES,
    POLICIES,
    SID_OPCODES,
    RoutedRows,
    opcode_class,
    route_rows,
)
from cmdqv_lab.dtypes import Dtypes
from cmdqv_lab.errors import ParamError
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, WORKLOAD_SCHEMA

if TYPE_CHECKING:
    import polars as pl

#: The policy names and opcode sets are defined with the routing itself (:mod:`.route_rows`).
__all__ = [
    "GUEST_ACCEPTED",
    "GUEST_ACCEPTED_2021",
    "POLICIES",
    "ROUTE_COLUMNS",
    "SID_OPCODES",
    "opcode_class",
    "route_columns",
    "route_frame",
]

#: Columns added by :func:`route_frame`.
ROUTE_COLUMNS: Mapping[str, Any] = Dtypes(
    {
        "path": "String",  # vcmdq, trap or host
        "part": "Int32",  # part of its batch (0 unless split)
        "inserted": "Boolean",  # a CMD_SYNC the policy added
        "supported": "Boolean",  # the command is legal on a guest-owned VCMDQ (opcode and SID)
        "illegal": "Boolean",  # routed to a VCMDQ that will raise ILL on it
        "wait": "Boolean",  # per part: the issuer waits for the part's final CMD_SYNC
    }
)


def route_frame(
    df: pl.DataFrame,
    policy: str,
    *,
    accepted: Iterable[int] = GUEST_ACCEPTED,
    sids: Mapping[int, Iterable[int]] | None = None,
) -> pl.DataFrame:
    """Route every batch of ``df`` under ``policy``; returns rows in issue order with routing columns.

    ``sids[vm]`` are the guest SIDs matched by the VM's VINTF SID pairs (default: every SID matches).
    The routing is :func:`route_columns`'s; the rows keep ``df``'s order, an inserted CMD_SYNC
    following the row it is inserted after and copying its ``cpu``, ``vm``, ``op``, ``batch``,
    ``t_ps`` and ``kind``, its fields null.
    """
    import polars as pl

    base = df.select([pl.col(c).cast(t) for c, t in WORKLOAD_SCHEMA.items()])
    r, sync = route_columns(base, policy, accepted=accepted, sids=sids)
    ins = pl.Series(r.inserted)
    names = np.empty(len(PATH_CODES), object)
    names[list(PATH_CODES.values())] = list(PATH_CODES)
    out = base[r.take].with_columns(
        pl.Series("opcode", r.opcode).cast(pl.UInt8),
        pl.Series("sync", sync),
        *[pl.when(ins).then(None).otherwise(pl.col(c)).alias(c) for c in FIELD_COLUMNS],
        pl.Series("path", names[r.path], pl.String),
        pl.Series("part", r.part),
        pl.Series("inserted", r.inserted),
        pl.Series("supported", r.supported),
        pl.Series("illegal", r.illegal),
        pl.Series("wait", r.wait),
    )
    types: dict[str, Any] = {**WORKLOAD_SCHEMA, **ROUTE_COLUMNS}
    return out.select([pl.col(c).cast(types[c]) for c in [*WORKLOAD_SCHEMA, *ROUTE_COLUMNS]])


def route_columns(
    df: pl.DataFrame,
    policy: str,
    *,
    accepted: Iterable[int] = GUEST_ACCEPTED,
    sids: Mapping[int, Iterable[int]] | None = None,
) -> tuple[RoutedRows, np.ndarray]:
    """:func:`route_frame` as numpy columns: the routed rows (``take``: the row of ``df``, an
    inserted CMD_SYNC's the row it follows) and each one's ``sync``.

    Reads ``cpu``, ``vm``, ``batch``, ``sync``, ``opcode`` and ``sid``. Each issuing CPU's (``vm``,
    ``cpu``) rows are routed by :func:`~cmdqv_lab.driver.route_rows.route_rows`, a batch being its
    CPU's rows of one ``batch`` value (a run or not); the rows keep ``df``'s order, an inserted
    CMD_SYNC after the last row of the part it closes (or, ``scan-fanout``, of the batch it
    follows). ``sync`` is ``df``'s, except that ``split`` and ``homogeneous`` set it per part (a
    part ends with a CMD_SYNC unless it is the last part of a batch without one) and that an
    inserted CMD_SYNC has it.
    """
    if policy not in POLICIES:
        raise ParamError(f"policy={policy!r} is not allowed: one of {', '.join(POLICIES)}")
    acc = frozenset(int(a) for a in accepted)
    cols = {c: df[c].cast(WORKLOAD_SCHEMA[c]) for c in ("cpu", "vm", "batch", "sync", "opcode", "sid")}
    nulls = [c for c, v in cols.items() if c != "sid" and v.null_count()]
    if nulls:
        raise ParamError(f"route_frame: null values in {', '.join(nulls)}")
    vm, cpu, batch = cols["vm"].to_numpy(), cols["cpu"].to_numpy(), cols["batch"].to_numpy()
    opcode, sync = cols["opcode"].to_numpy(), cols["sync"].to_numpy()
    sid_values, sid_valid = cols["sid"].fill_null(0).to_numpy(), cols["sid"].is_not_null().to_numpy()
    if df.height == 0:
        return route_rows(opcode, batch, sync, policy, vm=0), sync.copy()
    cpu_key = (vm.astype(np.int64) << 32) | (cpu.astype(np.int64) & 0xFFFFFFFF)
    _, group = np.unique(cpu_key, return_inverse=True)
    pieces = []
    for g in range(int(group.max()) + 1):
        rows = np.flatnonzero(group == g)
        # a batch is its CPU's rows of one value: make each a run, ordered by its last row (the
        # order scan-fanout sees batches in)
        _, b = np.unique(batch[rows], return_inverse=True)
        end = np.zeros(int(b.max()) + 1, np.int64)
        np.maximum.at(end, b, np.arange(rows.size))
        order = np.argsort(end[b], kind="stable")
        rows, run = rows[order], end[b][order]

        def sid(rows: np.ndarray = rows) -> tuple[np.ndarray, np.ndarray]:
            return sid_values[rows], sid_valid[rows]

        r = route_rows(opcode[rows], run, sync[rows], policy, vm=int(vm[rows[0]]), accepted=acc, sids=sids,
                       sid=sid)  # fmt: skip
        out_sync = sync[rows][r.take]
        if policy in ("split", "homogeneous"):  # per part: closed by a CMD_SYNC unless the batch's last
            rr = run[r.take]
            new_batch = np.r_[True, rr[1:] != rr[:-1]]
            last_part = np.maximum.reduceat(r.part, np.flatnonzero(new_batch))[np.cumsum(new_batch) - 1]
            out_sync = (r.part < last_part) | r.wait
        pieces.append((rows[r.take], r.opcode, r.part, r.path, r.wait, r.illegal, r.supported, r.inserted,
                       out_sync | r.inserted))  # fmt: skip
    take, opc, part, path, wait, illegal, supported, inserted, out_sync = map(np.concatenate, zip(*pieces))
    order = np.argsort(take * 2 + inserted, kind="stable")  # df's order, an inserted SYNC after its row
    routed = RoutedRows(take[order], opc[order], part[order], path[order], wait[order], illegal[order],
                        supported[order], inserted[order])  # fmt: skip
    return routed, out_sync[order]
