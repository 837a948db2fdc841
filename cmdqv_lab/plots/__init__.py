"""Charts: pure Altair builders (:mod:`.charts`), one theme (:mod:`.theme`), offline display and export.

Notebooks typically start with::

    from cmdqv_lab import plots
    plots.enable()                      # theme + a renderer that nbformat and the report accept
    plots.show(plots.throughput_vs_cpus(df))
"""

from cmdqv_lab.plots.charts import (
    PHASES,
    batch_timeline,
    ecdf_points,
    explorer,
    hazard_counts,
    latency_cdf,
    latency_percentiles,
    occupancy_over_time,
    throughput_vs_cpus,
)
from cmdqv_lab.plots.display import chart_bundle, enable, save_png, save_svg, show

__all__ = [
    "PHASES",
    "batch_timeline",
    "chart_bundle",
    "ecdf_points",
    "enable",
    "explorer",
    "hazard_counts",
    "latency_cdf",
    "latency_percentiles",
    "occupancy_over_time",
    "save_png",
    "save_svg",
    "show",
    "throughput_vs_cpus",
]
