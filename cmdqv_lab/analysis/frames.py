"""Small frame helpers the notebooks share: pick a row by equality, read one value, load a sweep.

>>> import polars as pl
>>> df = pl.DataFrame({"policy": ["scan", "split"], "f": [0.05, 0.05], "mean_us": [6.0, 5.5]})
>>> at(df, policy="split").height, value(df, "mean_us", policy="scan", f=0.05)
(1, 6.0)
>>> value(df, "mean_us", policy="none")
Traceback (most recent call last):
...
cmdqv_lab.errors.FrameError: value: 0 rows where policy='none' (need exactly one) for 'mean_us'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from cmdqv_lab.errors import FrameError


def at(frame: pl.DataFrame, **eq: Any) -> pl.DataFrame:
    """The rows of ``frame`` whose columns equal the given values (all of them)."""
    if not eq:
        return frame
    return frame.filter(pl.all_horizontal([pl.col(k) == v for k, v in eq.items()]))


def value(frame: pl.DataFrame, col: str, **eq: Any) -> float:
    """``col`` of the one row matching ``eq`` as a float; a clear error when not exactly one row."""
    rows = at(frame, **eq)
    if rows.height != 1:
        where = ", ".join(f"{k}={v!r}" for k, v in eq.items())
        raise FrameError(f"value: {rows.height} rows where {where} (need exactly one) for {col!r}")
    return float(rows[col].item())


def means(frame: pl.DataFrame, by: Iterable[str], cols: Iterable[str]) -> pl.DataFrame:
    """Mean of ``cols`` over replicates per group, groups in first-seen order."""
    return frame.group_by(*by, maintain_order=True).agg(pl.col(*cols).mean())


def sweep(name: str, *, smoke: bool, echo: bool = True) -> pl.DataFrame:
    """A published (or freshly run) sweep as one frame, announcing what was loaded."""
    from cmdqv_lab.experiments.published import sweep_frame

    sd = sweep_frame(name, smoke=smoke)
    if echo:
        print(sd.describe())
    return sd.frame


def event_frame(log: Iterable[Any]) -> pl.DataFrame:
    """A functional-model event log as a frame: seq, kind, queue, pos, opcode and a detail string."""
    from cmdqv_lab.device.commands import Command

    rows = []
    for e in log:
        d = dict(e.detail)
        if "executed" in d:
            d["executed"] = str(Command.decode(d["executed"]))
        rows.append({"seq": e.seq, "kind": e.kind, "queue": e.queue, "pos": e.pos, "opcode": e.opname,
                     "detail": ", ".join(f"{k}={v}" for k, v in d.items())})  # fmt: skip
    return pl.DataFrame(rows)
