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
# # Q4 and Q7: what fits on a CMDQV, what an unmatched StreamID does, and error storms on one IRQ thread
#
# From the Tegra241 CMDQV v3 review thread (PATCH 5, December 2021), on the VINTF's VMID and
# StreamID replacement (16 SID_MATCH/SID_REPLACE pairs per VINTF, as Nicolin Chen explained):
#
# > **Robin Murphy:** "... it sounds like there's no functional concern here, other than constraining
# > the number of devices which can be assigned to a single VM ..."
# >
# > **Robin Murphy:** "Out of interest, would ATC_INV with an unmatched StreamID raise an error or just
# > be ignored?"
# >
# > **Nicolin Chen:** "Mismatched StreamID will be treated as an Illegal command. Yes, there'd be an
# > error."
#
# and, answering Robin's proposal to fix up unsupported guest commands from the host's error
# interrupt (notebook 05):
#
# > **Nicolin Chen:** "... I am not sure if IRQs, over 64 interfaces and 128 queues, would overwhelm the
# > host ISR... Can threaded interrupts from the same IRQ number be served at the same time on
# > different CPU cores?"
#
# **What this notebook must answer** (Q4 and Q7):
#
# * **Q4**: how many devices and VMs fit (at most 64 VINTFs by field width, the host's VINTF0
#   included; 16 SID pairs per VINTF; 128 VCMDQs), and what an ATC_INV with an unmatched SID does
#   (ILL). Shown with the capacity planner, the functional CMDQV model and the checker.
# * **Q7**: a threaded IRQ handler of one IRQ runs in one thread at a time, so the host's CMDQV
#   interrupt is a single server. What do error storms across many VMs and VCMDQs do to the
#   fix-up latency, against an M/D/1 estimate, and how much does that depend on the assumed
#   interrupt costs?
#
# Sources: [seed thread](../docs/sources.md#seed-thread), [CMDQV v2 thread](../docs/sources.md#cmdqv-v2-mdev)
# (VMID/SID routing), [Linux 7.0 SMMUv3 driver](../docs/sources.md#linux-7.0-smmu) (`tegra241-cmdqv.c`: the
# VCMDQ split, the threaded ONESHOT interrupt), [C3 (kvm 2023)](../docs/sources.md#c3-kvm-microbench)
# (trap and interrupt costs), [Gunthorpe 2024](../docs/sources.md#gunthorpe-2024-dos) (queues shared across VMs).

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import altair as alt
import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis.capacity import fit_status, geometry_table, served_table
from cmdqv_lab.analysis.fixup import (
    cost_points,
    md1_curve,
    md1_deviation,
    service_time,
    storm_points,
    with_rates,
)
from cmdqv_lab.analysis.frames import event_frame, sweep
from cmdqv_lab.checker.check import check, compare
from cmdqv_lab.checker.scenarios import load_source
from cmdqv_lab.device.cmdqv import Cmdqv, CmdqvParams
from cmdqv_lab.device.commands import Command, Opcode
from cmdqv_lab.driver.recovery import tegra241_cmdqv_isr, tegra241_vcmdq_handle_error
from cmdqv_lab.platform import load_platform, platform_table
from cmdqv_lab.report import answer, param_table, result_table
from cmdqv_lab.virt.capacity import guest_sid, plan, uniform_vms
from cmdqv_lab.widgets import Control

plots.enable()
grace = load_platform("grace")
geo = CmdqvParams()

# %% [markdown]
# ## Q4. Capacity: VINTFs, VCMDQs and SID pairs
#
# **Model.** `cmdqv_lab.virt.capacity.plan` places guest VMs on the CMDQV geometry (`CMDQV_PARAM`)
# as the host driver and the VMM would: the host kernel keeps VINTF0 (HYP_OWN=1); guest VM *i*
# gets VINTF *i+1* (its own VMID), one SID_MATCH/SID_REPLACE pair per passed-through device, and
# VCMDQs allocated to that VINTF through `CMDQ_ALLOC`. Two VCMDQ allocators: `linux` is
# `tegra241-cmdqv.c` (every VINTF owns a fixed slice of `num_vcmdqs / num_vintfs` queues, the
# host preallocates its own slice) and `pool` is anything `CMDQ_ALLOC` allows (any free queue to
# any VINTF, in ascending logical order). The geometry below is the field-width maximum; Grace's
# real `CMDQV_PARAM` values are not public, so they are assumptions and a table further down
# varies them.

