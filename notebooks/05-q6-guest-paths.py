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
# # Q6: trap-and-emulate, direct VCMDQ with a trapped fallback, or fix-up from the error interrupt?
#
# From the Tegra241 CMDQV v3 review thread (December 2021):
#
# > **Robin Murphy:** "Basically it's quite neat if we could present a virtual queue to the guest as
# > the vSMMU's main queue, such that any commands that the hardware can't consume directly could be
# > fixed up or emulated by the host with the illusion that they're being consumed as normal. It
# > does push more complexity into the host, and a round trip via the GError interrupt would be a
# > bit less efficient than trapping synchronously on a write to an emulated CMDQ_PROD for commands
# > that *do* need emulating, but conversely it means we could support any guest with only the most
# > basic understanding of SMMUv3.0, and could potentially be more robust overall."
# >
# > **Nicolin Chen:** "Wow...that's an interesting idea!"
#
# **What this notebook must answer** (Q6): the latency and throughput of
# three ways a guest's invalidations reach the SMMU, against the fraction of guest unmaps whose
# batch carries a command a guest-owned VCMDQ rejects:
#
# * **trap**: trap-and-emulate vSMMU (`guest-trap`): every PROD write and CONS poll exits to the
#   VMM, which forwards one command per ioctl under the VM's lock;
# * **VCMDQ + trapped fallback** (`guest-vcmdq`): supported batches go straight to a pass-through
#   VCMDQ; a batch with an unsupported command goes the trapped way whole (`scan`) or is split at
#   it (`split`);
# * **fix-up** (`guest-fixup`, Robin's proposal): everything goes to the VCMDQ; an unsupported
#   command raises ILL, the host's CMDQV IRQ thread emulates it on the host queue, rewrites the
#   entry and resumes; the guest never sees the error.
#
# and the **break-even fraction** at which fix-up stops beating the others, how it moves with the
# assumed interrupt latency `irq_latency_ns` and the VMM's trap cost `vmm_trap_ns`, and the
# granule dependence (C2 reproduced).
#
# Sources: [seed thread](../docs/sources.md#seed-thread) (Robin Murphy's proposal),
# [C2 (Chen 2025)](../docs/sources.md#c2-hwqueue-v9) (the Grace rows the preset is fitted to),
# [C3 (kvm 2023)](../docs/sources.md#c3-kvm-microbench) (trap costs), [QEMU 10.2 SMMUv3](../docs/sources.md#qemu-10.2-smmuv3)
# and [QEMU accel SMMUv3 + CMDQV](../docs/sources.md#qemu-accel-cmdqv) (the trapped path: one ioctl per command).

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import re
from functools import partial

import altair as alt
import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis.breakeven import break_even_text, crossing_table, per_unsupported_cost, sensitivity
from cmdqv_lab.analysis.frames import sweep
from cmdqv_lab.analysis.summary import summarize_replicates
from cmdqv_lab.platform import load_platform, platform_table, read_preset
from cmdqv_lab.report import answer, param_table, result_table
from cmdqv_lab.widgets import Control

plots.enable()
grace = load_platform("grace")
load = partial(sweep, smoke=smoke)


# %% [markdown]
# ## The model and its parameters
#
# Each vCPU runs `dma_map_benchmark`: guest CPU work (`guest_map_ns`, then `guest_unmap_ns`), then
# a strict unmap of `granule_kib` (one CMD_TLBI_NH_VA per 4 KiB page, batches of 64, a CMD_SYNC)
# whose completion it waits for; the unmap latency is what the benchmark reports. In a fraction
# `unsupported_fraction` of the unmaps the batch also carries a CMD_CFGI_CD, which a guest-owned
# VCMDQ rejects. All VMs share one SMMU command processor and the host main queue.
#
# The `grace` preset fits `guest_unmap_ns`, `vmm_trap_ns`, `vmm_per_cmd_ns` and `tlbi_service_ns`
# to C2's 1-thread rows with C3's trap costs fixed (Kunpeng 920: no Grace number is public). The
# interrupt costs of the fix-up path have no public number at all: they are assumptions, and the
# break-even section varies the one that matters (`irq_latency_ns`).

