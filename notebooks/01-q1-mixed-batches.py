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
# # Q1: mixed batches on a guest-owned VCMDQ
#
# The 2021 Tegra241 CMDQV v3 patch ([seed thread](../docs/sources.md#seed-thread), Dec 2021) decided
# where a guest's batch goes from its *first* command only:
#
# ```c
# /* Check for supported CMDs if VINTF is owned by guest (not hypervisor) */
# if (!FIELD_GET(VINTF_HYP_OWN, vintf0->cfg)) {
#         u64 opcode = (n) ? FIELD_GET(CMDQ_0_OP, cmds[0]) : CMDQ_OP_CMD_SYNC;
# ```
#
# > **Robin Murphy:** "I'm not sure there was ever a conscious design decision that batches only
# > ever contain one type of command - if something needs to start depending on that behaviour
# > then that dependency probably wants to be clearly documented."
#
# > **Nicolin Chen:** "the SMMUv3 driver currently seems to use loop by adding one type of cmds to
# > any batch and submitting it right away so checking opcode of cmds[0] alone seems to be
# > sufficient at this moment, yet it might not be so in the future. We'd need to apply certain
# > constrains on the type of cmds in the batch in SMMUv3 driver upon smmu->nvidia_grace_cmdqv, or
# > fallback to the SMMUv3's CMDQ pathway here if one of cmds is not supported."
#
# **What this notebook answers** (Q1): how often a mixed batch sends an unsupported
# command to a guest-owned VCMDQ (CERROR_ILL), as a function of the fraction of unsupported
# commands and of whether they are mixed per command or per batch; and the safety and cost of the
# alternatives: the first-opcode check (the patch), scanning the whole batch, splitting a batch at
# unsupported commands, keeping batches homogeneous, and `scan-fanout` (scan plus the Q2 fix of
# notebook 02).
#
# **How**: (1) the real Linux 6.1 command streams in `data/traces` tell whether today's batches are
# mixed at all; (2) the correctness checker routes a synthetic guest stream under each policy and
# replays it through the *functional* CMDQV model, which raises ILL exactly where a guest-owned
# VINTF would; (3) the timing engine, fitted to Grace guest measurements (C2),
# prices each policy in unmap latency, VM exits and guest interrupts.
#
# Sources: [seed thread](../docs/sources.md#seed-thread), [C2 (Chen 2025)](../docs/sources.md#c2-hwqueue-v9),
# [C3 (kvm 2023)](../docs/sources.md#c3-kvm-microbench), [captured traces](../docs/sources.md#traces-linux6.1),
# [Linux 7.0 SMMUv3 driver](../docs/sources.md#linux-7.0-smmu) (the batch API that now splits),
# [QEMU 10.2 SMMUv3](../docs/sources.md#qemu-10.2-smmuv3) (the trapped path).

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import time

import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis.frames import sweep, value
from cmdqv_lab.analysis.hazards import closed_form_check, policy_safety
from cmdqv_lab.analysis.traces import batch_mixing
from cmdqv_lab.driver.routing import GUEST_ACCEPTED
from cmdqv_lab.platform import platform_table
from cmdqv_lab.report import answer, param_table, result_table
from cmdqv_lab.scenarios.guest import GuestParams
from cmdqv_lab.workloads.replay import TRACES_DIR
from cmdqv_lab.workloads.synthetic.mixed import MixedParams

plots.enable()
t_start = time.perf_counter()
print("guest-owned VCMDQ accepts:", ", ".join(sorted(o.name for o in GUEST_ACCEPTED)))

# %% [markdown]
# ## 1. Are real batches mixed today?
#
# Each QEMU trace is what a Linux 6.1 guest (virtio-blk with `iommu_platform=on`, 1 to 4 vCPUs,
# strict and lazy invalidation) sent to its vSMMU. One doorbell (PROD write) is one batch as the
# hardware sees it; Linux's lock-free owner may gather several CPUs' batches into one doorbell, so a
# doorbell can only look *more* mixed than the driver's batches. A batch is *mixed* when it holds
# two command types (TLBI, CFGI, ATC, other) besides its CMD_SYNC, and *unsafe for first-opcode*
# when its first command is accepted by a guest VCMDQ but a later one is not.