# %%
result_table(geo.table().select("name", "value", "unit", "provenance", "doc"),
             "CMDQV geometry used for Q4 (field-width maxima; Grace's values are not public)")  # fmt: skip

# %%
# Every (VMs, VCMDQs wanted per VM, allocator): how many VMs get everything they asked for.
# One device per VM here; devices are the SID-pair question, handled next.
vm_counts = range(1, 81) if not smoke else range(1, 81, 4)
cap = served_table(geo, vm_counts)
max_vms = cap.filter(pl.col("vcmdqs_per_vm") == 1)["vms_with_vintf"].max()
per_vintf = geo.num_vcmdqs // geo.num_vintfs
pool4 = cap.filter((pl.col("allocation") == "pool") & (pl.col("vcmdqs_per_vm") == 4))[
    "vms_fully_served"
].max()
linux4 = cap.filter((pl.col("allocation") == "linux") & (pl.col("vcmdqs_per_vm") == 4))[
    "vms_fully_served"
].max()
print(
    f"at most {max_vms} guest VMs get a VINTF; linux allocation gives each VINTF {per_vintf} VCMDQs; "
    f"VMs served with 4 VCMDQs each: linux {linux4}, pool {pool4}"
)

# %% [markdown]
# **Explore**: how many VMs get *all* the VCMDQs they ask for, as the number of VMs grows. The
# slider picks the VCMDQs each VM wants; `linux` caps every VINTF at its fixed slice, `pool`
# shares the 128 queues first come, first served.

# %%
plots.show(
    plots.explorer(
        cap,
        "vms",
        "vms_fully_served",
        "allocation",
        "vcmdqs_per_vm",
        kind="computed",
        title="VMs with every VCMDQ they want",
    )
)

# %%
# VMs x devices per VM: which part of the request falls back to the trapped path (1 VCMDQ per VM).
dev_counts = list(range(1, 25)) if not smoke else [1, 8, 16, 17, 24]
vm_grid = [1, 8, 16, 24, 32, 40, 48, 56, 62, 63, 64, 65, 72, 80] if not smoke else [8, 63, 64, 80]
fit_grid = fit_status(geo, vm_grid, dev_counts)
plots.show(
    alt.Chart(fit_grid, title=alt.TitleParams("What fits: VMs x devices per VM (1 VCMDQ each, linux allocation)",
                                             subtitle="computed exactly (functional model / geometry)"))
    .mark_rect()
    .encode(
        x=alt.X("vms:O", title="guest VMs"),
        y=alt.Y("devices_per_vm:O", title="passed-through devices per VM", sort="descending"),
        color=alt.Color("status:N", title="outcome"),
        tooltip=["vms", "devices_per_vm", "status", "devices_direct", "devices_trapped"],
    )
)  # fmt: skip
max_direct = plan(uniform_vms(geo.num_vintfs - 1, geo.sid_pairs_per_vintf), geo).sid_pairs_used

# %% [markdown]
# **The geometry is an assumption.** Grace's `NUM_VINTF_LOG2` and `NUM_VCMDQ_LOG2` are not public.
# For smaller parts the limits scale as follows (linux allocation; the largest number of VMs for
# which every VM gets 16 devices and the VCMDQs it wants):


# %%
result_table(geometry_table(), "Capacity vs the (unknown) CMDQV geometry, 16 SID pairs per VINTF")

# %% [markdown]
# ## Q4. An ATC_INV naming a StreamID with no SID pair: the functional model
#
# One guest with 17 passed-through devices: the planner gives its VINTF 16 SID pairs, so guest
# SID 0x88 (the 17th device) has none. The guest writes three commands into its VCMDQ: an
# ATC_INV for device 0x8 (matched), an ATC_INV for 0x88 (unmatched) and a CMD_SYNC.

# %%
p17 = plan(uniform_vms(1, 17), geo)
cmdqv = Cmdqv(geo)
p17.apply(cmdqv)
vm0 = p17.vms[0]
vq = cmdqv.vcmdqs[vm0.vcmdqs[0]]
unmatched = guest_sid(16)
for c in (
    Command(Opcode.CMD_ATC_INV, sid=guest_sid(0), size=52),
    Command(Opcode.CMD_ATC_INV, sid=unmatched, size=52),
    Command(Opcode.CMD_SYNC),
):
    vq.submit(c.encode())
consumed = vq.consume_all()


