"""Deterministic routing cases and their golden outputs (``tests/data/routing_golden.parquet``).

:func:`cases` builds frames from a seeded numpy generator (no Hypothesis): every policy; accepted
sets (the guest's, 2021's, random); ``sids`` None, matching, not matching, empty, a SID listed
twice; SIDs null or set; SYNC-only batches and batches without SYNC; ops without commands; host
rows; several CPUs (and VMs) in one frame, their rows interleaved; batches that are not runs within
their CPU; empty frames. The golden file holds :func:`~cmdqv_lab.driver.routing.route_frame`'s
output for every case (with a ``case`` column); it was written by the polars ``route_frame`` before
it became an adapter over :func:`~cmdqv_lab.driver.route_rows.route_rows`. Regenerate with
``PYTHONPATH=. python tests/routing_cases.py`` (only if routing is meant to change).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.driver.routing import GUEST_ACCEPTED, GUEST_ACCEPTED_2021, POLICIES, route_frame
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA

GOLDEN = Path(__file__).parent / "data" / "routing_golden.parquet"
N_CASES = 480
OPCODES = [int(o) for o in Opcode]
SYNC = int(Opcode.CMD_SYNC)
COMMON = [SYNC, int(Opcode.CMD_TLBI_NH_VA), int(Opcode.CMD_CFGI_CD), int(Opcode.CMD_ATC_INV)]
SIDS_CHOICES: list[dict[int, list[int]] | None] = [
    None,
    {0: [8]},
    {0: [8, 16], 1: [24]},
    {1: [8]},
    {0: []},
    {0: [8, 8, 16], -1: [8]},
]


@dataclass(frozen=True)
class Case:
    df: pl.DataFrame
    policy: str
    accepted: frozenset[int]
    sids: dict[int, list[int]] | None

    def route(self) -> pl.DataFrame:
        return route_frame(self.df, self.policy, accepted=self.accepted, sids=self.sids)


def _cpu_rows(g: np.random.Generator, cpu: int, vm: int, sync_only: str | None) -> list[dict[str, object]]:
    """One CPU's rows: ops of batches; a batch may end with a CMD_SYNC (or be one)."""
    recs: list[dict[str, object]] = []
    b = int(g.integers(0, 5))
    for i in range(int(g.integers(0, 6))):
        t = int(g.integers(0, 10**6))
        kind = ["unmap", "flush"][int(g.integers(0, 2))]
        for _ in range(int(g.integers(0, 4))):  # an op may have no command
            if sync_only == "sync":
                cmds = [SYNC]
            else:
                body = [
                    int(g.choice(COMMON)) if g.random() < 0.5 else int(g.choice(OPCODES))
                    for _ in range(int(g.integers(0, 5)))
                ]
                if sync_only == "none":
                    body = [c for c in body if c != SYNC] or [int(Opcode.CMD_TLBI_NH_VA)]
                    cmds = body
                else:
                    cmds = [*body, SYNC] if g.random() < 0.5 or not body else body
            ends = cmds[-1] == SYNC and sync_only != "none"
            for c in cmds:
                sid = int(g.choice([8, 16, 24])) if g.random() < 0.7 else None
                asid = int(g.integers(0, 100)) if g.random() < 0.5 else None
                addr = int(g.integers(0, 2**40)) if g.random() < 0.5 else None
                recs.append(dict(cpu=cpu, vm=vm, op=i, batch=b, t_ps=t, sync=ends, kind=kind, opcode=c,
                                 sid=sid, asid=asid, addr=addr, ssid=int(g.integers(0, 4)), leaf=bool(g.random() < 0.5)))  # fmt: skip
            b += 1
    return recs


def _not_runs(g: np.random.Generator, recs: list[dict[str, object]]) -> list[dict[str, object]]:
    """Swap two neighbouring rows of different batches (a batch no longer a run of its CPU's rows)."""
    idx = [i for i in range(len(recs) - 1) if recs[i]["batch"] != recs[i + 1]["batch"]]
    if idx:
        i = int(g.choice(idx))
        recs[i], recs[i + 1] = recs[i + 1], recs[i]
    return recs


def _interleave(g: np.random.Generator, per_cpu: list[list[dict[str, object]]]) -> list[dict[str, object]]:
    """Merge the CPUs' rows in a random order, each CPU's rows keeping theirs."""
    owner = np.concatenate([np.full(len(r), k) for k, r in enumerate(per_cpu)]).astype(np.int64)
    g.shuffle(owner)
    its = [iter(r) for r in per_cpu]
    return [next(its[k]) for k in owner]


def frame(recs: list[dict[str, object]]) -> pl.DataFrame:
    if not recs:
        return pl.DataFrame(schema=WORKLOAD_SCHEMA)
    df = pl.DataFrame(recs, schema_overrides={"addr": pl.UInt64}, infer_schema_length=None)
    return df.select(
        [
            (pl.col(c) if c in df.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in WORKLOAD_SCHEMA.items()
        ]
    )


def cases() -> Iterator[Case]:
    for k in range(N_CASES):
        g = np.random.default_rng([20261207, k])
        policy = POLICIES[k % len(POLICIES)]
        a = int(g.integers(0, 3))
        if a == 0:
            accepted = frozenset(int(o) for o in GUEST_ACCEPTED)
        elif a == 1:
            accepted = frozenset(int(o) for o in GUEST_ACCEPTED_2021)
        else:
            accepted = frozenset(int(o) for o in g.choice(OPCODES, int(g.integers(0, 7)), replace=False))
        sids = SIDS_CHOICES[int(g.integers(0, len(SIDS_CHOICES)))]
        shape = (k // len(POLICIES)) % 6  # 0-1: one CPU, 2: SYNC-only/no-SYNC, 3-4: several, 5: not runs
        cpus = [(0, 0)] if shape < 3 else [(0, 0), (1, 0), (0, 1), (0, -1), (1, -1)][: int(g.integers(2, 6))]
        if shape < 2:
            cpus = [[(0, 0), (1, 1), (0, -1)][int(g.integers(0, 3))]]
        sync_only = ["sync", "none"][int(g.integers(0, 2))] if shape == 2 else None
        per_cpu = [_cpu_rows(g, cpu, vm, sync_only) for cpu, vm in cpus]
        if shape == 5:
            per_cpu = [_not_runs(g, r) for r in per_cpu]
        recs = _interleave(g, per_cpu) if shape in (4, 5) else [r for rs in per_cpu for r in rs]
        yield Case(frame(recs), policy, accepted, sids)


def routed_all() -> pl.DataFrame:
    return pl.concat(
        [c.route().with_columns(pl.lit(k, pl.UInt16).alias("case")) for k, c in enumerate(cases())]
    )


if __name__ == "__main__":
    out = routed_all()
    out.write_parquet(GOLDEN, compression="zstd", statistics=False)
    print(f"{GOLDEN}: {out.height} rows, {out['case'].n_unique()} non-empty cases")
