"""Q12 findings: how much an aggressor VM's invalidation flood hurts a victim VM, and what bounds it.

Runs of ``guest-noisy`` (:mod:`cmdqv_lab.scenarios.guest_noisy`). :func:`hurt` pairs every run with
aggressors with the run without aggressors on the same seed and the same other parameters (common
random numbers) and gives the victim's extra latency, averaged over seeds with a Student-t interval.
:func:`turn_ns`, :func:`private_bound_ns` and :func:`shared_bound_ns` (defined with the scenario,
whose run length uses them) are the queueing estimates of that extra latency from the engine's rules:

* private (a VCMDQ per VM): the SMMU arbitrates round robin between queues with work
  (:mod:`cmdqv_lab.engine.smmu`, ``step_proc``): a turn ends after a command completes once
  ``cmd_batch`` commands ran or ``clk_batch_ns`` elapsed (CMDQV CONFIG CMD_BATCH / CLK_BATCH). A
  victim batch published while the aggressors' queues are busy waits at most one turn of every
  aggressor queue its processor serves, and the victim sees its CMD_SYNC at its next CONS read
  (``guest_sync_wait``: Linux's ``queue_poll`` back-off on a guest VCMDQ);
* shared (every VM trapped into the host's main CMDQ): each VMM forwards one command per ioctl
  (``vmm_forward = per-command``) or chunks of ``vmm_batch`` (``batched``) and waits for their
  CMD_SYNC before the next, under its VM's big lock when ``vmm_lock`` (:mod:`cmdqv_lab.engine.vmm`),
  so at most one chunk per aggressor VM (per aggressor vCPU without the lock) is ahead of a
  victim's chunk in the FIFO queue. Host cache-line contention on the queue's ``llq``/lock words
  comes on top and is not in the estimate.

>>> round(turn_ns(cmd_batch=32, clk_batch_ns=256, tlbi_ns=184.3, fetch_ns=31, fetch_line=4), 1)
430.6
>>> turn_ns(cmd_batch=0, clk_batch_ns=0, tlbi_ns=184.3, fetch_ns=31, fetch_line=4)
inf
>>> round(shared_chunk_ns(vmm_batch=1, tlbi_ns=184.3, sync_ns=50, fetch_ns=31, fetch_line=4), 1)
296.3
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from cmdqv_lab.analysis.summary import summarize_replicates
from cmdqv_lab.scenarios.guest_noisy import (
    bound_ns,
    forward_chunk,
    private_bound_ns,
    shared_bound_ns,
    shared_chunk_ns,
    turn_ns,
)

__all__ = [
    "ARRANGEMENT",
    "bound_ns",
    "forward_chunk",
    "hurt",
    "paired",
    "private_bound_ns",
    "shared_bound_ns",
    "shared_chunk_ns",
    "spread",
    "turn_ns",
    "with_arrangement",
    "with_bounds",
]

#: The victim metric the answer is about (flattened ``victim_op_latency_ns.p99``).
P99 = "victim_op_latency_ns_p99"


def paired(df: pl.DataFrame, keys: Sequence[str], value: str = P99) -> pl.DataFrame:
    """Rows with aggressors, each beside the run without aggressors of the same ``keys`` and seed.

    ``keys`` are the configuration columns besides ``aggressor_vms`` and ``seed``; every key
    combination needs its own ``aggressor_vms = 0`` rows (a product grid over ``aggressor_vms``
    has them; settings that only matter with aggressors just repeat the baseline). Adds ``base``
    (the baseline's ``value``), ``extra_ns`` (``value - base``) and ``extra_pct``.
    """
    keys = list(keys)
    base = df.filter(pl.col("aggressor_vms") == 0).select(*keys, "seed", pl.col(value).alias("base"))
    base = base.unique(subset=[*keys, "seed"], keep="first", maintain_order=True)
    return (
        df.filter(pl.col("aggressor_vms") > 0)
        .join(base, on=[*keys, "seed"], how="inner")
        .with_columns(
            (pl.col(value) - pl.col("base")).alias("extra_ns"),
            ((pl.col(value) / pl.col("base") - 1) * 100).alias("extra_pct"),
        )
    )


def hurt(df: pl.DataFrame, keys: Sequence[str], value: str = P99, carry: Sequence[str] = ()) -> pl.DataFrame:
    """Victim ``value`` with aggressors against the same configuration without them (:func:`paired`).

    Returns per key and ``aggressor_vms > 0``: ``base`` and ``with`` (means over seeds),
    ``extra_ns`` and ``extra_pct`` (means of the per-seed differences), ``extra_lo``/``extra_hi``
    (95 % Student-t interval of the per-seed differences over replicates), ``n`` seeds, and the
    ``carry`` columns (constant per group, e.g. ``bound_ns`` of :func:`with_bounds`).
    """
    p = paired(df, keys, value)
    by = [*keys, "aggressor_vms"]
    s = summarize_replicates(p, by, "extra_ns")
    means = p.group_by(by).agg(
        pl.col("base").mean(),
        pl.col(value).mean().alias("with"),
        pl.col("extra_pct").mean(),
        *[pl.col(c).first() for c in carry],
    )
    return (
        s.join(means, on=by)
        .select(
            *by,
            "base",
            "with",
            pl.col("mean").alias("extra_ns"),
            "extra_pct",
            pl.col("ci_lo").alias("extra_lo"),
            pl.col("ci_hi").alias("extra_hi"),
            "n",
            *carry,
        )
        .sort(by)
    )


def with_bounds(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` (sweep rows or :func:`hurt` rows joined with their parameters) plus ``bound_ns``."""
    return df.with_columns(
        pl.Series("bound_ns", [bound_ns(r) for r in df.iter_rows(named=True)], dtype=pl.Float64)
    )


#: ``queue_sharing`` in words, as charts and tables show it.
ARRANGEMENT = {"shared": "shared main CMDQ (trapped)", "private": "private VCMDQ per VM"}
#: The assumption axes of the Q12 sensitivity sweeps (``forward_chunk``: TLBIs per forwarded host
#: batch, :func:`forward_chunk` of ``vmm_forward`` and ``vmm_batch``).
ASSUMPTIONS = ("smmu_parallel", "cmd_batch", "clk_batch_ns", "forward_chunk", "vmm_lock", "aggressor_threads")


def with_arrangement(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with an ``arrangement`` column: ``queue_sharing`` in words."""
    return df.with_columns(pl.col("queue_sharing").replace_strict(ARRANGEMENT).alias("arrangement"))


def spread(frame: pl.DataFrame, axis: str, value: str = "extra_ns") -> float:
    """Largest change of ``value`` along ``axis`` with the other assumption axes held fixed.

    >>> df = pl.DataFrame({"cmd_batch": [8, 32, 8, 32], "clk_batch_ns": [0, 0, 256, 256], "extra_ns": [10.0, 40.0, 5.0, 7.0]})
    >>> spread(df, "cmd_batch"), spread(df, "clk_batch_ns")
    (30.0, 33.0)
    """
    others = [c for c in ASSUMPTIONS if c in frame.columns and c != axis]
    if not others:
        v = frame[value].to_numpy()
        return float(v.max() - v.min())
    g = frame.group_by(others).agg((pl.col(value).max() - pl.col(value).min()).alias("d"))
    return float(g["d"].to_numpy().max())