ill_state = {
    "VCMDQ": f"vcmdq{vq.idx} (VINTF{vm0.vintf} LVCMDQ{vq.lidx})",
    "commands consumed": consumed,
    "CONS.ERR": vq.log.of("error")[-1].detail["cerror"],
    "VCMDQ stopped at pos": vq.log.of("error")[-1].pos,
    "GERROR != GERRORN (error active)": vq.gerror != vq.gerrorn,
    "CMDQV interrupt pending": cmdqv.irq_pending,
    "CMDQ_ERR_MAP": hex(cmdqv.cmdq_err_map),
    "VINTF_ERR_MAP": hex(cmdqv.vintf_err_map),
}
result_table(event_frame(vq.log), "Event log of the guest's VCMDQ (functional model)")
result_table(ill_state, "State after the unmatched ATC_INV")

# %% [markdown]
# The matched ATC_INV ran with its StreamID replaced by the physical one (`sid=65536` =
# 0x10000); the unmatched one stopped the queue with **CONS.ERR = ILL** and raised the single
# CMDQV interrupt. What happens next is the host's choice. Linux's `tegra241_cmdqv_isr` forwards a
# guest VINTF's error map to user space as an event (the VMM injects it into the guest); Robin's
# alternative (notebook 05) has the host fix the command up itself: emulate the ATC_INV for the
# device's physical SID on its own queue, rewrite the slot into a CMD_SYNC and acknowledge
# GERRORN, so the guest never sees an error.

# %%
events = tegra241_cmdqv_isr(cmdqv)  # current Linux: forwarded to the VMM
tegra241_vcmdq_handle_error(vq)  # the fix-up's last step: the slot becomes a CMD_SYNC, GERRORN acked
resumed = vq.consume_all()
result_table(
    {
        "vEVENT forwarded by tegra241_cmdqv_isr": str(events),
        "commands consumed after the rewrite + ack": resumed,
        "error still active": vq.error_active(),
        "CMD_SYNCs completed": len([e for e in vq.log.of("complete") if e.opname == "CMD_SYNC"]),
    },
    "Recovery",
)

# %% [markdown]
# ### The checker on a guest stream with 18 devices per VM
#
# `guest-mixed` (checker scenario): strict unmaps of 1-8 TLBIs, 20 % of them followed by an
# ATC_INV for one of the VM's 18 devices; no other unsupported command, so every ILL below is a
# StreamID without a SID pair. The checker routes the stream under each policy (with the planner's
# SID pairs), replays it through the functional model and reports what the VINTF rejected.

# %%
mixed_over = {"ops": 600 if smoke else 4000, "unsupported_frac": 0.0, "lone_sync_frac": 0.0, "devices": 18}
src = load_source("guest-mixed", mixed_over, seed=1)
cmp = compare(src, ["first-opcode", "all-vcmdq", "scan", "split"])
result_table(
    cmp.select("policy", "ok", "ill", "q2", "vcmdq", "trap", "split"),
    f"Checker: guest-mixed, {src.info['params']['vms']} VMs x {src.info['params']['vcpus']} vCPUs, "
    f"{src.info['params']['devices']} devices each",
)
plots.show(
    plots.hazard_counts(
        cmp.unpivot(index="policy", on=["ill", "q2"], variable_name="hazard", value_name="count"),
        title="ILL from unmatched StreamIDs, per routing policy",
    )
)
first = check(src, "first-opcode")
ill_first = first.counts["ill"]
ill_reason = next(h.reason for h in first.hazards if h.kind == "ill")
atc_rows = src.frame.filter(pl.col("opcode") == int(Opcode.CMD_ATC_INV))
atc_unmatched = atc_rows.filter(pl.col("sid") > guest_sid(geo.sid_pairs_per_vintf - 1)).height
print(f"first ILL: {ill_reason}")
print(f"{atc_rows.height} ATC_INVs in the stream, {atc_unmatched} name a device without a SID pair")

# %% [markdown]
# Every ATC_INV naming device 17 or 18 is an ILL when the routing does not look at StreamIDs
# (`first-opcode`, `all-vcmdq`); the recovery turns it into a CMD_SYNC, so **that invalidation
# never happens** (a stale ATC entry, not just a slow path). Routing that knows the VINTF's SID
# pairs (`scan`, `split`) sends those commands the trapped way and raises none.

