"""Workloads described in TOML (see :mod:`cmdqv_lab.workloads.custom` for where they can be used).

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

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "two.toml"
>>> _ = path.write_text('[workload]\\nops = 4\\n[[op]]\\nbatches = [["2 TLBI_NH_VA", "SYNC"]]\\n')
>>> spec = toml_spec(path, "two.toml")
>>> w = spec.make(spec.params(), 0)
>>> import polars as pl
>>> pl.concat(list(w.streams[0]))["opcode"].to_list()[:3]
[18, 18, 70]
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cmdqv_lab.device.commands import CFGI_RANGE_ALL, LAYOUT, Opcode
from cmdqv_lab.errors import ParamError, suggest
from cmdqv_lab.params import param
from cmdqv_lab.workloads.custom import FunctionParams, derive_params
from cmdqv_lab.workloads.registry import WorkloadSpec
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, WORKLOAD_SCHEMA, Workload
from cmdqv_lab.workloads.synthetic.common import exp_ps, quotas, rng, sid_of, stream_ids, think_ps, vmid_of

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
            chunks=tuple(cpu_stream(vm, c, q) for (vm, c), q in zip(ids, quotas(p.ops, len(ids)))),
            open_loop=open_loop,
            params=p.to_dict(),
            independent=True,  # each CPU's own generators
        )

    return make


def toml_spec(path: Path, label: str) -> WorkloadSpec:
    """The workload the TOML file ``path`` describes (``label`` names it in errors)."""
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
    params = derive_params(TomlParams, name, defaults, sha, f"{label}:workload.")
    doc = str(head.get("description", f"workload described in {label}"))
    return WorkloadSpec(name, doc, params, _toml_make(name, shapes))
