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
# # Q12: noisy neighbours: how much can one VM's invalidations hurt another?
#
# On the iommu list, 23 May 2024, about queues shared across VMs:
#
# > **Jason Gunthorpe:** "the primary issue with the queues is DOS, as having any shared queue
# > across VMs is dangerous"
#
# Nobody put a number on it. Two arrangements exist today:
#
# * **shared**: every VM has the trapped (emulated) vSMMU. Its VMM forwards the guest's
#   invalidations, one per ioctl in QEMU's accelerated SMMUv3, to the host, which issues them on
#   its **one main CMDQ**: every VM's commands meet in one FIFO queue.
# * **private**: every VM has its own VINTF with a pass-through **VCMDQ**; the CMDQV scheduler
#   moves between the VCMDQs with work after a turn of at most CMD_BATCH commands and a CLK_BATCH
#   time slice (the seed thread's MAX-BATCH-SIZE).
#
# **What this notebook must answer** (Q12): how much one aggressor VM flooding invalidations can
# hurt a victim VM's latency-sensitive unmaps in each arrangement (victim p99 against the number
# of aggressors and their intensity), and what bounds it; and which assumptions that answer
# depends on most. Every latency below is a **model prediction**: no measurement of two VMs
# sharing an SMMU is public.
#
# Sources: [Gunthorpe 2024](../docs/sources.md#gunthorpe-2024-dos) (the question),
# [seed thread](../docs/sources.md#seed-thread) (the CMDQV scheduler's batch limit),
# [C2 (Chen 2025)](../docs/sources.md#c2-hwqueue-v9) (the Grace fit of both guest paths),
# [QEMU 10.2 SMMUv3](../docs/sources.md#qemu-10.2-smmuv3) (trapped CMDQ consumed under the big lock),
# [QEMU accel SMMUv3 + CMDQV](../docs/sources.md#qemu-accel-cmdqv) (one invalidation per ioctl),
# [Linux 7.0 SMMUv3 driver](../docs/sources.md#linux-7.0-smmu) (`arm_vsmmu_cache_invalidate`: chunks of 63 + SYNC).

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
from functools import partial

import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis.frames import sweep
from cmdqv_lab.analysis.noisy import ARRANGEMENT, hurt, paired, spread, turn_ns, with_arrangement, with_bounds
from cmdqv_lab.platform import load_platform, platform_table
from cmdqv_lab.report import answer, param_table, result_table
from cmdqv_lab.widgets import Control

plots.enable()
grace = load_platform("grace")
load = partial(sweep, smoke=smoke)
P99 = "victim_op_latency_ns_p99"

# %% [markdown]
# ## The model
#
# `guest-noisy` on the grace preset. **Victims** (one vCPU each) run `dma_map_benchmark`: think
# `guest_map_ns`, then a strict 4 KiB unmap (`guest_unmap_ns` of guest CPU work, one
# CMD_TLBI_NH_VA and a CMD_SYNC): the stream the grace preset is fitted on (C2, 1 thread). Without
# aggressors the victim is exactly `guest-trap` (shared) or `guest-vcmdq` (private) with one VM.
# **Aggressors** unmap `aggressor_granule_kib` with no think time (up to 511 TLBIs per unmap, below
# Linux's CMDQ_MAX_TLBI_OPS, in driver batches of 64). Shared: the guest's driver writes its
# emulated vSMMU CMDQ; each PROD write (and CONS read) exits to the VMM under the VM's big lock
# (`vmm_lock`, QEMU's BQL), which forwards the invalidations, one per ioctl (`vmm_forward =
# per-command`, QEMU's accelerated SMMUv3 today) or the whole PROD range in host batches of
# `vmm_batch` (`batched`), each issued on the host main CMDQ with a CMD_SYNC the ioctl waits for;
# private: each VM's VCMDQ, served with the other queues by `smmu_parallel` command processors
# arbitrating round robin (turns of `cmd_batch` commands / `clk_batch_ns`), the guest waiting for
# its CMD_SYNC with Linux's `queue_poll` back-off. Victim metrics are taken only while every
# aggressor is still running.

# %%
q12_rows = [
    "tlbi_service_ns", "sync_service_ns", "fetch_ns", "fetch_line_cmds", "mmio_read_ns", "smmu_parallel",
    "cmd_batch", "clk_batch_ns", "guest_sync_wait", "udelay_us", "poll_spins", "vmm_forward", "vmm_batch",
    "vmm_lock", "vmm_ioctl_ns", "vmm_per_cmd_ns", "vmm_trap_ns", "trap_user_ns", "guest_unmap_ns", "guest_map_ns",
    "vcmdq_log2size", "cmdq_log2size",
]  # fmt: skip
param_table(
    platform_table("grace")
    .filter(pl.col("name").is_in(q12_rows))
    .select("name", "value", "unit", "provenance", "source", "doc"),
    "Grace preset: costs and limits that decide what an aggressor can take",
)

