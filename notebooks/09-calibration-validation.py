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
# # Calibration and validation: how far can the timing model be trusted?
#
# Every other notebook's numbers come from a timing model, not from hardware. This one shows what
# that model is anchored to and how loosely:
#
# 1. **Fit**: the `d06` preset against C1 (John Garry's D06 map+unmap rows, both
#    the v5.9-rc1 lock-free and the "atomic add" rows) and the `grace` preset against C2's 1-thread
#    rows (Nicolin Chen's guest unmap latency, trapped vSMMU and VCMDQ) with C3's trap costs fixed;
#    measured vs model with relative errors, from the stored fit (`read_preset(...).meta`) and a
#    fresh evaluation now.
# 2. **Theory**: the engine against queueing theory (M/D/1 and M/M/1 over utilisation; a closed
#    loop against exact mean-value analysis).
# 3. **Predictions** for configurations no preset was fitted to (D06 at 32/64/96 CPUs and its
#    cmpxchg success ratio at 64; Grace with 2 threads), printed as predictions: the calibration data (docs/sources.md)
#    holds the measured rows back so they can judge the model later.
# 4. **Sensitivity** to every parameter whose provenance is *assumption*: each is varied across a
#    plausible range (stated) and the change in three headline conclusions is shown as a tornado
#    chart and a table.
#
# **What the model is**: a functional model of the queues (spec-exact to the 16-byte command) and
# a calibrated discrete-event timing model of Linux's submission algorithms and an SMMU consuming
# commands, not a cycle-exact simulator of any SMMU, CPU or interconnect. Each timing cost is a
# parameter with its provenance (measured, derived, fitted, assumption).
#
# Sources: [C1 (Garry 2020)](../docs/sources.md#c1-garry-2020), [C2 (Chen 2025)](../docs/sources.md#c2-hwqueue-v9),
# [NVIDIA v12 cover (2024)](../docs/sources.md#c2-cmdqv-v12), [C3 (kvm 2023)](../docs/sources.md#c3-kvm-microbench),
# [C4 (Viennot 2022)](../docs/sources.md#c4-core-to-core), [C4 (gem5 SMMUv3)](../docs/sources.md#c4-gem5-smmu),
# [C4 (Song 2020)](../docs/sources.md#c4-sev-msi); the whole list is in [the bibliography](../docs/sources.md).

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import time

import altair as alt
import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis.calibrate import CalibrationSpec
from cmdqv_lab.analysis.sensitivity_task import GUEST_DIVISOR
from cmdqv_lab.analysis.summary import summarize_sweep
from cmdqv_lab.analysis.validation import (
    CONCLUSIONS,
    RANGES,
    assumed_parameters,
    assumptions_table,
    by_effect,
    checks_table,
    cpus_of,
    fit_table,
    granule_of,
    identifiability_table,
    mva_table,
    queue_theory,
    rms_log_error,
    sensitivity,
    worst_row,
)
from cmdqv_lab.experiments.published import sweep_frame
from cmdqv_lab.platform import Platform, platform_table, read_preset
from cmdqv_lab.report import param_table, result_table

plots.enable()
t_start = time.perf_counter()
print(f"smoke={smoke}")

# %% [markdown]
# ## 1. The presets and their fits
#
# Provenance per parameter: *measured* (a public number), *derived* (computed from one), *fitted*
# (to the calibration rows named in its source), *assumption* (no public number: section 4 varies
# it), *choice* (a configuration, not a cost).

# %%
both = (
    platform_table("d06").select("name", "unit", pl.col("value").alias("d06"), pl.col("provenance").alias("d06 provenance"))
    .join(platform_table("grace").select("name", pl.col("value").alias("grace"),
                                         pl.col("provenance").alias("grace provenance"), "source"), on="name")
)  # fmt: skip
param_table(both, "Platform presets d06 (HiSilicon Hi1620, fitted to C1) and grace (NVIDIA Grace, fitted to C2, C3 fixed)")


# %%
d06_spec, grace_spec = CalibrationSpec.load("d06"), CalibrationSpec.load("grace")
# smoke: fewer ops per row than the fit used (the values then differ slightly from the stored ones)
d06_count = 6_000 if smoke else None
grace_count = 600 if smoke else None
d06_fit, d06_pred = fit_table("d06", d06_count)
grace_fit, grace_pred = fit_table("grace", grace_count)
print(
    f"d06 rows evaluated with {d06_count or d06_spec.count} ops each (fit: {d06_spec.count}, seed {d06_spec.seed}); "
    f"grace with {grace_count or grace_spec.count} (fit: {grace_spec.count})"
)
result_table(d06_fit, "d06 vs C1: map+unmap per CPU per second, measured vs model (fitted)")
result_table(
    grace_fit, "grace vs C2 (1 thread): mean guest unmap latency (ns), measured vs model (fitted)"
)

