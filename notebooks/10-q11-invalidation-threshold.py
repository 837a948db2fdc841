# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python (cmdqv-lab)
#     language: python
#     name: cmdqv-lab
# ---

# %% [markdown]
# # Q11: when should an unmap flush the whole ASID instead of sending one TLBI per page?
#
# Robin Murphy on the iommu list, 29 Aug 2023 ([Murphy 2023](../docs/sources.md#murphy-2023-threshold)),
# on the threshold beyond which the driver stops sending per-page or range invalidations and
# invalidates the whole ASID: it depends on "how fast the CPU is, and how fast the SMMU is, and how
# busy the SMMU is, and how large the command queue is, and how many other CPUs are also
# contending", and it is "hard to believe that any simple constant can be good for all possible
# systems". The 2021 review asked the related Q10 (is the cmdq the bottleneck at all,
# [seed thread](../docs/sources.md#seed-thread)).
#
# **Linux today** ([Linux 7.0 driver](../docs/sources.md#linux-7.0-smmu)). The DMA unmap path
# `arm_smmu_tlb_inv_range_domain` -> `__arm_smmu_tlb_inv_range` (arm-smmu-v3.c lines 2348-2417) sends
# one CMD_TLBI_NH_VA per granule without range invalidation (RIL), or NUM/SCALE ranges with it,
# in batches of 64 (`arm_smmu_cmdq_batch_add`), with no upper limit; the whole-ASID invalidation
# (`arm_smmu_tlb_inv_context`, lines 2325-2346, via `arm_smmu_tlb_inv_asid`) is used for flush-queue
# flushes. The constant `CMDQ_MAX_TLBI_OPS` (`1 << (PAGE_SHIFT - 3)`: 512 with 4 KiB pages) bounds
# the SVA invalidation path (`size >= CMDQ_MAX_TLBI_OPS * PAGE_SIZE` becomes an ASID flush); it is
# not in the reference file, which holds only arm-smmu-v3.c. The model applies that rule to the
# DMA unmap path with a configurable `max_tlbi_ops`, the arrangement NVIDIA later asked for.
#
# **The model.** `host-iotlb`: CPUs map a buffer of `unmap_pages` 4 KiB pages, the device reads it,
# the CPU unmaps it strictly, in a closed loop on the D06 preset (costs fitted to C1; see notebook
# 09). The command queue side is the calibrated timing engine; its per-op records drive an
# **IOTLB model** (`cmdqv_lab.iotlb`): a 512-entry 4-way LRU TLB tagged by ASID, filled by the
# device's translations (each buffer page once, plus a footprint of long-lived pages that are never
# unmapped, translated at a given rate) and emptied by the invalidations when their CMD_SYNC
# completes; every miss costs a table walk during which the device's DMA stalls. A whole-ASID
# flush is one command on the queue but throws the long-lived entries away; per-page TLBIs keep them
# but cost `unmap_pages` commands on a shared queue.
#
# **The cost of an unmap** = CPU time of its invalidation (submitting, waiting for the queue and the
# CMD_SYNC) + the devices' walk time per unmap. The best threshold is the unmap size from which
# flushing costs less. **Assumptions** (varied below over their ranges): the TLB geometry and walk time
# (no public numbers: the architecture leaves them IMPLEMENTATION DEFINED), the long-lived footprint
# and its access rate (workload), a ns of device stall weighed like a ns of CPU time, the sizes
# averaged with equal weight, and a CMD_TLBI_NH_ASID taking the SMMU as long as one CMD_TLBI_NH_VA
# (`tlbi_service_ns`: an SMMU that walks its TLB to find the ASID's entries would take longer).
# Every number is a **prediction** of the model.

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import time

import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis import threshold as th
from cmdqv_lab.experiments.published import sweep_frame
from cmdqv_lab.report import answer, param_table, result_table
from cmdqv_lab.scenarios.iotlb import HostIotlbParams

plots.enable()
t_start = time.perf_counter()
print(f"smoke={smoke}")