# %%
guest_rows = [
    "trap_user_ns", "vmm_trap_ns", "vmm_read_ns", "vmm_per_cmd_ns", "vmm_ioctl_ns", "vmm_forward", "vmm_batch",
    "vmm_lock", "futex_wake_ns", "guest_poll", "guest_sync_wait", "guest_unmap_ns",
    "guest_map_ns", "tlbi_service_ns", "cfgi_service_ns", "sync_service_ns", "fetch_ns", "mmio_read_ns",
    "vcmdq_sync_wait", "irq_latency_ns", "irq_handler_ns", "irq_ack_ns", "smmu_parallel",
]  # fmt: skip
param_table(
    platform_table("grace")
    .filter(pl.col("name").is_in(guest_rows))
    .select("name", "value", "unit", "provenance", "source", "doc"),
    "Grace preset: the costs of the three guest paths (fitted to C2, measured in C3, or assumed)",
)

# %% [markdown]
# ## Validation: C2 (granule dependence)
#
# `dma_map_benchmark -g <granule> -t 1` in a guest on Grace, trapped vSMMU vs VCMDQ. The 1-thread
# rows are the ones the preset is fitted to (so agreement there checks the fit, not a prediction);
# the 2-thread rows are predictions stored in `data/params/grace.toml` before any 2-thread number
# was looked at. Fix-up at 0 % unsupported is the VCMDQ path exactly.

# %%
gt = load("nb-q6-granule-trap").with_columns(pl.lit("trapped").alias("path"))
gv = load("nb-q6-granule-vcmdq").with_columns(pl.lit("VCMDQ").alias("path"))
gran = pl.concat([d.select("path", "threads", "granule_kib", "seed", "op_latency_ns_mean") for d in (gt, gv)])
preset = read_preset("grace").meta
_LABEL = re.compile(r"^(trapped|VCMDQ) (\d+) KiB, (\d+) threads?$")


def c2_rows(key: str, *values: str) -> pl.DataFrame:
    rows = []
    for r in preset.get(key, []):
        m = _LABEL.match(r["label"])
        if m:
            rows.append({"path": m[1], "granule_kib": int(m[2]), "threads": int(m[3]),
                         **{v: float(r[v]) if r.get(v) is not None else None for v in values}})  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={v: pl.Float64 for v in values})


measured = c2_rows("fit_row", "measured")
# stored predictions, with their range over the calibration's assumptions (profiled refits)
predicted = c2_rows("prediction", "model", "low", "high").rename(
    {"low": "prediction low (assumptions)", "high": "prediction high (assumptions)"}
)
g_sum = summarize_replicates(gran, ["path", "threads", "granule_kib"], "op_latency_ns_mean")
c2 = (
    g_sum.join(measured, on=["path", "granule_kib", "threads"], how="left")
    .join(predicted.rename({"model": "stored_prediction"}), on=["path", "granule_kib", "threads"], how="left")
    .with_columns(((pl.col("mean") - pl.col("measured")) / pl.col("measured")).alias("rel_error_vs_C2"))
    .select("path", "threads", "granule_kib", "mean", "ci_lo", "ci_hi", "measured", "rel_error_vs_C2", "stored_prediction",
            "prediction low (assumptions)", "prediction high (assumptions)")
    .sort("threads", "path", "granule_kib")
)  # fmt: skip
result_table(c2, "C2: mean unmap latency (ns), model vs measured (1 thread, fitted) and 2-thread predictions")
worst_fit = c2.filter(pl.col("measured").is_not_null())["rel_error_vs_C2"].abs().max()

# %%
def series(d: pl.DataFrame) -> pl.Expr:
    return pl.col("path") + ", " + pl.col("threads").cast(pl.String) + (
        pl.when(pl.col("threads") == 1).then(pl.lit(" thread")).otherwise(pl.lit(" threads"))
    )