# %% [markdown]
# What the rows pin down. `cmdqv-lab calibrate NAME` takes the Jacobian of the log model values of
# the fitted rows with respect to the log of each fitted parameter; the Gauss-Newton 1-sigma says how
# tightly the rows hold each one (a parameter above 50 %, or at a bound, is *not constrained*: the
# rows leave it free). The assumptions are the parameters with no public number: the fit held them at
# their nominal value, and the predictions below were refitted at each end of each range. The checks
# are ratios the fit must reproduce besides the rows themselves (C1's 16-CPU gap between the two
# reservation algorithms).

# %%
for name in ("d06", "grace"):
    ident, assumed, checks = identifiability_table(name), assumptions_table(name), checks_table(name)
    if ident.height:
        result_table(ident, f"{name}: fitted parameters, relative 1-sigma from the rows (Jacobian)")
    if assumed.height:
        result_table(assumed, f"{name}: assumptions (no public number), nominal value and profiled range")
    if checks.height:
        result_table(checks, f"{name}: checks at the fit (model ratio, allowed range, measured)")
    if not (ident.height or assumed.height or checks.height):
        print(f"{name}: stored without identifiability or assumption ranges (calibrate {name} --write adds them)")


# %%
d06_long = pl.concat(
    [
        d06_fit.select(
            pl.col("row").map_elements(cpus_of, return_dtype=pl.Int64).alias("cpus"),
            pl.col(c).cast(pl.Float64).alias("ops_per_s_per_cpu"),
            pl.col("row").str.split(",").list.first().alias("series"),
            pl.lit(what).alias("kind"),
        )
        for c, what in (("measured", "measured"), ("model (now)", "fitted"))
    ]
    + [
        d06_pred.filter(pl.col("metric") == "ops_per_s_per_cpu").select(
            pl.col("configuration (PREDICTION, not fitted)")
            .map_elements(cpus_of, return_dtype=pl.Int64)
            .alias("cpus"),
            pl.col("model (now)").cast(pl.Float64).alias("ops_per_s_per_cpu"),
            pl.col("configuration (PREDICTION, not fitted)").str.split(",").list.first().alias("series"),
            pl.lit("predicted").alias("kind"),
            pl.col("low (assumptions)").alias("low"),
            pl.col("high (assumptions)").alias("high"),
        )
    ],
    how="diagonal",
)
plots.show(
    plots.throughput_vs_cpus(
        d06_long,
        y="ops_per_s_per_cpu",
        color="series",
        kind="kind",
        log_x=True,
        y_title="map+unmap per CPU (ops/s)",
        color_title="reservation",
        ranges=("low", "high"),
        title="D06 map+unmap per CPU: C1 measured, model fitted (2-16 CPUs), model predictions (32-96)",
    )
)


grace_long = pl.concat(
    [
        grace_fit.select(
            pl.col("row").map_elements(granule_of, return_dtype=pl.Int64).alias("granule_kib"),
            pl.col(c).cast(pl.Float64).alias("latency_ns"),
            (pl.col("row").str.split(" ").list.first() + pl.lit(", 1 thread")).alias("series"),
            pl.lit(what).alias("kind"),
            pl.col("row").str.split(" ").list.first().alias("path"),
        )
        for c, what in (("measured", "measured"), ("model (now)", "fitted"))
    ]
    + [
        grace_pred.select(
            pl.col("configuration (PREDICTION, not fitted)").str.split(" ").list.first().alias("path"),
            pl.col("configuration (PREDICTION, not fitted)")
            .map_elements(granule_of, return_dtype=pl.Int64)
            .alias("granule_kib"),
            pl.col("model (now)").cast(pl.Float64).alias("latency_ns"),
            (
                pl.col("configuration (PREDICTION, not fitted)").str.split(" ").list.first()
                + pl.lit(", ")
                + pl.col("configuration (PREDICTION, not fitted)").str.split(", ").list.last()
            ).alias("series"),
            pl.lit("predicted").alias("kind"),
            pl.col("low (assumptions)").alias("low"),
            pl.col("high (assumptions)").alias("high"),
        )
    ],
    how="diagonal",
)
plots.show(
    plots.throughput_vs_cpus(
        grace_long,
        ranges=("low", "high"),
        x="granule_kib",
        y="latency_ns",
        color="series",
        kind="kind",
        log_x=True,
        y_title="mean guest unmap latency (ns)",
        title="Grace guest unmap latency: C2 measured (1 thread), model fitted, 2/4/8-thread predictions",
        panel="path",
    )
)

