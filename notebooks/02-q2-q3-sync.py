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
# # Q2 and Q3: which CMD_SYNC completes what
#
# > **Robin Murphy (Q2):** "Also, a sync on its own gets trapped to the main cmdq but a sync on the
# > end of a batch of TLBIs or ATCIs goes to the VCMDQ, huh?"
#
# > **Nicolin Chen:** "I thought that you pointed out a potential corner case where a batch could be
# > submitted separately, e.g. Batch A {TLBI_NH_VAx2} and then Batch B {CMD_SYNC}. Right now the
# > SMMUv3 driver submits all TLBI commands with sync=true, so we don't run into a problem so far."
#
# > **Nicolin Chen (Q3):** "It's designed to take CMD_SYNC in same queue too. Though it also has
# > features, such as HW-inserted-SYNC when scheduler moves away from the current queue or when the
# > number of cmds in vcmdq meets a MAX-BATCH-SIZE setting (in config register), yet it'd be safer
# > for software to ensure the CMD_SYNC is inserted to the end of the batch."
#
# > **Robin Murphy:** "It's not generally much use to software to know that the hardware may or may
# > not have automatically inserted syncs at arbitrary points in the timeline; certainly for our
# > flow in Linux, which I don't think is atypical, we need to know for sure that specific
# > invalidation commands have completed before we can safely reuse resources associated with the
# > invalidated translations, and the only way to guarantee that is to explicitly observe the
# > consumption of a CMD_SYNC from a later queue index."
#
# **What this notebook answers** (Q2 and Q3). *Q2*: a CMD_SYNC only covers earlier
# commands of its own queue. Show the hazard (invalidations on queue A "completed" by a SYNC on
# queue B, then the IOVA reused) and count hazards per routing policy, on the thread's corner cases
# and on a stream whose lone SYNCs are swept. *Q3*: software cannot observe hardware-inserted
# SYNCs, so relying on them gives no completion guarantee; what do they cost in throughput and
# latency when several VCMDQs share the SMMU?
#
# Sources: [seed thread](../docs/sources.md#seed-thread) (the quotations),
# [Linux 7.0 SMMUv3 driver](../docs/sources.md#linux-7.0-smmu) (SYNC completion per queue, CS=SIG_NONE on
# VCMDQs), [QEMU 10.2 SMMUv3](../docs/sources.md#qemu-10.2-smmuv3) (synchronous consumption of the
# emulated queue), [C2 (Chen 2025)](../docs/sources.md#c2-hwqueue-v9) (the Grace fit).

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import time

import numpy as np
import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis.frames import sweep, value
from cmdqv_lab.analysis.hazards import (
    POLICIES,
    hw_sync_explore_rows,
    hw_sync_frame,
    hw_sync_overhead,
    lone_sync_sweep,
    q2_corner_cases,
    rely_on_hw_syncs,
)
from cmdqv_lab.device.cmdqv import CmdqvParams
from cmdqv_lab.device.commands import CS_NONE, Opcode, encode_batch, sync_command
from cmdqv_lab.device.smmu import SMMU, SmmuConfig
from cmdqv_lab.platform import platform_table
from cmdqv_lab.report import answer, param_table, result_table

plots.enable()
t_start = time.perf_counter()

# %% [markdown]
# ## Q2.1 The hazard, step by step (functional model)
#
# The functional model of an SMMU with a Tegra241 CMDQV: VINTF1 is guest-owned (VMID 7) with one
# VCMDQ. The guest unmaps two pages the way Nicolin describes (batch A, then batch B), and the
# 2021 patch routes them: `cmds[0]` of batch A is a TLBI, so A goes to the VCMDQ; batch B has
# `n = 0`, looks like CMD_SYNC, which the patch's switch does not list, so the lone SYNC is
# trapped and the VMM forwards it to the main command queue. The model has no clock: which queue
# the SMMU consumes first is up to its scheduler (here: another guest keeps the command processor
# busy, so VCMDQ0 has not been reached yet when the main queue runs the SYNC).

