# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Start here: a notebook of your own
#
# Copy this file (`cp notebooks/template.py notebooks/mine.py`), open it in JupyterLab (jupytext
# opens `.py` files as notebooks) and change it. It shows the three things a user does first:
#
# 1. **run a scenario** and read its configuration and metrics;
# 2. **sweep a parameter with a widget**: sliders that re-simulate when you release them;
# 3. **compare two configurations with a chart**: several seeds, a confidence band.
#
# Which scenarios exist: `cmdqv-lab simulate --list`; what a scenario's parameters mean, their units,
# ranges and the value each platform preset gives them: `cmdqv-lab describe NAME` (or
# `print(format_scenario(NAME))` below). Your own platform preset and workload files work here too
# (`"platform": "mybox.toml"`, scenario `"host-my.toml"`: see the README).
#
# Every number printed is a model output of this run; for configurations outside the calibration
# rows (`../shared/calibration.md`, `cmdqv-lab params d06`) it is a prediction, not a measurement.
#
# It is not part of the report (`cmdqv-lab report` builds `NN-topic.py` notebooks only); the test
# suite runs it in smoke mode.

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import polars as pl
from IPython.display import display

from cmdqv_lab import plots, widgets
from cmdqv_lab.describe import format_result, format_scenario
from cmdqv_lab.scenarios import simulate

plots.enable()
SCENARIO = "host-map-unmap"
COUNT = 2_000 if smoke else 50_000  # ops per run
SEEDS = [0, 1] if smoke else [0, 1, 2]

# %% [markdown]
# ## 1. Run a scenario
#
# The scenario's own parameters (the platform's follow in `format_scenario`'s full text):

# %%
print(format_scenario(SCENARIO).split("\n\nplatform parameters")[0])

# %% [markdown]
# One run: 8 CPUs on the D06 preset (fitted to the HiSilicon D06 measurements). `simulate` returns
# the resolved parameters, the metrics and, with `record=True`, one row per op.

# %%
settings = {"cpus": 8, "platform": "d06"}
run = simulate(SCENARIO, settings, seed=1, count=COUNT, record=True)
print(format_result(run.to_json(), settings))

# %% [markdown]
# ## 2. Sweep a parameter with a widget
#
# Move a slider (in Jupyter): the scenario re-runs with the new value. `compare` draws one series per
# submission algorithm, `x` sweeps the number of CPUs; the static report keeps the first run.

# %%
explorer = widgets.explore(
    SCENARIO,
    params=["tlbis", "line_xfer_ns"],
    x=widgets.Control("cpus", values=(1, 4, 16) if smoke else (1, 2, 4, 8, 16, 32)),
    compare=widgets.Control("submit", values=("linux-lockfree", "atomic-add")),
    fixed={"platform": "d06"},
    count=COUNT // 4,
)
display(explorer)

# %% [markdown]
# ## 3. Compare two configurations with a chart
#
# The same map+unmap loop on the main CMDQ and on ECMDQs (one per CPU, SMMUv3.3), for
# several CPU counts and seeds. Every configuration runs on the same seeds (common random numbers).

# %%
configs = {
    "main CMDQ": {"queues": "main"},
    "ECMDQ per CPU": {"queues": "ecmdq"},
}
cpus = [1, 4, 16] if smoke else [1, 2, 4, 8, 16, 32]
rows = []
for label, config in configs.items():
    for n in cpus:
        for seed in SEEDS:
            r = simulate(SCENARIO, {"platform": "d06", "cpus": n, **config}, seed=seed, count=COUNT)
            rows.append({"config": label, "cpus": n, "seed": seed, "ops_per_s": r.metrics["ops_per_s"]})
compared = pl.DataFrame(rows)
plots.show(
    plots.throughput_vs_cpus(
        compared, color="config", log_x=True, title="map+unmap ops/s: main CMDQ vs ECMDQs"
    )
)

# %% [markdown]
# And the latency distribution of one op at 16 CPUs, from per-op records:

# %%
latency = pl.concat(
    simulate(
        SCENARIO, {"platform": "d06", "cpus": 16, **config}, seed=0, count=COUNT, record=True
    ).ops.select(pl.lit(label).alias("config"), (pl.col("latency_ps") / 1000).alias("latency_ns"))
    for label, config in configs.items()
)
plots.show(plots.latency_cdf(latency, by="config", log_x=True, title="op latency at 16 CPUs (D06)"))
summary = latency.group_by("config").agg(
    pl.col("latency_ns").median().alias("p50_ns"), pl.col("latency_ns").quantile(0.99).alias("p99_ns")
)
print(summary.sort("config"))