# %% [markdown]
# ## Victim p99 against the number of aggressors and their intensity
#
# 1 victim, 0-8 aggressor VMs (one vCPU each) unmapping 4 KiB, 64 KiB or 1 MiB per op, both
# arrangements; three seeds per point (the victims' think times are random; common seeds across
# configurations).

# %%
agg = with_arrangement(load("nb-q12-aggressors")).with_columns(
    (pl.col("aggressor_granule_kib").cast(pl.String) + " KiB aggressor unmaps").alias("aggressor unmap")
)
plots.show(
    plots.throughput_vs_cpus(
        agg,
        x="aggressor_vms",
        y=P99,
        color="arrangement",
        panel="aggressor unmap",
        x_title="aggressor VMs",
        y_title="victim unmap p99 (ns)",
        title="Victim unmap p99 latency (ns) vs number of aggressor VMs",
    )
)
plots.show(
    plots.throughput_vs_cpus(
        agg.filter(pl.col("aggressor_vms") > 0),
        x="aggressor_vms",
        y="aggressor_commands_per_s",
        color="arrangement",
        panel="aggressor unmap",
        log_y=True,
        x_title="aggressor VMs",
        y_title="aggressor commands/s (all aggressors)",
        title="Invalidation commands/s the aggressors get through vs number of aggressor VMs",
    )
)

# %% [markdown]
# The victim's extra latency: each run with aggressors minus the run without them on the same
# seed (same victim stream), then averaged over seeds with a 95 % interval. The estimate column is
# the queueing estimate of the two sections below (one arbitration turn, or one forwarded chunk,
# per aggressor); it leaves out the host's cache-line contention, so the shared runs can exceed it
# by a few tens of ns per aggressor.

# %%
keys = ["queue_sharing", "aggressor_granule_kib"]
hurt_main = with_arrangement(hurt(with_bounds(agg), keys, carry=["bound_ns"]))
result_table(
    hurt_main.select("arrangement", "aggressor_granule_kib", "aggressor_vms", "base", "with", "extra_ns",
                     "extra_lo", "extra_hi", "extra_pct", "bound_ns"),
    "Victim unmap p99 with and without aggressors (ns; model prediction) and the queueing estimate",
    labels={"base": "p99, no aggressor", "with": "p99 with aggressors", "extra_ns": "extra (ns)",
            "extra_lo": "extra, 95% low", "extra_hi": "extra, 95% high", "extra_pct": "extra (%)",
            "bound_ns": "estimate (ns)"},
)
plots.show(
    plots.explorer(
        hurt_main.select("arrangement", "aggressor_vms", "aggressor_granule_kib", "extra_pct"),
        "aggressor_vms",
        "extra_pct",
        "arrangement",
        "aggressor_granule_kib",
        x_title="aggressor VMs",
        y_title="extra victim p99 (%)",
        slider_title="aggressor unmap size (KiB)",
        title="Extra victim unmap p99 (% of the p99 without aggressors) vs aggressor VMs",
    )
)

# %% [markdown]
# ## Private queues: what bounds an aggressor VCMDQ
#
# The victim's batch waits at most one arbitration turn of every aggressor queue on its command
# processor; it sees its CMD_SYNC at the next CONS read of its `queue_poll` loop (10 reads, then
# reads after udelays of 1, 2, 4 ... us), so the estimate is the poll time of a completion that many
# turns late (the engine's own rule, `sync_observed_k`). A turn is the fewest commands that reach CMD_BATCH or fill CLK_BATCH. Neither value is public
# for Grace: CMD_BATCH = 32 and CLK_BATCH = 256 are QEMU's reset values (256 cycles read as
# 256 ns at an assumed 1 GHz; 64-1024 ns covers 0.25-4 GHz), and whether the SMMU consumes
# VCMDQs in parallel is implementation defined (`smmu_parallel` 1, 2 or 8: 8 gives every queue
# here its own processor). 1 MiB aggressor unmaps, two seeds.

