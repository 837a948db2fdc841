# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Fixture: every chart on synthetic data
#
# A test notebook for the report builder. It uses only polars, numpy's seeded generator, the chart
# builders of `cmdqv_lab.plots` and the report helpers; no simulation engine. The numbers are made up.

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
from dataclasses import dataclass

import numpy as np
import polars as pl

from cmdqv_lab import plots
from cmdqv_lab.params import Params, param
from cmdqv_lab.report import answer, param_table

plots.enable()
rng = np.random.default_rng(20211210)
n_ops = 5_000 if smoke else 200_000


@dataclass(frozen=True, kw_only=True)
class FixtureParams(Params):
    cpus_max: int = param(16, unit="CPUs", lo=1, hi=4096, provenance="choice", doc="largest CPU count")
    tlbi_service_ns: float = param(320.0, unit="ns", lo=1, hi=1e6, provenance="derived", source="C1")
    mmio_write_ns: float = param(150.0, unit="ns", lo=1, hi=1e5, provenance="assumption")


params = FixtureParams()
param_table(params, "Fixture parameters")

# %% [markdown]
# ## Throughput against CPU count (five seeds per point)

# %%
policies = ["shared-cmdq", "vcmdq-per-cpu", "ecmdq"]
cpus = [1, 2, 4, 8, 16]
rows = []
for i, policy in enumerate(policies):
    for c in cpus:
        for seed in range(5):
            ceiling = 3.0e6 * (1 + i)
            rows.append(
                {
                    "policy": policy,
                    "cpus": c,
                    "seed": seed,
                    "ops_per_s": ceiling * c / (c + 2.0 + i) * (1 + 0.03 * rng.standard_normal()),
                }
            )
tput = pl.DataFrame(rows)
plots.show(plots.throughput_vs_cpus(tput, log_x=True))

# %%
lat = pl.DataFrame(
    {
        "policy": rng.choice(policies, n_ops),
        "latency_ns": rng.lognormal(mean=7.0, sigma=0.6, size=n_ops),
        "seed": rng.integers(0, 5, n_ops),
    }
)
plots.show(plots.latency_percentiles(lat, replicate="seed"))
plots.show(plots.latency_cdf(lat, complementary=True, log_x=True))

# %% [markdown]
# ## Queue occupancy, one batch's life, hazards

# %%
t = np.cumsum(rng.exponential(50.0, n_ops // 10)).astype(np.int64)
occ = pl.DataFrame(
    {
        "t_ns": np.concatenate([t, t]),
        "occupancy": np.concatenate(
            [
                np.abs(np.cumsum(rng.integers(-1, 2, t.size))) % 256,
                np.abs(np.cumsum(rng.integers(-1, 2, t.size))) % 64,
            ]
        ),
        "queue": ["cmdq"] * t.size + ["vcmdq0"] * t.size,
    }
)
plots.show(plots.occupancy_over_time(occ, max_points=400))

phases = ["reserve", "write", "wait_owner", "doorbell", "consume", "sync_wait", "wake"]
life = []
for cpu in range(3):
    start = 100 * cpu
    for ph in phases:
        dur = int(rng.integers(20, 200))
        life.append({"cpu": cpu, "op_id": 1000 + cpu, "phase": ph, "start_ns": start, "end_ns": start + dur})
        start += dur
plots.show(plots.batch_timeline(pl.DataFrame(life)))

hazards = pl.DataFrame(
    {
        "policy": ["first-opcode", "first-opcode", "full-scan", "split"],
        "hazard": ["ill_on_vcmdq", "sync_other_queue", "sync_other_queue", "ill_on_vcmdq"],
        "count": [12, 3, 3, 0],
    }
)
plots.hazard_counts(hazards)

# %% [markdown]
# ## Explore the sweep: pick the number of queues with the slider

# %%
sweep = pl.DataFrame(
    [
        {"queues": q, "cpus": c, "policy": p, "ops_per_s": 1e6 * c * q / (c + q) * (1 + 0.2 * i)}
        for q in (1, 2, 3, 4)
        for c in cpus
        for i, p in enumerate(policies)
    ]
)
plots.show(plots.explorer(sweep, "cpus", "ops_per_s", "policy", "queues", log_x=True))
print(f"{sweep.height} sweep rows, smoke={smoke}")
# unevenly spaced values get radio buttons that show the values themselves
by_granule = sweep.with_columns((pl.col("queues") ** 2 * 4).alias("granule_kib"))
plots.show(plots.explorer(by_granule, "cpus", "ops_per_s", "policy", "granule_kib", log_x=True))

# %%
answer("Q9", f"In this made-up sweep ECMDQ reaches {tput['ops_per_s'].max() / 1e6:.1f} M ops/s at 16 CPUs.")
answer("Q2", "A SYNC only covers its own queue: 3 cross-queue hazards per policy without a final SYNC.")
