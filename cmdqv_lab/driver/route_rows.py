"""Routing of one CPU's chunk held as numpy columns: every policy of a guest driver.

The one implementation of routing (:func:`~cmdqv_lab.driver.routing.route_frame` routes a frame by
calling it on each issuing CPU's rows): the rows of one CPU (one ``vm``, one ``cpu``, batches as runs
of equal ``batch`` values), with whole-array operations. A guest's batch goes to its VCMDQ or the
trapped way as a whole (``first-opcode``, ``scan``, ``rely-hw-sync``, ``scan-fanout``, ``all-trap``,
``all-vcmdq``) or is split into runs, each closed by an inserted CMD_SYNC (``split``,
``homogeneous``); ``rely-hw-sync`` drops the CMD_SYNC closing a VCMDQ batch and ``scan-fanout`` adds
a waited CMD_SYNC on the other path the issuer used since its previous waited one. A command is
*supported* when the VCMDQ accepts its opcode (``accepted``) and, for the opcodes of
:data:`SID_OPCODES`, when its SID is one the VM's VINTF SID pairs match
(``sids``). ``tests/test_routing_golden.py`` holds the outputs of the former polars ``route_frame``,
which this reproduces.

>>> from cmdqv_lab.device.commands import Opcode as O
>>> opc = np.array([O.CMD_TLBI_NH_VA, O.CMD_CFGI_CD, O.CMD_SYNC, O.CMD_TLBI_NH_VA, O.CMD_SYNC])
>>> batch = np.array([0, 0, 0, 1, 1])
>>> r = route_rows(opc, batch, opc == O.CMD_SYNC, "scan", vm=0)
>>> r.path.tolist(), r.illegal.tolist()
([2, 2, 2, 1, 1], [False, False, False, False, False])
>>> route_rows(opc, batch, opc == O.CMD_SYNC, "rely-hw-sync", vm=0).take.tolist()
[0, 1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from cmdqv_lab.device.commands import CFGI_OPCODES, TLBI_OPCODES, Opcode
from cmdqv_lab.errors import ParamError

#: The routing policies (described in :mod:`.routing`, which routes frames with them).
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


_CLASS_ID = {int(o): ["tlbi", "cfgi", "atc", "sync", "other"].index(opcode_class(int(o))) for o in Opcode}

#: Policies routed here: all of them.
ROW_POLICIES = POLICIES
#: Path codes of a routed command (``route_frame``'s ``path``: host, vcmdq, trap).
PATH_HOST, PATH_VCMDQ, PATH_TRAP = 0, 1, 2
PATH_CODES = {"host": PATH_HOST, "vcmdq": PATH_VCMDQ, "trap": PATH_TRAP}

_SYNC = int(Opcode.CMD_SYNC)


@dataclass(frozen=True)
class RoutedRows:
    """The routed commands, in issue order (inserted CMD_SYNCs included, dropped ones left out)."""

    take: np.ndarray  # input row of each routed command (an inserted SYNC: the row it follows)
    opcode: np.ndarray  # int64
    part: np.ndarray  # int64: part of its batch (an inserted fan-out SYNC is part 1)
    path: np.ndarray  # int64: PATH_*
    wait: np.ndarray  # the issuer waits for the part's final CMD_SYNC
    illegal: np.ndarray  # routed to a VCMDQ that will raise ILL on it
    supported: np.ndarray  # legal on a guest-owned VCMDQ (opcode and SID; an inserted SYNC: True)
    inserted: np.ndarray  # a CMD_SYNC the policy added


def applies(policy: str, batch: np.ndarray) -> bool:
    """Whether :func:`route_rows` routes these rows: a policy of :data:`ROW_POLICIES` and batches
    that are runs (``batch`` never decreases)."""
    return policy in ROW_POLICIES and bool(batch.size < 2 or (np.diff(batch) >= 0).all())


def _opcode_set(codes: Iterable[int]) -> np.ndarray:
    table = np.zeros(256, bool)
    table[np.fromiter((int(c) for c in codes), np.int64)] = True
    return table


#: Opcodes whose SID a guest VINTF must match, as a lookup table.
_SID_OPCODE = _opcode_set(SID_OPCODES)
#: Each opcode's coarse type (``homogeneous``: :func:`opcode_class`).
_CLASS = np.zeros(256, np.int64)
_CLASS[list(_CLASS_ID)] = list(_CLASS_ID.values())


def route_rows(
    opcode: np.ndarray,
    batch: np.ndarray,
    sync: np.ndarray,
    policy: str,
    *,
    vm: int,
    accepted: Iterable[int] | None = None,
    sids: Mapping[int, Iterable[int]] | None = None,
    sid: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
) -> RoutedRows:
    """Route the rows of one CPU of VM ``vm`` (``vm < 0``: the host, every part takes the ``host``
    path; ``split`` and ``homogeneous`` still split its batches, as they do a guest's) under ``policy``.

    ``batch`` never decreases (:func:`applies`); ``sync[i]``: row ``i``'s batch ends with a CMD_SYNC
    the issuer waits for. ``accepted`` defaults to :data:`~cmdqv_lab.driver.routing.GUEST_ACCEPTED`;
    ``sids[vm]`` are the SIDs the VM's VINTF matches (``None``: every SID); ``sid()`` gives each row's
    SID as ``(values, valid)``, read only if some row has an opcode of ``SID_OPCODES``.
    """
    if policy not in ROW_POLICIES:
        raise ParamError(f"policy={policy!r} is not routed by route_rows: one of {', '.join(ROW_POLICIES)}")
    opc = np.asarray(opcode).astype(np.int64)
    n = opc.size
    sync = np.asarray(sync, bool)
    take = np.arange(n, dtype=np.int64)
    if n == 0:
        none = np.zeros(0, bool)
        return RoutedRows(take, opc, take.copy(), take.copy(), sync.copy(), none, none.copy(), none.copy())
    host = vm < 0
    acc = _opcode_set(GUEST_ACCEPTED if accepted is None else accepted)
    supported = acc[opc]
    if sids is not None:
        needs = _SID_OPCODE[opc]
        if needs.any():
            matched = np.fromiter({int(s) for s in sids.get(vm, ())}, np.int64)
            ok = np.zeros(n, bool)
            if sid is not None and matched.size:
                vals, valid = sid()
                ok = np.asarray(valid, bool) & np.isin(np.asarray(vals).astype(np.int64), matched)
            supported &= ~needs | ok
    last = np.ones(n, bool)
    last[:-1] = batch[1:] != batch[:-1]
    starts = np.flatnonzero(np.r_[True, last[:-1]])
    run = np.cumsum(np.r_[True, last[:-1]]) - 1
    tail = sync & last
    if host:  # the host's batches go to its own queue (a guest VCMDQ's support does not matter)
        to_vcmdq = np.zeros(n, bool)
    elif policy == "first-opcode":  # the patch looked at cmds[0]'s opcode only (a lone SYNC is trapped)
        acc_no_sync = acc.copy()
        acc_no_sync[_SYNC] = False
        to_vcmdq = acc_no_sync[opc[starts]][run]
    elif policy == "all-trap":
        to_vcmdq = np.zeros(n, bool)
    elif policy == "all-vcmdq":
        to_vcmdq = np.ones(n, bool)
    else:  # scan, rely-hw-sync, scan-fanout: the whole batch must be supported (its tail SYNC aside)
        bad = np.add.reduceat((~(supported | tail)).astype(np.int64), starts)
        to_vcmdq = (bad == 0)[run]
    if policy in ("split", "homogeneous"):
        return _split(
            opc, supported, tail, sync, starts, run, last, by_class=policy == "homogeneous", host=host
        )
    path = np.where(host, PATH_HOST, np.where(to_vcmdq, PATH_VCMDQ, PATH_TRAP)).astype(np.int64)
    part = np.zeros(n, np.int64)
    wait = sync.copy()
    if policy == "rely-hw-sync":  # VCMDQ batches drop their SYNC: nobody waits, completion unobservable
        keep = ~(to_vcmdq & tail)
        take, opc, part, path, supported = take[keep], opc[keep], part[keep], path[keep], supported[keep]
        wait = sync[keep] & ~to_vcmdq[keep]
    elif policy == "scan-fanout":
        return _fanout(take, opc, path, wait, supported, tail, starts, last)
    return RoutedRows(take, opc, part, path, wait, (path == PATH_VCMDQ) & ~supported, supported,
                      np.zeros(take.size, bool))  # fmt: skip


def _fanout(
    take: np.ndarray,
    opc: np.ndarray,
    path: np.ndarray,
    wait: np.ndarray,
    supported: np.ndarray,
    tail: np.ndarray,
    starts: np.ndarray,
    last: np.ndarray,
) -> RoutedRows:
    """After each batch closed by a waited CMD_SYNC, a waited CMD_SYNC (part 1) on the other path if
    the issuer used it since its previous waited SYNC (within these rows)."""
    ends = np.flatnonzero(last)
    waited = np.logical_or.reduceat(tail & wait, starts)
    bpath = path[starts]
    seg = np.cumsum(waited) - waited  # batches up to and including the next waited one
    nseg = int(seg[-1]) + 1
    used_v = np.bincount(seg, (bpath == PATH_VCMDQ).astype(np.float64), nseg) > 0
    used_t = np.bincount(seg, (bpath == PATH_TRAP).astype(np.float64), nseg) > 0
    other_used = np.where(bpath == PATH_VCMDQ, used_t[seg], used_v[seg])
    ins = waited & other_used
    illegal = (path == PATH_VCMDQ) & ~supported
    if not ins.any():
        return RoutedRows(take, opc, np.zeros(opc.size, np.int64), path, wait, illegal, supported,
                          np.zeros(opc.size, bool))  # fmt: skip
    extra = np.zeros(opc.size, np.int64)
    extra[ends[ins]] = 1
    out = np.repeat(take, 1 + extra)
    new = np.zeros(out.size, bool)
    new[1:] = out[1:] == out[:-1]
    src = out  # the input rows are take itself (no row was dropped)
    o_opc, o_path, o_wait, o_ill, o_sup = opc[src], path[src], wait[src], illegal[src], supported[src]
    o_opc[new] = _SYNC
    o_sup[new] = True
    o_path[new] = np.where(o_path[new] == PATH_VCMDQ, PATH_TRAP, PATH_VCMDQ)
    o_wait[new] = True
    o_ill[new] = False
    return RoutedRows(out, o_opc, new.astype(np.int64), o_path, o_wait, o_ill, o_sup, new)


def _split(
    opc: np.ndarray,
    supported: np.ndarray,
    tail: np.ndarray,
    sync: np.ndarray,
    starts: np.ndarray,
    run: np.ndarray,
    last: np.ndarray,
    *,
    by_class: bool,
    host: bool,
) -> RoutedRows:
    """Split each batch into runs of supported and unsupported commands (and, ``homogeneous``, of one
    coarse type); a part goes the way of its first command (the batch's closing SYNC joins the run
    before it); every part but a batch's last is closed by an inserted CMD_SYNC, waited on if the
    batch is (the host's parts all take the ``host`` path)."""
    n = opc.size
    first = np.zeros(n, bool)
    first[starts] = True
    sig = supported.astype(np.int64) * 16 + (_CLASS[opc] if by_class else 0)
    t = np.flatnonzero(tail)  # a tail is its batch's last row: it takes the run before it (-1: alone)
    sig[t] = np.where(first[t], -1, sig[np.maximum(t - 1, 0)])
    change = first.copy()
    change[1:] |= sig[1:] != sig[:-1]
    cs = np.cumsum(change)
    part = cs - cs[starts][run]
    part_start = np.flatnonzero(change)
    if host:
        path = np.full(n, PATH_HOST, np.int64)
    else:
        path = np.where(supported | tail, PATH_VCMDQ, PATH_TRAP)[part_start][cs - 1].astype(np.int64)
    last_part = part[last][run]
    wait = np.logical_or.reduceat(sync, starts)[run]
    illegal = (path == PATH_VCMDQ) & ~supported
    part_end = np.r_[change[1:], True]
    extra = (part_end & (part < last_part)).astype(np.int64)
    if not extra.any():
        return RoutedRows(np.arange(n, dtype=np.int64), opc, part, path, wait, illegal, supported,
                          np.zeros(n, bool))  # fmt: skip
    take = np.repeat(np.arange(n, dtype=np.int64), 1 + extra)
    new = np.zeros(take.size, bool)
    new[1:] = take[1:] == take[:-1]
    o_opc, o_ill, o_sup = opc[take], illegal[take], supported[take]
    o_opc[new] = _SYNC
    o_ill[new] = False
    o_sup[new] = True
    return RoutedRows(take, o_opc, part[take], path[take], wait[take], o_ill, o_sup, new)