# %%
prv = load("nb-q12-private").with_columns(
    ("CMD_BATCH " + pl.col("cmd_batch").cast(pl.String)).alias("CMD_BATCH"),
    ("SMMU processors: " + pl.col("smmu_parallel").cast(pl.String)).alias("processors"),
)
prv_keys = ["smmu_parallel", "cmd_batch", "clk_batch_ns"]
prv_pairs = paired(prv, prv_keys)
for a in sorted(prv_pairs["aggressor_vms"].unique().to_list()):
    plots.show(
        plots.throughput_vs_cpus(
            prv_pairs.filter(pl.col("aggressor_vms") == a),
            x="clk_batch_ns",
            y="extra_ns",
            color="CMD_BATCH",
            panel="processors",
            x_title="CLK_BATCH time slice (ns; 0: none)",
            y_title="extra victim p99 (ns)",
            title=f"Private VCMDQs: extra victim unmap p99 (ns) vs CLK_BATCH, {a} aggressor VM{'s' if a > 1 else ''}",
        )
    )
hurt_prv = hurt(with_bounds(prv.with_columns(pl.lit("private").alias("queue_sharing"))), prv_keys, carry=["bound_ns"])
result_table(
    hurt_prv.select(*prv_keys, "aggressor_vms", "base", "extra_ns", "extra_lo", "extra_hi", "bound_ns"),
    "Private VCMDQs: extra victim unmap p99 (ns; model prediction) and the one-turn-per-aggressor estimate",
    labels={"base": "p99, no aggressor", "extra_ns": "extra (ns)", "extra_lo": "extra, 95% low",
            "extra_hi": "extra, 95% high", "bound_ns": "estimate (ns)"},
)
no_limit = turn_ns(cmd_batch=0, clk_batch_ns=0, tlbi_ns=grace.tlbi_service_ns, fetch_ns=grace.fetch_ns,
                   fetch_line=grace.fetch_line_cmds)  # fmt: skip
print(f"turn with neither CMD_BATCH nor CLK_BATCH: {no_limit} (an aggressor keeps the SMMU while its queue has work)")

# %% [markdown]
# ## Shared main CMDQ: what bounds the aggressors' share
#
# The trapped path throttles every VM: its VMM forwards one host batch per ioctl and waits for
# the host's CMD_SYNC before the next, under its VM's big lock, so at most one host batch per
# aggressor VM is ahead of a victim's in the FIFO main CMDQ (one per aggressor vCPU without the
# lock). QEMU forwards one command per ioctl today (a host batch of 1 TLBI + CMD_SYNC); an earlier
# posting batched them (Q13), and the host kernel then issues chunks of up to 63 + CMD_SYNC
# (`vmm_batch`; 8 shows a smaller chunk). 1 MiB aggressor unmaps, 1 or 4 vCPUs per aggressor VM,
# two seeds.

# %%
shr = load("nb-q12-shared").with_columns(
    pl.when(pl.col("vmm_lock")).then(pl.lit("VMM big lock")).otherwise(pl.lit("no VMM lock")).alias("lock"),
    (pl.col("aggressor_threads").cast(pl.String) + " vCPUs per aggressor").alias("vcpus"),
)
shr = shr.with_columns(
    (pl.col("lock") + ", " + pl.col("vcpus")).alias("VMM"),
    pl.when(pl.col("vmm_forward") == "per-command").then(1).otherwise(pl.col("vmm_batch")).alias("forward_chunk"),
)
shr_keys = ["forward_chunk", "vmm_lock", "aggressor_threads"]
shr_pairs = paired(shr, shr_keys)
for a in sorted(shr_pairs["aggressor_vms"].unique().to_list()):
    plots.show(
        plots.throughput_vs_cpus(
            shr_pairs.filter(pl.col("aggressor_vms") == a),
            x="forward_chunk",
            y="extra_ns",
            color="VMM",
            log_x=True,
            x_title="TLBIs per forwarded host batch (1: one ioctl per command)",
            y_title="extra victim p99 (ns)",
            title=f"Shared main CMDQ: extra victim unmap p99 (ns) vs TLBIs per forwarded batch, {a} aggressor VM{'s' if a > 1 else ''}",
        )
    )
