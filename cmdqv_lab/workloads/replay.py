"""Trace replay: a real command stream (QEMU SMMUv3 trace) as a workload, with its recorded order
and batch structure.

The trace is read by the one trace reader, :func:`cmdqv_lab.workloads.trace_stream.trace_frame`
(the checker reads it the same way): each doorbell is one batch, an op ends with a batch that ends
with a CMD_SYNC, the issuing CPU is the QEMU vCPU thread that wrote PROD (numbered by first
appearance), or, with ``cpus``, ops are dealt round robin onto that many CPUs in the order they
started. Pacing:

``recorded``  ops arrive at their recorded times (open loop). Under TCG these are host times of an
              emulated guest: the order and batching are real, the gaps are not hardware timing.
``scaled``    recorded times multiplied by ``speed`` (e.g. 0.001 replays 1000x faster).
``closed``    each CPU issues its ops back to back with a think gap of ``think_ns`` (jittered).

:func:`replay_policies` replays one trace through several host submission algorithms and
topologies and returns one row of metrics per configuration (a frame a notebook can chart).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cmdqv_lab.errors import ParamError
from cmdqv_lab.project import builtin_data
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA

TRACES_DIR = builtin_data("traces")  # the checkout's data/traces, or the copy a wheel ships
PACINGS = ("recorded", "scaled", "closed")


def trace_path(name: str) -> Path:
    """A trace file: a path, or the name of a trace in ``data/traces`` (with or without ``.log.gz``)."""
    p = Path(name)
    if p.is_file():
        return p
    for cand in (TRACES_DIR / name, TRACES_DIR / f"{name}.log.gz", TRACES_DIR / f"qemu-smmuv3-{name}.log.gz"):
        if cand.is_file():
            return cand
    known = ", ".join(sorted(f.name.removesuffix(".log.gz") for f in TRACES_DIR.glob("*.log.gz")))
    raise ParamError(f"trace={name!r}: no such file, and not a trace in data/traces ({known})")


def trace_frame(
    path: str | Path,
    *,
    cpus: int = 0,
    pacing: str = "scaled",
    speed: float = 1.0,
    think_ns: float = 1500.0,
    repeat: int = 1,
    seed: int = 0,
    vm: int = -1,
) -> pl.DataFrame:
    """The trace's commands as one workload frame (all CPUs), paced; ops in issue order per CPU."""
    from cmdqv_lab.workloads.qemu_trace import parse_trace
    from cmdqv_lab.workloads.trace_stream import trace_frame as read

    if pacing not in PACINGS:
        raise ParamError(f"pacing={pacing!r} is not allowed: one of {', '.join(PACINGS)}")
    if repeat < 1:
        raise ParamError(f"repeat={repeat} must be >= 1")
    df, _ = read(parse_trace(Path(path)), vm=vm)
    if df.height == 0:
        raise ParamError(f"{path}: the trace has no commands to replay")
    return pace(df.select(list(WORKLOAD_SCHEMA)), cpus=cpus, pacing=pacing, speed=speed, think_ns=think_ns,
                repeat=repeat, seed=seed)  # fmt: skip


def pace(
    df: pl.DataFrame,
    *,
    cpus: int = 0,
    pacing: str = "scaled",
    speed: float = 1.0,
    think_ns: float = 1500.0,
    repeat: int = 1,
    seed: int = 0,
) -> pl.DataFrame:
    """Repeat, re-deal and pace a stream whose ``t_ps`` are recorded times (see module docstring)."""
    span = int(df.select(pl.col("t_ps").max()).item() or 0)
    gap = round(span * 0.001) + 1_000_000  # between repeats: the span plus 0.1 % and 1 us
    # ops in the order they started (their first command's position), numbered once for all CPUs
    order = df.with_row_index("_i").group_by("cpu", "op", maintain_order=True).agg(pl.col("_i").min())
    order = order.sort("_i").with_row_index("_g").select("cpu", "op", pl.col("_g").cast(pl.Int64))
    base = df.join(order, on=["cpu", "op"], how="left", maintain_order="left")
    n_ops = order.height
    n_batches = int(df.select(pl.col("batch").max()).item()) + 1
    frames = [
        base.with_columns(
            (pl.col("_g") + r * n_ops).alias("_g"),
            (pl.col("batch") + r * n_batches).alias("batch"),
            (pl.col("t_ps") + r * (span + gap)).alias("t_ps"),
        )
        for r in range(repeat)
    ]
    c = pl.concat(frames)
    if cpus > 0:  # deal ops round robin in start order; renumber per CPU
        c = c.with_columns((pl.col("_g") % cpus).cast(pl.Int32).alias("cpu"))
    c = c.with_columns((pl.col("_g").rank("dense").over("cpu") - 1).cast(pl.Int64).alias("op"))
    if pacing == "closed":
        ops = c.select("cpu", "op").unique(maintain_order=True)
        gaps = []
        for (cpu,), g in ops.group_by("cpu", maintain_order=True):
            rng = rng_stream(seed, "trace-replay", "think", int(cpu))
            gaps.append(
                g.with_columns(
                    pl.Series("_t", np.rint((0.5 + rng.random(g.height)) * think_ns * 1000).astype(np.int64))
                )
            )
        c = c.join(pl.concat(gaps), on=["cpu", "op"], how="left", maintain_order="left")
        c = c.with_columns(pl.col("_t").alias("t_ps"))
    elif pacing == "scaled":
        c = c.with_columns((pl.col("t_ps").cast(pl.Float64) * speed).round().cast(pl.Int64).alias("t_ps"))
    out = c.select(list(WORKLOAD_SCHEMA)).cast(WORKLOAD_SCHEMA)  # type: ignore[arg-type]
    return out.sort("cpu", "op", maintain_order=True)


def cpu_frames(df: pl.DataFrame, chunk_ops: int = 4096) -> dict[int, Iterator[pl.DataFrame]]:
    """Split a workload frame into per-CPU iterators of chunks (whole ops per chunk)."""
    out: dict[int, Iterator[pl.DataFrame]] = {}
    for (cpu,), g in df.group_by("cpu", maintain_order=True):
        ops = g["op"].unique(maintain_order=True)
        bounds = [ops[i] for i in range(0, ops.len(), chunk_ops)] + [None]

        def chunks(g: pl.DataFrame = g, bounds: list[Any] = bounds) -> Iterator[pl.DataFrame]:
            for lo, hi in itertools.pairwise(bounds):
                yield (
                    g.filter(pl.col("op") >= lo)
                    if hi is None
                    else g.filter((pl.col("op") >= lo) & (pl.col("op") < hi))
                )

        out[int(cpu)] = chunks()
    return out


def replay_policies(
    trace: str,
    configs: Iterable[Mapping[str, Any]],
    *,
    base: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """Replay ``trace`` under each config (``trace-replay`` overrides, e.g. ``{"submit": "spinlock"}``);
    one row per config with its overrides and the flattened metrics."""
    from cmdqv_lab.scenarios import simulate

    rows = []
    for cfg in configs:
        res = simulate("trace-replay", {"trace": trace, **(base or {}), **cfg}, seed=seed)
        label = ", ".join(f"{k}={v}" for k, v in cfg.items())
        rows.append({"policy": label, **{k: str(v) for k, v in cfg.items()}, **res.metrics_row()})
    return pl.DataFrame(rows)