# %% [markdown]
# ## The model's parameters
#
# The `host-iotlb` scenario's own parameters with their provenance (the platform costs are the D06
# preset's, `cmdqv-lab params d06`).

# %%
param_table(HostIotlbParams, "host-iotlb parameters: IOTLB, workload and threshold (defaults)")

# %% [markdown]
# ## The sweep
#
# `nb-q11-threshold` (D06 preset, the same seeds at every point): unmap sizes 1 to 1024 pages, each
# with `max_tlbi_ops = 1` (every unmap flushes its ASID) and `2^30` (never), so the cost of any
# threshold follows per size. One quantity is moved at a time from the base (4 CPUs, D06 costs,
# 64K-entry cmdq, 512-entry IOTLB, 500 ns walks, 256 long-lived pages at 1 M translations/s):
# Robin Murphy's quantities first (contending CPUs, SMMU TLBI service, CPU work per unmap, queue
# size), then the IOTLB model's assumptions, each to both ends of its range.

# %%
sweep = sweep_frame("nb-q11-threshold", smoke=smoke)
print(sweep.describe())
runs = th.label_cases(sweep.frame, th.BASE)
cost = th.costs(runs)
be = th.break_even(cost)
loss512 = th.loss(cost, 512)
sizes = sorted(runs["unmap_pages"].unique().to_list())

# %% [markdown]
# ## 1. What each choice costs, by unmap size
#
# At the base configuration: the cost of an unmap (CPU time in the invalidation + the devices'
# walk time per unmap) with per-page TLBIs and with one ASID flush. Per-page TLBIs grow with the
# size (one command each, on a queue other CPUs share); a flush costs one command but its walks
# (refilling the long-lived entries) are paid whatever the size.

# %%
base_runs = runs.filter(pl.col("case") == "base").with_columns(
    pl.col("inval_cost_ns_per_unmap").alias("cost_ns"),
    (pl.col("iotlb_hot_misses") / pl.col("ops")).alias("hot_misses_per_unmap"),
)
plots.show(
    plots.throughput_vs_cpus(
        base_runs, x="unmap_pages", y="cost_ns", color="invalidation", log_x=True, log_y=True,
        title="Cost of one unmap (CPU ns in the cmdq + device walk ns) vs unmap size, base case",
        x_title="unmap size (4 KiB pages)", y_title="cost per unmap (ns)", color_title="invalidation",
    )
)  # fmt: skip
plots.show(
    plots.throughput_vs_cpus(
        base_runs, x="unmap_pages", y="hot_misses_per_unmap", color="invalidation", log_x=True,
        title="IOTLB misses on long-lived pages per unmap vs unmap size, base case",
        x_title="unmap size (4 KiB pages)", y_title="misses per unmap", color_title="invalidation",
    )
)  # fmt: skip

# %% [markdown]
# ### Explore: every case
#
# The same cost against unmap size for each case (one quantity moved from the base); the
# drop-down picks the case.

# %%
plots.show(
    plots.explorer(
        cost.unpivot(index=["case", "unmap_pages"], on=["range", "flush"], variable_name="invalidation",
                     value_name="cost_ns"),
        "unmap_pages", "cost_ns", "invalidation", "case", control="select", log_x=True, log_y=True,
        title="Cost per unmap (ns) vs unmap size", x_title="unmap size (4 KiB pages)",
        y_title="cost per unmap (ns)", color_title="invalidation", slider_title="case",
    )
)  # fmt: skip

# %% [markdown]
# ## 2. The best threshold, case by case
#
# The best threshold on the grid is the smallest swept size from which flushing never costs more;
# the crossing interpolates where the two costs are equal (log-log between the two sizes around
# it). The loss of a fixed 512 is its extra cost over the best threshold, in % of the best,
# averaged over the swept sizes (equal weights) and at the worst size.