# %% [markdown]
# ## Q7. The host's CMDQV interrupt is one server
#
# **Linux fact.** A threaded interrupt (`request_threaded_irq`) has one kernel thread per action
# (`irq/<nr>-<name>`); with `IRQF_ONESHOT`, as `tegra241-cmdqv.c` requests it, the line stays
# masked until that thread returns. So the answer to Nicolin's question is **no**: the handler of
# one IRQ number never runs on two CPUs at once, and every error of every VINTF and VCMDQ waits for
# the same thread. Only more interrupt lines (per VINTF) or handing work to other threads would
# add servers.
#
# **Model.** `guest-fixup` (`cmdqv_lab.scenarios.guest`): each vCPU runs dma_map_benchmark-like
# strict unmaps on its VM's VCMDQ; a fraction `unsupported_fraction` of the batches carries a
# command the VCMDQ rejects. The ILL halts that VCMDQ and appends one job to the host's IRQ thread
# (one engine CPU, a FIFO single server): `irq_latency_ns` (interrupt to thread), `irq_handler_ns`
# (read the error maps and the entry), emulate the command plus a CMD_SYNC on the host main queue
# (waited, so it queues in the SMMU behind every VCMDQ), `irq_ack_ns` (rewrite + GERRORN), resume.
# The fix-up latency is raise-to-resume. The vCPU that hit the error waits all that time.
# Assumptions that make this pessimistic or optimistic: each error is its own handler run,
# interrupt latency included (the real handler walks the error map and could fix several queues
# per run: `irq_latency_ns = 0` below is that bound); the interrupt costs themselves have no
# public number.

# %%
q7_rows = [
    "irq_latency_ns", "irq_handler_ns", "irq_ack_ns", "guest_unmap_ns", "guest_map_ns", "tlbi_service_ns",
    "cfgi_service_ns", "sync_service_ns", "fetch_ns", "smmu_parallel", "cmd_batch", "vcmdq_sync_wait",
]  # fmt: skip
param_table(
    platform_table("grace")
    .filter(pl.col("name").is_in(q7_rows))
    .select("name", "value", "unit", "provenance", "source", "doc"),
    "Grace preset: the costs on the fix-up path (assumptions marked)",
)

# %%
st = with_rates(sweep("nb-q7-storm", smoke=smoke))
# Service time of one fix-up with no queueing: the lightest point (fewest VMs, smallest fraction)
# has fix-up latency = service; the emulation part is what remains after the three assumed costs.
S0, emul_ns = service_time(st, grace)
lam_max = 1e9 / S0
print(f"no-load fix-up service S0 = {S0:.0f} ns (of which emulation on the host queue {emul_ns:.0f} ns); "
      f"one thread saturates at {lam_max / 1e3:.0f} k fix-ups/s")  # fmt: skip


# %%
per_point = storm_points(st, S0)
dev = md1_deviation(per_point)
free = dev.filter(pl.col("smmu_busy_fraction") < 0.9)
busy = dev.filter(pl.col("smmu_busy_fraction") >= 0.9)
md1_lo, md1_hi = free["vs_md1"].min(), free["vs_md1"].max()
print(
    f"rho < 0.8, SMMU busy < 0.9 ({free.height} points): model vs M/D/1 from {md1_lo:+.0%} to {md1_hi:+.0%}; "
    f"SMMU busy >= 0.9 ({busy.height} points): up to {busy['vs_md1'].max() if busy.height else float('nan'):+.0%}"
)
result_table(
    dev.select(
        "vms",
        "vcpus",
        "unsupported_fraction",
        "rho",
        "smmu_busy_fraction",
        "fixup_mean_ns",
        "md1_ns",
        "vs_md1",
    ),
    "Fix-up latency, model vs M/D/1 (points with ρ < 0.8)",
)
curve = md1_curve(S0)
pts = per_point.unpivot(
    index=["vms", "unsupported_fraction", "rho", "smmu_busy_fraction"],
    on=["fixup_mean_ns", "fixup_p99_ns"],
    variable_name="statistic",
    value_name="latency_ns",
)
plots.show(
    alt.layer(
        alt.Chart(curve).mark_line(color="black", strokeDash=[4, 3]).encode(x="rho:Q", y="latency_ns:Q"),
        alt.Chart(pts)
        .mark_point(filled=True)
        .encode(
            x=alt.X("rho:Q", title="IRQ thread utilisation ρ = fix-ups/s × S0"),
            y=alt.Y("latency_ns:Q", title="fix-up latency (ns)", scale=alt.Scale(type="log")),
            color=alt.Color("vms:O", title="VMs (2 vCPUs each)"),
            shape=alt.Shape("statistic:N", title="statistic"),
            tooltip=["vms", "unsupported_fraction", "statistic", "latency_ns", "rho", "smmu_busy_fraction"],
        ),
    ).properties(title=alt.TitleParams("Fix-up latency vs utilisation of the one IRQ thread; dashed: M/D/1 mean",
                                       subtitle="points: model prediction (means of seeds); line: queueing theory"))
)

