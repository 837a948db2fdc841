"""Your own workloads: a TOML file, or a Python function found by path or by entry point.

Anywhere a workload name is accepted (``host-<workload>`` and ``guest-wl-<workload>`` scenarios,
:func:`cmdqv_lab.workloads.registry.generate`), ``<workload>`` may also be

- ``PATH.toml``: a workload described in TOML (below), relative to the current directory;
- ``module.py:function`` or ``package.module:function``: a Python function (below);
- the name of an entry point in the ``cmdqv_lab.workloads`` group of an installed package
  (``[project.entry-points."cmdqv_lab.workloads"] my-wl = "my_pkg.wl:make"``).

So ``cmdqv-lab simulate -s host-my.toml --set threads=8`` runs ``my.toml`` on the host's main
CMDQ, and ``cmdqv-lab simulate -s guest-wl-my.toml --set vms=2`` issues it from two guests.

A TOML workload
---------------
Ops are drawn independently per op from the ``[[op]]`` shapes (probability ``weight / sum``); each
shape is a list of batches, a batch a list of commands (``"N OPCODE"`` repeats it ``N`` times; the
``CMD_`` prefix is optional). A batch that ends with ``CMD_SYNC`` is waited for by its CPU; one
without is issued and not waited for. Every ``[workload]`` key is a parameter ``--set`` can change::

    [workload]
    name = "my-unmap"          # optional (default: the file name)
    description = "strict 4-page unmaps; one in ten detaches a context descriptor"
    ops = 20000                # default size (--ops overrides)
    threads = 4                # issuing CPUs per VM (or host)
    vms = 0                    # 0: the host issues; V: V guests of `threads` vCPUs
    sids_per_vm = 1            # devices (StreamIDs) per VM or host, one drawn per op
    think_ns = 1500.0          # mean CPU time before each op (closed loop)
    think_dist = "uniform"     # uniform (x U[0.5, 1.5)), exponential or deterministic
    rate_kops_s = 0.0          # > 0: open loop, Poisson arrivals at this rate per CPU

    [[op]]
    kind = "unmap"
    weight = 9
    batches = [["4 CMD_TLBI_NH_VA", "CMD_SYNC"]]

    [[op]]
    kind = "detach"
    weight = 1
    batches = [["CMD_CFGI_CD", "CMD_SYNC"], ["TLBI_NH_ASID", "CMD_SYNC"]]

Command fields follow the op's device and issuer (the conventions of
:mod:`cmdqv_lab.workloads.synthetic.common`): ``vmid`` of the VM (0 for the host), ``asid`` of the
device's domain, its ``sid``, and an IOVA per op (consecutive commands of one opcode in an op hit
consecutive 4 KiB pages); TLBIs are leaf, 4 KiB granule, level 3.

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

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "two.toml"
>>> _ = path.write_text('[workload]\\nops = 4\\n[[op]]\\nbatches = [["2 TLBI_NH_VA", "SYNC"]]\\n')
>>> spec = load_reference(str(path))
>>> w = spec.make(spec.params(), 0)
>>> import polars as pl
>>> pl.concat(list(w.streams[0]))["opcode"].to_list()[:3]
[18, 18, 70]
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cmdqv_lab.device.commands import CFGI_RANGE_ALL, LAYOUT, Opcode
from cmdqv_lab.errors import ParamError, suggest
from cmdqv_lab.params import Params, param
from cmdqv_lab.workloads.registry import WorkloadSpec
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, WORKLOAD_SCHEMA, Workload, validate
from cmdqv_lab.workloads.synthetic.common import (
    TopologyParams,
    exp_ps,
    quotas,
    rng,
    sid_of,
    stream_ids,
    think_ps,
    vmid_of,
)  # fmt: skip

_SYNC = int(Opcode.CMD_SYNC)
PAGE = 4096
IOVA_BASE = 1 << 32
#: IOVA slots each stream cycles through (an op uses slot ``op % SLOTS``).
SLOTS = 256
#: Opcodes by name, with and without ``CMD_``.
_OPCODES = {**{o.name: o for o in Opcode}, **{o.name.removeprefix("CMD_"): o for o in Opcode}}
#: Field values that do not depend on the op (TLBIs: leaf, 4 KiB granule, level 3).
_CONST = {"ssid": 0, "num": 0, "scale": 0, "tg": 1, "ttl": 3, "leaf": 1, "size": 0, "range": CFGI_RANGE_ALL}
_DISTS = ("uniform", "exponential", "deterministic")


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


@dataclass(frozen=True, kw_only=True)
class TomlParams(FunctionParams):
    """Parameters of a TOML workload (defaults from its ``[workload]`` table)."""

    think_dist: str = param(
        "uniform", choices=_DISTS, provenance="choice",
        doc="think times: uniform (mean x U[0.5,1.5)), exponential or deterministic",
    )  # fmt: skip
    rate_kops_s: float = param(
        0.0, unit="kops/s", lo=0, hi=1e6, provenance="choice",
        doc="> 0: open loop, Poisson arrivals at this rate per CPU (think_ns unused)",
    )  # fmt: skip


def _derive(cls: type[Params], name: str, defaults: Mapping[str, Any], sha: str, where: str) -> type[Params]:
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


# ----------------------------------------------------------------------------- TOML workloads
@dataclass(frozen=True)
class OpShape:
    """One ``[[op]]``: its kind, weight and commands (opcode, batch within the op) in order."""

    kind: str
    weight: float
    opcodes: tuple[int, ...]
    batches: tuple[int, ...]

    @property
    def n_batches(self) -> int:
        return self.batches[-1] + 1


def _parse_command(text: Any, where: str) -> list[int]:
    if not isinstance(text, str):
        raise ParamError(f'{where}: {text!r} is not a command ("OPCODE" or "N OPCODE")')
    parts = text.split()
    count = 1
    if len(parts) == 2 and parts[0].isdigit():
        count, parts = int(parts[0]), parts[1:]
    if len(parts) != 1 or not 1 <= count <= 4096:
        raise ParamError(f'{where}: {text!r} is not "OPCODE" or "N OPCODE" (N 1 .. 4096)')
    name = parts[0].upper()
    if name not in _OPCODES:
        hint = suggest(name, [o.name for o in Opcode], see="opcodes are those of the SMMUv3 spec")
        raise ParamError(f"{where}: unknown opcode {parts[0]!r}; {hint}")
    return [int(_OPCODES[name])] * count


def _parse_op(i: int, op: Any, where: str) -> OpShape:
    here = f"{where}op[{i}]"
    if not isinstance(op, dict):
        raise ParamError(f"{here}: must be a table ([[op]])")
    unknown = set(op) - {"kind", "weight", "batches"}
    if unknown:
        key = sorted(unknown)[0]
        raise ParamError(f"{here}.{key}: unknown key; {suggest(key, ['kind', 'weight', 'batches'])}")
    kind, weight, batches = op.get("kind", f"op{i}"), op.get("weight", 1.0), op.get("batches")
    if not isinstance(kind, str) or not kind:
        raise ParamError(f"{here}.kind: must be a non-empty string")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise ParamError(f"{here}.weight: {weight!r} must be a number > 0")
    if not isinstance(batches, list) or not batches:
        raise ParamError(f"{here}.batches: must be a non-empty list of batches (lists of commands)")
    opcodes: list[int] = []
    index: list[int] = []
    for b, batch in enumerate(batches):
        if not isinstance(batch, list) or not batch:
            raise ParamError(f"{here}.batches[{b}]: must be a non-empty list of commands")
        for c, text in enumerate(batch):
            codes = _parse_command(text, f"{here}.batches[{b}][{c}]")
            opcodes += codes
            index += [b] * len(codes)
    return OpShape(kind, float(weight), tuple(opcodes), tuple(index))


@dataclass(frozen=True)
class _Tables:
    """Every shape's commands concatenated, with the field values each command has."""

    start: np.ndarray  # per shape: first row in the tables
    size: np.ndarray  # per shape: commands
    n_batches: np.ndarray  # per shape
    opcode: np.ndarray
    batch: np.ndarray
    page: np.ndarray  # earlier commands of the same opcode in the op (the page offset of addr)
    has: dict[str, np.ndarray]  # field column -> the command has it