# %%
smmu = SMMU(SmmuConfig(), cmdqv=CmdqvParams(num_vintfs=2, num_vcmdqs=2, hw_sync=True))
cmdqv = smmu.cmdqv
assert cmdqv is not None
cmdqv.vintfs[1].configure(vmid=7, hyp_own=False)
vq = cmdqv.setup_lvcmdq(q=0, vintf=1, lidx=0, log2size=8)
IOVA = 0x4000_0000
timeline: list[dict[str, object]] = []


def snap(actor: str, action: str) -> None:
    timeline.append({"step": len(timeline) + 1, "actor": actor, "action": action,
                     "vcmdq0 PROD/CONS": f"{vq.queue.prod_pos}/{vq.queue.cons_pos}",
                     "cmdq PROD/CONS": f"{smmu.cmdq.queue.prod_pos}/{smmu.cmdq.queue.cons_pos}"})  # fmt: skip


tlbis = encode_batch(Opcode.CMD_TLBI_NH_VA, asid=1, addr=np.array([IOVA, IOVA + 0x1000], np.uint64), tg=1, ttl=3,
                     leaf=1)  # fmt: skip
batch_a = vq.submit(tlbis)
snap("guest vCPU", "batch A {TLBI_NH_VA x2}: cmds[0] is a TLBI, so the VCMDQ; written, PROD moved")
batch_b = smmu.cmdq.submit(sync_command(cs=CS_NONE).encode().reshape(1, 2))
snap("VMM", "batch B {CMD_SYNC}: n = 0 looks like a SYNC: trapped, forwarded to the main CMDQ")
smmu.cmdq.consume_all()
sync_done = smmu.cmdq.consumed(batch_b.stop - 1)
snap("SMMU", f"main CMDQ runs the SYNC: complete = {sync_done}; it covers the main CMDQ only")
tlbis_done = all(vq.consumed(p) for p in batch_a)
snap("guest vCPU", f"SYNC seen: unmap returns, IOVA {IOVA:#x} is reused (TLBIs done: {tlbis_done})")
cmdqv.schedule()
snap("CMDQV scheduler", "reaches VCMDQ0: both TLBIs execute now, after the reuse; then a hardware SYNC")
result_table(pl.DataFrame(timeline), "The hazard step by step (functional model)")
log = pl.DataFrame(smmu.log.records()).select("seq", "kind", "queue", "pos", "opcode", "detail_reason")
result_table(log, "Event log of the SMMU and its CMDQV")
assert sync_done and not tlbis_done

# %% [markdown]
# Between steps 4 and 5 the guest's new mapping of the IOVA can be hit by a stale TLB entry for
# the old page: a device DMA lands in memory the guest has already reused. The hardware SYNC of
# step 5 (`hw_sync` in the log) comes afterwards and signals nothing. The same two batches with
# the SYNC on the *same* VCMDQ are safe: a CONS-polling waiter sees the SYNC's slot consumed only
# after both TLBIs, because the queue consumes in order:

# %%
vq2 = cmdqv.setup_lvcmdq(q=1, vintf=1, lidx=1, log2size=8)
a2 = vq2.submit(tlbis)
b2 = vq2.submit(sync_command(cs=CS_NONE).encode().reshape(1, 2))
order = []
while vq2.can_consume():
    vq2.step()
    order.append({"consumed": vq2.queue.cons_pos, "sync_seen": vq2.consumed(b2.stop - 1),
                  "tlbis_done": all(vq2.consumed(p) for p in a2)})  # fmt: skip
result_table(pl.DataFrame(order), "The same batches with the SYNC on the same VCMDQ: consumption order")
assert all(r["tlbis_done"] for r in order if r["sync_seen"])

