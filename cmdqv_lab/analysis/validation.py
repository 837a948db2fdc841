"""How far the timing model can be trusted: fits, queueing theory, predictions, sensitivity.

Notebook 09's logic: :func:`fit_table` puts a preset's stored fit and predictions beside a fresh
evaluation; :func:`queue_theory` and :func:`mva_table` compare sweeps with M/D/1, M/M/1 and
exact mean-value analysis; :data:`RANGES` states the plausible range of every *assumption*
parameter and :func:`sensitivity` recomputes three headline conclusions at the ends of each.

>>> cpus_of("v5.9-rc1 lock-free, 16 CPUs"), granule_of("VCMDQ 64 KiB, 1 thread")
(16, 64)
>>> round(rms_log_error([0.1, -0.1]), 4)
0.1005
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from cmdqv_lab.analysis.theory import md1_wait, mm1_wait, mva_closed

#: Plausible (low, high, why) of every Platform field whose provenance is *assumption*.
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
    "vmm_per_cmd_ns": (200, 5000, "VMM parse + host conversion per forwarded command"),
    "vmm_ioctl_ns": (300, 5000, "one IOMMU_HWPT_INVALIDATE ioctl round trip (the C2 rows allow <= ~2 us)"),
    "vmm_read_ns": (50, 2000, "VMM emulation of a vSMMU register read under the BQL"),
    "futex_wake_ns": (1000, 20_000, "futex wake-up of a vCPU thread sleeping on the BQL"),
    "line_hold_max": (
        1,
        4,
        "accesses in a row the core holding a contended line makes first (2019/2020 threads)",
    ),
    "line_hold_ns": (0, 50, "how long the holder keeps that priority after its access"),
    "line_hold_p": (
        0.02,
        1,
        "chance the holder's retry beats CPUs already waiting (the d06 fit's value: 0.11)",
    ),
    "line_xfer_cluster_ns": (10, 38, "a line moving within a 4-core cluster (below C4's in-die 30-38 ns)"),
    "line_xfer_socket_ns": (100, 300, "a line moving to the other socket (above C4's cross-die 72-87 ns)"),
    "cluster_cpus": (2, 8, "cores per cluster (Hi1620: 4; consecutive CPU numbering assumed)"),
    "die_cpus": (16, 64, "cores per die (Hi1620: 32)"),
    "socket_cpus": (32, 128, "cores per socket (Hi1620: 64)"),
    "guest_unmap_ns": (500, 20_000, "guest dma_unmap CPU work (the grace fit's bounds)"),
    "guest_map_ns": (500, 10_000, "guest dma_map CPU work between unmaps"),
    "irq_latency_ns": (1000, 50_000, "CMDQV IRQ until its threaded handler runs"),
    "irq_handler_ns": (500, 10_000, "reading the error maps and the faulting entry"),
    "irq_ack_ns": (100, 2000, "rewriting the entry and writing GERRORN"),
    "guest_error_ns": (5000, 100_000, "forwarding a VCMDQ error to the guest and its recovery"),
}

#: The three headline conclusions the sensitivity analysis recomputes.
CONCLUSIONS: dict[str, str] = {
    "q9": "Q9: exclusive / lock-free ops/s, 16 CPUs",
    "q6": "Q6: trapped / VCMDQ latency, 4 KiB",
    "fix": "Q6/Q7: fix-up latency (us)",
}


def cpus_of(label: str) -> int:
    """The CPU count in a C1 row label (``"..., 16 CPUs"``)."""
    return int(label.split(", ")[1].split(" ")[0])


def granule_of(label: str) -> int:
    """The granule in KiB of a C2 row label (``"VCMDQ 64 KiB, 1 thread"``)."""
    return int(label.split(" ")[1])


def fit_table(name: str, count: int | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stored fit rows and predictions of a preset, beside a fresh evaluation at ``count`` ops."""
    from cmdqv_lab.analysis.calibrate import CalibrationSpec, evaluate, predict
    from cmdqv_lab.platform import read_preset

    spec = CalibrationSpec.load(name)
    pre = read_preset(name)
    values = {k: pre.values[k] for k in spec.params}
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
            for r in evaluate(spec, values, count)
        ]
    )
    spred = {r["label"]: r for r in pre.meta["prediction"]}
    pred = pl.DataFrame(
        [
            {
                "configuration (PREDICTION, not fitted)": r["label"],
                "metric": r["metric"],
                "model (stored)": spred[r["label"]]["model"],
                "model (now)": round(r["model"], 4 if r["model"] < 1 else 1),
                # range over the calibration's assumptions (profiled refits), stored with the preset
                "low (assumptions)": spred[r["label"]].get("low"),
                "high (assumptions)": spred[r["label"]].get("high"),
                "moved most by": spred[r["label"]].get("moved_most_by", ""),
            }
            for r in predict(spec, values, count)
        ],
        schema_overrides={"low (assumptions)": pl.Float64, "high (assumptions)": pl.Float64},
    )
    return fit, pred


