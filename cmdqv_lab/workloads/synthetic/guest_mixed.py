"""``guest-mixed``: a guest's command stream for comparing routing policies (Q1, Q2, Q4).

``guest-mixed`` is a guest's command stream for comparing routing policies (Q1, Q2, Q4): per vCPU,
strict unmaps of 1 .. ``max_tlbis`` CMD_TLBI_NH_VA closed by a CMD_SYNC;

* ``unsupported_frac`` of them carry one command a guest-owned VCMDQ does not accept (CFGI_CD,
  CFGI_STE, TLBI_NH_VAA or TLBI_NH_ALL) at a random position, the first included (Q1);
* ``atc_frac`` of them add a CMD_ATC_INV for one of the VM's ``devices`` before the SYNC; with the
  default 18 devices and 16 SID pairs, two devices have no pair and their ATC_INVs are illegal on a
  VCMDQ (Q4);
* ``lone_sync_frac`` of the plain-TLBI ones are issued as two batches, the TLBIs without SYNC, then
  a lone CMD_SYNC (the seed thread's Q2 case: Batch A {TLBI_NH_VA x2}, Batch B {CMD_SYNC}).

The registry's ``mixed`` workload issued by one guest is the scenario ``guest-wl-mixed`` with
``as_guest=true`` (it also splits the SYNC off TLBI batches that carry unsupported commands: a Q2
hazard of the per-batch policies ``scan``, ``split`` and ``homogeneous``).

The workload's ``params`` carry ``devices_by_vm`` (each VM's device SIDs: the SIDs a VINTF's pairs
would match, so the checker and the routing agree on which ones fit).

>>> w = guest_mixed_workload(GuestMixedParams(ops=40, vms=1), seed=3)
>>> w.cpus, w.params["devices_by_vm"][0][:3]
(((0, 0), (0, 1)), [8, 16, 24])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.params import Params, param
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA, Workload, validate
from cmdqv_lab.workloads.synthetic.common import guest_sid, quotas

O = Opcode  # noqa: E741
UNSUPPORTED = (O.CMD_CFGI_CD, O.CMD_CFGI_STE, O.CMD_TLBI_NH_VAA, O.CMD_TLBI_NH_ALL)


@dataclass(frozen=True, kw_only=True)
class GuestMixedParams(Params):
    """Parameters of the checker's ``guest-mixed`` scenario (see the module docstring)."""

    vms: int = param(2, unit="VMs", lo=1, hi=63, provenance="choice", doc="guest VMs")
    vcpus: int = param(2, unit="vCPUs", lo=1, hi=256, provenance="choice", doc="vCPUs per VM")
    ops: int = param(4000, unit="ops", lo=1, hi=10**7, provenance="choice", doc="unmaps in total")
    max_tlbis: int = param(
        8, unit="commands", lo=1, hi=62, provenance="choice", doc="TLBIs per unmap: 1 .. max"
    )
    unsupported_frac: float = param(
        0.1, lo=0, hi=1, provenance="choice", doc="unmaps whose batch carries one unsupported command"
    )
    atc_frac: float = param(0.2, lo=0, hi=1, provenance="choice", doc="unmaps adding an ATC_INV")
    lone_sync_frac: float = param(
        0.05, lo=0, hi=1, provenance="choice", doc="plain unmaps issued as {TLBIs}, then {CMD_SYNC}"
    )
    devices: int = param(18, unit="devices", lo=1, hi=4096, provenance="choice", doc="devices per VM")


def _unmaps(p: GuestMixedParams, vm: int, cpu: int, n: int, seed: int) -> pl.DataFrame:
    g = rng_stream(seed, "guest-mixed", vm, cpu)
    k = g.integers(1, p.max_tlbis + 1, n)
    bad = g.random(n) < p.unsupported_frac
    bad_at = (g.random(n) * (k + 1)).astype(np.int64)
    bad_op = g.integers(0, len(UNSUPPORTED), n)
    atc = g.random(n) < p.atc_frac
    lone = (g.random(n) < p.lone_sync_frac) & ~bad & ~atc
    dev = g.integers(0, p.devices, (n, 2))
    cols: dict[str, list[Any]] = {
        c: [] for c in ("op", "batch", "sync", "opcode", "asid", "sid", "addr", "leaf", "ssid")
    }
    batch, page = 0, 0
    for i in range(n):
        cmds: list[tuple[int, int | None, int | None]] = []  # opcode, sid, addr
        for j in range(int(k[i]) + 1):
            if bad[i] and j == bad_at[i]:
                op = UNSUPPORTED[bad_op[i]]
                sid = guest_sid(int(dev[i, 0])) if op in (O.CMD_CFGI_CD, O.CMD_CFGI_STE) else None
                cmds.append((int(op), sid, (page << 12) if op == O.CMD_TLBI_NH_VAA else None))
            if j < k[i]:
                cmds.append((int(O.CMD_TLBI_NH_VA), None, page << 12))
                page += 1
        if atc[i]:
            cmds.append((int(O.CMD_ATC_INV), guest_sid(int(dev[i, 1])), None))
        sync: list[tuple[int, int | None, int | None]] = [(int(O.CMD_SYNC), None, None)]
        parts = [cmds, sync] if lone[i] else [cmds + sync]
        for b, part in enumerate(parts):
            for opcode, sid, addr in part:
                cols["op"].append(i)
                cols["batch"].append(batch)
                cols["sync"].append(b == len(parts) - 1)
                cols["opcode"].append(opcode)
                cols["sid"].append(sid)
                cols["addr"].append(addr)
                tlbi = opcode in (O.CMD_TLBI_NH_VA, O.CMD_TLBI_NH_VAA)
                cols["leaf"].append(True if tlbi else None)
                cols["asid"].append(1 + vm if opcode == O.CMD_TLBI_NH_VA else None)
                cols["ssid"].append(0 if opcode == O.CMD_CFGI_CD else None)
            batch += 1
    m = len(cols["op"])
    df = pl.DataFrame(cols).with_columns(
        pl.lit(cpu).alias("cpu"),
        pl.lit(vm).alias("vm"),
        pl.lit(0).alias("t_ps"),
        pl.lit("mixed").alias("kind"),
        pl.when(pl.col("asid").is_not_null()).then(0).alias("vmid"),
        *[pl.lit(None).alias(c) for c in ("num", "scale", "ttl", "range")],
        pl.when(pl.col("leaf").is_not_null()).then(1).alias("tg"),
        pl.when(pl.col("opcode") == int(O.CMD_ATC_INV)).then(52).alias("size"),
    )
    assert df.height == m
    return df.select([pl.col(c).cast(t) for c, t in WORKLOAD_SCHEMA.items()])


def guest_mixed_workload(p: GuestMixedParams, seed: int) -> Workload:
    """The ``guest-mixed`` streams, one per (VM, vCPU), each one frame."""
    n = p.vms * p.vcpus
    ids = tuple((i // p.vcpus, i % p.vcpus) for i in range(n))
    per = quotas(p.ops, n)
    frames = tuple(
        iter([validate(_unmaps(p, vm, cpu, q, seed), f"guest-mixed vm{vm} cpu{cpu}")])
        for (vm, cpu), q in zip(ids, per)
    )
    devices = {vm: [guest_sid(d) for d in range(p.devices)] for vm in range(p.vms)}
    return Workload("guest-mixed", ids, frames, params={**p.to_dict(), "devices_by_vm": devices},
                    ops=tuple(per))  # fmt: skip