# %% [markdown]
# M/D/1 is the infinite-population limit (Poisson arrivals, constant service). The model departs
# from it in three ways, all visible in the table above:
#
# * with few vCPUs the model lies **below** M/D/1: a vCPU whose error is being fixed up issues
#   nothing, so at most (vCPUs) errors can queue (a finite-source, "machine repairman" queue); the
#   gap closes as the number of vCPUs grows;
# * near ρ = 1 it stays finite where M/D/1 diverges, for the same reason: the latency saturates at
#   about (vCPUs waiting) × S0;
# * at 16 VMs and more it lies **above** M/D/1 already at low ρ: the SMMU is saturated by the
#   guests' own invalidations (`smmu_busy_fraction` ≈ 1), and the fix-up's emulated command waits
#   on the host queue behind every guest VCMDQ in the SMMU's round robin, so the service time
#   itself grows.

# %%
lat_long = per_point.rename({"fixup_mean_ns": "fix-up mean", "fixup_p99_ns": "fix-up p99", "md1_ns": "M/D/1 mean",
                             "unmap_mean_ns": "unmap mean"}).unpivot(
    index=["vms", "unsupported_fraction"],
    on=["fix-up mean", "fix-up p99", "M/D/1 mean", "unmap mean"],
    variable_name="series",
    value_name="latency_ns",
).drop_nulls()  # fmt: skip
plots.show(
    plots.explorer(
        lat_long,
        "vms",
        "latency_ns",
        "series",
        "unsupported_fraction",
        log_x=True,
        log_y=True,
        title="Fix-up and unmap latency vs VMs (2 vCPUs each)",
    )
)

# %%
plots.show(
    plots.throughput_vs_cpus(
        st.with_columns(pl.col("unsupported_fraction").cast(pl.String).alias("unsupported")),
        x="vms",
        y="fixup_latency_ns_mean",
        color="unsupported",
        log_x=True,
        title="Mean fix-up latency vs VMs",
    )
)
plots.show(
    plots.throughput_vs_cpus(
        st.with_columns(pl.col("unsupported_fraction").cast(pl.String).alias("unsupported")),
        x="vms",
        y="ops_per_s",
        color="unsupported",
        log_x=True,
        y_title="unmaps/s, all guests",
        title=f"All guests' unmaps/s: capped near {lam_max / 1e3:.0f} k fix-ups/s ÷ unsupported fraction",
    )
)

# %% [markdown]
# ### How the storm moves with the assumed interrupt costs
#
# 16 VMs x 2 vCPUs; `irq_latency_ns` from 0 (the bound for a handler that fixes every pending
# queue in one run) to 20 us, `irq_handler_ns` from 0.5 to 8 us.

# %%
cs = sweep("nb-q7-irq-costs", smoke=smoke)
cost_pts = cost_points(cs, grace, emul_ns)
result_table(cost_pts, "Fix-up latency vs the assumed interrupt costs (16 VMs x 2 vCPUs; model prediction)")
plots.show(
    plots.explorer(
        cost_pts.with_columns(pl.col("unsupported_fraction").cast(pl.String).alias("unsupported")),
        "irq_latency_ns",
        "fixup_mean_ns",
        "unsupported",
        "irq_handler_ns",
        log_y=True,
        title="Mean fix-up latency vs the IRQ latency",
    )
)

# %% [markdown]
# ### Live: re-simulate a storm (needs a running kernel)

# %%
widgets.explore(
    "guest-fixup",
    params=[
        Control("vms", lo=1, hi=63),
        Control("threads", lo=1, hi=8),
        Control("unsupported_fraction", lo=0.0, hi=1.0, value=0.05),
        Control("irq_latency_ns", lo=0, hi=50_000),
        Control("irq_handler_ns", lo=0, hi=20_000),
    ],
    x=Control("vms", values=(1, 4)),  # type more VMs into the list; each costs a run per seed
    metric="fixup_latency_ns_mean",
    fixed={"platform": "grace"},
    summary=(
        "ops_per_s",
        "op_latency_ns_mean",
        "fixup_latency_ns_mean",
        "fixup_latency_ns_p99",
        "smmu_busy_fraction",
    ),
    seeds=2,  # the status line's 95% interval is over seeds
    count=300,  # a slider move answers in about 0.3 s; "more ops" (or the count menu) narrows the interval
)