# %% [markdown]
# NVIDIA's covers also state, outside the fitted rows, that guest VCMDQs cut TLB invalidation time
# by "70% to 90%" against the trapped vSMMU (C2). The fitted model's reduction per granule:

# %%
g = grace_fit.with_columns(
    pl.col("row").map_elements(granule_of, return_dtype=pl.Int64).alias("granule_kib"),
    pl.col("row").str.split(" ").list.first().alias("path"),
)
red = (
    g.pivot(on="path", index="granule_kib", values="model (now)")
    .with_columns(
        ((1 - pl.col("VCMDQ") / pl.col("trapped")) * 100).round(1).alias("model: % less than trapped")
    )
    .sort("granule_kib")
)
meas = g.pivot(on="path", index="granule_kib", values="measured").with_columns(
    ((1 - pl.col("VCMDQ") / pl.col("trapped")) * 100).round(1).alias("C2 measured: % less")
)
red = red.join(meas.select("granule_kib", "C2 measured: % less"), on="granule_kib")
result_table(red, "VCMDQ vs trapped: reduction of mean unmap latency (model fitted; NVIDIA states 70-90%)")

# %% [markdown]
# ## 2. The engine against queueing theory
#
# **Open queue**: one queue, Poisson arrivals of single commands, 100 ns service, deterministic
# (M/D/1) or exponential (M/M/1), no software costs: the mean wait must follow
# Pollaczek-Khinchine. Data: the `open-queue-rate` sweep (five seeds per point in full mode).

# %%
oq = sweep_frame("open-queue-rate", smoke=smoke)
print(oq.describe())
oqs = summarize_sweep(
    oq.frame, ["queue_wait_ns_mean", "smmu_busy_fraction"], by=["service_dist", "rate_mcmd_s", "service_ns"]
)
oqw = queue_theory(oqs)
oq_long = pl.concat(
    [
        oq.frame.select(
            (pl.col("rate_mcmd_s") * pl.col("service_ns") / 1000).alias("utilisation"),
            pl.col("queue_wait_ns_mean").alias("mean_wait_ns"),
            (pl.lit("engine, ") + pl.col("service_dist")).alias("series"),
        ),
        oqw.select(
            "utilisation",
            pl.col("theory_wait_ns").alias("mean_wait_ns"),
            pl.when(pl.col("service_dist") == "deterministic")
            .then(pl.lit("M/D/1 theory"))
            .otherwise(pl.lit("M/M/1 theory"))
            .alias("series"),
        ),
    ]
)
plots.show(
    plots.throughput_vs_cpus(
        oq_long,
        x="utilisation",
        y="mean_wait_ns",
        color="series",
        kind="computed",
        y_title="mean wait in queue (ns)",
        subtitle="engine (means of seeds) and queueing theory: a check of the engine, not of hardware",
        title="Open queue: mean wait vs utilisation",
    )
)
result_table(
    oqw.select(
        "service_dist",
        pl.col("utilisation").round(3),
        pl.col("smmu_busy_fraction").round(4),
        pl.col("queue_wait_ns_mean").round(2),
        pl.col("theory_wait_ns").round(2),
        pl.col("rel_error").round(4),
    ),
    "Open queue vs M/D/1 and M/M/1 (means over seeds)",
)

# %% [markdown]
# ### Explore: pick the service distribution
#
# Engine (mean over seeds) and theory, wait against utilisation.

# %%
oq_ex = pl.concat(
    [
        oqw.select(
            "utilisation",
            pl.col("queue_wait_ns_mean").alias("mean_wait_ns"),
            pl.lit("engine").alias("source"),
            "service_dist",
        ),
        oqw.select(
            "utilisation",
            pl.col("theory_wait_ns").alias("mean_wait_ns"),
            pl.lit("theory").alias("source"),
            "service_dist",
        ),
    ]
)
plots.show(
    plots.explorer(
        oq_ex, "utilisation", "mean_wait_ns", "source", "service_dist", log_y=True, kind="computed",
        title="Mean wait in queue"
    )
)