hurt_shr = hurt(
    with_bounds(shr.with_columns(pl.lit("shared").alias("queue_sharing"))),
    shr_keys,
    carry=["bound_ns", "cas_success_ratio"],
)
result_table(
    hurt_shr.select(*shr_keys, "aggressor_vms", "base", "extra_ns", "extra_lo", "extra_hi", "bound_ns",
                    "cas_success_ratio"),
    "Shared main CMDQ: extra victim unmap p99 (ns; model prediction) and the one-chunk-per-aggressor estimate",
    labels={"base": "p99, no aggressor", "extra_ns": "extra (ns)", "extra_lo": "extra, 95% low",
            "extra_hi": "extra, 95% high", "bound_ns": "estimate (ns)",
            "cas_success_ratio": "host cmpxchg success (first seed)"},
)
storm = hurt_shr.sort("cas_success_ratio").row(0, named=True)
over = hurt_shr.filter(pl.col("extra_ns") > pl.col("bound_ns"))
print(
    f"lowest host cmpxchg success: {storm['cas_success_ratio']:.3f} ({storm['aggressor_vms']} aggressor VMs x "
    f"{storm['aggressor_threads']} vCPUs, VMM lock {storm['vmm_lock']}, {storm['forward_chunk']} TLBIs per forwarded "
    f"batch): extra victim p99 {storm['extra_ns']:.0f} ns against an SMMU queueing estimate of {storm['bound_ns']:.0f} ns; "
    f"{over.height} of {hurt_shr.height} configurations exceed the estimate, by at most "
    f"{(over['extra_ns'] - over['bound_ns']).max() if over.height else 0:.0f} ns"
)

# %% [markdown]
# The estimate counts SMMU time only. On top of it come the host's cache-line transfers on the main
# CMDQ (the lock-free insertion's `cmpxchg` on the `llq` word and the shared lock, Q9), which is why
# small forwards can exceed it by tens of ns per aggressor; the printed line says how far, and how
# much of the host's `cmpxchg` succeeded where contention was highest. Where the model stays below
# the estimate, the aggressors' forwards did not all line up ahead of a victim's at once: the
# estimate is the worst alignment, not the typical one.

# %% [markdown]
# ### Live: re-simulate (needs a running kernel)

# %%
widgets.explore(
    "guest-noisy",
    params=[
        Control("aggressor_granule_kib", values=(4, 64, 256, 1024)),
        Control("aggressor_threads", lo=1, hi=8),
        Control("cmd_batch", values=(1, 8, 32, 128)),
        Control("clk_batch_ns", values=(0.0, 64.0, 256.0, 1024.0)),
        Control("smmu_parallel", lo=1, hi=8),
        Control("vmm_forward", values=("per-command", "batched")),
        Control("vmm_batch", values=(8, 63)),
    ],
    x=Control("aggressor_vms", values=(0, 1)),  # type more into the list; aggressors cost the most
    compare=Control("queue_sharing", values=("shared", "private")),
    metric=P99,
    fixed={"platform": "grace"},
    summary=(P99, "victim_op_latency_ns_mean", "aggressor_ops_per_s", "aggressor_commands_per_s"),
    seeds=2,  # the status line's 95% interval is over seeds
    count=200,  # about 0.3 s per slider move; "more ops" (or the count menu) narrows the interval
)

# %% [markdown]
# ## Answer

# %%
big = int(agg["aggressor_granule_kib"].max())
one = {s: hurt_main.filter((pl.col("queue_sharing") == s) & (pl.col("aggressor_granule_kib") == big)
                           & (pl.col("aggressor_vms") == 1)).row(0, named=True) for s in ARRANGEMENT}  # fmt: skip
most_a = int(hurt_main["aggressor_vms"].max())
many = {s: hurt_main.filter((pl.col("queue_sharing") == s) & (pl.col("aggressor_vms") == most_a))
        .sort("extra_ns").row(-1, named=True) for s in ARRANGEMENT}  # fmt: skip
# the assumptions, one aggressor: the spread of the extra p99 along each axis (the others at any value)
prv1 = hurt_prv.filter(pl.col("aggressor_vms") == 1)
shr1 = hurt_shr.filter(pl.col("aggressor_vms") == 1)
serial = prv1.filter(pl.col("smmu_parallel") == 1)
prv_lo, prv_hi = serial["extra_ns"].min(), serial["extra_ns"].max()
prv_worst = serial.sort("extra_ns").row(-1, named=True)
# every queue on its own processor: the host's main CMDQ, the victim's and each aggressor's VCMDQ
alone = prv1.filter(pl.col("smmu_parallel") >= 2 + pl.col("aggressor_vms"))
isolated = f", {alone['extra_ns'].max():.0f} ns when every VCMDQ has its own processor," if alone.height else ""
cb = sorted(serial["cmd_batch"].unique().to_list())
ck = sorted(serial["clk_batch_ns"].unique().to_list())
vb = sorted(shr1["forward_chunk"].unique().to_list())
vt = sorted(shr1["aggressor_threads"].unique().to_list())
cb_s, ck_s, vb_s, vt_s = (f"{v[0]:g}" if v[0] == v[-1] else f"{v[0]:g}-{v[-1]:g}" for v in (cb, ck, vb, vt))
shr_lo, shr_hi = shr1["extra_ns"].min(), shr1["extra_ns"].max()
shr_worst = shr1.sort("extra_ns").row(-1, named=True)