# %% [markdown]
# ## Q2.2 Hazards per policy on the thread's corner cases (checker)
#
# The checker's `guest-mixed` scenario: 2 guests x 2 vCPUs issue strict unmaps of 1..8
# TLBI_NH_VA + CMD_SYNC; 10 % carry one unsupported command (CFGI_CD, CFGI_STE, TLBI_NH_VAA or
# TLBI_NH_ALL) at a random position, 20 % add an ATC_INV (two of 18 devices have no SID pair), and
# 5 % of the plain TLBI unmaps are issued as Nicolin's {TLBIs} then {CMD_SYNC}. Every policy's
# routing is replayed through the functional model; a **Q2 hazard** is an executed invalidation
# whose op waits for a SYNC on another queue but for none on its own. They come in two directions:
#
# - *on the VCMDQ, SYNC trapped*: the case above. The VCMDQ runs asynchronously in hardware:
#   a real hazard;
# - *trapped, SYNC on the VCMDQ*: the trapped commands went through the emulated vSMMU. QEMU
#   happens to consume the emulated queue synchronously inside the trapped PROD write, and its
#   accelerated path waits for the host's SYNC, so today's VMM completes them anyway; the guest
#   cannot know that (a VMM may forward asynchronously), so it is an architectural hazard.

# %%
corner_runs = sweep("nb-q2-corner-cases", smoke=smoke)
gm_ops = int(corner_runs["count"][0])
corner, examples = q2_corner_cases(corner_runs)
assert corner["disagreements"].sum() == 0
result_table(corner.drop("disagreements"), f"guest-mixed ({gm_ops} unmaps): hazards per policy (checker)")
print("first-opcode, first Q2 hazard:", examples["first-opcode"])
plots.show(
    plots.hazard_counts(
        corner.unpivot(index="policy", on=["ill", "q2", "q3", "unsynced"], variable_name="hazard", value_name="count"),
        title=f"guest-mixed ({gm_ops} unmaps): hazards per policy",
    )
)  # fmt: skip

# %% [markdown]
# `q2` counts invalidation commands at risk, `q2_unmaps` the unmaps (ops) holding at least one.
#
# On the thread's corner cases only first-opcode fails Q2 (and Q1). That is not the whole story:
# in the registry's `mixed` workload a lone SYNC can also follow a batch A that carries an
# unsupported command. Then `scan` traps batch A but sends the lone SYNC to the VCMDQ, and
# `split`/`homogeneous` leave A's trapped part without a waited SYNC. Sweep the fraction of unmaps
# issued as {TLBIs...} + {CMD_SYNC} (`split_sync_fraction`), with and without the ATC_INV batch
# that follows each unmap in Linux's order (its SYNC, on the VCMDQ, happens to cover the VCMDQ's
# earlier TLBIs):

# %%
swept = lone_sync_sweep(sweep("nb-q2-lone-sync", smoke=smoke))
result_table(
    swept.filter(pl.col("split_sync_fraction") == 0.05).select("atc_batch", "policy", "ill", "q2", "q2_unmaps",
                                                               "q2_unmaps_per_1e4"),
    "Q2 hazards per policy with 5% lone SYNCs (registry mixed stream, 5% unsupported)",
)  # fmt: skip
plots.show(
    plots.explorer(swept.select("atc_batch", "split_sync_fraction", "policy", "q2_unmaps_per_1e4"),
                   "split_sync_fraction", "q2_unmaps_per_1e4", "policy", "atc_batch", kind="computed",
                   title="Unmaps with a Q2 hazard per 10^4 (registry mixed stream, 5% unsupported)")
)  # fmt: skip

# %% [markdown]
# ## Q2.3 What the fix costs
#
# `scan-fanout` is `scan` plus one rule: a CMD_SYNC the issuer waits for is also issued, and
# waited for, on every other queue the issuer used since its previous waited SYNC. The checker
# counts the SYNCs it adds; the timing engine prices them with scenario `guest-wl-mixed` (the same
# registry stream issued by guests, built from the parts `guest-vcmdq` uses: routing, the trap and
# pass-through paths of `cmdqv_lab.virt.paths`, the Grace preset): one VM, one VCMDQ per VM, an IRQ
# thread for VCMDQ errors forwarded to the guest (sweep `nb-q2-fix-cost`).