# %% [markdown]
# **Closed loop**: CPUs alternate an exponential think time (900 ns) and one CMD_SYNC served FIFO
# by one SMMU command processor (exponential, 100 ns), every software cost set to zero: a closed
# network of a delay and one FCFS server, for which mean-value analysis is exact. Spec
# `nb-cal-closed-mva`; both the lock-free and spinlock algorithms.

# %%
mva = sweep_frame("nb-cal-closed-mva", smoke=smoke)
print(mva.describe())
think, service = 900.0, 100.0
mvs = summarize_sweep(mva.frame, ["ops_per_s", "op_latency_ns_mean"], by=["submit", "cpus"])
mv = mva_table(mvs, think, service)
mv_long = pl.concat(
    [
        mva.frame.select(
            "cpus", pl.col("ops_per_s"), (pl.lit("engine, ") + pl.col("submit")).alias("series")
        ),
        mv.filter(pl.col("submit") == mv["submit"][0]).select(
            "cpus", pl.col("mva_ops_per_s").alias("ops_per_s"), pl.lit("exact MVA").alias("series")
        ),
    ]
)
plots.show(
    plots.throughput_vs_cpus(
        mv_long, color="series", log_x=True, kind="computed", title="Closed loop: throughput vs exact MVA",
        subtitle="engine (means of seeds) and exact mean-value analysis: a check of the engine, not of hardware"
    )
)
result_table(
    mv.with_columns(pl.col(["ops_per_s", "mva_ops_per_s", "op_latency_ns_mean", "mva_response_ns"]).round(1)),
    "Closed loop vs exact MVA",
)

# %% [markdown]
# ## 3. Predictions for configurations outside the fit
#
# the published measurements at these configurations were held out of the fit: the model's values below are **predictions**,
# stored with the preset when it was fitted and recomputed now, to be compared with the held-out
# measurements later. They are not facts about the hardware.

# %%
result_table(
    d06_pred, "PREDICTIONS, d06: map+unmap per CPU at 32/64/96 CPUs and cmpxchg success at 64 (not fitted)"
)
gp = grace_pred.with_columns(
    pl.col("configuration (PREDICTION, not fitted)")
    .map_elements(granule_of, return_dtype=pl.Int64)
    .alias("granule_kib"),
    pl.col("configuration (PREDICTION, not fitted)").str.split(" ").list.first().alias("path"),
    pl.col("configuration (PREDICTION, not fitted)").str.extract(r", (\d+) threads", 1).cast(pl.Int64).alias("threads"),
)
result_table(
    gp.select(
        "path", "granule_kib", "threads", pl.col("model (now)").alias("prediction (ns)"),
        pl.col("low (assumptions)").alias("low end (ns)"), pl.col("high (assumptions)").alias("high end (ns)"),
        "moved most by",
    ).sort("path", "threads", "granule_kib"),
    "PREDICTIONS, grace: mean guest unmap latency at 2, 4 and 8 threads, with the range over the assumptions "
    "(profiled refits; not a confidence interval)",
)  # fmt: skip
grace_2t = (
    gp.filter(pl.col("threads") == 2)
    .pivot(on="path", index="granule_kib", values="model (now)")
    .rename({"trapped": "trapped, 2 threads (ns, PREDICTION)", "VCMDQ": "VCMDQ, 2 threads (ns, PREDICTION)"})
    .join(
        g.pivot(on="path", index="granule_kib", values="measured").rename(
            {"trapped": "trapped, 1 thread (C2 measured)", "VCMDQ": "VCMDQ, 1 thread (C2 measured)"}
        ),
        on="granule_kib",
    )
    .sort("granule_kib")
)
result_table(
    grace_2t,
    "PREDICTIONS, grace: mean guest unmap latency with 2 threads (not fitted), beside the 1-thread C2 rows",
)

