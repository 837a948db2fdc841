"""Your own workloads: a TOML file, or a Python function found by path or by entry point.

Anywhere a workload name is accepted (``host-<workload>`` and ``guest-wl-<workload>`` scenarios,
:func:`cmdqv_lab.workloads.registry.generate`), ``<workload>`` may also be

- ``PATH.toml``: a workload described in TOML (:mod:`.toml_workload`), relative to the current directory;
- ``module.py:function`` or ``package.module:function``: a Python function (below);
- the name of an entry point in the ``cmdqv_lab.workloads`` group of an installed package
  (``[project.entry-points."cmdqv_lab.workloads"] my-wl = "my_pkg.wl:make"``).

So ``cmdqv-lab simulate -s host-my.toml --set threads=8`` runs ``my.toml`` on the host's main
CMDQ, and ``cmdqv-lab simulate -s guest-wl-my.toml --set vms=2`` issues it from two guests.

A Python function
-----------------
``function(params, seed)`` returns a :class:`~cmdqv_lab.workloads.stream.Workload` or, simpler, one
polars frame of every command (columns ``op``, ``batch``, ``opcode`` required; ``cpu`` (0), ``vm``
(-1: host), ``t_ps`` (think gap in ps, 0), ``kind`` ("op"), ``sync`` (batch ends with CMD_SYNC)
and command fields optional). ``params`` is an instance of ``function.params`` if the function has
that attribute (a frozen, keyword-only :class:`~cmdqv_lab.params.Params` dataclass), else of
:class:`FunctionParams` (``ops``, ``threads``, ``vms``, ``think_ns``, ...). Its docstring's first
line is its description.

Every such workload gets a ``definition`` parameter: the SHA-256 of its file, fixed (setting it to
anything else is an error). It is part of the resolved parameters, so a sweep's cached points are
recomputed when the file changes, and results name the definition that made them.

>>> df = pl.DataFrame({"op": [0, 0, 1, 1], "batch": [0, 0, 1, 1], "opcode": [17, 70, 17, 70]})
>>> w = workload_from_frame(df, "asid-flush", {})
>>> w.cpus, pl.concat(list(w.streams[0]))["sync"].to_list()
(((-1, 0),), [True, True, True, True])
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.errors import ParamError, suggest
from cmdqv_lab.params import Params, param
from cmdqv_lab.workloads.registry import WorkloadSpec
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, WORKLOAD_SCHEMA, Workload, validate
from cmdqv_lab.workloads.synthetic.common import (
    TopologyParams,
)  # fmt: skip


def is_reference(name: str) -> bool:
    """``name`` points at a file or a function rather than naming a registered workload."""
    return name.endswith(".toml") or ":" in name or "/" in name


# ----------------------------------------------------------------------------- parameters
@dataclass(frozen=True, kw_only=True)
class FunctionParams(TopologyParams):
    """Parameters a workload function gets unless it declares its own (``function.params``)."""

    ops: int = param(10_000, unit="ops", lo=1, hi=10**12, provenance="choice", doc="ops in total")
    think_ns: float = param(
        1500.0, unit="ns", lo=0, hi=1e9, provenance="assumption", doc="mean CPU time before each op"
    )


def derive_params(
    cls: type[Params], name: str, defaults: Mapping[str, Any], sha: str, where: str
) -> type[Params]:
    """``cls`` with new defaults and a fixed ``definition`` field (the file's SHA-256)."""
    infos = cls.field_infos()
    fields: list[tuple[str, Any, Any]] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in defaults:
            value = defaults[f.name]
            if isinstance(f.default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            fields.append((f.name, f.type, dataclasses.field(default=value, metadata=f.metadata)))
    definition = param(
        sha, choices=(sha,), provenance="choice", doc="SHA-256 of the workload's file (fixed; names what ran)"
    )
    fields.append(("definition", str, definition))
    cls_name = "".join(part.capitalize() for part in name.replace("_", "-").split("-") if part.isalnum())
    derived = dataclasses.make_dataclass(
        (cls_name or "Custom") + "Params", fields, bases=(cls,), frozen=True, kw_only=True
    )
    try:
        derived()
    except ParamError as e:
        key = str(e).split("=", 1)[0]
        raise ParamError(f"{where}{key if key in infos else ''}: {e}") from None
    return derived


# ----------------------------------------------------------------------------- functions
def workload_from_frame(df: pl.DataFrame, name: str, params: Mapping[str, Any], *, open_loop: bool = False,
                        where: str = "workload") -> Workload:  # fmt: skip
    """A :class:`Workload` from one frame of every command (missing optional columns filled in)."""
    if not isinstance(df, pl.DataFrame):
        raise ParamError(f"{where}: returned {type(df).__name__}, not a Workload or a polars DataFrame")
    missing = [c for c in ("op", "batch", "opcode") if c not in df.columns]
    if missing:
        raise ParamError(f"{where}: the frame has no column {missing[0]!r} (needs op, batch, opcode)")
    last = pl.col("opcode").last().over("vm", "cpu", "batch") == int(Opcode.CMD_SYNC)
    defaults: dict[str, pl.Expr] = {
        "cpu": pl.lit(0), "vm": pl.lit(-1), "t_ps": pl.lit(0), "kind": pl.lit("op"),
        **{f: pl.lit(None, WORKLOAD_SCHEMA[f]) for f in FIELD_COLUMNS},
    }  # fmt: skip
    df = df.with_columns([e.alias(c) for c, e in defaults.items() if c not in df.columns])
    if "sync" not in df.columns:
        df = df.with_columns(last.alias("sync"))
    df = validate(df, where)
    keys = df.select("vm", "cpu").unique(maintain_order=True).sort("vm", "cpu").rows()
    parts = df.partition_by("vm", "cpu", as_dict=True, maintain_order=True)
    return Workload(
        name=name,
        cpus=tuple((int(vm), int(cpu)) for vm, cpu in keys),
        chunks=tuple(iter([parts[key]]) for key in keys),
        open_loop=open_loop,
        params=dict(params),
    )


def spec_from_function(fn: Any, name: str, source: str, sha: str) -> WorkloadSpec:
    """A :class:`WorkloadSpec` from a workload function (or a ready ``WorkloadSpec``)."""
    if isinstance(fn, WorkloadSpec):
        return fn
    if not callable(fn):
        raise ParamError(f"{source}: {type(fn).__name__} is not a workload function or WorkloadSpec")
    base = getattr(fn, "params", FunctionParams)
    if not (isinstance(base, type) and issubclass(base, Params) and dataclasses.is_dataclass(base)):
        raise ParamError(f"{source}: .params must be a frozen, keyword-only Params dataclass")
    params = derive_params(base, name, {}, sha, f"{source}: ")
    doc = (inspect.getdoc(fn) or f"workload function {source}").splitlines()[0]

    def make(p: Any, seed: int) -> Workload:
        out = fn(p, seed)
        if isinstance(out, Workload):
            return out
        return workload_from_frame(out, name, p.to_dict(), open_loop=bool(getattr(fn, "open_loop", False)),
                                   where=source)  # fmt: skip

    return WorkloadSpec(name, doc, params, make)


def _module_file(module: Any) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file) if file else None


def _sha_of(path: Path | None) -> str:
    return "sha256:" + (hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path else "unknown")


def _function_spec(ref: str) -> WorkloadSpec:
    target, _, attr = ref.rpartition(":")
    if not target or not attr.isidentifier():
        raise ParamError(f"workload {ref!r}: expected module.py:function or package.module:function")
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise ParamError(f"workload {ref!r}: no such file {target}")
        modname = "cmdqv_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(modname, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
            raise ParamError(f"workload {ref!r}: cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module  # dataclasses and spawned workers look modules up by name
        spec.loader.exec_module(module)
        source: Path | None = path
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            raise ParamError(f"workload {ref!r}: no module named {e.name!r}") from None
        source = _module_file(module)
    if not hasattr(module, attr):
        names = [n for n in vars(module) if not n.startswith("_")]
        raise ParamError(f"workload {ref!r}: {target} has no {attr!r}; {suggest(attr, names)}")
    return spec_from_function(
        getattr(module, attr), Path(target).stem if source else target, ref, _sha_of(source)
    )


@lru_cache(maxsize=64)
def _cached(ref: str, path: Path | None, mtime: float) -> WorkloadSpec:
    if ref.endswith(".toml"):
        assert path is not None
        from cmdqv_lab.workloads.toml_workload import toml_spec

        return toml_spec(path, ref)
    return _function_spec(ref)


def load_reference(ref: str) -> WorkloadSpec:
    """The workload a file reference names (``PATH.toml`` or ``module.py:function``), re-read when
    the file changes."""
    file = ref if ref.endswith(".toml") else ref.rpartition(":")[0]
    path = Path(file)
    if file.endswith((".toml", ".py")) or "/" in file:
        if not path.is_file():
            raise ParamError(f"workload {ref!r}: no such file {file}")
        return _cached(ref, path.resolve(), path.stat().st_mtime)
    return _cached(ref, None, 0.0)


def load_entry_point(name: str, ep: Any) -> WorkloadSpec:
    """The workload an entry point of the ``cmdqv_lab.workloads`` group names."""
    try:
        fn = ep.load()
    except Exception as e:  # a broken plugin is the user's to fix: say which one
        raise ParamError(f"workload entry point {name!r} ({ep.value}): cannot load: {e}") from None
    path = _module_file(sys.modules.get(ep.value.split(":")[0]))
    spec = spec_from_function(fn, name, f"entry point {name}", _sha_of(path))
    return dataclasses.replace(spec, name=name)