g_plot = pl.concat(
    [
        gran.with_columns(series(gran).alias("series"),
                          pl.when(pl.col("threads") == 1).then(pl.lit("fitted")).otherwise(pl.lit("predicted")).alias("kind"))
        .join(predicted.select("path", "granule_kib", "threads", pl.col("prediction low (assumptions)").alias("low"),
                               pl.col("prediction high (assumptions)").alias("high")),
              on=["path", "granule_kib", "threads"], how="left")
        .select("series", "granule_kib", "op_latency_ns_mean", "kind", "low", "high"),
        measured.with_columns(series(measured).alias("series"), pl.lit("measured").alias("kind"))
        .select("series", "granule_kib", pl.col("measured").alias("op_latency_ns_mean"), "kind"),
    ],
    how="diagonal",
)  # fmt: skip
plots.show(
    plots.throughput_vs_cpus(
        g_plot, x="granule_kib", y="op_latency_ns_mean", color="series", kind="kind", log_x=True,
        y_title="mean unmap latency (ns)", ranges=("low", "high"),
        title="Unmap latency vs granule: C2 measured (1 thread), model fitted (1 thread), predicted (2 threads)",
    )
)  # fmt: skip

# %% [markdown]
# ## The three paths against the fraction of unsupported commands
#
# Three loads: one VM with one vCPU (C2's benchmark), one VM with 4 vCPUs (they share the VM's
# VMM lock on the trapped path), and 8 VMs with 2 vCPUs each (they share the host's one CMDQV IRQ
# thread on the fix-up path). 4 KiB unmaps.

# %%
tr = load("nb-q6-trap").with_columns(pl.lit("trap").alias("path"))
vc = load("nb-q6-vcmdq").with_columns(("vcmdq-" + pl.col("policy")).alias("path"))
fx = load("nb-q6-fixup").with_columns(pl.lit("fixup").alias("path"))
cols = ["path", "vms", "threads", "unsupported_fraction", "seed", "op_latency_ns_mean", "op_latency_ns_p99",
        "ops_per_s_per_cpu", "exits", "guest_irqs", "fixups"]  # fmt: skip
paths = pl.concat([d.select(cols) for d in (tr, vc, fx)]).with_columns(
    (pl.col("vms").cast(pl.String) + " VM x " + pl.col("threads").cast(pl.String) + " vCPU").alias("load")
)
loads = paths.select("vms", "threads", "load").unique().sort("vms", "threads")["load"].to_list()
lat = summarize_replicates(paths, ["load", "path", "unsupported_fraction"], "op_latency_ns_mean")
lat_p99 = summarize_replicates(paths, ["load", "path", "unsupported_fraction"], "op_latency_ns_p99")
tput = summarize_replicates(paths, ["load", "path", "unsupported_fraction"], "ops_per_s_per_cpu")

# %%
for ld in loads:
    plots.show(
        plots.throughput_vs_cpus(
            paths.filter(pl.col("load") == ld),
            x="unsupported_fraction",
            y="op_latency_ns_mean",
            color="path",
            y_title="mean unmap latency (ns)",
            title=f"Mean unmap latency vs unsupported fraction, {ld}",
        )
    )

# %% [markdown]
# **Explore**: mean and p99 unmap latency, and unmaps per second per vCPU, per path; the
# drop-down picks the load.

# %%
explore_df = pl.concat(
    [
        s.select("load", "path", "unsupported_fraction", pl.col("mean").alias("value")).with_columns(
            pl.lit(what).alias("metric")
        )
        for s, what in ((lat, "latency mean (ns)"), (lat_p99, "latency p99 (ns)"))
    ]
).with_columns((pl.col("path") + ": " + pl.col("metric")).alias("series"))
plots.show(
    plots.explorer(
        explore_df.select("load", "series", "unsupported_fraction", "value"),
        "unsupported_fraction",
        "value",
        "series",
        "load",
        log_y=True,
        y_title="unmap latency (ns)",
        title="Unmap latency per path",
    )
)
plots.show(
    plots.explorer(
        tput.select("load", "path", "unsupported_fraction", pl.col("mean").alias("ops_per_s_per_vcpu")),
        "unsupported_fraction",
        "ops_per_s_per_vcpu",
        "path",
        "load",
        y_title="unmaps/s per vCPU",
        title="Unmaps per second per vCPU",
    )
)

