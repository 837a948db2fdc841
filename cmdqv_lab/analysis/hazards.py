"""Q1-Q3 findings from the correctness checker: ILL and Q2/Q3 hazards per routing policy.

Each function routes generated guest streams under several policies, replays them through the
functional model (:func:`cmdqv_lab.checker.check.check`) and tabulates the counts; the notebooks
chart the tables and quote them. The closed form of Q1 (:func:`first_opcode_ill_closed_form`) and
the hardware-SYNC overhead table of Q3 (:func:`hw_sync_overhead`) are here too.

>>> first_opcode_ill_closed_form(0.05, 2, "batch") * 1e4, first_opcode_ill_closed_form(0.05, 2, "command") * 1e4
(333.3333333333333, 500.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

#: The routing policies of Q1/Q2, in the order the notebooks show them.
POLICIES: tuple[str, ...] = ("first-opcode", "scan", "split", "homogeneous", "scan-fanout")


def first_opcode_ill_closed_form(f: float, tlbis: int, mix_per: str) -> float:
    """ILL per op under first-opcode routing for the registry ``mixed`` stream (notebook 01).

    Mixed per batch: one unsupported command with probability ``f`` at a uniform one of
    ``tlbis + 1`` positions, ILL unless first: ``f t / (t + 1)``. Mixed per command: a geometric
    run of unsupported commands before each TLBI; the batch stays on the VCMDQ when none precedes
    the first one, and then carries ``(t - 1) f / (1 - f)`` on average: ``(t - 1) f``.
    """
    if mix_per == "batch":
        return f * tlbis / (tlbis + 1)
    if mix_per == "command":
        return f * (tlbis - 1)
    raise ValueError(f"mix_per={mix_per!r}: one of batch, command")


def policy_safety(
    stream: Mapping[str, Any],
    *,
    ops: int,
    fractions: Sequence[float],
    mixes: Sequence[str],
    policies: Sequence[str] = POLICIES,
    seed: int = 0,
) -> pl.DataFrame:
    """Q1: the checker on the ``mixed`` workload per (mix, unsupported fraction, policy).

    Columns: mix_per, unsupported_fraction, policy, ops, the hazard counts, trapped commands,
    commands, inserted SYNCs, disagreements between routing and the functional model, an example
    ILL reason, ``ill_per_1e4_ops`` and ``trapped_share``.
    """
    from cmdqv_lab.checker.check import check
    from cmdqv_lab.checker.scenarios import load_source

    rows = []
    for mix in mixes:
        for f in fractions:
            src = load_source(
                "mixed", {**stream, "ops": ops, "unsupported_fraction": f, "mix_per": mix}, seed=seed
            )
            for policy in policies:
                r = check(src, policy)
                rows.append(
                    {
                        "mix_per": mix, "unsupported_fraction": f, "policy": policy, "ops": ops,
                        **r.counts, "trapped": r.routed["paths"]["trap"], "commands": src.frame.height,
                        "inserted_syncs": r.routed["inserted_syncs"], "disagreements": len(r.disagreements),
                        "example": next((h.reason for h in r.hazards if h.kind == "ill"), None),
                    }
                )  # fmt: skip
    return pl.DataFrame(rows).with_columns(
        (pl.col("ill") * 1e4 / pl.col("ops")).alias("ill_per_1e4_ops"),
        (pl.col("trapped") / pl.col("commands")).alias("trapped_share"),
    )


def closed_form_check(safety: pl.DataFrame, tlbis: int) -> pl.DataFrame:
    """First-opcode rows of :func:`policy_safety` beside the closed form, both per 10^4 ops."""
    return (
        safety.filter(pl.col("policy") == "first-opcode")
        .with_columns(
            pl.struct("unsupported_fraction", "mix_per")
            .map_elements(
                lambda r: first_opcode_ill_closed_form(r["unsupported_fraction"], tlbis, r["mix_per"]) * 1e4,
                return_dtype=pl.Float64,
            )
            .alias("closed_form_per_1e4_ops")
        )
        .select("mix_per", "unsupported_fraction", "ill", "ill_per_1e4_ops", "closed_form_per_1e4_ops")
    )


def q2_corner_cases(
    src: Any, ops: int, policies: Sequence[str] = POLICIES
) -> tuple[pl.DataFrame, dict[str, str | None]]:
    """Q2 on a checker source: hazard counts per policy, Q2 hazards split by direction.

    Returns the table (``q2_on_vcmdq``: invalidations left on a VCMDQ whose SYNC went elsewhere;
    ``q2_trapped``: the reverse; ``q2_unmaps``: ops with at least one) and the first Q2 hazard of
    each policy in words.
    """
    from cmdqv_lab.checker.check import check

    rows, examples = [], {}
    for policy in policies:
        r = check(src, policy)
        q2 = [h for h in r.hazards if h.kind == "q2"]
        by_dir = Counter(("vcmdq" if h.queue.startswith("vcmdq") else "trapped") for h in q2)
        hit = {(h.vm, h.cpu, h.op) for h in q2}
        rows.append({"policy": policy, **r.counts, "q2_on_vcmdq": by_dir["vcmdq"], "q2_trapped": by_dir["trapped"],
                     "q2_unmaps": len(hit), "inserted_syncs": r.routed["inserted_syncs"],
                     "disagreements": len(r.disagreements)})  # fmt: skip
        examples[policy] = next((f"{h.where()}: {h.opcode} on {h.queue}: {h.reason}" for h in q2), None)
    out = pl.DataFrame(rows).with_columns((pl.col("q2_unmaps") * 1e4 / ops).alias("q2_unmaps_per_1e4"))
    return out, examples


def lone_sync_sweep(
    base: Mapping[str, Any],
    *,
    ops: int,
    split_fractions: Sequence[float],
    ats_values: Sequence[bool],
    policies: Sequence[str] = POLICIES,
    seed: int = 0,
) -> pl.DataFrame:
    """Q2 on the ``mixed`` workload with a swept share of lone SYNCs (``split_sync_fraction``)."""
    from cmdqv_lab.checker.check import check
    from cmdqv_lab.checker.scenarios import load_source

    rows = []
    for ats in ats_values:
        for sf in split_fractions:
            src = load_source("mixed", {**base, "ops": ops, "ats": ats, "split_sync_fraction": sf}, seed=seed)
            for policy in policies:
                r = check(src, policy)
                hit = {(h.vm, h.cpu, h.op) for h in r.hazards if h.kind == "q2"}
                rows.append({"atc_batch": "ATC_INV batch after" if ats else "no ATC_INV batch",
                             "split_sync_fraction": sf, "policy": policy, **r.counts, "q2_unmaps": len(hit),
                             "inserted_syncs": r.routed["inserted_syncs"], "ops": ops})  # fmt: skip
    return pl.DataFrame(rows).with_columns(
        (pl.col("q2_unmaps") * 1e4 / pl.col("ops")).alias("q2_unmaps_per_1e4"),
        (pl.col("inserted_syncs") * 1e4 / pl.col("ops")).alias("inserted_syncs_per_1e4_ops"),
    )


def rely_on_hw_syncs(src: Any) -> tuple[pl.DataFrame, int]:
    """Q3: ``rely-hw-sync`` with hardware SYNCs on/off and CMD_BATCH 1/32.

    Returns the table (hazard counts, hardware SYNCs in the event log, dropped SYNCs) and the
    number of invalidations the policy sends to VCMDQs without a SYNC of their own.
    """
    from cmdqv_lab.checker.check import CheckOptions, check, plan_for, route
    from cmdqv_lab.device.cmdqv import CmdqvParams
    from cmdqv_lab.device.commands import INVALIDATION_OPCODES

    rows = []
    for hw in (True, False):
        for cb in (1, 32):
            r = check(src, "rely-hw-sync", CmdqvParams(hw_sync=hw, cmd_batch=cb))
            rows.append({"hw_sync": hw, "cmd_batch": cb, **r.counts, "hw_syncs_in_log": r.model["hw_syncs"],
                         "dropped_syncs": r.routed["dropped_syncs"]})  # fmt: skip
    _cap, vms = plan_for(src, CmdqvParams(), CheckOptions())
    routed = route(src, "rely-hw-sync", CmdqvParams(), vms)
    vcmdq_invals = routed.filter(
        (pl.col("path") == "vcmdq")
        & pl.col("opcode").is_in([int(o) for o in INVALIDATION_OPCODES])
        & ~pl.col("illegal")
    ).height
    table = pl.DataFrame(rows).with_columns(
        (pl.col("q3") / vcmdq_invals).alias("q3_share_of_vcmdq_invalidations")
    )
    return table, vcmdq_invals


def hw_sync_frame(frame: pl.DataFrame, size: str) -> pl.DataFrame:
    """A Q3 hardware-SYNC sweep with readable columns: hw_sync, turn_limit, latencies in us, size."""
    return frame.with_columns(
        pl.when(pl.col("hw_sync_insert")).then(pl.format("on, {} ns", pl.col("hw_sync_ns").cast(pl.Int64)))
        .otherwise(pl.lit("off")).alias("hw_sync"),
        pl.when(pl.col("clk_batch_ns") > 0).then(pl.lit("QEMU reset")).otherwise(pl.lit("CMD_BATCH only"))
        .alias("turn_limit"),
        (pl.col("op_latency_ns_mean") / 1e3).alias("mean_us"),
        (pl.col("op_latency_ns_p99") / 1e3).alias("p99_us"),
        (pl.col("ops_per_s") / 1e3).alias("kops_per_s"),
        (pl.col("hw_syncs") / pl.col("ops")).alias("hw_syncs_per_op"),
        pl.col(size).alias("size"),
    )  # fmt: skip


def hw_sync_overhead(d: pl.DataFrame) -> pl.DataFrame:
    """Mean over seeds and the change against the same configuration with hardware SYNCs off."""
    keys = ["size", "turn_limit", "cmd_batch"]
    m = d.group_by(*keys, "hw_sync", maintain_order=True).agg(
        pl.col("mean_us", "p99_us", "kops_per_s", "hw_syncs_per_op").mean()
    )
    off = m.filter(pl.col("hw_sync") == "off").select(
        *keys, pl.col("mean_us").alias("off_mean_us"), pl.col("kops_per_s").alias("off_kops_per_s")
    )
    return (
        m.join(off, on=keys)
        .with_columns(
            (pl.col("mean_us") / pl.col("off_mean_us") - 1).alias("latency_change"),
            (pl.col("kops_per_s") / pl.col("off_kops_per_s") - 1).alias("throughput_change"),
        )
        .sort("size", "turn_limit", "cmd_batch", "hw_sync")
    )


def hw_sync_explore_rows(d: pl.DataFrame, label: str, y: str) -> pl.DataFrame:
    """Rows for the hardware-SYNC explorer: the "off" runs repeated at every swept SYNC cost."""
    only = pl.col("turn_limit") == "CMD_BATCH only"
    m = (
        d.filter(only)
        .group_by("size", "cmd_batch", "hw_sync_insert", "hw_sync_ns", maintain_order=True)
        .agg(pl.col(y).mean())
    )
    costs = sorted(m.filter(pl.col("hw_sync_insert"))["hw_sync_ns"].unique().to_list())
    off = m.filter(~pl.col("hw_sync_insert")).drop("hw_sync_ns")
    parts = [m.filter(pl.col("hw_sync_insert"))] + [
        off.with_columns(pl.lit(c).alias("hw_sync_ns")) for c in costs
    ]
    return (
        pl.concat(parts, how="diagonal")
        .with_columns(
            pl.format("{} {}, hw SYNC {}", pl.col("size"), pl.lit(label),
                      pl.when(pl.col("hw_sync_insert")).then(pl.lit("on")).otherwise(pl.lit("off"))).alias("series")
        )
        .select("series", "cmd_batch", "hw_sync_ns", y)
    )  # fmt: skip
