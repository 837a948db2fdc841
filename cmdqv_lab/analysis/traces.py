"""Findings from the captured Linux command streams (``data/traces``): batching, opcodes, volume.

>>> short_name("qemu-smmuv3-linux6.1-smp4-strict.log.gz")
'linux6.1-smp4-strict'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl


def short_name(f: Any) -> str:
    """A trace file's short name (``linux6.1-smp4-strict``)."""
    return str(getattr(f, "name", f)).removesuffix(".log.gz").removeprefix("qemu-smmuv3-")


def batch_mixing(files: Iterable[Path]) -> pl.DataFrame:
    """Q1: per trace, doorbells holding two command types, and those first-opcode routing gets wrong.

    A doorbell is *mixed* when it holds two command types (TLBI, CFGI, ATC, other) besides its
    CMD_SYNC, and *unsafe for first-opcode* when its first command is accepted by a guest VCMDQ
    but a later one is not.
    """
    from cmdqv_lab.driver.routing import GUEST_ACCEPTED, opcode_class
    from cmdqv_lab.workloads.qemu_trace import parse_trace

    accepted = [o.name for o in GUEST_ACCEPTED]
    rows = []
    for f in files:
        cmds = parse_trace(f).commands
        per = (
            cmds.filter(pl.col("opcode") != "CMD_SYNC")
            .with_columns(
                pl.col("opcode_value").map_elements(opcode_class, return_dtype=pl.String).alias("cls"),
                pl.col("opcode").is_in(accepted).alias("ok"),
            )
            .group_by("doorbell", maintain_order=True)
            .agg(
                pl.col("cls").n_unique().alias("types"),
                pl.col("ok").first().alias("first_ok"),
                pl.col("ok").all().alias("all_ok"),
            )
        )
        rows.append(
            {
                "trace": short_name(f),
                "commands": cmds.height,
                "doorbells": per.height,
                "mixed": int((per["types"] > 1).sum()),
                "unsafe_for_first_opcode": int((per["first_ok"] & ~per["all_ok"]).sum()),
            }
        )
    return pl.DataFrame(rows)


def opcode_census(files: Iterable[Path]) -> pl.DataFrame:
    """Q5: commands per opcode per trace (long form: opcode, count, trace)."""
    from cmdqv_lab.workloads.qemu_trace import parse_trace

    return pl.concat(
        [
            parse_trace(f).commands.group_by("opcode", maintain_order=True).len("count")
            .with_columns(pl.lit(short_name(f)).alias("trace"))
            for f in files
        ]
    )  # fmt: skip


def census_by_set(census: pl.DataFrame, sets: dict[str, Iterable[str]]) -> pl.DataFrame:
    """The census wide (one column per trace, a total) with where each opcode goes under each set."""
    wide = census.pivot(on="trace", index="opcode", values="count").fill_null(0)
    wide = wide.with_columns(pl.sum_horizontal(pl.exclude("opcode")).alias("all traces")).sort(
        ["all traces", "opcode"], descending=[True, False]
    )
    for key, names in sets.items():
        wide = wide.with_columns(
            pl.when(pl.col("opcode").is_in(list(names)))
            .then(pl.lit("direct"))
            .otherwise(pl.lit("trap"))
            .alias(key)
        )
    return wide


def volume_table(traces_dir: Path) -> pl.DataFrame:
    """Q10: commands, doorbells, SYNCs and TLBIs per trace, and per MiB read (from the metadata)."""
    from cmdqv_lab.workloads.qemu_trace import parse_trace

    rows = []
    for meta_path in sorted(traces_dir.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        wl = meta.get("workload", {})
        s = parse_trace(traces_dir / meta["trace"]).summary()
        mib = None
        if wl.get("bytes_per_job") and wl.get("jobs") and wl.get("block_sizes"):
            mib = wl["bytes_per_job"] * wl["jobs"] * len(wl["block_sizes"]) / 2**20
        rows.append(
            {
                "trace": short_name(meta["trace"]),
                "mode": meta.get("invalidation"),
                "vcpus": meta.get("vcpus"),
                "MiB read": mib,
                "commands": s["commands"],
                "doorbells": s["doorbells"],
                "CMD_SYNC": s["opcodes"].get("CMD_SYNC", 0),
                "TLBIs": sum(v for k, v in s["opcodes"].items() if k.startswith("CMD_TLBI")),
                "commands per MiB": round(s["commands"] / mib, 2) if mib else None,
                "doorbells per MiB": round(s["doorbells"] / mib, 2) if mib else None,
            }
        )
    return pl.DataFrame(rows)