# %% [markdown]
# ## 4. Sensitivity to every assumed parameter
#
# Each Platform field whose provenance is *assumption* (no public number) is set to the low and the
# high end of a plausible range (and, in full mode, two points between them, geometric for positive
# ranges), everything else as in the preset, and three headline conclusions are recomputed:
#
# * **Q9**: per-CPU ECMDQs with the exclusive path vs the shared main cmdq with lock-free, ops/s per
#   CPU ratio at 16 CPUs (`d06`, host map+unmap);
# * **Q6**: trapped vSMMU vs VCMDQ pass-through, ratio of mean guest unmap latency (`grace`, 4 KiB,
#   1 thread);
# * **Q6/Q7**: error-interrupt fix-up latency, from a VCMDQ error to the queue resumed (`grace`,
#   `guest-fixup` with 5% of unmaps carrying an unsupported command).
#
# The runs are the published sweep `nb-cal-sensitivity` (task `sensitivity`; smoke mode runs its
# quick variant: the two ends, fewer ops). One seed per run with common random numbers: differences of a percent or two at 16 CPUs are
# run-to-run noise (compare notebook 07's intervals). A parameter a preset fitted (d06: `think_ns`,
# `line_hold_p`; grace: `guest_unmap_ns`, `vmm_trap_ns`, `vmm_per_cmd_ns`) is still varied: its
# bar says how much the conclusion would move if the fit were off by that much. The ranges:

# %%
infos = Platform.field_infos()
assumed = assumed_parameters()
d06_vals, grace_vals = read_preset("d06").values, read_preset("grace").values
d06_prov, grace_prov = read_preset("d06").provenance, read_preset("grace").provenance
range_table = pl.DataFrame(
    [
        {
            "parameter": k,
            "unit": infos[k][1].unit,
            "low": RANGES[k][0],
            "high": RANGES[k][1],
            "d06 value": str(d06_vals.get(k, infos[k][0]))
            + (" (fitted)" if d06_prov.get(k) == "fitted" else ""),
            "grace value": str(grace_vals.get(k, infos[k][0]))
            + (" (fitted)" if grace_prov.get(k) == "fitted" else ""),
            "why this range": RANGES[k][2],
        }
        for k in assumed
    ]
)
result_table(range_table, f"The {len(assumed)} assumed Platform parameters and the ranges varied")

# %%
CONCL = CONCLUSIONS
sens_runs = sweep_frame("nb-cal-sensitivity", smoke=smoke)
print(sens_runs.describe())
swept = [p for p in sens_runs.frame["parameter"].unique(maintain_order=True).to_list() if p != "none"]
assert swept == assumed, f"the sensitivity sweep covers {swept}, the assumptions are {assumed}: update its spec"
sens, base, errors = sensitivity(sens_runs.frame)
N_HOST = int(sens_runs.frame["count"][0])
print(
    f"sensitivity: {len(assumed)} parameters, {sens.height // len(CONCL)} settings, {N_HOST} host ops / "
    f"{N_HOST // GUEST_DIVISOR} guest ops per run"
)
print("baseline:", {CONCL[k]: round(v, 3) for k, v in base.items()})
for e in errors:
    print("refused:", e)

# %% [markdown]
# ### Tornado: change of each conclusion at the low and high end of each range
#
# Bars in percent of the baseline conclusion; parameters sorted by their largest effect on any of
# the three. A missing bar is a change of zero: that conclusion does not depend on the parameter.

# %%
ends = sens.filter(pl.col("end") != "between")
order = by_effect(ends)
tornado = (
    alt.Chart(ends.with_columns(pl.col("change_pct").clip(-200, 1000).alias("change (%, clipped)")))
    .mark_bar()
    .encode(
        y=alt.Y("parameter:N", sort=order, title=None),
        x=alt.X("change (%, clipped):Q", title="change vs baseline (%, clipped to -200..1000)"),
        color=alt.Color("end:N", scale=alt.Scale(domain=["low", "high"]), title="range end"),
        yOffset=alt.YOffset("end:N", sort=["low", "high"]),
        tooltip=[
            "parameter:N",
            "value:Q",
            "end:N",
            "result:Q",
            "baseline:Q",
            alt.Tooltip("change_pct:Q", format=".1f"),
        ],
    )
    .properties(width=200, height=alt.Step(9))
    .facet(column=alt.Column("conclusion:N", title=None, header=alt.Header(labelLimit=0, labelFontSize=11)))
    .resolve_scale(x="independent")
    .properties(
        title=alt.TitleParams(
            "Sensitivity of three conclusions to each assumed parameter (low / high end of its range)",
            subtitle="model prediction at each end of the range (one seed, common random numbers)",
        )
    )
    .configure_legend(orient="bottom")
)
plots.show(tornado)

# %%
table = ends.with_columns(pl.col("change_pct").round(1)).pivot(
    on=["conclusion", "end"], index="parameter", values="change_pct"
)
table = table.rename({c: c.replace('{"', "").replace('","', " @ ").replace('"}', "") for c in table.columns})
table = table.join(range_table.select("parameter", "low", "high"), on="parameter").sort(
    pl.col("parameter").replace_strict({p: i for i, p in enumerate(order)})
)
result_table(
    table.head(8), "Change of each conclusion (%) at the ends of the ranges: the 8 parameters that matter most"
)

