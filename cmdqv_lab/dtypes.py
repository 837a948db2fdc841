"""Column types of the project's polars frames, named rather than imported.

A schema such as :data:`~cmdqv_lab.workloads.stream.WORKLOAD_SCHEMA` is a module constant, and the
modules that define them are imported by every simulation. Holding polars' dtype objects would
import polars (0.15-0.2 s) in every ``cmdqv-lab simulate`` process, most of which never build a
frame. A :class:`Dtypes` holds the type names and looks them up in polars the first time a type is
read; its keys (the column names) need no polars at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class Dtypes(Mapping[str, Any]):
    """Column name -> polars dtype, given by the dtype's name in polars (``"Int64"``)."""

    def __init__(self, names: Mapping[str, str]):
        self._names = dict(names)
        self._types: dict[str, Any] | None = None

    def _resolve(self) -> dict[str, Any]:
        if self._types is None:
            import polars as pl

            self._types = {k: getattr(pl, v) for k, v in self._names.items()}
        return self._types

    def __getitem__(self, key: str) -> Any:
        return self._resolve()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"Dtypes({self._names!r})"