# %%
trace_files = sorted(TRACES_DIR.glob("*.log.gz"))
if smoke:
    trace_files = trace_files[:2]
trace_batches = batch_mixing(trace_files)
result_table(trace_batches, "Batches (doorbells) of the captured Linux 6.1 streams: mixed ones")

# %% [markdown]
# Nicolin's observation holds for the captured streams: Linux 6.1 builds single-type batches, so
# the first-opcode check happens to be right for them. The rest of the notebook asks what happens
# when that stops being true (a new caller of the batch API, ATC_INV folded into a TLBI batch, a
# different guest OS), which is exactly the undocumented dependency Robin points at.
#
# ## 2. Safety: ILL per policy (correctness checker, functional model)
#
# The stream is the registry's `mixed` workload in 2 guests x 2 vCPUs: strict unmaps of 2 pages
# (`tlbis = 2` CMD_TLBI_NH_VA + CMD_SYNC), then an ATC_INV + SYNC batch. Into the TLBI batch go
# commands a guest VCMDQ rejects, drawn from CFGI_STE, CFGI_CD, CFGI_CD_ALL, PREFETCH_CONFIG,
# TLBI_NH_ALL and TLBI_S12_VMALL:
#
# - `mix_per = "command"`: every body command is unsupported with probability `f` (runs of them
#   precede TLBIs), so `f` is the fraction of unsupported commands in TLBI batches;
# - `mix_per = "batch"`: a batch holds one unsupported command with probability `f`, at a uniform
#   position among the `tlbis + 1` slots (first, between TLBIs, or last before the SYNC).
#
# Q2 and Q4 effects are switched off here (`split_sync_fraction = 0`, `foreign_sid_fraction = 0`)
# so every hazard is a Q1 hazard; notebook 02 switches lone SYNCs back on.

# %%
safety = policy_safety(sweep("nb-q1-policy-safety", smoke=smoke))
check_ops = int(safety["count"][0])
mixes = safety["mix_per"].unique(maintain_order=True).to_list()
stream_keys = ["vms", "threads", "tlbis", "unsupported", "split_sync_fraction", "foreign_sid_fraction"]
stream = {k: safety[k][0] for k in stream_keys}
assert safety["disagreements"].sum() == 0, "routing and the functional model disagree on ILL"
result_table(
    MixedParams(**stream, ops=check_ops)
    .table()
    .filter(pl.col("name").is_in([*stream, "ops", "ats", "unsupported_fraction", "mix_per"]))
    .select("name", "value", "unit", "doc"),
    "Checker stream: registry `mixed` workload (the swept fraction and mix are set per run)",
)
result_table(
    safety.filter(pl.col("unsupported_fraction") == 0.05).select(
        "mix_per", "policy", "ill", "q2", "ill_per_1e4_ops", "trapped_share", "inserted_syncs"
    ),
    "ILL and Q2 hazards per policy at 5% unsupported commands (checker, functional model)",
)  # fmt: skip

# %% [markdown]
# What an ILL means, in the model's own words (the first one first-opcode produced):

# %%
print(safety.filter(pl.col("example").is_not_null())["example"][0])

# %% [markdown]
# The command is not just delayed: the guest's error recovery (Linux's `arm_smmu_cmdq_skip_err`)
# overwrites it with a CMD_SYNC, so a CFGI_STE/CFGI_CD never invalidates the configuration cache
# and a TLBI_NH_ALL never invalidates anything. Every ILL is a lost invalidation plus a round trip
# through the host's CMDQV interrupt, user space and a virtual interrupt.
#
# A closed form checks the checker. With `t = 2` TLBIs per batch, first-opcode sends a batch to
# the VCMDQ when its first command is a TLBI, and then every unsupported command in it is ILL:
#
# - per batch: a batch carries one unsupported command with probability `f`, and it is not first
#   with probability `t / (t + 1)`: ILL per op `= f t / (t + 1)`;
# - per command: the number of unsupported commands before each TLBI is geometric
#   (`P(>= k) = f^k`); the batch stays on the VCMDQ when none precedes the first TLBI (`1 - f`)
#   and then carries on average `(t - 1) f / (1 - f)` of them: ILL per op `= (t - 1) f`.

