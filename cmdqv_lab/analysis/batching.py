"""Q13: what batching the trapped guest's forwarded invalidations would save.

QEMU's accelerated SMMUv3 forwards one ``IOMMU_HWPT_INVALIDATE`` per guest command
(``vmm_forward = per-command``); the host interface takes arrays (``batched``: one ioctl per
consumed PROD range). :func:`saving` pairs the two on the same configuration and seed and gives the
mean unmap latency of each and the fraction batching saves.

>>> df = pl.DataFrame({"vmm_forward": ["per-command", "batched"] * 2, "granule_kib": [4, 4, 64, 64],
...                    "threads": 1, "vmm_ioctl_ns": 1000.0, "seed": 0,
...                    "op_latency_ns_mean": [100.0, 100.0, 200.0, 150.0]})
>>> saving(df).select("granule_kib", "saving").rows()
[(4, 0.0), (64, 0.25)]
"""

from __future__ import annotations

import polars as pl

KEYS = ["vmm_ioctl_ns", "threads", "granule_kib"]


def saving(df: pl.DataFrame, value: str = "op_latency_ns_mean") -> pl.DataFrame:
    """Per (ioctl cost, threads, granule): mean latency per-command and batched (over seeds, paired
    by seed), and ``saving`` = 1 - batched / per-command."""
    wide = df.pivot(on="vmm_forward", index=[*KEYS, "seed"], values=value)
    return (
        wide.group_by(KEYS, maintain_order=True)
        .agg(pl.col("per-command").mean(), pl.col("batched").mean(), pl.len().alias("seeds"))
        .with_columns((1 - pl.col("batched") / pl.col("per-command")).alias("saving"))
        .sort(KEYS)
    )