# %%
fix_cost = sweep("nb-q2-fix-cost", smoke=smoke).select(
    "split_sync_fraction", "policy", "seed",
    (pl.col("op_latency_ns_mean") / 1e3).alias("mean_us"), (pl.col("op_latency_ns_p99") / 1e3).alias("p99_us"),
    (pl.col("syncs") / pl.col("ops")).alias("syncs_per_op"), (pl.col("exits") / pl.col("ops")).alias("exits_per_op"),
)  # fmt: skip
fix_summary = fix_cost.group_by("split_sync_fraction", "policy", maintain_order=True).agg(pl.exclude("seed").mean()).sort(pl.all())
result_table(fix_summary, "What the fix costs: guest unmap latency per policy (model prediction, Grace)")
plots.show(plots.throughput_vs_cpus(fix_cost, x="split_sync_fraction", y="mean_us", color="policy",
                                    title="Mean unmap latency, mixed stream in a Grace guest"))  # fmt: skip

# %% [markdown]
# ## Q3.1 Relying on hardware-inserted SYNCs (checker)
#
# `rely-hw-sync` routes like `scan` but drops the CMD_SYNC of every VCMDQ part: completion is left
# to the SYNCs the CMDQV scheduler inserts when it leaves a queue or a turn reaches CMD_BATCH
# commands. The checker finds which invalidations only such a SYNC "completed" (**q3**) and which
# nothing completed (**unsynced**: with `hw_sync` off, or trapped batches whose lone SYNC was
# dropped). Whether the hardware inserted a SYNC is invisible to the guest either way: it never
# observes a CONS past a SYNC it wrote.

# %%
rely_runs = sweep("nb-q3-rely-hw-sync", smoke=smoke)
rely, vcmdq_invals = rely_on_hw_syncs(rely_runs)
print(f"rely-hw-sync sends {vcmdq_invals} invalidations to VCMDQs without a SYNC of their own")
result_table(rely, "Relying on hardware-inserted SYNCs (checker)")
print(rely_runs.filter(pl.col("example_q3") != "")["example_q3"][0])

# %% [markdown]
# What relying on them would save: the guest stops waiting for its own SYNC. Timing of
# `guest-vcmdq` (Grace, 2 vCPUs, hardware SYNCs on), `scan` against `rely-hw-sync`:

# %%
rely_t = (
    sweep("nb-q3-rely-timing", smoke=smoke)
    .group_by("granule_kib", "policy", maintain_order=True)
    .agg((pl.col("op_latency_ns_mean") / 1e3).mean().alias("mean_us"))
    .sort(pl.all())
)
result_table(rely_t, "What relying on hardware SYNCs would save (model prediction)")

# %% [markdown]
# ## Q3.2 What hardware-inserted SYNCs cost (timing sweeps)
#
# The timing engine's SMMU arbitrates round robin across queues, a turn lasting at most CMD_BATCH
# commands (and CLK_BATCH of time); with `hw_sync_insert` it executes a SYNC costing `hw_sync_ns`
# at every turn end and whenever it leaves a queue. They complete nothing anyone waits for, so
# they are pure command-processor time. Two topologies, both with one SMMU command processor
# (`smmu_parallel = 1`, an assumption: parallel consumption is implementation defined):
#
# - guests: `guest-vcmdq`, 1 or 4 VMs x 2 vCPUs x 2 VCMDQs, 64 KiB unmaps (16 TLBIs + SYNC);
# - host: `host-map-unmap`, 16 CPUs x 8 TLBIs + SYNC on 2 or 8 VCMDQs (cpu % vcmdqs).
#
# CMD_BATCH 1 .. 64 without a time slice, then QEMU's reset values (CMD_BATCH 32, CLK_BATCH 256
# read as ns at 1 GHz); `hw_sync_ns` 50 (like a software SYNC's service), 200 and 1000 ns (a
# SYNC that must drain outstanding invalidations; no public number).