# %%
theory = closed_form_check(safety, stream["tlbis"])
result_table(theory, "First-opcode ILL per 10^4 unmaps: checker vs closed form")

# %%
plots.show(
    plots.throughput_vs_cpus(
        safety.with_columns(("mixed per " + pl.col("mix_per")).alias("mix")),
        x="unsupported_fraction",
        y="ill_per_1e4_ops",
        color="policy",
        panel="mix",
        kind="computed",
        title="ILL on the guest VCMDQ per 10^4 unmaps vs unsupported fraction (checker)",
    )
)
f_bar = 0.05
plots.show(
    plots.hazard_counts(
        safety.filter(pl.col("unsupported_fraction") == f_bar)
        .unpivot(index=["policy", "mix_per"], on=["ill", "q2", "q3", "unsynced"], variable_name="hazard",
                 value_name="hazards"),
        count="hazards",
        title=f"Hazards per policy at {f_bar:.0%} unsupported ({check_ops} unmaps per mix, both mixes summed)",
    )
)  # fmt: skip

# %% [markdown]
# The safe policies differ in what they send the slow way. Share of the stream's commands that
# take the trapped path (the emulated vSMMU), per policy:

# %%
plots.show(
    plots.throughput_vs_cpus(
        safety.filter(pl.col("mix_per") == mixes[-1]),
        x="unsupported_fraction",
        y="trapped_share",
        color="policy",
        kind="computed",
        title=f"Share of commands trapped to the VMM (mix per {mixes[-1]})",
    )
)

# %% [markdown]
# `split` and `homogeneous` trap the same commands; `homogeneous` also cuts batches at every change
# of command type (e.g. TLBI to ATC_INV), so it inserts more CMD_SYNCs (`inserted_syncs`, per run
# of the table above: the price of keeping batches single-type). `scan` and `scan-fanout` trap
# every command of a mixed batch.
#
# ## 3. Cost: unmap latency in a Grace guest (timing engine)
#
# Scenario `guest-vcmdq`: one VM, 2 vCPUs running dma_map_benchmark-style map/unmap loops on a
# pass-through VCMDQ each; in a fraction `f` of the unmaps the batch carries a CMD_CFGI_CD right
# after the first TLBI (mix per batch). Per policy: `first-opcode` leaves it on the VCMDQ (ILL: the
# host's CMDQV interrupt forwards the error to the guest, `guest_error_ns`, and the command is
# skipped); `scan` and `scan-fanout` trap the whole batch to the VMM; `split` and `homogeneous`
# issue [TLBI + SYNC] on the VCMDQ, trap [CFGI_CD + SYNC], and issue the rest on the VCMDQ. Unmap
# sizes 4 KiB (one TLBI) and 64 KiB (16 TLBIs), platform `grace`: guest CPU work, VMM costs and
# TLBI service are fitted to C2 (trapped and VCMDQ unmap latency, 1 thread), trap
# costs are C3's Kunpeng 920 measurements, the error path is an assumption.

# %%
guest_fields = ["vms", "threads", "granule_kib", "vcmdqs_per_vm", "unsupported_fraction", "policy"]
result_table(GuestParams(platform="grace", threads=2).table().filter(pl.col("name").is_in(guest_fields))
             .select("name", "value", "unit", "doc"),
             "Timing scenario guest-vcmdq (swept: policy, unsupported_fraction, granule_kib)")  # fmt: skip
plat_fields = [
    "guest_unmap_ns", "guest_map_ns", "tlbi_service_ns", "cfgi_service_ns", "sync_service_ns", "fetch_ns",
    "trap_user_ns", "vmm_trap_ns", "vmm_per_cmd_ns", "vmm_batch", "vmm_lock", "guest_poll",
    "vcmdq_sync_wait", "irq_latency_ns", "irq_handler_ns", "irq_ack_ns", "guest_error_ns", "smmu_parallel",
]  # fmt: skip
param_table(
    platform_table("grace")
    .filter(pl.col("name").is_in(plat_fields))
    .select("name", "value", "unit", "provenance", "source"),
    "Platform grace: the costs these results depend on (provenance from data/params/grace.toml)",
)