def _tables(shapes: tuple[OpShape, ...]) -> _Tables:
    opcode: list[int] = []
    batch: list[int] = []
    page: list[int] = []
    for s in shapes:
        seen: dict[int, int] = {}
        for code, b in zip(s.opcodes, s.batches):
            opcode.append(code)
            batch.append(b)
            page.append(seen.get(code, 0))
            seen[code] = seen.get(code, 0) + 1
    names = [{("addr" if f.name == "ipa" else f.name) for f in LAYOUT[Opcode(c)]} for c in opcode]
    size = np.array([len(s.opcodes) for s in shapes], np.int64)
    return _Tables(
        start=np.cumsum(size) - size,
        size=size,
        n_batches=np.array([s.n_batches for s in shapes], np.int64),
        opcode=np.array(opcode, np.uint8),
        batch=np.array(batch, np.int64),
        page=np.array(page, np.int64),
        has={f: np.array([f in n for n in names]) for f in FIELD_COLUMNS},
    )


def _frame(t: _Tables, kinds: tuple[str, ...], shape: np.ndarray, p: Any, vm: int, cpu: int,
           dev: np.ndarray, op0: int, batch0: int, t_ps: np.ndarray) -> pl.DataFrame:  # fmt: skip
    """The commands of ``len(shape)`` ops (shape index, device and time of each op)."""
    m = shape.size
    per_op = t.size[shape]
    op_local = np.repeat(np.arange(m, dtype=np.int64), per_op)
    row = t.start[shape][op_local] + np.arange(op_local.size) - (np.cumsum(per_op) - per_op)[op_local]
    nb = t.n_batches[shape]
    batch = batch0 + (np.cumsum(nb) - nb)[op_local] + t.batch[row]
    opcode = t.opcode[row]
    last = np.ones(row.size, bool)
    last[:-1] = batch[1:] != batch[:-1]
    first = np.ones(row.size, bool)
    first[1:] = last[:-1]
    sync = (opcode[last] == _SYNC)[np.cumsum(first) - 1]
    slot = (op0 + op_local) % SLOTS
    d = dev[op_local]
    vals: dict[str, Any] = {
        "vmid": np.full(row.size, vmid_of(p, vm), np.int64),
        "asid": p.asid_base + d,
        "sid": np.asarray(sid_of(p, vm, d), np.int64),
        "addr": (IOVA_BASE * (cpu + 1) + (slot * 64 + t.page[row]) * PAGE).astype(np.uint64),
        **{k: np.full(row.size, v, np.int64) for k, v in _CONST.items()},
    }
    data: dict[str, Any] = {
        "cpu": np.full(row.size, cpu, np.int32),
        "vm": np.full(row.size, vm, np.int32),
        "op": op0 + op_local,
        "batch": batch,
        "t_ps": t_ps[op_local],
        "sync": sync,
        "kind": np.asarray(kinds, dtype=object)[shape][op_local],
        "opcode": opcode,
    }
    for f in FIELD_COLUMNS:
        has = t.has[f][row]
        data[f] = pl.Series(f, vals[f]).cast(WORKLOAD_SCHEMA[f]).scatter(np.flatnonzero(~has), None)
    return pl.DataFrame(data).cast(WORKLOAD_SCHEMA)  # type: ignore[arg-type]


