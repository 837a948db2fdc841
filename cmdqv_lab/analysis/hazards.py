"""Q1-Q3 findings from the correctness checker: ILL and Q2/Q3 hazards per routing policy.

The checker runs themselves are sweeps (task ``check:<source>``,
:mod:`cmdqv_lab.checker.sweep_task`: route a stream under a policy, replay it through the
functional model); their specs are in ``data/specs`` and their results published like the timing
sweeps. The functions here turn those sweeps into the tables the notebooks chart and quote. The closed form of Q1 (:func:`first_opcode_ill_closed_form`) and
the hardware-SYNC overhead table of Q3 (:func:`hw_sync_overhead`) are here too.

>>> first_opcode_ill_closed_form(0.05, 2, "batch") * 1e4, first_opcode_ill_closed_form(0.05, 2, "command") * 1e4
(333.3333333333333, 500.0)
"""

from __future__ import annotations

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


def policy_safety(frame: pl.DataFrame) -> pl.DataFrame:
    """Q1 from a ``check:mixed`` sweep over (mix_per, unsupported_fraction, policy) (notebook 01's
    ``nb-q1-policy-safety``): the sweep's rows with ``ops`` (the run's count), ``trapped`` (commands
    sent to the VMM), ``example`` (the first ILL's reason, null if none), ``ill_per_1e4_ops`` and
    ``trapped_share``."""
    return frame.with_columns(
        pl.col("count").alias("ops"),
        pl.col("trap_commands").alias("trapped"),
        pl.when(pl.col("example_ill") != "").then(pl.col("example_ill")).alias("example"),
        (pl.col("ill") * 1e4 / pl.col("count")).alias("ill_per_1e4_ops"),
        (pl.col("trap_commands") / pl.col("commands")).alias("trapped_share"),
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


def q2_corner_cases(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, str | None]]:
    """Q2 from a ``check:guest-mixed`` sweep over ``policy`` (notebook 02's ``nb-q2-corner-cases``):
    hazard counts per policy with Q2 hazards split by direction (``q2_on_vcmdq``: invalidations left
    on a VCMDQ whose SYNC went elsewhere; ``q2_trapped``: the reverse; ``q2_unmaps``: ops with at
    least one, also per 10^4 ops), and the first Q2 hazard of each policy in words (None if none).
    """
    table = frame.select(
        "policy", "ill", "q2", "q3", "unsynced", "q2_on_vcmdq", "q2_trapped", "q2_unmaps", "inserted_syncs",
        "disagreements", (pl.col("q2_unmaps") * 1e4 / pl.col("count")).alias("q2_unmaps_per_1e4"),
    )  # fmt: skip
    examples = {p: (e or None) for p, e in frame.select("policy", "example_q2").iter_rows()}
    return table, examples


def lone_sync_sweep(frame: pl.DataFrame) -> pl.DataFrame:
    """Q2 from a ``check:mixed`` sweep over (ats, split_sync_fraction, policy) (notebook 02's
    ``nb-q2-lone-sync``): ``atc_batch`` in words, the hazard counts, Q2 unmaps and inserted SYNCs
    per 10^4 ops."""
    return frame.select(
        pl.when(pl.col("ats")).then(pl.lit("ATC_INV batch after")).otherwise(pl.lit("no ATC_INV batch"))
        .alias("atc_batch"),
        "split_sync_fraction", "policy", "ill", "q2", "q3", "unsynced", "q2_unmaps", "inserted_syncs",
        pl.col("count").alias("ops"),
        (pl.col("q2_unmaps") * 1e4 / pl.col("count")).alias("q2_unmaps_per_1e4"),
        (pl.col("inserted_syncs") * 1e4 / pl.col("count")).alias("inserted_syncs_per_1e4_ops"),
    )  # fmt: skip


def rely_on_hw_syncs(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Q3 from a ``check:guest-mixed`` sweep of ``rely-hw-sync`` over (hw_sync, cmd_batch) (notebook
    02's ``nb-q3-rely-hw-sync``).

    Returns the table (hazard counts, hardware SYNCs in the event log, dropped SYNCs, q3 as a share
    of the VCMDQ invalidations) and the number of invalidations the policy sends to VCMDQs without a
    SYNC of their own (the same in every row: routing does not depend on hw_sync or cmd_batch).
    """
    invals = frame["vcmdq_invalidations"].unique()
    if invals.len() != 1:
        raise ValueError(
            f"rely_on_hw_syncs: the runs route differently ({invals.to_list()} VCMDQ invalidations)"
        )
    table = frame.select(
        "hw_sync", "cmd_batch", "ill", "q2", "q3", "unsynced", pl.col("hw_syncs").alias("hw_syncs_in_log"),
        "dropped_syncs", (pl.col("q3") / pl.col("vcmdq_invalidations")).alias("q3_share_of_vcmdq_invalidations"),
    )  # fmt: skip
    return table, int(invals[0])


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
