"""Trace replay: a real command stream (QEMU SMMUv3 trace) as a workload, with its recorded order
and batch structure.

Each doorbell (a PROD write that published a range) becomes one op with one batch; the batch waits
for its CMD_SYNC if its last command is one. The issuing CPU is the QEMU vCPU thread that wrote
PROD (``pid``), or, with ``cpus``, doorbells are dealt round robin onto that many CPUs. Pacing:

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

from cmdqv_lab.device.commands import Opcode
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
    """The trace's commands as one workload frame (all CPUs), ops in doorbell order per CPU."""
    from cmdqv_lab.workloads.qemu_trace import parse_trace

    if pacing not in PACINGS:
        raise ParamError(f"pacing={pacing!r} is not allowed: one of {', '.join(PACINGS)}")
    if repeat < 1:
        raise ParamError(f"repeat={repeat} must be >= 1")
    tr = parse_trace(Path(path))
    c = tr.commands.filter(pl.col("doorbell").is_not_null()).sort("seq")
    if c.height == 0:
        raise ParamError(f"{path}: the trace has no published commands to replay")
    db = tr.doorbells.select("doorbell", pl.col("time_s").alias("db_time"), pl.col("pid").alias("db_pid"))
    c = c.join(db, on="doorbell", how="left").sort("seq")
    pids = sorted(c["db_pid"].fill_null(c["pid"]).unique().to_list())
    t0 = float(c.select(pl.col("db_time").min()).item())
    span = float(c.select(pl.col("db_time").max()).item()) - t0
    n_db = int(c.select(pl.col("doorbell").max()).item()) + 1
    frames = []
    for r in range(repeat):
        f = c.with_columns(
            (pl.col("doorbell") + r * n_db).alias("op"),
            (pl.col("db_time") - t0 + r * (span * 1.001 + 1e-6)).alias("t_rel"),
            pl.col("db_pid").fill_null(pl.col("pid")).alias("wpid"),
        )
        frames.append(f)
    c = pl.concat(frames)
    if cpus > 0:
        c = c.with_columns((pl.col("op") % cpus).cast(pl.Int32).alias("cpu"))
    else:
        c = c.with_columns(
            pl.col("wpid").replace_strict({p: i for i, p in enumerate(pids)}).cast(pl.Int32).alias("cpu")
        )
    last = pl.col("opcode_value").last().over("op") == int(Opcode.CMD_SYNC)
    if pacing == "closed":
        ops = c.select("cpu", "op").unique(maintain_order=True)
        gaps = []
        for cpu, g in ops.group_by("cpu", maintain_order=True):
            rng = rng_stream(seed, "trace-replay", "think", int(cpu[0]))
            gaps.append(
                g.with_columns(
                    pl.Series(
                        "t_ps", np.rint((0.5 + rng.random(g.height)) * think_ns * 1000).astype(np.int64)
                    )
                )
            )
        t = pl.concat(gaps)
        c = c.join(t, on=["cpu", "op"], how="left")
    else:
        factor = 1e12 * (speed if pacing == "scaled" else 1.0)
        c = c.with_columns((pl.col("t_rel") * factor).round().cast(pl.Int64).alias("t_ps"))
    out = c.select(
        "cpu",
        pl.lit(vm, pl.Int32).alias("vm"),
        "op",
        pl.col("op").alias("batch"),
        "t_ps",
        last.alias("sync"),
        pl.lit("trace").alias("kind"),
        pl.col("opcode_value").cast(pl.UInt8).alias("opcode"),
        "vmid",
        "asid",
        "sid",
        pl.lit(None, pl.Int32).alias("ssid"),
        "addr",
        pl.lit(None, pl.Int16).alias("num"),
        pl.lit(None, pl.Int16).alias("scale"),
        "tg",
        "ttl",
        "leaf",
        pl.lit(None, pl.Int16).alias("size"),
        pl.lit(None, pl.Int16).alias("range"),
    )
    return out.cast(WORKLOAD_SCHEMA).sort("cpu", "op", maintain_order=True)  # type: ignore[arg-type]


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