# %% [markdown]
# ## Break-even: where fix-up stops beating the others
#
# For each load and each other path, the fraction at which the fix-up path's mean unmap latency
# first exceeds the other's (linear interpolation between grid points). "none" means fix-up is
# faster at every fraction up to 100 %; 0 means it is never faster.


# %%
be_default = crossing_table(lat, ["load"])
result_table(be_default, "Break-even fraction of unsupported unmaps, default costs (model prediction)")

# %% [markdown]
# At one vCPU nothing queues: every path's latency is linear in the fraction, and fix-up and the
# trapped fallback start from the same point (a clean VCMDQ), so one of them is faster at every
# fraction. The comparison is then per unsupported command: the fix-up adds `irq_latency_ns` plus
# the handler, emulation and acknowledgement; the trapped fallback adds the PROD trap, the VMM's
# work (`vmm_trap_ns`) and the forwarding ioctl (the next section measures both and prints which
# is cheaper). Under load two things change, both against the fix-up: the host has one IRQ
# thread for all VMs (a single server, notebook 03) while every VM has its own VMM lock; and an
# ILL halts the whole VCMDQ, so a vCPU sharing that queue waits behind the fix-up too (the
# trapped fallback only delays the vCPU that issued the command). With 8 VMs a real break-even
# fraction appears.

# %% [markdown]
# ## How the break-even moves with the assumed costs
#
# `irq_latency_ns` (assumption, default 5 us) moves the fix-up path; `vmm_trap_ns` (fitted to C2
# for QEMU at about 22.6 us; a leaner emulation, e.g. in the host kernel, would cut it) moves the
# trapped paths. The comparison uses the better trapped fallback (`split`) and full trapping.

# %%
fcost = load("nb-q6-fixup-cost").with_columns(pl.lit("fixup").alias("path"))
tcost = load("nb-q6-trap-cost").with_columns(pl.lit("trap").alias("path"))
vcost = load("nb-q6-vcmdq-cost").with_columns(("vcmdq-" + pl.col("policy")).alias("path"))
keep = [
    "path",
    "vms",
    "threads",
    "unsupported_fraction",
    "irq_latency_ns",
    "vmm_trap_ns",
    "op_latency_ns_mean",
]
# the preset's own values come from the main sweeps (same grid of loads where they overlap)
base = pl.concat(
    [d.select(keep) for d in (tr, vc.filter(pl.col("policy") == "split"), fx)]
    + [d.select(keep) for d in (fcost, tcost, vcost)]
)
cost_loads = fcost.select("vms", "threads").unique()
base = base.join(cost_loads, on=["vms", "threads"]).with_columns(
    (pl.col("vms").cast(pl.String) + " VM x " + pl.col("threads").cast(pl.String) + " vCPU").alias("load")
)
fracs = sorted(set(fcost["unsupported_fraction"]) & set(tcost["unsupported_fraction"]))
base = base.filter(pl.col("unsupported_fraction").is_in(fracs))
cost_mean = base.group_by("load", "path", "irq_latency_ns", "vmm_trap_ns", "unsupported_fraction", maintain_order=True).agg(
    pl.col("op_latency_ns_mean").mean().alias("mean")
)
sens = sensitivity(cost_mean)
for (ld, other), g in sens.group_by("load", "versus", maintain_order=True):
    g = g.with_columns(pl.col("vmm_trap_us").round(1))
    enc = {
        "x": alt.X("vmm_trap_us:O", title="VMM work per trapped PROD write (µs)"),
        "y": alt.Y("irq_latency_us:O", title="IRQ latency to the handler thread (µs)", sort="descending"),
    }
    heat = (
        alt.Chart(g)
        .mark_rect()
        .encode(
            **enc,
            color=alt.Color(
                "break_even_fraction:Q",
                title="break-even fraction",
                scale=alt.Scale(domain=[0, 1], scheme="yellowgreenblue"),
            ),
        )
    )
    text = alt.Chart(g).mark_text(color="black", fontSize=12).encode(**enc, text="label:N")
    plots.show(
        (heat + text).properties(
            width=360,
            height=240,
            title=alt.TitleParams(
                f"Fix-up vs {other}, {ld}",
                subtitle="model prediction: unsupported fraction where fix-up stops being faster (none: up to 100%)",
            ),
        )
    )


