"""``mixed``: TLBI batches with commands a guest-owned VCMDQ rejects (Q1) and lone SYNCs (Q2).

Each op is a strict unmap of ``tlbis`` 4 KiB pages by a guest vCPU (closed loop, ``think_ns``) for
one of its VM's devices (drawn per op): one batch of ``tlbis`` CMD_TLBI_NH_VA + CMD_SYNC, then with
``ats`` a batch [CMD_ATC_INV + CMD_SYNC] (Linux's order; ``atc_same_batch`` puts the ATC_INV in the
TLBI batch instead, a mixed but fully supported batch). Into the TLBI batch go commands a guest
VCMDQ does not accept, of the kinds listed in ``unsupported`` (uniformly):

- ``mix_per="command"``: every body command is unsupported with probability ``unsupported_fraction``
  (independently; geometric runs of them precede each TLBI), so that fraction of the body is;
- ``mix_per="batch"``: a batch holds one unsupported command with probability
  ``unsupported_fraction``, at a uniform position (first, between TLBIs, or last before the SYNC).

SID-bearing commands (ATC_INV, CFGI_*, PREFETCH_CONFIG) name the op's device, or with probability
``foreign_sid_fraction`` a SID outside the VM's set (:func:`~.common.vm_sids`; an unassigned SID
of the VM's block), which a VINTF's SID MATCH pairs do not match (ILL). ``ATC_INV_UNMATCHED`` is an
inserted ATC_INV that always names such a SID. With probability ``split_sync_fraction`` an op's
TLBI batch is issued without its SYNC (batch A, ``sync`` false) and the SYNC follows alone
(batch B): the Q2 corner case of the 2021 thread. Ops holding any unsupported command have kind
``mixed``, the others ``unmap``.

>>> from cmdqv_lab.workloads.registry import generate
>>> import polars as pl
>>> w = generate("mixed", {"vms": 1, "threads": 1, "ops": 3, "unsupported_fraction": 0}, seed=0)
>>> df = pl.concat(list(w.streams[0]))
>>> df.filter(pl.col("op") == 0)["opcode"].to_list()
[18, 18, 70, 64, 70]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cmdqv_lab.device.commands import CFGI_RANGE_ALL, Opcode
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import param
from cmdqv_lab.workloads.registry import WorkloadSpec, register
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, Chunk, Workload
from cmdqv_lab.workloads.synthetic.common import (
    SID_STRIDE,
    Rows,
    TopologyParams,
    quotas,
    rng,
    sid_of,
    stream_ids,
    think_ps,
    vmid_of,
)  # fmt: skip
from cmdqv_lab.workloads.synthetic.inval import PAGE, atc_span
from cmdqv_lab.workloads.synthetic.io import IOVA_BASE

#: Inserted kinds: opcode and the fields they carry.
KINDS: dict[str, tuple[Opcode, tuple[str, ...]]] = {
    "CFGI_STE": (Opcode.CMD_CFGI_STE, ("sid", "leaf")),
    "CFGI_ALL": (Opcode.CMD_CFGI_STE_RANGE, ("sid", "range")),
    "CFGI_CD": (Opcode.CMD_CFGI_CD, ("sid", "ssid", "leaf")),
    "CFGI_CD_ALL": (Opcode.CMD_CFGI_CD_ALL, ("sid",)),
    "PREFETCH_CONFIG": (Opcode.CMD_PREFETCH_CONFIG, ("sid",)),
    "TLBI_NH_ALL": (Opcode.CMD_TLBI_NH_ALL, ("vmid",)),
    "TLBI_NH_VAA": (Opcode.CMD_TLBI_NH_VAA, ("vmid", "addr", "num", "scale", "tg", "ttl", "leaf")),
    "TLBI_S12_VMALL": (Opcode.CMD_TLBI_S12_VMALL, ("vmid",)),
    "ATC_INV_UNMATCHED": (Opcode.CMD_ATC_INV, ("sid", "ssid", "addr", "size")),
}
DEFAULT_KINDS = "CFGI_STE,CFGI_CD,CFGI_CD_ALL,PREFETCH_CONFIG,TLBI_NH_ALL,TLBI_S12_VMALL,ATC_INV_UNMATCHED"
#: IOVA buffers per stream.
SLOTS = 256


@dataclass(frozen=True, kw_only=True)
class MixedParams(TopologyParams):
    """Guest unmaps with unsupported commands mixed into their TLBI batches, and split SYNCs."""

    vms: int = param(2, unit="VMs", lo=0, hi=1024, provenance="choice", doc="guests (0: the host issues)")
    threads: int = param(2, unit="vCPUs", lo=1, hi=4096, provenance="choice", doc="issuing vCPUs per VM")
    sids_per_vm: int = param(4, unit="SIDs", lo=1, hi=128, provenance="choice", doc="devices per VM")
    ops: int = param(10_000, unit="ops", lo=1, hi=10**12, provenance="choice", doc="unmaps in total")
    think_ns: float = param(
        1500.0, unit="ns", lo=0, hi=1e9, provenance="assumption", doc="CPU work per unmap"
    )
    tlbis: int = param(
        2, unit="TLBIs", lo=1, hi=512, provenance="choice", doc="TLBI_NH_VA per unmap (4 KiB pages)"
    )
    ats: bool = param(True, provenance="choice", doc="an ATC_INV per unmap for the op's device")
    atc_same_batch: bool = param(
        False, provenance="choice", doc="ATC_INV in the TLBI batch (not Linux's order)"
    )
    unsupported_fraction: float = param(
        0.05,
        lo=0,
        hi=0.9,
        provenance="choice",
        doc="fraction of TLBI-batch commands (or batches) unsupported",
    )
    mix_per: str = param(
        "command", choices=("command", "batch"), provenance="choice", doc="unit of the fraction"
    )
    unsupported: str = param(
        DEFAULT_KINDS, provenance="choice", doc="comma-separated kinds to insert: " + ", ".join(KINDS)
    )
    foreign_sid_fraction: float = param(
        0.02, lo=0, hi=1, provenance="choice", doc="fraction of SID-bearing commands naming an unmatched SID"
    )
    split_sync_fraction: float = param(
        0.05, lo=0, hi=1, provenance="choice", doc="fraction of unmaps issued as {TLBIs} then a lone {SYNC}"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [k for k in self.kinds() if k not in KINDS]
        if bad:
            raise ParamError(
                f"unsupported={self.unsupported!r}: unknown kind {bad[0]!r}, allowed {', '.join(KINDS)}"
            )
        if not self.kinds() and self.unsupported_fraction > 0:
            raise ParamError("unsupported='' needs unsupported_fraction=0")

    def kinds(self) -> list[str]:
        return [k.strip().upper() for k in self.unsupported.split(",") if k.strip()]


# row types: inserted kinds 0..K-1, then these
def _tables(kinds: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    codes = [int(KINDS[k][0]) for k in kinds] + [
        int(Opcode.CMD_TLBI_NH_VA),
        int(Opcode.CMD_SYNC),
        int(Opcode.CMD_ATC_INV),
    ]
    fields = [KINDS[k][1] for k in kinds] + [
        ("vmid", "asid", "addr", "num", "scale", "tg", "ttl", "leaf"), (), ("sid", "ssid", "addr", "size"),
    ]  # fmt: skip
    has = {f: np.array([f in fs for fs in fields]) for f in FIELD_COLUMNS}
    return np.array(codes, np.uint8), has


def mixed_rows(
    p: MixedParams, vm: int, dev: np.ndarray, iova: np.ndarray, draws: dict[str, np.random.Generator],
    u_mix: np.ndarray, u_split: np.ndarray,
) -> Rows:  # fmt: skip
    """Rows of ``len(dev)`` ops (device index and IOVA per op); ``draws["kind"]`` / ``draws["foreign"]``
    give one double per inserted / SID-bearing command, consumed in row order."""
    m = dev.size
    kinds = p.kinds()
    nk = len(kinds)
    tlbi, sync, atc = nk, nk + 1, nk + 2
    t, s = p.tlbis, p.tlbis + 1
    f = p.unsupported_fraction
    e = np.zeros((m, s), np.int64)  # inserted commands before TLBI j (slot t: after the last TLBI)
    if f > 0 and p.mix_per == "command":
        e[:, :t] = np.floor(np.log1p(-u_mix) / np.log(f)).astype(np.int64)
    elif f > 0:
        hit = u_mix[:, 0] < f
        e[np.flatnonzero(hit), np.minimum((u_mix[hit, 1] * s).astype(np.int64), t)] = 1
    split = (u_split < p.split_sync_fraction).astype(np.int64)
    same, sep = p.ats and p.atc_same_batch, p.ats and not p.atc_same_batch
    # body of each op: per slot, its inserted commands then its TLBI
    cnt = e + (np.arange(s) < t)
    flat = cnt.ravel()
    gid = np.repeat(np.arange(m * s), flat)
    slot, b_op = gid % s, gid // s
    is_tlbi = (slot < t) & (np.arange(gid.size) - (np.cumsum(flat) - flat)[gid] == flat[gid] - 1)
    body_n = cnt.sum(1)
    # then the tail: [ATC in batch A], the SYNC (batch B if split), [ATC + SYNC batch]
    tail = ([(atc, "a")] if same else []) + [(sync, "s")] + ([(atc, "c"), (sync, "c")] if sep else [])
    per_op = body_n + len(tail)
    start = np.cumsum(per_op) - per_op
    n = int(per_op.sum())
    rtype, row_op = np.empty(n, np.int64), np.empty(n, np.int64)
    bat, addr_off = np.zeros(n, np.int64), np.zeros(n, np.uint64)
    body_idx = start[b_op] + np.arange(gid.size) - (np.cumsum(body_n) - body_n)[b_op]
    row_op[body_idx] = b_op
    rtype[body_idx] = tlbi
    ins_idx = body_idx[~is_tlbi]
    rtype[ins_idx] = np.minimum((draws["kind"].random(ins_idx.size) * nk).astype(np.int64), nk - 1)
    addr_off[body_idx[is_tlbi]] = (slot[is_tlbi] * PAGE).astype(np.uint64)
    for j, (ty, role) in enumerate(tail):
        idx = start + body_n + j
        rtype[idx], row_op[idx] = ty, np.arange(m)
        bat[idx] = 0 if role == "a" else split + (role == "c")
    nb = 1 + split + int(sep)
    bat += (np.cumsum(nb) - nb)[row_op]
    codes, has = _tables(kinds)
    # SIDs: the op's device, or (foreign) an unassigned SID of the VM's block
    sid = np.asarray(sid_of(p, vm, dev[row_op]), np.int64)
    sid_rows = np.flatnonzero(has["sid"][rtype])
    u = draws["foreign"].random(sid_rows.size)
    g = p.foreign_sid_fraction
    unmatched = nk if "ATC_INV_UNMATCHED" not in kinds else kinds.index("ATC_INV_UNMATCHED")
    foreign = (u < g) | (rtype[sid_rows] == unmatched)
    choices = SID_STRIDE - p.sids_per_vm
    pick = np.minimum((np.where(u < g, u / max(g, 1e-300), u) * choices).astype(np.int64), choices - 1)
    sid[sid_rows] = np.where(foreign, sid_of(p, vm, p.sids_per_vm + pick), sid[sid_rows])
    bad = rtype < nk
    bad[sid_rows[foreign]] = True
    op_bad = np.bincount(row_op[bad], minlength=m) > 0
    z = np.zeros(n, np.int64)
    vals = {
        "vmid": np.full(n, vmid_of(p, vm), np.int64), "asid": (p.asid_base + dev[row_op]).astype(np.int64),
        "sid": sid, "ssid": z, "addr": iova[row_op] + addr_off, "num": z, "scale": z, "tg": z, "ttl": z,
        "leaf": np.ones(n, np.int64), "size": np.full(n, atc_span(t), np.int64),
        "range": np.full(n, CFGI_RANGE_ALL, np.int64),
    }  # fmt: skip
    return Rows(
        op=row_op, batch=bat, opcode=codes[rtype], kind=op_bad.astype(np.int8)[row_op],
        kinds=("unmap", "mixed"), fields={k: (v, has[k][rtype]) for k, v in vals.items()},
    )  # fmt: skip


def _mixed(p: MixedParams, seed: int) -> Workload:
    ids = stream_ids(p)
    stride = PAGE << atc_span(p.tlbis)
    region = 1 << max(32, (SLOTS * stride - 1).bit_length())

    def cpu_stream(vm: int, cpu: int, n: int) -> Iterator[Chunk]:
        g = {
            k: rng(seed, "mixed", k, vm, cpu) for k in ("think", "device", "split", "mix", "kind", "foreign")
        }
        done = batches = 0
        while done < n:
            m = min(p.chunk, n - done)
            t = think_ps(g["think"], m, p.think_ns)
            dev = np.minimum((g["device"].random(m) * p.sids_per_vm).astype(np.int64), p.sids_per_vm - 1)
            u_mix = g["mix"].random((m, p.tlbis) if p.mix_per == "command" else (m, 2))
            u_split = g["split"].random(m)
            iova = (IOVA_BASE + cpu * region + ((done + np.arange(m)) % SLOTS) * stride).astype(np.uint64)
            rows = mixed_rows(p, vm, dev, iova, g, u_mix, u_split)
            yield Chunk(rows, cpu, vm, done, batches, t)
            done += m
            batches += int(rows.batch[-1]) + 1

    return Workload(
        name="mixed",
        cpus=tuple(ids),
        chunks=tuple(cpu_stream(vm, c, q) for (vm, c), q in zip(ids, quotas(p.ops, len(ids)))),
        open_loop=False,
        params=p.to_dict(),
        independent=True,  # each CPU's own generators
    )


register(
    WorkloadSpec(
        "mixed", "Q1/Q2: guest TLBI batches mixed with unsupported commands, lone SYNCs", MixedParams, _mixed
    )
)