def identifiability_table(name: str) -> pl.DataFrame:
    """Which fitted parameters of a preset its rows constrain (stored by ``calibrate --write``)."""
    from cmdqv_lab.platform import read_preset

    rows = read_preset(name).meta.get("identifiability", [])
    schema = {
        "parameter": pl.String,
        "rel_sigma": pl.Float64,
        "constrained": pl.Boolean,
        "at_bound": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema).rename({"rel_sigma": "1-sigma (relative)"})


def assumptions_table(name: str) -> pl.DataFrame:
    """A preset's assumptions: nominal value and the range its predictions were profiled over."""
    from cmdqv_lab.platform import read_preset

    rows = read_preset(name).meta.get("assumption", [])
    schema = {
        "parameter": pl.String,
        "nominal": pl.Float64,
        "low": pl.Float64,
        "high": pl.Float64,
        "source": pl.String,
    }
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def checks_table(name: str) -> pl.DataFrame:
    """A preset's stored checks (ratios with an allowed range) at the fit."""
    from cmdqv_lab.platform import read_preset

    rows = read_preset(name).meta.get("check", [])
    schema = {"label": pl.String, "model": pl.Float64, "lo": pl.Float64, "hi": pl.Float64, "ok": pl.Boolean,
              "measured": pl.Float64}  # fmt: skip
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def worst_row(fit: pl.DataFrame, col: str = "rel. error (now)") -> tuple[str, float]:
    """The fit row with the largest absolute relative error, and that error."""
    r = fit.with_columns(pl.col(col).abs().alias("_a")).sort("_a", descending=True).row(0, named=True)
    return r["row"], r[col]


def rms_log_error(rel_errors: Iterable[float]) -> float:
    """Root mean square of ``log(1 + e)`` (the calibration objective's scale)."""
    errs = list(rel_errors)
    return math.sqrt(sum(math.log(1 + e) ** 2 for e in errs) / len(errs))


def queue_theory(summary: pl.DataFrame) -> pl.DataFrame:
    """Open-queue sweep means beside M/D/1 or M/M/1 (``summarize_sweep`` of mean wait and busy)."""
    return (
        summary.pivot(on="metric", index=["service_dist", "rate_mcmd_s", "service_ns"], values="mean")
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


def mva_table(summary: pl.DataFrame, think: float, service: float) -> pl.DataFrame:
    """Closed-loop sweep means beside exact MVA for a delay ``think`` and one FCFS server ``service``."""
    return (
        summary.pivot(on="metric", index=["submit", "cpus"], values="mean")
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
            (pl.col("op_latency_ns_mean") / pl.col("mva_response_ns") - 1)
            .round(4)
            .alias("response rel. error"),
        )
        .sort("submit", "cpus")
    )


def assumed_parameters() -> list[str]:
    """Platform fields whose provenance is *assumption*; refuses a list :data:`RANGES` does not cover."""
    from cmdqv_lab.platform import Platform

    infos = Platform.field_infos()
    assumed = [k for k, (_, info) in infos.items() if info.provenance == "assumption"]
    missing = sorted(set(assumed) - set(RANGES))
    extra = sorted(set(RANGES) - set(assumed))
    if missing or extra:
        raise RuntimeError(f"assumption list changed: no range for {missing}, stale ranges {extra}")
    return assumed


#: Where along its range a parameter is set (0: the low end, 1: the high end); smoke runs use the ends.
FRACTIONS: tuple[float, ...] = (0.0, 1 / 3, 2 / 3, 1.0)
SMOKE_FRACTIONS: tuple[float, ...] = (0.0, 1.0)


def range_value(name: str, fraction: float) -> Any:
    """The value of parameter ``name`` at ``fraction`` of its range: geometric between the ends, linear
    for a range from 0, rounded for an integer, ``fraction >= 0.5`` for a boolean.

    >>> range_value("spin_ns", 0.0), range_value("spin_ns", 1.0), range_value("fetch_line_cmds", 1 / 3)
    (1.0, 50.0, 2)
    """
    from cmdqv_lab.platform import Platform

    lo, hi, _ = RANGES[name]
    default = Platform.field_infos()[name][0]
    if isinstance(default, bool):
        return fraction >= 0.5
    v = lo * (hi / lo) ** fraction if lo > 0 else lo + (hi - lo) * fraction
    return round(v) if isinstance(default, int) else v