# %%
q3_fields = ["cmd_batch", "clk_batch_ns", "hw_sync_insert", "hw_sync_ns", "smmu_parallel", "tlbi_service_ns",
             "sync_service_ns", "fetch_ns", "fetch_line_cmds", "vcmdq_sync_wait", "guest_unmap_ns", "think_ns"]  # fmt: skip
param_table(platform_table("grace").filter(pl.col("name").is_in(q3_fields)).select("name", "value", "unit",
            "provenance", "source"), "Platform grace: arbitration and SYNC costs (the swept ones are defaults here)")  # fmt: skip
hw_guest = hw_sync_frame(sweep("nb-q3-hw-sync-guest", smoke=smoke), "vms")
hw_host = hw_sync_frame(sweep("nb-q3-hw-sync-host", smoke=smoke), "vcmdqs")
ov_guest, ov_host = hw_sync_overhead(hw_guest), hw_sync_overhead(hw_host)
result_table(
    ov_guest.filter((pl.col("hw_sync") != "off") & (pl.col("size") == ov_guest["size"].max()))
    .select("turn_limit", "cmd_batch", "hw_sync", "mean_us", "latency_change"),
    "Guests: unmap latency with hardware SYNCs against none (model prediction, most VMs)",
)
result_table(
    ov_host.filter((pl.col("hw_sync") != "off") & (pl.col("size") == ov_host["size"].max()))
    .select("turn_limit", "cmd_batch", "hw_sync", "kops_per_s", "throughput_change"),
    "Host: throughput with hardware SYNCs against none (model prediction, most VCMDQs)",
)

# %%
big_vms, big_q = hw_guest["vms"].max(), hw_host["vcmdqs"].max()
only = pl.col("turn_limit") == "CMD_BATCH only"
plots.show(plots.throughput_vs_cpus(hw_guest.filter(only & (pl.col("vms") == big_vms)), x="cmd_batch", y="mean_us",
                                    color="hw_sync", log_x=True,
                                    title=f"Guests: mean unmap latency vs CMD_BATCH, {big_vms} VMs"))  # fmt: skip
plots.show(plots.throughput_vs_cpus(hw_host.filter(only & (pl.col("vcmdqs") == big_q)), x="cmd_batch",
                                    y="kops_per_s", color="hw_sync", log_x=True, y_title="thousand map+unmap/s",
                                    title=f"Host: map+unmap per second vs CMD_BATCH, 16 CPUs on {big_q} VCMDQs"))  # fmt: skip

# %% [markdown]
# ### Explore: hardware SYNC cost as an assumption
#
# The slider sets `hw_sync_ns`; each line is one topology with hardware SYNCs on or off (the "off"
# runs do not depend on it and are repeated at every position). CMD_BATCH only, no time slice.


# %%
plots.show(plots.explorer(hw_sync_explore_rows(hw_guest, "VMs", "mean_us"), "cmd_batch", "mean_us", "series",
                          "hw_sync_ns", log_x=True, title="Guests: mean unmap latency vs CMD_BATCH"))  # fmt: skip
plots.show(plots.explorer(hw_sync_explore_rows(hw_host, "VCMDQs", "kops_per_s"), "cmd_batch", "kops_per_s", "series",
                          "hw_sync_ns", log_x=True, y_title="thousand map+unmap/s",
                          title="Host: map+unmap per second vs CMD_BATCH"))  # fmt: skip

# %% [markdown]
# ### Live: one configuration
#
# In Jupyter, re-run `guest-vcmdq` with other arbitration settings and SYNC costs.