# %%
# One vCPU: the extra latency of one unsupported unmap on each path (least-squares slope over f).
one = base.filter(pl.col("load") == "1 VM x 1 vCPU")
per_cmd_df = per_unsupported_cost(one)
result_table(
    per_cmd_df.filter(pl.col("path") != "trap").sort("path", "knob_ns"),
    "1 vCPU: extra unmap latency per unsupported unmap (knob = irq_latency_ns for fixup, vmm_trap_ns otherwise)",
)
fix_fixed = per_cmd_df.filter(pl.col("path") == "fixup")["fixed_part_ns"].mean()
split_fixed = per_cmd_df.filter(pl.col("path") == "vcmdq-split")["fixed_part_ns"].mean()
margin_ns = split_fixed - fix_fixed
print(
    f"fix-up: irq_latency_ns + {fix_fixed:.0f} ns per unsupported unmap; split fallback: vmm_trap_ns + "
    f"{split_fixed:.0f} ns -> fix-up is faster at every fraction iff irq_latency_ns < vmm_trap_ns + {margin_ns:.0f} ns"
)

# %% [markdown]
# **Explore** the sensitivity runs: the drop-down picks a value of the assumed interrupt latency;
# the trapped paths stay at the preset's fitted `vmm_trap_ns`.

# %%
fit_trap = grace.vmm_trap_ns
sl = cost_mean.filter(
    ((pl.col("path") == "fixup") | (pl.col("vmm_trap_ns") == fit_trap))
    & (pl.col("load") == cost_mean["load"].sort()[0])
)
fix_curves = sl.filter(pl.col("path") == "fixup")
others = sl.filter(pl.col("path") != "fixup").drop("irq_latency_ns")
ex_rows = pl.concat(
    [
        fix_curves.select("irq_latency_ns", "path", "unsupported_fraction", "mean"),
        others.join(fix_curves.select("irq_latency_ns").unique(), how="cross").select(
            "irq_latency_ns", "path", "unsupported_fraction", "mean"
        ),
    ]
).with_columns((pl.col("irq_latency_ns") / 1e3).alias("irq_latency_us"))
plots.show(
    plots.explorer(
        ex_rows.select("irq_latency_us", "path", "unsupported_fraction", pl.col("mean").alias("latency_ns")),
        "unsupported_fraction",
        "latency_ns",
        "path",
        "irq_latency_us",
        control="select",
        slider_title="IRQ latency (µs)",
        title=f"Mean unmap latency, {cost_mean['load'].sort()[0]}, VMM trap cost {fit_trap / 1e3:.1f} µs (fitted)",
    )
)

# %% [markdown]
# ### Live: re-simulate the fix-up path (needs a running kernel)

# %%
widgets.explore(
    "guest-fixup",
    params=[
        Control("vms", lo=1, hi=32),
        Control("threads", lo=1, hi=8),
        Control("irq_latency_ns", lo=0, hi=50_000),
        Control("irq_handler_ns", lo=0, hi=20_000),
        Control("granule_kib", values=(4, 16, 64, 256)),
    ],
    x=Control("unsupported_fraction", values=(0.0, 0.2, 1.0)),  # type more fractions into the list
    metric="op_latency_ns_mean",
    fixed={"platform": "grace"},
    summary=("ops_per_s", "op_latency_ns_mean", "op_latency_ns_p99", "fixup_latency_ns_mean"),
    seeds=2,  # the status line's 95% interval is over seeds
    count=1000,  # about 0.3 s per slider move; "more ops" (or the count menu) narrows the interval
)

