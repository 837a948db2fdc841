"""Q7 findings: the host's one CMDQV IRQ thread as a single server, against M/D/1.

``guest-fixup`` sweeps record the fix-up latency (VCMDQ error raised to queue resumed) per run.
:func:`storm_points` derives the no-load service time ``S0`` from the lightest point, the thread's
utilisation per point, and the M/D/1 prediction; :func:`md1_deviation` compares the two where
M/D/1 applies.

>>> round(md1_latency(0.5, 1000.0), 6)   # S0 + rho S0 / (2 (1 - rho))
1500.0
"""

from __future__ import annotations

from typing import Any

import polars as pl

from cmdqv_lab.analysis.theory import md1_wait


def md1_latency(rho: float, service: float) -> float:
    """M/D/1 mean sojourn time (wait + service) at utilisation ``rho``."""
    return service + md1_wait(rho / service, service)


def with_rates(frame: pl.DataFrame) -> pl.DataFrame:
    """Add ``fixups_per_s`` (fix-ups over simulated time) and ``vcpus`` to a ``guest-fixup`` sweep."""
    return frame.with_columns(
        (pl.col("fixups") / (pl.col("sim_time_ns") * 1e-9)).alias("fixups_per_s"),
        (pl.col("vms") * pl.col("threads")).alias("vcpus"),
    )


def service_time(frame: pl.DataFrame, platform: Any) -> tuple[float, float]:
    """No-load fix-up service ``S0`` (p50 latency of the lightest point) and its emulation part.

    The emulation part is what remains after the three assumed interrupt costs.
    """
    light = frame.sort("vms", "unsupported_fraction").row(0, named=True)
    s0 = float(light["fixup_latency_ns_p50"])
    emul = s0 - platform.irq_latency_ns - platform.irq_handler_ns - platform.irq_ack_ns
    return s0, emul


def storm_points(frame: pl.DataFrame, s0: float) -> pl.DataFrame:
    """Means over seeds per (VMs, unsupported fraction) with utilisation ``rho`` and the M/D/1 latency."""
    st = frame.with_columns((pl.col("fixups_per_s") * s0 * 1e-9).alias("rho"))
    return (
        st.group_by("vms", "vcpus", "unsupported_fraction", maintain_order=True)
        .agg(
            pl.col("rho").mean(),
            pl.col("fixups_per_s").mean(),
            pl.col("fixup_latency_ns_mean").mean().alias("fixup_mean_ns"),
            pl.col("fixup_latency_ns_p99").mean().alias("fixup_p99_ns"),
            pl.col("op_latency_ns_mean").mean().alias("unmap_mean_ns"),
            pl.col("ops_per_s").mean(),
            pl.col("ops_per_s_per_cpu").mean(),
            pl.col("smmu_busy_fraction").mean(),
        )
        .with_columns(
            pl.col("rho")
            .map_elements(lambda r: md1_latency(r, s0) if r < 0.999 else None, return_dtype=pl.Float64)
            .alias("md1_ns")
        )
        .sort("vms", "unsupported_fraction")
    )


def md1_deviation(points: pl.DataFrame, rho_max: float = 0.8) -> pl.DataFrame:
    """Points below ``rho_max`` with the relative deviation ``vs_md1`` of the model from M/D/1."""
    return points.filter(pl.col("rho") < rho_max).with_columns(
        ((pl.col("fixup_mean_ns") - pl.col("md1_ns")) / pl.col("md1_ns")).alias("vs_md1")
    )


def md1_curve(s0: float, n: int = 98) -> pl.DataFrame:
    """The M/D/1 mean latency over utilisation 0 .. (n-1)/100."""
    return pl.DataFrame({"rho": [i / 100 for i in range(0, n)]}).with_columns(
        pl.col("rho").map_elements(lambda r: md1_latency(r, s0), return_dtype=pl.Float64).alias("latency_ns")
    )


def cost_points(frame: pl.DataFrame, platform: Any, emul_ns: float) -> pl.DataFrame:
    """The interrupt-cost sweep: fix-up latency per (fraction, irq_latency_ns, irq_handler_ns).

    ``service_ns`` is the single server's service time these costs imply, ``max_fixups_per_s``
    its capacity.
    """
    cs = frame.with_columns((pl.col("fixups") / (pl.col("sim_time_ns") * 1e-9)).alias("fixups_per_s"))
    return (
        cs.group_by("unsupported_fraction", "irq_latency_ns", "irq_handler_ns", maintain_order=True)
        .agg(
            pl.col("fixup_latency_ns_mean").mean().alias("fixup_mean_ns"),
            pl.col("fixup_latency_ns_p99").mean().alias("fixup_p99_ns"),
            pl.col("op_latency_ns_mean").mean().alias("unmap_mean_ns"),
            pl.col("fixups_per_s").mean(),
        )
        .with_columns(
            (pl.col("irq_latency_ns") + pl.col("irq_handler_ns") + platform.irq_ack_ns + emul_ns).alias(
                "service_ns"
            )
        )
        .with_columns((1e9 / pl.col("service_ns")).alias("max_fixups_per_s"))
        .sort("unsupported_fraction", "irq_latency_ns", "irq_handler_ns")
    )