moves = {
    "whether the SMMU consumes VCMDQs in parallel (smmu_parallel)": spread(prv1, "smmu_parallel"),
    "CMD_BATCH": spread(prv1, "cmd_batch"),
    "CLK_BATCH": spread(prv1, "clk_batch_ns"),
    "what the VMM forwards per ioctl (vmm_forward, vmm_batch)": spread(shr1, "forward_chunk"),
    "the VMM big lock": spread(shr1, "vmm_lock"),
}
ranked = sorted(moves.items(), key=lambda kv: -kv[1])
result_table(
    pl.DataFrame({"assumption": [k for k, _ in ranked], "largest change of the extra p99, 1 aggressor (ns)":
                  [v for _, v in ranked]}),
    "How much each assumption moves one aggressor's effect on the victim (model prediction)",
)
default_turn = turn_ns(cmd_batch=grace.cmd_batch, clk_batch_ns=grace.clk_batch_ns, tlbi_ns=grace.tlbi_service_ns,
                       fetch_ns=grace.fetch_ns, fetch_line=grace.fetch_line_cmds)  # fmt: skip
sh, pr = one["shared"], one["private"]
answer(
    "Q12",
    f"Predicted, grace preset, one victim (4 KiB unmaps) and one aggressor VM flooding {big} KiB unmaps: the victim's "
    f"unmap p99 grows by **{sh['extra_ns']:.0f} ns ({sh['extra_pct']:.1f} %)** with the shared main CMDQ "
    f"(p99 {sh['base'] / 1e3:.1f} us, the trapped path dominates) and by **{pr['extra_ns']:.0f} ns "
    f"({pr['extra_pct']:.1f} %)** with a private VCMDQ per VM (p99 {pr['base'] / 1e3:.1f} us); with {most_a} "
    f"aggressors at most {many['shared']['extra_pct']:.0f} % shared and {many['private']['extra_pct']:.0f} % private. "
    f"Both are limited: private by one CMDQV arbitration turn "
    f"per aggressor VCMDQ (CMD_BATCH {grace.cmd_batch}, CLK_BATCH {grace.clk_batch_ns:.0f} ns: a {default_turn:.0f} ns "
    f"turn) plus the guest's CONS poll; shared by one forwarded host batch per aggressor VM, because each VMM waits for its ioctl's "
    f"CMD_SYNC under its big lock (estimates; the shared runs add host cache-line waits). Over the assumptions' ranges one aggressor adds {prv_lo:.0f}-{prv_hi:.0f} ns "
    f"private with one SMMU processor (worst: CMD_BATCH {prv_worst['cmd_batch']}, CLK_BATCH "
    f"{prv_worst['clk_batch_ns']:.0f} ns){isolated} and "
    f"{shr_lo:.0f}-{shr_hi:.0f} ns shared (worst: {shr_worst['forward_chunk']} TLBIs per forwarded batch"
    f"{'' if shr_worst['vmm_lock'] else ', no VMM lock'}, {shr_worst['aggressor_threads']} vCPU{'s' if shr_worst['aggressor_threads'] > 1 else ''}); with neither CMD_BATCH nor CLK_BATCH nothing bounds a "
    f"private aggressor. The answer depends most on {ranked[0][0]}, then {ranked[1][0]}.",
    numbers=[
        (f"extra victim p99, 1 aggressor, shared main CMDQ ({big} KiB flood)", f"{sh['extra_ns']:.0f} ns ({sh['extra_pct']:.1f} %)", "predicted"),
        (f"extra victim p99, 1 aggressor, private VCMDQs ({big} KiB flood)", f"{pr['extra_ns']:.0f} ns ({pr['extra_pct']:.1f} %)", "predicted"),
        (f"private, 1 aggressor, over CMD_BATCH {cb_s} x CLK_BATCH {ck_s} ns (one SMMU processor)", f"{prv_lo:.0f}-{prv_hi:.0f} ns", "predicted"),
        (f"shared, 1 aggressor VM of {vt_s} vCPUs, over {vb_s} TLBIs per forwarded batch, with or without the VMM lock", f"{shr_lo:.0f}-{shr_hi:.0f} ns", "predicted"),
        ("CMDQV turn at CMD_BATCH 32, CLK_BATCH 256 ns (the private bound per aggressor)", f"{default_turn:.0f} ns", "computed"),
        ("assumption that moves the answer most", ranked[0][0], "computed"),
    ],
)  # fmt: skip
