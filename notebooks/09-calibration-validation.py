# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Calibration and validation: how far can the timing model be trusted?
#
# Every other notebook's numbers come from a timing model, not from hardware. This one shows what
# that model is anchored to and how loosely:
#
# 1. **Fit**: the `d06` preset against calibration.md C1 (John Garry's D06 map+unmap rows, both
#    the v5.9-rc1 lock-free and the "atomic add" rows) and the `grace` preset against C2's 1-thread
#    rows (Nicolin Chen's guest unmap latency, trapped vSMMU and VCMDQ) with C3's trap costs fixed;
#    measured vs model with relative errors, from the stored fit (`read_preset(...).meta`) and a
#    fresh evaluation now.
# 2. **Theory**: the engine against queueing theory (M/D/1 and M/M/1 over utilisation; a closed
#    loop against exact mean-value analysis).
# 3. **Predictions** for configurations no preset was fitted to (D06 at 32/64/96 CPUs and its
#    cmpxchg success ratio at 64; Grace with 2 threads), printed as predictions: calibration.md
#    holds the measured rows back so they can judge the model later.
# 4. **Sensitivity** to every parameter whose provenance is *assumption*: each is varied across a
#    plausible range (stated) and the change in three headline conclusions is shown as a tornado
#    chart and a table.
#
# **What the model is**: a functional model of the queues (spec-exact to the 16-byte command) and
# a calibrated discrete-event timing model of Linux's submission algorithms and an SMMU consuming
# commands, not a cycle-exact simulator of any SMMU, CPU or interconnect. Each timing cost is a
# parameter with its provenance (measured, derived, fitted, assumption).

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import math
import time

import altair as alt
import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis.calibrate import CalibrationSpec, evaluate, predict
from cmdqv_lab.analysis.summary import summarize_sweep
from cmdqv_lab.analysis.theory import md1_wait, mm1_wait, mva_closed
from cmdqv_lab.errors import CmdqvError
from cmdqv_lab.experiments.published import sweep_frame
from cmdqv_lab.platform import Platform, platform_table, read_preset
from cmdqv_lab.report import param_table
from cmdqv_lab.scenarios import simulate

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
param_table(platform_table("d06"), "Platform preset d06 (HiSilicon Hi1620; fitted to calibration.md C1)")
param_table(
    platform_table("grace"), "Platform preset grace (NVIDIA Grace; fitted to C2 1-thread rows, C3 fixed)"
)


