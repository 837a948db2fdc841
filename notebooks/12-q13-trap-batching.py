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
# # Q13: what would batching the trapped guest's invalidations save?
#
# QEMU's accelerated SMMUv3 consumes a trapped guest's CMDQ inside the PROD write and forwards every
# invalidation to the host as its own `IOMMU_HWPT_INVALIDATE` ioctl (one entry per call), although the
# host side, `arm_vsmmu_cache_invalidate`, takes an array and issues it in chunks of 63 commands plus a
# CMD_SYNC. An earlier version of the series batched them; the batching was dropped without published
# numbers.
#
# **What this notebook must answer** (Q13): what per-range batching (one ioctl per consumed PROD range)
# would save against one ioctl per command, by granule and guest thread count, on the guest-path model
# (the guest's own driver, the VMM's big lock over every exit, the host's main CMDQ), and which
# assumption the answer depends on most. Every latency here is a **model prediction** on the grace
# preset (fitted to C2's 1-thread rows, which the per-command path reproduces): no batched
# measurement is public.
#
# Sources: [QEMU accel SMMUv3 + CMDQV](../docs/sources.md#qemu-accel-cmdqv) (one invalidation per
# ioctl), [Linux 7.0 SMMUv3 driver](../docs/sources.md#linux-7.0-smmu) (`arm_vsmmu_cache_invalidate`),
# [QEMU 10.2 SMMUv3](../docs/sources.md#qemu-10.2-smmuv3) (consume loop under the big lock),
# [C2 (Chen 2025)](../docs/sources.md#c2-hwqueue-v9) (the rows the grace preset is fitted to).

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis.batching import saving
from cmdqv_lab.analysis.frames import sweep
from cmdqv_lab.platform import load_platform, platform_table
from cmdqv_lab.report import answer, param_table, result_table
from cmdqv_lab.widgets import Control

plots.enable()
grace = load_platform("grace")

# %% [markdown]
# ## The model
#
# `guest-trap` on the grace preset: each guest thread unmaps `granule_kib` (one CMD_TLBI_NH_VA per
# 4 KiB page, grace has no range invalidation) and waits for its CMD_SYNC. Every PROD write exits to the
# VMM, which takes the VM's big lock, consumes the emulated queue and forwards: **per-command**, one ioctl
# (`vmm_ioctl_ns`) per command, each a host batch with its own CMD_SYNC; **batched**, one ioctl per
# consumed range, issued by the host in chunks of `vmm_batch` commands plus a CMD_SYNC. The ioctl cost
# has no public number: it is swept from 300 ns to 2 us, the largest value with which the C2 rows can
# still be fitted (`cmdqv-lab calibrate grace` bisects for it).

# %%
param_table(
    platform_table("grace").filter(pl.col("name").is_in(
        ["vmm_ioctl_ns", "vmm_per_cmd_ns", "vmm_trap_ns", "futex_wake_ns", "vmm_batch", "vmm_forward", "tlbi_service_ns"]
    )).select("name", "value", "unit", "provenance", "source", "doc"),
    "Grace preset: the costs of forwarding (fitted to C2, or assumed)",
)  # fmt: skip

# %% [markdown]
# ## The sweep

# %%
runs = sweep("nb-q13-trap-batching", smoke=smoke)
sv = saving(runs)
nominal = grace.vmm_ioctl_ns if grace.vmm_ioctl_ns in sv["vmm_ioctl_ns"].to_list() else sv["vmm_ioctl_ns"][0]
at_nominal = sv.filter(pl.col("vmm_ioctl_ns") == nominal)
result_table(
    at_nominal.select("threads", "granule_kib", pl.col("per-command").alias("per-command (ns)"),
                      pl.col("batched").alias("batched (ns)"), (pl.col("saving") * 100).alias("saving (%)"), "seeds"),
    f"PREDICTIONS: mean guest unmap latency, per-command vs batched forwarding, ioctl {nominal:.0f} ns",
)  # fmt: skip