# %%
cost = sweep("nb-q1-guest-policy", smoke=smoke).with_columns(
    (pl.col("op_latency_ns_mean") / 1e3).alias("mean_us"),
    (pl.col("op_latency_ns_p99") / 1e3).alias("p99_us"),
    (pl.col("exits") / pl.col("ops") * 1e4).alias("exits_per_1e4_ops"),
    (pl.col("guest_irqs") / pl.col("ops") * 1e4).alias("guest_irqs_per_1e4_ops"),
    (pl.col("illegal_commands") / pl.col("ops") * 1e4).alias("ill_per_1e4_ops"),
)
summary = (
    cost.group_by("granule_kib", "policy", "unsupported_fraction", maintain_order=True)
    .agg(pl.col("mean_us", "p99_us", "exits_per_1e4_ops", "guest_irqs_per_1e4_ops", "ill_per_1e4_ops").mean(),
         pl.len().alias("seeds"))
    .sort("granule_kib", "policy", "unsupported_fraction")
)  # fmt: skip
result_table(
    summary.filter(pl.col("unsupported_fraction") == 0.05).drop("unsupported_fraction"),
    "Guest unmap latency per policy at 5% mixed unmaps (model prediction, means over seeds)",
)

# %%
for g in sorted(cost["granule_kib"].unique().to_list()):
    sub = cost.filter(pl.col("granule_kib") == g)
    plots.show(plots.throughput_vs_cpus(sub, x="unsupported_fraction", y="mean_us", color="policy",
                                        title=f"Mean unmap latency, {g} KiB unmaps"))  # fmt: skip
plots.show(
    plots.throughput_vs_cpus(cost.filter(pl.col("granule_kib") == 4), x="unsupported_fraction",
                             y="exits_per_1e4_ops", color="policy", title="VM exits per 10^4 unmaps (4 KiB)")
)  # fmt: skip
plots.show(
    plots.throughput_vs_cpus(cost.filter(pl.col("granule_kib") == 4), x="unsupported_fraction",
                             y="guest_irqs_per_1e4_ops", color="policy",
                             title="Guest error interrupts per 10^4 unmaps (4 KiB): only first-opcode")
)  # fmt: skip

# %% [markdown]
# ### Explore the sweep
#
# The slider picks the unmap size; each line is a policy (means over seeds). It works in the
# static report too: the data is in the page.

# %%
explore = summary.select("granule_kib", "policy", "unsupported_fraction", "mean_us")
plots.show(plots.explorer(explore, "unsupported_fraction", "mean_us", "policy", "granule_kib",
                          title="Mean unmap latency vs unsupported fraction"))  # fmt: skip
explore_p99 = summary.select("granule_kib", "policy", "unsupported_fraction", "p99_us")
plots.show(plots.explorer(explore_p99, "unsupported_fraction", "p99_us", "policy", "granule_kib",
                          title="p99 unmap latency vs unsupported fraction"))  # fmt: skip

# %% [markdown]
# ### Live: re-simulate one configuration
#
# In Jupyter the sliders below re-run `guest-vcmdq` (the static report shows the first run).

# %%
widgets.explore(
    "guest-vcmdq",
    params=["policy", "unsupported_fraction", "granule_kib", "threads"],
    fixed={"platform": "grace"},
    count=2000 if smoke else 10_000,
)

# %% [markdown]
# ## 4. Answer
#
# Every number below is read from the runs above.

# %%
F = 0.05  # the fraction quoted in the answer (in both grids)


def lat(policy: str, f: float, g: int) -> float:
    return value(summary, "mean_us", policy=policy, unsupported_fraction=f, granule_kib=g)


ill_fo = {m: value(safety, "ill_per_1e4_ops", policy="first-opcode", unsupported_fraction=F, mix_per=m)
          for m in mixes}  # fmt: skip