# %%
def fit_table(name: str, count: int | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stored fit rows and predictions of a preset, beside a fresh evaluation at ``count``."""
    spec = CalibrationSpec.load(name)
    pre = read_preset(name)
    values = {k: pre.values[k] for k in spec.params}
    fresh = evaluate(spec, values, count)
    stored = {r["label"]: r for r in pre.meta["fit_row"]}
    fit = pl.DataFrame(
        [
            {
                "row": r["label"],
                "measured": r["measured"],
                "model (stored fit)": stored[r["label"]]["model"],
                "model (now)": round(r["model"], 1),
                "rel. error (now)": round(r["rel_error"], 4),
            }
            for r in fresh
        ]
    )
    spred = {r["label"]: r for r in pre.meta["prediction"]}
    now = predict(spec, values, count)
    pred = pl.DataFrame(
        [
            {
                "configuration (PREDICTION, not fitted)": r["label"],
                "metric": r["metric"],
                "model (stored)": spred[r["label"]]["model"],
                "model (now)": round(r["model"], 4 if r["model"] < 1 else 1),
            }
            for r in now
        ]
    )
    return fit, pred


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
param_table(d06_fit, "d06 vs calibration.md C1: map+unmap per CPU per second, measured vs model")
param_table(
    grace_fit, "grace vs calibration.md C2 (1 thread): mean guest unmap latency (ns), measured vs model"
)


# %%
def cpus_of(label: str) -> int:
    return int(label.split(", ")[1].split(" ")[0])


d06_long = pl.concat(
    [
        d06_fit.select(
            pl.col("row").map_elements(cpus_of, return_dtype=pl.Int64).alias("cpus"),
            pl.col(c).cast(pl.Float64).alias("ops_per_s_per_cpu"),
            (pl.col("row").str.split(",").list.first() + pl.lit(f": {what}")).alias("series"),
        )
        for c, what in (("measured", "measured (C1)"), ("model (now)", "model, fitted"))
    ]
    + [
        d06_pred.filter(pl.col("metric") == "ops_per_s_per_cpu").select(
            pl.col("configuration (PREDICTION, not fitted)")
            .map_elements(cpus_of, return_dtype=pl.Int64)
            .alias("cpus"),
            pl.col("model (now)").cast(pl.Float64).alias("ops_per_s_per_cpu"),
            (
                pl.col("configuration (PREDICTION, not fitted)").str.split(",").list.first()
                + pl.lit(": model, PREDICTION")
            ).alias("series"),
        )
    ]
)
plots.show(
    plots.throughput_vs_cpus(
        d06_long,
        y="ops_per_s_per_cpu",
        color="series",
        log_x=True,
        title="D06 map+unmap per CPU: C1 measured, model fitted (2-16 CPUs), model predictions (32-96)",
    )
)


def granule_of(label: str) -> int:
    return int(label.split(" ")[1])


grace_long = pl.concat(
    [
        grace_fit.select(
            pl.col("row").map_elements(granule_of, return_dtype=pl.Int64).alias("granule_kib"),
            pl.col(c).cast(pl.Float64).alias("latency_ns"),
            (pl.col("row").str.split(" ").list.first() + pl.lit(f", 1 thread: {what}")).alias("series"),
        )
        for c, what in (("measured", "measured (C2)"), ("model (now)", "model, fitted"))
    ]
    + [
        grace_pred.select(
            pl.col("configuration (PREDICTION, not fitted)")
            .map_elements(granule_of, return_dtype=pl.Int64)
            .alias("granule_kib"),
            pl.col("model (now)").cast(pl.Float64).alias("latency_ns"),
            (
                pl.col("configuration (PREDICTION, not fitted)").str.split(" ").list.first()
                + pl.lit(", 2 threads: PREDICTION")
            ).alias("series"),
        )
    ]
)
plots.show(
    plots.throughput_vs_cpus(
        grace_long,
        x="granule_kib",
        y="latency_ns",
        color="series",
        log_x=True,
        title="Grace guest unmap latency: C2 measured (1 thread), model fitted, 2-thread predictions",
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
param_table(red, "VCMDQ vs trapped: reduction of mean unmap latency (NVIDIA states 70-90%)")

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
oqw = (
    oqs.pivot(on="metric", index=["service_dist", "rate_mcmd_s", "service_ns"], values="mean")
    .with_columns((pl.col("rate_mcmd_s") * pl.col("service_ns") / 1000).alias("utilisation"))
    .with_columns(
        pl.struct("service_dist", "rate_mcmd_s", "service_ns")
        .map_elements(
            lambda r: (md1_wait if r["service_dist"] == "deterministic" else mm1_wait)(
                r["rate_mcmd_s"] / 1000, r["service_ns"]
            ),
            return_dtype=pl.Float64,
        )
        .alias("theory_wait_ns")
    )
    .with_columns((pl.col("queue_wait_ns_mean") / pl.col("theory_wait_ns") - 1).alias("rel_error"))
    .sort("service_dist", "utilisation")
)
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
        title="Open queue: mean wait vs utilisation",
    )
)
param_table(
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
        oq_ex, "utilisation", "mean_wait_ns", "source", "service_dist", log_y=True, title="mean wait (ns)"
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
mv = (
    mvs.pivot(on="metric", index=["submit", "cpus"], values="mean")
    .with_columns(
        pl.col("cpus")
        .map_elements(lambda n: mva_closed(n, think, service)[0] * 1e9, return_dtype=pl.Float64)
        .alias("mva_ops_per_s"),
        pl.col("cpus")
        .map_elements(lambda n: mva_closed(n, think, service)[1], return_dtype=pl.Float64)
        .alias("mva_response_ns"),
    )
    .with_columns(
        (pl.col("ops_per_s") / pl.col("mva_ops_per_s") - 1).round(4).alias("throughput rel. error"),
        (pl.col("op_latency_ns_mean") / pl.col("mva_response_ns") - 1).round(4).alias("response rel. error"),
    )
    .sort("submit", "cpus")
)
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
        mv_long, color="series", log_x=True, title="Closed loop: throughput vs exact MVA"
    )
)
param_table(
    mv.with_columns(pl.col(["ops_per_s", "mva_ops_per_s", "op_latency_ns_mean", "mva_response_ns"]).round(1)),
    "Closed loop vs exact MVA",
)

# %% [markdown]
# ## 3. Predictions for configurations outside the fit
#
# calibration.md keeps these measured rows back: the model's values below are **predictions**,
# stored with the preset when it was fitted and recomputed now, to be compared with the held-out
# measurements later. They are not facts about the hardware.

# %%
param_table(
    d06_pred, "PREDICTIONS, d06: map+unmap per CPU at 32/64/96 CPUs and cmpxchg success at 64 (not fitted)"
)
gp = grace_pred.with_columns(
    pl.col("configuration (PREDICTION, not fitted)")
    .map_elements(granule_of, return_dtype=pl.Int64)
    .alias("granule_kib"),
    pl.col("configuration (PREDICTION, not fitted)").str.split(" ").list.first().alias("path"),
)
grace_2t = (
    gp.pivot(on="path", index="granule_kib", values="model (now)")
    .rename({"trapped": "trapped, 2 threads (ns, PREDICTION)", "VCMDQ": "VCMDQ, 2 threads (ns, PREDICTION)"})
    .join(
        g.pivot(on="path", index="granule_kib", values="measured").rename(
            {"trapped": "trapped, 1 thread (C2 measured)", "VCMDQ": "VCMDQ, 1 thread (C2 measured)"}
        ),
        on="granule_kib",
    )
    .sort("granule_kib")
)
param_table(
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
# One seed per run with common random numbers: differences of a percent or two at 16 CPUs are
# run-to-run noise (compare notebook 07's intervals). A parameter a preset fitted (d06: `think_ns`,
# `sync_service_ns`; grace: `guest_unmap_ns`, `vmm_trap_ns`, `vmm_per_cmd_ns`) is still varied: its
# bar says how much the conclusion would move if the fit were off by that much. The ranges:

# %%
RANGES: dict[str, tuple[float, float, str]] = {
    "line_local_ns": (1, 20, "an atomic on a line in the core's own L1 or L2"),
    "cmd_write_ns": (1, 10, "a 16-byte store into a cached queue line"),
    "mmio_write_ns": (20, 500, "posted PROD write plus barrier, until the SMMU sees it"),
    "mmio_read_ns": (100, 1500, "uncached SMMU register read across the interconnect"),
    "spin_ns": (1, 50, "one cpu_relax() iteration"),
    "msi_ns": (30, 500, "coherent MSI write reaching the spinning core"),
    "sev_ns": (30, 500, "SEV to WFE wake-up"),
    "fetch_line_cmds": (1, 8, "commands per SMMU fetch burst (16 B to 128 B)"),
    "sync_service_ns": (10, 300, "CMD_SYNC execution (the d06 fit's bounds)"),
    "cfgi_service_ns": (50, 2000, "CFGI execution (config cache invalidation)"),
    "atc_inv_service_ns": (100, 10_000, "ATC invalidation round trip (C4: VT-d 0.1-10 us)"),
    "other_service_ns": (10, 300, "any other command"),
    "smmu_parallel": (1, 128, "queues consumed concurrently: implementation defined"),
    "clk_batch_ns": (64, 1024, "CLK_BATCH=256 cycles at 0.25-4 GHz"),
    "hw_sync_ns": (10, 300, "a hardware-inserted SYNC, like a CMD_SYNC"),
    "vcmdq_log2size": (8, 19, "VCMDQ size: Linux needs > 64 entries, 2^19 max"),
    "ecmdq_log2size": (8, 19, "ECMDQ size, same bounds"),
    "think_ns": (500, 4000, "host CPU work per map+unmap (the d06 fit's bounds)"),
    "vmm_trap_ns": (2000, 50_000, "VMM work per trapped PROD write (the grace fit lies inside)"),
    "vmm_per_cmd_ns": (200, 5000, "VMM parse + invalidation ioctl per command"),
    "vmm_lock": (0, 1, "VMM emulates under one lock per VM (False / True)"),
    "guest_unmap_ns": (500, 20_000, "guest dma_unmap CPU work (the grace fit's bounds)"),
    "guest_map_ns": (500, 10_000, "guest dma_map CPU work between unmaps"),
    "irq_latency_ns": (1000, 50_000, "CMDQV IRQ until its threaded handler runs"),
    "irq_handler_ns": (500, 10_000, "reading the error maps and the faulting entry"),
    "irq_ack_ns": (100, 2000, "rewriting the entry and writing GERRORN"),
    "guest_error_ns": (5000, 100_000, "forwarding a VCMDQ error to the guest and its recovery"),
}
infos = Platform.field_infos()
assumed = [k for k, (_, info) in infos.items() if info.provenance == "assumption"]
missing = sorted(set(assumed) - set(RANGES))
extra = sorted(set(RANGES) - set(assumed))
if missing or extra:
    raise RuntimeError(f"assumption list changed: no range for {missing}, stale ranges {extra}")
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
param_table(range_table, f"The {len(assumed)} assumed Platform parameters and the ranges varied")

# %%
N_HOST = 4_000 if smoke else 20_000
N_GUEST = 400 if smoke else 2_000
SEED = 1
CONCL = {
    "q9": "Q9: exclusive / lock-free ops/s, 16 CPUs",
    "q6": "Q6: trapped / VCMDQ latency, 4 KiB",
    "fix": "Q6/Q7: fix-up latency (us)",
}


def conclusions(over: dict) -> dict:
    h = {"platform": "d06", "cpus": 16, **over}
    lf = simulate(
        "host-map-unmap", {**h, "queues": "main", "submit": "linux-lockfree"}, seed=SEED, count=N_HOST
    )
    ex = simulate("host-map-unmap", {**h, "queues": "ecmdq", "submit": "exclusive"}, seed=SEED, count=N_HOST)
    gst = {"platform": "grace", "granule_kib": 4, "threads": 1, **over}
    trap = simulate("guest-trap", gst, seed=SEED, count=N_GUEST)
    vq = simulate("guest-vcmdq", gst, seed=SEED, count=N_GUEST)
    fix = simulate("guest-fixup", {**gst, "unsupported_fraction": 0.05}, seed=SEED, count=N_GUEST)
    return {
        "q9": ex.metrics["ops_per_s_per_cpu"] / lf.metrics["ops_per_s_per_cpu"],
        "q6": trap.metrics["op_latency_ns"]["mean"] / vq.metrics["op_latency_ns"]["mean"],
        "fix": fix.metrics["fixup_latency_ns"]["mean"] / 1e3,
    }


def values_for(name: str) -> list:
    lo, hi, _ = RANGES[name]
    default = infos[name][0]
    if isinstance(default, bool):
        return [False, True]
    pts = [lo, hi] if smoke else [lo * (hi / lo) ** f for f in (0, 1 / 3, 2 / 3, 1)]
    if isinstance(default, int):
        pts = sorted({round(p) for p in pts})
    return pts


t_sens = time.perf_counter()
base = conclusions({})
sens_rows = []
errors = []
for name in assumed:
    pts = values_for(name)
    for i, v in enumerate(pts):
        try:
            c = conclusions({name: v})
        except CmdqvError as e:
            errors.append(f"{name}={v}: {e}")
            continue
        for key, val in c.items():
            sens_rows.append(
                {
                    "parameter": name,
                    "value": float(v),
                    "position": i / (len(pts) - 1),
                    "end": "low" if i == 0 else ("high" if i == len(pts) - 1 else "between"),
                    "conclusion": CONCL[key],
                    "result": val,
                    "baseline": base[key],
                    "change_pct": (val / base[key] - 1) * 100,
                }
            )
sens = pl.DataFrame(sens_rows)
print(
    f"sensitivity: {len(assumed)} parameters, {sens.height // len(CONCL)} settings, {N_HOST} host ops / {N_GUEST} guest ops "
    f"per run, {time.perf_counter() - t_sens:.1f} s"
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
order = (
    ends.group_by("parameter", maintain_order=True)
    .agg(pl.col("change_pct").abs().max().alias("max_abs"))
    .sort("max_abs", descending=True)["parameter"]
    .to_list()
)
tornado = (
    alt.Chart(ends.with_columns(pl.col("change_pct").clip(-200, 1000).alias("change (%, clipped)")))
    .mark_bar()
    .encode(
        y=alt.Y("parameter:N", sort=order, title=None),
        x=alt.X("change (%, clipped):Q", title="change vs baseline (%)"),
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
    .properties(width=230, height=alt.Step(9))
    .facet(column=alt.Column("conclusion:N", title=None, header=alt.Header(labelLimit=230)))
    .resolve_scale(x="independent")
    .properties(
        title="Sensitivity of three conclusions to each assumed parameter (low / high end of its range)"
    )
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
param_table(table, "Change of each conclusion (%) at the low and high end of each assumed parameter's range")

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
        kind="select",
        initial=order[0],
        title="change vs baseline (%)",
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
def worst(df: pl.DataFrame, col: str) -> tuple[str, float]:
    r = df.with_columns(pl.col(col).abs().alias("_a")).sort("_a", descending=True).row(0, named=True)
    return r["row"], r[col]


d_row, d_err = worst(d06_fit, "rel. error (now)")
g_row, g_err = worst(grace_fit, "rel. error (now)")
d_rms = math.sqrt(sum(math.log(1 + e) ** 2 for e in d06_fit["rel. error (now)"]) / d06_fit.height)
g_rms = math.sqrt(sum(math.log(1 + e) ** 2 for e in grace_fit["rel. error (now)"]) / grace_fit.height)
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