# %%
table = (
    loss512.join(be.select("case", "crossing"), on="case")
    .with_columns(
        pl.col("crossing").round(1),
        pl.col("mean_loss_pct").round(1),
        pl.col("max_loss_pct").round(1),
        pl.col("mean_loss_ns").round(0),
    )
    .select("case", "best_threshold", "crossing", "mean_loss_pct", "max_loss_pct", "mean_loss_ns")
)
result_table(
    table,
    "Best threshold per case and what a fixed 512 loses (model prediction, means over seeds)",
    labels={"best_threshold": "best threshold on the grid (pages)", "crossing": "break-even size (pages)",
            "mean_loss_pct": "512 loses, mean over sizes (%)", "max_loss_pct": "512 loses, worst size (%)",
            "mean_loss_ns": "512 loses, mean (ns per unmap)"},
)  # fmt: skip

# %% [markdown]
# ### The break-even size against each quantity
#
# Each quantity at its base value and at both ends of its range (the others at the base). A case
# where flushing never wins on the grid is drawn at twice the largest size.

# %%
bq = th.by_quantity(be, th.BASE)
plots.show(
    plots.explorer(
        bq.select("value", "crossing", "meaning"),
        "value", "crossing", None, "meaning", control="select", mark="line", log_x=True, log_y=True,
        title="Break-even unmap size (pages) vs the quantity chosen", x_title="value of the quantity",
        y_title="break-even size (pages)", slider_title="quantity",
    )
)  # fmt: skip
sens = th.sensitivity(bq)
result_table(
    sens.with_columns(pl.col("lowest_crossing", "highest_crossing", "spread").round(2)),
    "What the break-even size depends on most: its spread over each quantity's range (prediction)",
)

# %% [markdown]
# ### How much a ns of device stall is worth
#
# The cost adds the devices' walk time to the CPU time at par. A device whose DMA overlaps walks
# with other work loses less than a walk (weight below 1); one on the critical path of an I/O
# may lose more. The base case's break-even with the walk time weighed 1/4 to 4 times:

# %%
weights = [0.25, 0.5, 1.0, 2.0, 4.0]
by_weight = pl.concat(
    th.break_even(th.costs(runs.filter(pl.col("case") == "base"), device_weight=w)).with_columns(
        pl.lit(w).alias("device_weight")
    )
    for w in weights
).select("device_weight", "best_threshold", pl.col("crossing").round(1))
result_table(
    by_weight,
    "Base case: break-even size against the weight of a ns of device stall (model prediction)",
    labels={"device_weight": "weight of device stall", "best_threshold": "best threshold on the grid (pages)",
            "crossing": "break-even size (pages)"},
)  # fmt: skip

# %% [markdown]
# ## Live exploration (Jupyter only)
#
# Cost per unmap against unmap size for two thresholds (16 and Linux's 512), with contending CPUs,
# walk time and SMMU speed on sliders; the static report keeps the charts above.

# %%
widgets.explore(
    "host-iotlb",
    ["cpus", "walk_ns", "tlbi_service_ns"],
    x=widgets.Control("unmap_pages", values=(1, 16, 256)),  # type more sizes into the list
    compare=widgets.Control("max_tlbi_ops", values=(16, 512)),
    metric="inval_cost_ns_per_unmap",
    seeds=2,  # the status line's 95% interval is over seeds
    count=300,  # about 0.2 s per slider move; "more ops" (or the count menu) narrows the interval
)

# %% [markdown]
# ## Reading the results
#
# * The cost of per-page TLBIs is queueing: each page is a command on a queue the SMMU serves one
#   TLBI at a time, so with several CPUs unmapping the SMMU saturates and each unmap waits for the
#   others' commands. A whole-ASID flush is one command; its price is paid later by the devices in
#   walks, bounded by the long-lived entries it throws away and by how often the devices use them.
# * So the break-even size moves with the contending CPUs and the TLBI service time on one side and
#   with the walk time and the devices' use of long-lived mappings on the other: no constant fits
#   all, as Robin Murphy said. With many CPUs on the lock-free path the model's cmpxchg contention
#   (notebook 07) makes even one-page unmaps expensive whichever command is sent, which blurs the
#   trend at the largest CPU counts; a queue that never fills (every case here but the smallest)
#   does not move the break-even at all.
# * The per-case table and the spread table are computed from the sweep; every number is a model
#   prediction, and the spread table says which assumption moves it most.