# %% [markdown]
# ## Answers

# %%
answer(
    "Q4",
    f"With the field-width maximum ({geo.num_vintfs} VINTFs, {geo.num_vcmdqs} VCMDQs, "
    f"{geo.sid_pairs_per_vintf} SID pairs) at most **{max_vms} VMs** get a VINTF (VINTF0 is the host's), "
    f"each with at most **{geo.sid_pairs_per_vintf} devices** on the direct path ({max_direct} in all); "
    f"Linux's fixed split gives each VINTF {per_vintf} VCMDQs, so with 4 wanted per VM {linux4} VMs are "
    f"fully served (a pool allocator: {pool4}). An ATC_INV for a device without a SID pair is an **ILL**: "
    f"the VCMDQ stops with CONS.ERR=ILL and raises the CMDQV IRQ; in a guest stream with 18 devices per VM "
    f"first-opcode routing hit {ill_first} ILLs ({atc_unmatched} of {atc_rows.height} ATC_INVs unmatched), "
    f"each a lost invalidation, while SID-aware scan/split hit {int(cmp.filter(pl.col('policy') == 'scan')['ill'][0])}.",
    numbers=[
        ("guest VMs with a VINTF", f"{max_vms}", "computed"),
        ("devices per VM on the direct path", f"{geo.sid_pairs_per_vintf}", "computed"),
        ("VMs fully served with 4 VCMDQs each, linux / pool", f"{linux4} / {pool4}", "computed"),
        ("ILLs under first-opcode, 18 devices per VM", f"{ill_first}", "computed"),
    ],
)  # fmt: skip
heavy = per_point.filter(pl.col("vms") == per_point["vms"].max()).sort("unsupported_fraction")
cost_vms = int(cs["vms"][0])
il_lo, il_hi = cs["irq_latency_ns"].min(), cs["irq_latency_ns"].max()
ih_lo, ih_hi = cs["irq_handler_ns"].min(), cs["irq_handler_ns"].max()
lo_cost = cost_pts["fixup_mean_ns"].min()
hi_cost = cost_pts["fixup_mean_ns"].max()
answer(
    "Q7",
    f"No: one IRQ's threaded handler runs on one CPU at a time (ONESHOT), so every VINTF/VCMDQ error "
    f"queues for one server. With the assumed costs one fix-up takes S0 = {S0 / 1e3:.1f} us, so the host "
    f"saturates at **{lam_max / 1e3:.0f} k fix-ups/s** whatever the number of VMs; below ρ = 0.8 the mean "
    f"is {md1_lo:+.0%} to {md1_hi:+.0%} off M/D/1 (below it with few vCPUs: finite source) unless the SMMU itself "
    f"is saturated. At {int(heavy['vms'][0])} VMs x 2 vCPUs the mean fix-up latency is "
    f"{heavy['fixup_mean_ns'][0] / 1e3:.0f} us at {heavy['unsupported_fraction'][0]:.0%} unsupported and "
    f"{heavy['fixup_mean_ns'][-1] / 1e3:.0f} us (p99 {heavy['fixup_p99_ns'][-1] / 1e3:.0f} us) at "
    f"{heavy['unsupported_fraction'][-1]:.0%}, and all guests together are capped near "
    f"{lam_max / 1e3:.0f}k ÷ fraction unmaps/s; across irq_latency {il_lo / 1e3:g}-{il_hi / 1e3:g} us and "
    f"handler {ih_lo / 1e3:g}-{ih_hi / 1e3:g} us (assumptions) the {cost_vms}-VM mean at "
    f"{cs['unsupported_fraction'].min():.0%}-{cs['unsupported_fraction'].max():.0%} unsupported ranges "
    f"{lo_cost / 1e3:.0f}-{hi_cost / 1e3:.0f} us.",
    numbers=[
        ("fix-up service time S0 (assumed IRQ costs)", f"{S0 / 1e3:.1f} us", "predicted"),
        ("fix-ups/s one IRQ thread can serve", f"{lam_max / 1e3:.0f} k", "predicted"),
        ("model vs M/D/1 below rho 0.8", f"{md1_lo:+.0%} to {md1_hi:+.0%}", "predicted"),
    ],
)  # fmt: skip