# %%
chart_df = sv.with_columns(
    (pl.col("saving") * 100).alias("saving_pct"),
    (pl.col("threads").cast(pl.String) + pl.lit(" thread(s)")).alias("threads_label"),
    (pl.lit("ioctl ") + pl.col("vmm_ioctl_ns").cast(pl.Int64).cast(pl.String) + pl.lit(" ns")).alias("ioctl"),
)
plots.show(
    plots.throughput_vs_cpus(
        chart_df, x="granule_kib", y="saving_pct", color="threads_label", kind="predicted", log_x=True,
        panel="ioctl", x_title="unmap granule (KiB)", y_title="latency saved by batching (%)",
        color_title="guest threads",
        title="What one ioctl per consumed range saves over one per command (trapped guest, grace)",
    )
)  # fmt: skip

# %% [markdown]
# ## What the answer depends on
#
# The saving comes from the ioctls it removes: a 4 KiB unmap is one TLBI, so a range holds one command
# and nothing changes; a 256 KiB unmap is 64 TLBIs, 64 ioctls per command against one (plus a second host
# batch, since a host chunk holds 63). More guest threads queue behind each other's emulations under the
# big lock, so what one emulation saves is saved again by every waiting thread.

# %%
spread = (
    sv.group_by("threads", "granule_kib", maintain_order=True)
    .agg((pl.col("saving").min() * 100).alias("lowest saving (%)"), (pl.col("saving").max() * 100).alias("highest saving (%)"))
    .sort("threads", "granule_kib")
)  # fmt: skip
result_table(spread, "PREDICTIONS: the saving over the ioctl cost's range (300 ns .. 2 us)")

# %% [markdown]
# ## Live exploration (Jupyter only)

# %%
widgets.explore(
    "guest-trap",
    params=[Control("threads", lo=1, hi=8), Control("granule_kib", values=(4, 16, 64, 128, 256)),
            Control("vmm_ioctl_ns", lo=300, hi=2000)],
    compare=Control("vmm_forward", values=("per-command", "batched")),
    fixed={"platform": "grace"},
    metric="op_latency_ns_mean",
    count=300 if smoke else 1000,
)  # fmt: skip

# %% [markdown]
# ## Answer

# %%
def _cell(threads: int, granule: int, frame: pl.DataFrame = at_nominal) -> dict:
    return frame.filter((pl.col("threads") == threads) & (pl.col("granule_kib") == granule)).row(0, named=True)


t_lo, t_hi = int(sv["threads"].min()), int(sv["threads"].max())
g_lo, g_hi = int(sv["granule_kib"].min()), int(sv["granule_kib"].max())
small, big, big_many = _cell(t_lo, g_lo), _cell(t_lo, g_hi), _cell(t_hi, g_hi)
rng_big = spread.filter((pl.col("threads") == t_hi) & (pl.col("granule_kib") == g_hi)).row(0, named=True)
answer(
    "Q13",
    f"Predicted, grace preset, trapped guest: one ioctl per consumed range instead of one per command saves "
    f"**{big['saving'] * 100:.0f} %** of the unmap latency at {g_hi} KiB with {t_lo} thread "
    f"({big['per-command'] / 1e3:.0f} -> {big['batched'] / 1e3:.0f} us) and **{big_many['saving'] * 100:.0f} %** "
    f"with {t_hi} threads ({big_many['per-command'] / 1e3:.0f} -> {big_many['batched'] / 1e3:.0f} us), and "
    f"{small['saving'] * 100:.0f} % at {g_lo} KiB (one TLBI per range: nothing to batch), at an ioctl cost of "
    f"{nominal:.0f} ns. It depends most on that cost, which has no public number: over 300 ns .. 2 us the "
    f"{g_hi} KiB, {t_hi}-thread saving is {rng_big['lowest saving (%)']:.0f}-{rng_big['highest saving (%)']:.0f} %.",
    numbers=[
        (f"saving at {g_hi} KiB, {t_lo} thread (ioctl {nominal:.0f} ns)", f"{big['saving'] * 100:.1f} %", "predicted"),
        (f"saving at {g_hi} KiB, {t_hi} threads (ioctl {nominal:.0f} ns)", f"{big_many['saving'] * 100:.1f} %", "predicted"),
        (f"saving at {g_lo} KiB, {t_lo} thread", f"{small['saving'] * 100:.1f} %", "predicted"),
        (f"saving at {g_hi} KiB, {t_hi} threads over ioctl 300 ns .. 2 us",
         f"{rng_big['lowest saving (%)']:.0f}-{rng_big['highest saving (%)']:.0f} %", "predicted"),
        ("assumption that moves the answer most", "vmm_ioctl_ns (no public number)", "computed"),
    ],
)  # fmt: skip