# %% [markdown]
# ## Conclusion
#
# The numbers below are computed from the sweep above (means over seeds).

# %%
row = {r["case"]: r for r in table.iter_rows(named=True)}
b = row["base"]
top = max(sizes)
cross_txt = {
    c: (f"never on the grid (> {top} pages)" if x is None else
        f"{min(sizes)} page or fewer" if best == min(sizes) else f"{x:.1f} pages" if x < 10 else f"{x:.0f} pages")
    for c, best, x in be.select("case", "best_threshold", "crossing").iter_rows()
}  # fmt: skip
loss_lo, loss_hi = float(table["mean_loss_pct"].min()), float(table["mean_loss_pct"].max())
most = sens.row(0, named=True) if sens.height else None
robin = sens.filter(pl.col("quantity").is_in(th.ROBIN))
assumed = sens.filter(~pl.col("quantity").is_in(th.ROBIN))
spread_txt = {q: f"{m.removeprefix('IOTLB assumption: ')} (x{x:.1f} over {lo:g}-{hi:g})" for q, m, x, lo, hi in sens.select("quantity", "meaning", "spread", "from", "to").iter_rows()}  # fmt: skip
print("Q11 summary (D06 preset, host-iotlb)")
for case, x in cross_txt.items():
    r = row[case]
    print(f"  {case:<28} break-even {x:<24} fixed 512 loses {r['mean_loss_pct']:.1f}% on average, "
          f"{r['max_loss_pct']:.1f}% at worst")  # fmt: skip
if most is not None:
    print(
        f"  most influential: {most['quantity']} (break-even x{most['spread']:.1f} over {most['from']:g}..{most['to']:g})"
    )
print(f"  notebook run time {time.perf_counter() - t_start:.1f} s")

answer(
    "Q11",
    f"Prediction: no constant fits. With D06's costs, 4 CPUs, a 512-entry IOTLB and 500 ns walks, flushing "
    f"the ASID pays from about {cross_txt['base']} (best threshold on the grid: {b['best_threshold']}); "
    + ", ".join(f"{c}: {cross_txt[c]}" for c in cross_txt if c.startswith("cpus = "))
    + f". A fixed 512 costs {b['mean_loss_pct']:.0f}% more per unmap than the best threshold at the base "
    f"(mean over sizes 1-{top} pages, {b['max_loss_pct']:.0f}% at worst; {loss_lo:.0f}-{loss_hi:.0f}% over "
    f"every case swept). "
    + "Of Robin Murphy's quantities the break-even moves most with "
    + "; then ".join(spread_txt[q] for q in robin["quantity"].to_list()[:2])
    + "; of the model's assumptions with "
    + "; then ".join(spread_txt[q] for q in assumed["quantity"].to_list()[:2])
    + f"; weighing device stall x{weights[0]:g}-x{weights[-1]:g} against CPU time moves the base break-even "
    f"to {float(by_weight['crossing'].min()):.1f}-{float(by_weight['crossing'].max()):.1f} pages.",
    numbers=[
        ("break-even unmap size, base case", cross_txt["base"], "predicted"),
        ("fixed 512: extra cost per unmap over the best threshold, base (mean over sizes)",
         f"{b['mean_loss_pct']:.0f}%", "predicted"),
        ("fixed 512: extra cost, range over all cases", f"{loss_lo:.0f}-{loss_hi:.0f}%", "predicted"),
        ("break-even size, lowest to highest over all cases",
         f"{float(be['crossing'].min()):.1f}-{float(be['crossing'].max()):.0f} pages", "predicted"),
    ],
)  # fmt: skip