safe_ill = int(safety.filter(pl.col("policy") != "first-opcode")["ill"].sum())
base4, base64 = lat("scan", 0.0, 4), lat("scan", 0.0, 64)
mix_text = " and ".join(f"{ill_fo[m]:.0f} (mixed per {m})" for m in mixes)


def per_mixed(policy: str, g: int) -> float:
    """Extra latency of one mixed unmap (us): the mean's increase divided by the fraction."""
    return (lat(policy, F, g) - lat(policy, 0.0, g)) / F


answer(
    "Q1",
    f"Linux 6.1 guest batches are single-type today ({int(trace_batches['mixed'].sum())} mixed among "
    f"{int(trace_batches['doorbells'].sum())} doorbells of the real traces), so first-opcode is right only by "
    f"accident: with {F:.0%} unsupported commands it sends {mix_text} ILL per 10^4 unmaps to the guest VCMDQ, "
    f"each a lost command, while scan, split, homogeneous and scan-fanout send {safe_ill}. Their cost in a Grace "
    f"guest with {F:.0%} of 4 KiB unmaps carrying a CFGI_CD: mean unmap latency {base4:.1f} us -> scan "
    f"{lat('scan', F, 4):.1f}, split {lat('split', F, 4):.1f}, homogeneous {lat('homogeneous', F, 4):.1f}, "
    f"scan-fanout {lat('scan-fanout', F, 4):.1f} us (each mixed unmap +{per_mixed('scan', 4):.0f} us for scan, "
    f"+{per_mixed('split', 4):.0f} us for split: a trap; first-opcode {lat('first-opcode', F, 4):.1f} us, unsafe); "
    f"with 64 KiB unmaps scan traps all 16 TLBIs ({base64:.1f} -> {lat('scan', F, 64):.1f} us, "
    f"+{per_mixed('scan', 64):.0f} us per mixed unmap) where split traps only the CFGI_CD "
    f"({lat('split', F, 64):.1f} us, +{per_mixed('split', 64):.0f} us): split traps least, but only scan-fanout is also free of the Q2 hazards of notebook 02.",
    numbers=[
        ("mixed doorbells in the real traces", f"{int(trace_batches['mixed'].sum())} of {int(trace_batches['doorbells'].sum())}", "measured"),
        (f"first-opcode ILL per 10^4 unmaps at {F:.0%} unsupported", " / ".join(f"{ill_fo[m]:.0f}" for m in mixes), "computed"),
        ("ILL under scan, split, homogeneous, scan-fanout", f"{safe_ill}", "computed"),
        ("4 KiB unmap latency, clean -> scan / split at 5% (Grace)", f"{base4:.1f} -> {lat('scan', F, 4):.1f} / {lat('split', F, 4):.1f} us", "predicted"),
    ],
)  # fmt: skip
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s (smoke={smoke})")

# %% [markdown]
# **Modelled**: ILL exactly as the VINTF raises it (opcode not in the accepted set), Linux's guest
# recovery (the command becomes a CMD_SYNC), the routing of each policy, the trap path (PROD exit,
# VMM walk and one ioctl per forwarded command, CONS-poll exit), the pass-through path with busy
# CONS polling, and the error path through the host's single threaded CMDQV interrupt.
# **Fitted**: guest CPU work per unmap, VMM per-trap and per-command costs, TLBI service (C2 1-thread
# rows, within 11.5 %). **Assumed**: `guest_error_ns` (10 us to deliver a VCMDQ error to the guest),
# the CMDQV IRQ latencies, `cfgi_service_ns`; first-opcode's latency depends on them directly, the
# safe policies' on the fitted trap costs. **Not modelled**: what the lost CFGI/TLBI does later
# (stale configuration or TLB entries), which is the real cost of first-opcode; the position of the
# unsupported command in the timing stream is fixed (after the first TLBI), so the timing side
# always exercises first-opcode's blind spot. The upstream driver's batch API now issues a batch
# and restarts it when a command is unsupported by the batch's queue (the Linux 7.0 driver),
# i.e. the `split` policy.