# %% [markdown]
# A zero means that *this* conclusion, in *this* configuration, does not depend on the parameter,
# not that the parameter never matters: `guest_error_ns` only acts when a VCMDQ error is forwarded
# to the guest (first-opcode routing, Q1), `clk_batch_ns` and `hw_sync_ns` only with several
# VCMDQs and hardware-inserted SYNCs (Q3), `vmm_lock` only with several vCPUs trapping at once
# (Q8), the queue sizes only when a queue fills. The notebooks of those questions vary them where
# they matter.

# %% [markdown]
# ### Explore: one parameter at a time across its range
#
# x: position in the range (0 = low end, 1 = high end; geometric between them), y: change of each
# conclusion in percent of its baseline.

# %%
plots.show(
    plots.explorer(
        sens.select("position", pl.col("change_pct").clip(-200, 1000), "conclusion", "parameter"),
        "position",
        "change_pct",
        "conclusion",
        "parameter",
        control="select",
        initial=order[0],
        title="Change vs baseline",
    )
)

# %% [markdown]
# ## Live exploration (Jupyter only)
#
# The queueing check, live: arrival rate, service time and distribution, burst size, with the M/D/1
# or M/M/1 prediction printed beside the engine's result.

# %%
widgets.explore_open_queue(count=20_000)

# %% [markdown]
# ## Summary
#
# Printed from the numbers above. Predictions are labelled as such.


# %%
d_row, d_err = worst_row(d06_fit)
g_row, g_err = worst_row(grace_fit)
d_rms = rms_log_error(d06_fit["rel. error (now)"])
g_rms = rms_log_error(grace_fit["rel. error (now)"])
oq_err = oqw["rel_error"].abs().max()
oq_rho = oqw["utilisation"].max()
mv_err = max(mv["throughput rel. error"].abs().max(), mv["response rel. error"].abs().max())
lf_pred = {r["configuration (PREDICTION, not fitted)"]: r["model (now)"] for r in d06_pred.to_dicts()}
top = {
    key: ends.filter(pl.col("conclusion") == CONCL[key])
    .with_columns(pl.col("change_pct").abs().alias("a"))
    .sort("a", descending=True)
    .head(3)
    for key in CONCL
}
print("Calibration and validation summary")
print(f"  d06 vs C1 (8 rows): worst {d_row} {d_err * 100:+.1f}%, rms log error {d_rms:.3f}")
print(f"  grace vs C2 1-thread (10 rows): worst {g_row} {g_err * 100:+.1f}%, rms log error {g_rms:.3f}")
print(
    f"  VCMDQ vs trapped, model: {red['model: % less than trapped'].min():.0f}-{red['model: % less than trapped'].max():.0f}% less (NVIDIA: 70-90%)"
)
print(
    f"  open queue vs M/D/1, M/M/1 up to utilisation {oq_rho:.2f}: worst mean-wait error {oq_err * 100:.1f}%"
)
print(f"  closed loop vs exact MVA, 1-{mv['cpus'].max()} CPUs: worst error {mv_err * 100:.1f}%")
print("  PREDICTIONS (not fitted; held-out rows judge them):")
for k, v in lf_pred.items():
    print(f"    d06 {k}: {v:,}")
for r in grace_2t.iter_rows(named=True):
    print(
        f"    grace {r['granule_kib']} KiB, 2 threads: trapped {r['trapped, 2 threads (ns, PREDICTION)']:,.0f} ns, "
        f"VCMDQ {r['VCMDQ, 2 threads (ns, PREDICTION)']:,.0f} ns"
    )
print("  sensitivity, baseline and the three largest effects per conclusion (low..high end):")
for key, t in top.items():
    effects = "; ".join(
        f"{r['parameter']} {r['end']} {r['change_pct']:+.0f}%" for r in t.iter_rows(named=True)
    )
    print(f"    {CONCL[key]} = {base[key]:.3f}: {effects}")
flat = [p for p in assumed if ends.filter(pl.col("parameter") == p)["change_pct"].abs().max() < 1.0]
print(
    f"  {len(flat)} of {len(assumed)} assumed parameters move no conclusion by 1% or more: {', '.join(flat)}"
)
print(f"  notebook run time {time.perf_counter() - t_start:.1f} s")