def range_points(name: str, smoke: bool) -> list[Any]:
    """The values a parameter is set to: its range's ends (and two geometric points between them, linear
    ones for a range from 0), without repeats (a rounded integer or a boolean may repeat)."""
    values = [range_value(name, f) for f in (SMOKE_FRACTIONS if smoke else FRACTIONS)]
    return list(dict.fromkeys(values))


def conclusions(over: Mapping[str, Any], *, host_ops: int, guest_ops: int, seed: int = 1) -> dict[str, float]:
    """The three headline conclusions of :data:`CONCLUSIONS` with the platform fields ``over``."""
    from cmdqv_lab.scenarios import simulate

    h = {"platform": "d06", "cpus": 16, **over}
    lf = simulate(
        "host-map-unmap", {**h, "queues": "main", "submit": "linux-lockfree"}, seed=seed, count=host_ops
    )
    ex = simulate(
        "host-map-unmap", {**h, "queues": "ecmdq", "submit": "exclusive"}, seed=seed, count=host_ops
    )
    gst = {"platform": "grace", "granule_kib": 4, "threads": 1, **over}
    trap = simulate("guest-trap", gst, seed=seed, count=guest_ops)
    vq = simulate("guest-vcmdq", gst, seed=seed, count=guest_ops)
    fix = simulate("guest-fixup", {**gst, "unsupported_fraction": 0.05}, seed=seed, count=guest_ops)
    return {
        "q9": ex.metrics["ops_per_s_per_cpu"] / lf.metrics["ops_per_s_per_cpu"],
        "q6": trap.metrics["op_latency_ns"]["mean"] / vq.metrics["op_latency_ns"]["mean"],
        "fix": fix.metrics["fixup_latency_ns"]["mean"] / 1e3,
    }


def sensitivity(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, float], list[str]]:
    """The change of each conclusion at each point of each parameter's range, from a ``sensitivity``
    sweep (:mod:`cmdqv_lab.analysis.sensitivity_task`: one row per parameter and fraction, plus
    ``parameter = "none"``, the baseline).

    Returns the long table (parameter, value, position, end, conclusion, result, baseline,
    change_pct; a value reached at two fractions, e.g. a rounded integer, counted once), the
    baseline conclusions, and the settings the model refused (one line each).
    """
    base_rows = frame.filter(pl.col("parameter") == "none")
    if base_rows.height == 0:
        raise ValueError("sensitivity: the sweep has no baseline row (parameter = none)")
    base = {k: float(base_rows[k][0]) for k in CONCLUSIONS}
    runs = frame.filter(pl.col("parameter") != "none")  # point order: parameter, then fraction
    errors = [
        f"{r['parameter']}={r['value']}: {r['refused']}" for r in runs.iter_rows(named=True) if r["refused"]
    ]
    rows = []
    for name in dict.fromkeys(runs["parameter"].to_list()):
        pts = runs.filter((pl.col("parameter") == name) & (pl.col("refused") == "")).unique(
            "value", keep="first", maintain_order=True
        )
        n = pts.height
        for i, r in enumerate(pts.iter_rows(named=True)):
            for key, label in CONCLUSIONS.items():
                rows.append(
                    {
                        "parameter": name,
                        "value": float(r["value"]),
                        "position": i / (n - 1) if n > 1 else 0.0,
                        "end": "low" if i == 0 else ("high" if i == n - 1 else "between"),
                        "conclusion": label,
                        "result": float(r[key]),
                        "baseline": base[key],
                        "change_pct": (float(r[key]) / base[key] - 1) * 100,
                    }
                )
    return pl.DataFrame(rows), base, errors


def by_effect(ends: pl.DataFrame) -> list[str]:
    """Parameters sorted by their largest absolute effect on any conclusion."""
    return (
        ends.group_by("parameter", maintain_order=True)
        .agg(pl.col("change_pct").abs().max().alias("max_abs"))
        .sort("max_abs", descending=True)["parameter"]
        .to_list()
    )


def stored_predictions(name: str) -> pl.DataFrame:
    """A preset's stored predictions (label, metric, model, range over the assumptions), no simulation.

    >>> df = stored_predictions("d06")
    >>> {"label", "metric", "model", "low", "high", "moved_most_by"} <= set(df.columns)
    True
    """
    from cmdqv_lab.platform import read_preset

    rows = read_preset(name).meta.get("prediction", [])
    schema = {"label": pl.String, "metric": pl.String, "model": pl.Float64, "low": pl.Float64,
              "high": pl.Float64, "moved_most_by": pl.String}  # fmt: skip
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def stored_fit_rows(name: str) -> pl.DataFrame:
    """A preset's stored fit rows (label, measured, model, rel_error), no simulation."""
    from cmdqv_lab.platform import read_preset

    rows = read_preset(name).meta.get("fit_row", [])
    schema = {"label": pl.String, "measured": pl.Float64, "model": pl.Float64, "rel_error": pl.Float64}
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)