# %%
widgets.explore(
    "guest-vcmdq",
    params=[
        "vms",
        "vcmdqs_per_vm",
        "granule_kib",
        "policy",
        "hw_sync_insert",
        "cmd_batch",
        "clk_batch_ns",
        "hw_sync_ns",
    ],
    fixed={"threads": 2},
    count=2000 if smoke else 10_000,
)

# %% [markdown]
# ## Answers
#
# Every number below is read from the runs above.


# %%
val = value
SF = 0.05
no_atc = "no ATC_INV batch"
fo_corner = val(corner, "q2_unmaps_per_1e4", policy="first-opcode")
fo_vq, fo_all = (
    int(val(corner, "q2_on_vcmdq", policy="first-opcode")),
    int(val(corner, "q2", policy="first-opcode")),
)
others_corner = int(corner.filter(pl.col("policy") != "first-opcode")["q2"].sum())
sw = {
    p: val(swept, "q2_unmaps_per_1e4", policy=p, split_sync_fraction=SF, atc_batch=no_atc) for p in POLICIES
}
fan_total = int(swept.filter(pl.col("policy") == "scan-fanout")["q2"].sum() + corner.filter(
    pl.col("policy") == "scan-fanout")["q2"].sum())  # fmt: skip
fan_syncs = val(
    swept, "inserted_syncs_per_1e4_ops", policy="scan-fanout", split_sync_fraction=SF, atc_batch=no_atc
)
lat_scan = val(fix_summary, "mean_us", policy="scan", split_sync_fraction=SF)
lat_fan = val(fix_summary, "mean_us", policy="scan-fanout", split_sync_fraction=SF)
answer(
    "Q2",
    f"A CMD_SYNC covers only its own queue: under the 2021 first-opcode routing every lone SYNC is trapped while its "
    f"TLBIs sit on the VCMDQ: on the thread's corner cases {fo_corner:.0f} of 10^4 unmaps return while their TLBIs "
    f"are unfinished ({fo_vq} of {fo_all} invalidations at risk sit on the VCMDQ, 'completed' by a main-queue SYNC, "
    f"then the IOVA is reused); scan, split and homogeneous are clean there ({others_corner}) but not in general: "
    f"with {SF:.0%} lone SYNCs and 5% unsupported commands {sw['scan']:.0f} / {sw['split']:.0f} / "
    f"{sw['homogeneous']:.0f} of 10^4 unmaps are at risk (first-opcode {sw['first-opcode']:.0f}); scan-fanout (a waited SYNC on every queue used since the last one) "
    f"has {fan_total} hazards in every run, for {fan_syncs:.0f} extra SYNCs per 10^4 unmaps and a mean unmap latency "
    f"of {lat_fan:.1f} us vs {lat_scan:.1f} us for scan.",
    numbers=[
        ("unmaps at risk per 10^4, first-opcode, corner cases", f"{fo_corner:.0f}", "computed"),
        (f"unmaps at risk per 10^4 with {SF:.0%} lone SYNCs: scan / split / homogeneous", f"{sw['scan']:.0f} / {sw['split']:.0f} / {sw['homogeneous']:.0f}", "computed"),
        ("hazards under scan-fanout, every run", f"{fan_total}", "computed"),
        ("mean unmap latency, scan-fanout vs scan (Grace)", f"{lat_fan:.1f} vs {lat_scan:.1f} us", "predicted"),
    ],
)  # fmt: skip

# %%
on_q3 = val(rely, "q3", hw_sync=True, cmd_batch=32)
off_uns = val(rely, "unsynced", hw_sync=False, cmd_batch=32)
save = {g: val(rely_t, "mean_us", policy="scan", granule_kib=g) - val(rely_t, "mean_us", policy="rely-hw-sync",
                                                                      granule_kib=g) for g in (4, 64)}  # fmt: skip


def ov(frame: pl.DataFrame, size: int, turn: str, cb: int, hw: str, col: str) -> float:
    return 100 * val(frame, col, size=size, turn_limit=turn, cmd_batch=cb, hw_sync=hw)


