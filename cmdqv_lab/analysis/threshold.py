"""Q11 findings: the unmap size beyond which one CMD_TLBI_NH_ASID beats per-page TLBIs.

The ``nb-q11-threshold`` sweep runs ``host-iotlb`` for each *case* (one of Robin Murphy's
quantities, or one IOTLB assumption, moved away from the base configuration) and each unmap size,
once with ``max_tlbi_ops = 1`` (every unmap flushes its ASID) and once with ``max_tlbi_ops =
2^30`` (never). Any threshold ``T`` then gives, per size ``P``, the flush cost if ``P >= T`` and
the range cost otherwise, so the best threshold and the loss of a fixed one follow without
simulating every ``T``.

The cost of an unmap (``inval_cost_ns_per_unmap``) is the CPU time of its invalidation (op
latency, including waiting for the queue and the CMD_SYNC) plus the devices' table-walk time per
unmap: a ns of device stall weighs as much as a ns of CPU time (a choice; :func:`costs` takes
another ``device_weight``). The loss of a threshold averages over the swept sizes with equal
weight: an assumed size distribution (log-uniform over the grid).

>>> c = pl.DataFrame({"case": ["base"] * 3, "unmap_pages": [1, 16, 256],
...                   "range": [1.0, 10.0, 100.0], "flush": [5.0, 8.0, 9.0]})
>>> be = break_even(c).row(0, named=True)
>>> be["best_threshold"], round(be["crossing"], 2)
(16, 11.42)
>>> cost_at(c, 512)["cost"].to_list(), cost_at(c, 16)["cost"].to_list()
([1.0, 10.0, 100.0], [1.0, 8.0, 9.0])
>>> round(loss(c, 512).row(0, named=True)["mean_loss_pct"], 1)
345.4
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import polars as pl

#: Swept quantity -> what it stands for (Robin Murphy's list, then the IOTLB assumptions).
QUANTITIES: dict[str, str] = {
    "cpus": "contending CPUs, and so how busy the SMMU is",
    "tlbi_service_ns": "SMMU speed: service time of one TLBI",
    "think_ns": "CPU speed: CPU work per map+unmap",
    "cmdq_log2size": "command queue size (log2 entries)",
    "walk_ns": "IOTLB assumption: table walk per miss",
    "footprint_pages": "IOTLB assumption: long-lived pages per device",
    "hot_rate_mps": "IOTLB assumption: translations of long-lived pages (M/s)",
    "iotlb_entries": "IOTLB assumption: TLB entries",
}
#: The base configuration: the first entry of the zip group of ``data/specs/nb-q11-threshold.toml``.
BASE: dict[str, float] = {
    "cpus": 4, "tlbi_service_ns": 36.381, "think_ns": 1298.4, "cmdq_log2size": 16, "walk_ns": 500.0,
    "footprint_pages": 256, "hot_rate_mps": 1.0, "iotlb_entries": 512,
}  # fmt: skip
#: Robin Murphy's quantities (the rest are assumptions of the IOTLB model).
ROBIN = ("cpus", "tlbi_service_ns", "think_ns", "cmdq_log2size")
NEVER = 1 << 30


def label_cases(df: pl.DataFrame, base: Mapping[str, float]) -> pl.DataFrame:
    """Add ``case`` (``"base"`` or ``"<quantity> = <value>"``: the one column of :data:`QUANTITIES`
    that differs from ``base``) and ``invalidation`` (``"range"`` / ``"flush"``)."""
    labels = []
    for row in df.select(list(QUANTITIES)).iter_rows(named=True):
        moved = [f"{k} = {fmt(row[k])}" for k in QUANTITIES if row[k] != base[k]]
        labels.append(", ".join(moved) or "base")
    if "base" not in labels:
        raise ValueError("no point of the sweep has the base configuration (threshold.BASE)")
    return df.with_columns(
        pl.Series("case", labels),
        pl.when(pl.col("asid_flush")).then(pl.lit("flush")).otherwise(pl.lit("range")).alias("invalidation"),
    )


def fmt(v: float) -> str:
    return f"{v:g}"


def costs(df: pl.DataFrame, device_weight: float = 1.0) -> pl.DataFrame:
    """Mean cost per unmap over seeds per (case, unmap_pages): columns ``range`` and ``flush`` (ns)."""
    cost = pl.col("cmdq_ns_per_unmap") + device_weight * pl.col("walk_ns_per_unmap")
    return (
        df.with_columns(cost.alias("cost"))
        .group_by("case", "unmap_pages", "invalidation", maintain_order=True)
        .agg(pl.col("cost").mean())
        .pivot(on="invalidation", index=["case", "unmap_pages"], values="cost")
        .sort("case", "unmap_pages")
    )


def cost_at(c: pl.DataFrame, threshold: int) -> pl.DataFrame:
    """Cost per (case, size) under ``threshold``: flush when ``unmap_pages >= threshold``."""
    flush = pl.col("unmap_pages") >= threshold
    return c.with_columns(pl.when(flush).then(pl.col("flush")).otherwise(pl.col("range")).alias("cost"))


def break_even(c: pl.DataFrame) -> pl.DataFrame:
    """Per case: the best threshold on the grid (the smallest swept size from which flushing is
    never worse: ``best_threshold``, ``None`` when range invalidation wins at every size) and
    ``crossing``, the size where range and flush cost the same, interpolated on log(size) and
    log(range / flush) between the two swept sizes around it (the smallest size when flushing
    always wins; ``None`` when it never does)."""
    rows = []
    for (case,), g in c.sort("unmap_pages").group_by("case", maintain_order=True):
        sizes, rng, fl = g["unmap_pages"].to_list(), g["range"].to_list(), g["flush"].to_list()
        r = [math.log(a / b) for a, b in zip(rng, fl, strict=True)]  # > 0: flushing is cheaper
        best, cross = None, None
        for i in range(len(sizes)):
            if all(x >= 0 for x in r[i:]):
                best = sizes[i]
                if i == 0:
                    cross = float(sizes[0])
                else:
                    lo, hi = math.log(sizes[i - 1]), math.log(sizes[i])
                    cross = math.exp(lo + (0 - r[i - 1]) / (r[i] - r[i - 1]) * (hi - lo))
                break
        rows.append({"case": case, "best_threshold": best, "crossing": cross, "largest_size": sizes[-1]})
    schema = {"case": pl.String, "best_threshold": pl.Int64, "crossing": pl.Float64, "largest_size": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def by_quantity(be: pl.DataFrame, base: Mapping[str, float]) -> pl.DataFrame:
    """The crossing against each quantity of :data:`QUANTITIES` (the base case and the cases moving
    that quantity): columns ``quantity``, ``meaning``, ``value``, ``crossing``. A case where flushing
    never wins gets twice the largest size (drawn as "above the grid")."""
    cross = {
        c: (x if x is not None else 2.0 * top)
        for c, x, top in be.select("case", "crossing", "largest_size").iter_rows()
    }
    rows = []
    for q, meaning in QUANTITIES.items():
        pts = [(float(base[q]), cross["base"])] if "base" in cross else []
        prefix = f"{q} = "
        pts += [(float(c.removeprefix(prefix)), x) for c, x in cross.items() if c.startswith(prefix)]
        rows += [{"quantity": q, "meaning": meaning, "value": v, "crossing": x} for v, x in sorted(pts)]
    return pl.DataFrame(rows)


def sensitivity(bq: pl.DataFrame) -> pl.DataFrame:
    """How far each quantity moves the crossing over its swept range: ``spread`` = largest /
    smallest crossing (1: no effect), most influential first."""
    return (
        bq.group_by("quantity", "meaning", maintain_order=True)
        .agg(
            pl.col("value").min().alias("from"), pl.col("value").max().alias("to"),
            pl.col("crossing").min().alias("lowest_crossing"), pl.col("crossing").max().alias("highest_crossing"),
            pl.len().alias("cases"),
        )
        .filter(pl.col("cases") > 1)
        .with_columns((pl.col("highest_crossing") / pl.col("lowest_crossing")).alias("spread"))
        .sort("spread", descending=True)
        .drop("cases")
    )  # fmt: skip


def loss(c: pl.DataFrame, threshold: int) -> pl.DataFrame:
    """Per case: how much ``threshold`` costs over the best threshold of the grid, in % of the
    best cost, averaged over the sizes (equal weights) and at the worst size."""
    be = break_even(c)
    rows = []
    for case, best in be.select("case", "best_threshold").iter_rows():
        g = c.filter(pl.col("case") == case)
        opt = cost_at(g, best if best is not None else NEVER)["cost"]
        got = cost_at(g, threshold)["cost"]
        rel = (got - opt) / opt * 100
        rows.append({"case": case, "best_threshold": best, "mean_loss_pct": float(rel.mean()),  # type: ignore[arg-type]
                     "max_loss_pct": float(rel.max()), "mean_loss_ns": float((got - opt).mean())})  # type: ignore[arg-type]  # fmt: skip
    return pl.DataFrame(rows)