def _toml_make(name: str, shapes: tuple[OpShape, ...]) -> Callable[[Any, int], Workload]:
    tables = _tables(shapes)
    kinds = tuple(s.kind for s in shapes)
    cum = np.cumsum([s.weight for s in shapes])
    cum = cum / cum[-1]

    def make(p: Any, seed: int) -> Workload:
        ids = stream_ids(p)
        open_loop = p.rate_kops_s > 0

        def cpu_stream(vm: int, cpu: int, n: int) -> Iterator[pl.DataFrame]:
            g = {k: rng(seed, name, k, vm, cpu) for k in ("shape", "device", "think")}
            done = batches = clock = 0
            while done < n:
                m = min(p.chunk, n - done)
                shape = np.minimum(np.searchsorted(cum, g["shape"].random(m), side="right"), len(shapes) - 1)
                dev = np.minimum((g["device"].random(m) * p.sids_per_vm).astype(np.int64), p.sids_per_vm - 1)
                if open_loop:
                    t = clock + np.cumsum(exp_ps(g["think"], m, 1e9 / p.rate_kops_s))
                    clock = int(t[-1])
                elif p.think_dist == "uniform":
                    t = think_ps(g["think"], m, p.think_ns)
                elif p.think_dist == "exponential":
                    t = exp_ps(g["think"], m, p.think_ns * 1000.0)
                else:
                    t = np.full(m, round(p.think_ns * 1000), np.int64)
                frame = _frame(tables, kinds, shape, p, vm, cpu, dev, done, batches, t)
                yield frame
                done += m
                batches = int(frame["batch"][-1]) + 1

        return Workload(
            name=name,
            cpus=tuple(ids),
            streams=tuple(cpu_stream(vm, c, q) for (vm, c), q in zip(ids, quotas(p.ops, len(ids)))),
            open_loop=open_loop,
            params=p.to_dict(),
        )

    return make