cb_lo = int(hw_guest["cmd_batch"].min())
answer(
    "Q3",
    f"Hardware-inserted SYNCs give software nothing to wait on: relying on them (rely-hw-sync) leaves "
    f"{on_q3 / vcmdq_invals:.0%} of the invalidations it sends to VCMDQs completed only by an unobservable hardware "
    f"SYNC, and {off_uns / vcmdq_invals:.0%} completed by nothing when the hardware inserts none (the same guest "
    f"code and observations either way), to save {save[4]:.1f} us per 4 KiB and {save[64]:.1f} us per 64 KiB "
    f"unmap; so software must still end each batch with its own SYNC and the hardware "
    f"ones are pure cost: with {big_vms} VMs sharing one SMMU processor, hw SYNCs of 50 ns cost "
    f"{ov(ov_guest, big_vms, 'CMD_BATCH only', cb_lo, 'on, 50 ns', 'latency_change'):+.0f}% unmap latency at "
    f"CMD_BATCH {cb_lo}, {ov(ov_guest, big_vms, 'CMD_BATCH only', 32, 'on, 50 ns', 'latency_change'):+.1f}% at "
    f"32 and {ov(ov_guest, big_vms, 'QEMU reset', 32, 'on, 50 ns', 'latency_change'):+.0f}% with QEMU's reset "
    f"time slice (CLK_BATCH 256); 16 host CPUs on {big_q} VCMDQs lose "
    f"{-ov(ov_host, big_q, 'CMD_BATCH only', cb_lo, 'on, 50 ns', 'throughput_change'):.0f}% / "
    f"{-ov(ov_host, big_q, 'CMD_BATCH only', 32, 'on, 50 ns', 'throughput_change'):.1f}% / "
    f"{-ov(ov_host, big_q, 'QEMU reset', 32, 'on, 50 ns', 'throughput_change'):.0f}% throughput"
    + (
        f"; if a hardware SYNC costs 1000 ns the QEMU-reset loss is "
        f"{-ov(ov_host, big_q, 'QEMU reset', 32, 'on, 1000 ns', 'throughput_change'):.0f}%."
        if "on, 1000 ns" in ov_host["hw_sync"].to_list()
        else "."
    ),
    numbers=[
        ("invalidations completed only by a hardware SYNC", f"{on_q3 / vcmdq_invals:.0%}", "computed"),
        ("saved by relying on them, 4 / 64 KiB unmap", f"{save[4]:.1f} / {save[64]:.1f} us", "predicted"),
        (f"unmap latency cost of 50 ns hw SYNCs at CMD_BATCH {cb_lo}, {big_vms} VMs",
         f"{ov(ov_guest, big_vms, 'CMD_BATCH only', cb_lo, 'on, 50 ns', 'latency_change'):+.0f}%", "predicted"),
    ],
)  # fmt: skip
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s (smoke={smoke})")

# %% [markdown]
# **Modelled**: per-queue CMD_SYNC completion, the CMDQV round-robin scheduler with CMD_BATCH turns
# and hardware SYNCs that signal nothing, each policy's routing and inserted/dropped SYNCs, guest
# error recovery, the Grace trap and pass-through paths, one SMMU command processor serving every
# queue. **Assumed**: the cost of a hardware SYNC (`hw_sync_ns`, swept), CLK_BATCH as a time slice
# in ns at 1 GHz (QEMU's reset value), round-robin arbitration (NVIDIA has not published it),
# `smmu_parallel = 1`. **Not modelled**: the guest's IOVA reuse itself (the checker reports the
# missing guarantee, the timeline above shows the window); a VMM that completes trapped commands
# asynchronously (the "trapped" direction of Q2 matters only with one). The mixed-stream timing
# is scenario `guest-wl-mixed` (same engine parts as `guest-vcmdq`).