# %% [markdown]
# ## Answer

# %%
one_vcpu = be_default.filter(pl.col("load") == loads[0])
many = be_default.filter(pl.col("load") == loads[-1])


be_text = break_even_text
speed0 = one_vcpu.filter(pl.col("versus") == "trap")["speedup_at_0"][0]
at100 = lat.filter((pl.col("load") == loads[0]) & (pl.col("unsupported_fraction") == 1.0))
fix_at_100 = at100.filter(pl.col("path") == "fixup")["mean"][0]
trap_at_100 = at100.filter(pl.col("path") == "trap")["mean"][0]
sens_load = sens["load"].sort()[-1]  # the heaviest load the sensitivity sweeps ran
sens_many = sens.filter((pl.col("load") == sens_load) & (pl.col("versus") == "vcmdq-split"))
ranked = sens_many.filter(pl.col("break_even_fraction").is_not_null()).sort("break_even_fraction")
n_never = sens_many["break_even_fraction"].null_count()
range_txt = (
    f"{ranked['label'][0]} to {ranked['label'][-1]}"
    + (f" (none up to 100% in {n_never} of {sens_many.height} cases)" if n_never else "")
    if ranked.height
    else f"none up to 100% in all {sens_many.height} cases"
)
il_rng = f"{sens['irq_latency_us'].min():g}-{sens['irq_latency_us'].max():g} us"
vt_rng = f"{sens['vmm_trap_us'].min():.1f}-{sens['vmm_trap_us'].max():.1f} us"
cheaper = "cheaper" if grace.irq_latency_ns + fix_fixed < grace.vmm_trap_ns + split_fixed else "dearer"
answer(
    "Q6",
    f"At 0% unsupported the VCMDQ and fix-up paths are **{speed0:.1f}x faster** than trapping "
    f"({loads[0]}, 4 KiB; C2 fitted within {worst_fit:.0%}). With one vCPU fix-up is faster than the split "
    f"fallback **{be_text(one_vcpu, 'vcmdq-split')}** and than full trapping "
    f"{be_text(one_vcpu, 'trap')} (at 100%: {fix_at_100 / 1e3:.1f} vs {trap_at_100 / 1e3:.1f} us), because one "
    f"interrupt round trip (irq_latency + {fix_fixed / 1e3:.1f} us) is {cheaper} than QEMU's fitted trap "
    f"(vmm_trap + {split_fixed / 1e3:.1f} us): Robin's 'a bit less efficient' holds only if "
    f"irq_latency_ns > vmm_trap_ns + {margin_ns / 1e3:.1f} us. With {loads[-1]} the single host IRQ thread "
    f"queues: fix-up is faster than split **{be_text(many, 'vcmdq-split')}** unsupported and than full "
    f"trapping {be_text(many, 'trap')}; over irq_latency {il_rng} and vmm_trap {vt_rng} "
    f"(what-ifs around the assumed {grace.irq_latency_ns / 1e3:g} us and the fitted {grace.vmm_trap_ns / 1e3:.1f} us) "
    f"the split break-even at {sens_load} ranges {range_txt}.",
    numbers=[
        ("VCMDQ / fix-up vs trapping at 0% unsupported", f"{speed0:.1f}x faster", "predicted"),
        ("worst C2 1-thread row of the grace fit", f"{worst_fit:.0%}", "fitted"),
        (f"fix-up faster than split, {loads[-1]}", be_text(many, "vcmdq-split"), "predicted"),
        ("fix-up cheaper than a trap iff irq_latency < vmm_trap +", f"{margin_ns / 1e3:.1f} us", "predicted"),
    ],
)  # fmt: skip