def _toml_spec(path: Path, label: str) -> WorkloadSpec:
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ParamError(f"{label}: not valid TOML: {e}") from None
    unknown = set(data) - {"workload", "op"}
    if unknown:
        key = sorted(unknown)[0]
        raise ParamError(f"{label}:{key}: unknown table; {suggest(key, ['workload', 'op'])}")
    head = data.get("workload", {})
    if not isinstance(head, dict):
        raise ParamError(f"{label}:workload: must be a table ([workload])")
    ops = data.get("op")
    if not isinstance(ops, list) or not ops:
        raise ParamError(f"{label}:op: no [[op]] shapes (each: kind, weight, batches)")
    shapes = tuple(_parse_op(i, op, f"{label}:") for i, op in enumerate(ops))
    name = str(head.get("name", path.stem))
    defaults = {k: v for k, v in head.items() if k not in ("name", "description")}
    infos = TomlParams.field_infos()
    for key in defaults:
        if key not in infos:
            raise ParamError(
                f"{label}:workload.{key}: unknown key; {suggest(key, [*infos, 'name', 'description'])}"
            )
    sha = "sha256:" + hashlib.sha256(raw).hexdigest()[:16]
    params = _derive(TomlParams, name, defaults, sha, f"{label}:workload.")
    doc = str(head.get("description", f"workload described in {label}"))
    return WorkloadSpec(name, doc, params, _toml_make(name, shapes))


# ----------------------------------------------------------------------------- functions
def workload_from_frame(df: pl.DataFrame, name: str, params: Mapping[str, Any], *, open_loop: bool = False,
                        where: str = "workload") -> Workload:  # fmt: skip
    """A :class:`Workload` from one frame of every command (missing optional columns filled in)."""
    if not isinstance(df, pl.DataFrame):
        raise ParamError(f"{where}: returned {type(df).__name__}, not a Workload or a polars DataFrame")
    missing = [c for c in ("op", "batch", "opcode") if c not in df.columns]
    if missing:
        raise ParamError(f"{where}: the frame has no column {missing[0]!r} (needs op, batch, opcode)")
    last = pl.col("opcode").last().over("vm", "cpu", "batch") == _SYNC
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
        streams=tuple(iter([parts[key]]) for key in keys),
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
    params = _derive(base, name, {}, sha, f"{source}: ")
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
        return _toml_spec(path, ref)
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
