"""Shared machinery of the synthetic generators: topology, random draws, op templates, frames.

Topology (every generator)
--------------------------
``vms = 0`` models the host: one stream per host CPU ``cpu = 0 .. threads-1`` with ``vm = -1``.
``vms = V > 0`` models ``V`` guests: stream ``(vm, cpu)`` for ``vm = 0 .. V-1`` and vCPU index
``cpu = 0 .. threads-1`` *within* its VM (so ``cpu`` values repeat across VMs; a stream is named by
the pair). Streams are ordered VM-major (:func:`stream_ids`). VM ``v`` has VMID ``vmid_base + v``
(Linux allocates VMIDs from 1, ``arm_smmu_domain_finalise_s2``); host stage-1 commands carry VMID 0.
A guest's commands carry its VM's VMID in the ``vmid`` column: the VMID they act on once a VINTF
(or the host's vSMMU) has replaced the 0 a guest with S2P=0 writes.

Each VM (or the host) has ``sids_per_vm`` devices, device ``k`` with SID
``sid_base + (vm + 1) * SID_STRIDE + k`` (guest SIDs as the VM sees them, distinct across VMs) and
its own DMA domain with ASID ``asid_base + k``. :func:`vm_sids` lists them: it is the SID set a
VINTF's MATCH/REPLACE pairs would hold (``sids`` of :func:`cmdqv_lab.driver.routing.route_frame`).

Randomness and chunks
---------------------
Every random quantity comes from its own :func:`cmdqv_lab.rng.stream` keyed by
``(workload, purpose, vm + 1, cpu)``, and every item (op, command) consumes a fixed number of
doubles in issue order, so the frames do not depend on the chunk size or on the other streams.

>>> stream_ids(TopologyParams(vms=2, threads=2))
[(0, 0), (0, 1), (1, 0), (1, 1)]
>>> vm_sids({"vms": 1, "sids_per_vm": 2, "sid_base": 0})
{0: [256, 257]}
>>> quotas(10, 4)
[3, 3, 2, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params, param
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, Period, Rows

#: SIDs reserved per VM (the host is VM -1): VM ``v`` owns ``sid_base + (v + 1) * SID_STRIDE + k``.
SID_STRIDE = 256
_SYNC = int(Opcode.CMD_SYNC)


@dataclass(frozen=True, kw_only=True)
class TopologyParams(Params):
    """Who issues commands: the host or ``vms`` guests, ``threads`` CPUs each, their IDs."""

    vms: int = param(0, unit="VMs", lo=0, hi=1024, provenance="choice", doc="guests (0: the host issues)")
    threads: int = param(
        1, unit="CPUs", lo=1, hi=4096, provenance="choice", doc="issuing CPUs per VM (or host)"
    )
    sids_per_vm: int = param(
        1, unit="SIDs", lo=1, hi=128, provenance="choice",
        doc="devices (StreamIDs) per VM or host, one DMA domain each; a VINTF has 16 SID pairs",
    )  # fmt: skip
    vmid_base: int = param(
        1, lo=1, hi=65535, provenance="derived", source="Linux arm_smmu_domain_finalise_s2: VMIDs from 1",
        doc="VMID of VM 0 (VM v has vmid_base + v)",
    )  # fmt: skip
    sid_base: int = param(0x100, lo=0, hi=1 << 24, provenance="choice", doc="first SID (see SID_STRIDE)")
    asid_base: int = param(1, lo=0, hi=65535, provenance="choice", doc="ASID of device 0's domain")
    chunk: int = param(4096, unit="ops", lo=1, hi=1 << 22, provenance="choice", doc="ops per generated frame")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vms and self.vmid_base + self.vms - 1 > 0xFFFF:
            raise ParamError(f"vmid_base={self.vmid_base} + vms={self.vms} exceeds the 16-bit VMID space")
        if self.asid_base + self.sids_per_vm - 1 > 0xFFFF:
            raise ParamError(
                f"asid_base={self.asid_base} + sids_per_vm={self.sids_per_vm} exceeds 16-bit ASIDs"
            )


def stream_ids(p: Any) -> list[tuple[int, int]]:
    """``(vm, cpu)`` of every stream, VM-major; ``vm = -1`` for the host."""
    vms = list(range(p.vms)) if p.vms else [-1]
    return [(vm, c) for vm in vms for c in range(p.threads)]


def sid_of(p: Any, vm: int, k: int | np.ndarray) -> Any:
    """SID of device ``k`` of ``vm`` (works on arrays)."""
    return p.sid_base + (vm + 1) * SID_STRIDE + k


def vmid_of(p: Any, vm: int) -> int:
    """The VMID the VM's commands carry (0 for host stage-1 commands)."""
    return 0 if vm < 0 else p.vmid_base + vm


def vm_sids(params: Mapping[str, Any] | Any) -> dict[int, list[int]]:
    """``{vm: [SID, ...]}`` of the workload's devices, from a Params object or ``Workload.params``."""
    get = params.get if isinstance(params, Mapping) else lambda k, d=None: getattr(params, k, d)
    vms, n, base = int(get("vms", 0)), int(get("sids_per_vm", 1)), int(get("sid_base", 0x100))
    return {vm: [base + (vm + 1) * SID_STRIDE + k for k in range(n)] for vm in (range(vms) if vms else [-1])}


def guest_sid(d: int) -> int:
    """Guest StreamID of a VM's device ``d`` (QEMU virt numbering ``00:(d+1).0``).

    >>> [guest_sid(d) for d in range(3)]
    [8, 16, 24]
    """
    return (d + 1) * 8


def quotas(total: int, n: int) -> list[int]:
    """``total`` split over ``n`` streams as evenly as possible (earlier streams get the remainder)."""
    base, rem = divmod(total, n)
    return [base + (1 if i < rem else 0) for i in range(n)]


def rng(seed: int, name: str, purpose: str, vm: int, cpu: int) -> np.random.Generator:
    """The generator of one stream's ``purpose`` draws."""
    return rng_stream(seed, name, purpose, vm + 1, cpu)


def think_ps(g: np.random.Generator, m: int, mean_ns: float) -> np.ndarray:
    """``m`` closed-loop think gaps, uniform on ``[0.5, 1.5] * mean_ns`` (one double each), in ps."""
    return np.rint((0.5 + g.random(m)) * (mean_ns * 1000.0)).astype(np.int64)


def draw_times(g: np.random.Generator, mean_ns: float, dist: str, m: int) -> np.ndarray:
    """``m`` integer-ps durations with mean ``mean_ns`` (one draw each, none when deterministic).

    ``deterministic``: all equal; ``uniform``: ``mean * U[0.5, 1.5)`` (jitter, CV 0.29, as
    :func:`think_ps`); ``exponential``: CV 1. Perfectly deterministic closed loops can phase-lock
    (one CPU's cmpxchg losing every race); the jittered default models a real benchmark loop.
    """
    if dist == "deterministic" or mean_ns == 0:
        return np.full(m, round(mean_ns * 1000.0), dtype=np.int64)
    if dist == "uniform":
        return think_ps(g, m, mean_ns)
    return np.rint(g.standard_exponential(m) * (mean_ns * 1000.0)).astype(np.int64)


def exp_ps(g: np.random.Generator, m: int, mean_ps: float) -> np.ndarray:
    """``m`` exponential gaps of mean ``mean_ps`` (inverse CDF, one double each), in ps."""
    return np.rint(-np.log1p(-g.random(m)) * mean_ps).astype(np.int64)


# ----------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Var:
    """A command field taken from a per-instance variable plus a constant offset."""

    name: str
    offset: int = 0


@dataclass(frozen=True)
class Template:
    """The commands of ``n_ops`` consecutive ops, expanded once per instance by :meth:`expand`.

    Built from ops -> batches -> commands given as ``(opcode, {field: int | Var})``; a batch is
    closed with CMD_SYNC by the builder when ``sync`` is true.
    """

    opcode: np.ndarray
    op: np.ndarray
    batch: np.ndarray
    kinds: tuple[str, ...]
    n_batches: int
    base: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]
    uses: dict[str, dict[str, np.ndarray]]  # field -> var name -> mask of commands using it

    @classmethod
    def build(
        cls, ops: Sequence[tuple[str, Sequence[tuple[Sequence[tuple[int, dict[str, Any]]], bool]]]]
    ) -> Template:
        """``ops = [(kind, [(commands, sync), ...]), ...]``, ``commands = [(opcode, fields), ...]``."""
        rows: list[tuple[int, int, int, dict[str, Any]]] = []
        b = 0
        for o, (_, batches) in enumerate(ops):
            for cmds, sync in batches:
                for opc, fields in cmds:
                    rows.append((o, b, int(opc), fields))
                if sync:
                    rows.append((o, b, _SYNC, {}))
                b += 1
        n = len(rows)
        base = {f: np.zeros(n, np.uint64 if f == "addr" else np.int64) for f in FIELD_COLUMNS}
        valid = {f: np.zeros(n, bool) for f in FIELD_COLUMNS}
        uses: dict[str, dict[str, np.ndarray]] = {}
        for i, (_, _, _, fields) in enumerate(rows):
            for f, v in fields.items():
                if f not in base:
                    raise ValueError(f"unknown field {f!r}")
                valid[f][i] = True
                if isinstance(v, Var):
                    uses.setdefault(f, {}).setdefault(v.name, np.zeros(n, bool))[i] = True
                    v = v.offset
                base[f][i] = int(v)
        return cls(
            opcode=np.array([r[2] for r in rows], np.uint8),
            op=np.array([r[0] for r in rows], np.int64),
            batch=np.array([r[1] for r in rows], np.int64),
            kinds=tuple(k for k, _ in ops),
            n_batches=b,
            base=base,
            valid=valid,
            uses=uses,
        )

    @property
    def n_ops(self) -> int:
        return len(self.kinds)

    @cached_property
    def period(self) -> Period:
        """One instance of the template as the :class:`~cmdqv_lab.workloads.stream.Period` of its
        expansions."""
        rows = Rows(op=self.op, batch=self.batch, opcode=self.opcode,
                    kind=np.arange(self.n_ops, dtype=np.int8)[self.op], kinds=self.kinds, fields={})  # fmt: skip
        return Period(rows, self.n_ops, self.n_batches)

    def expand(self, n: int, values: Mapping[str, np.ndarray | int]) -> Rows:
        """``n`` instances; ``values[var]`` has one value per instance (or a scalar). The command
        fields are computed when first read (the timing engine never reads them)."""
        t = self.opcode.size
        values = dict(values)

        def fields() -> dict[str, tuple[np.ndarray, np.ndarray]]:
            inst = np.repeat(np.arange(n, dtype=np.int64), t)
            out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for f in FIELD_COLUMNS:
                if not self.valid[f].any():
                    continue
                vals = np.tile(self.base[f], n)
                for var, mask in self.uses.get(f, {}).items():
                    v = np.broadcast_to(np.asarray(values[var]), (n,)).astype(vals.dtype)
                    vals += np.tile(mask, n).astype(vals.dtype) * v[inst]
                out[f] = (vals, np.tile(self.valid[f], n))
            return out

        per = self.period
        return Rows(
            op=(self.op + np.arange(0, n * self.n_ops, self.n_ops, dtype=np.int64)[:, None]).reshape(-1),
            batch=(self.batch + np.arange(0, n * self.n_batches, self.n_batches, dtype=np.int64)[:, None]).reshape(-1),
            opcode=np.tile(self.opcode, n),
            kind=np.tile(per.rows.kind, n),
            kinds=self.kinds,
            fields=LazyFields(fields),
            period=per,
        )  # fmt: skip


class LazyFields(Mapping[str, tuple[np.ndarray, np.ndarray]]):
    """A read-only mapping computed by ``make()`` on first access."""

    def __init__(self, make: Callable[[], dict[str, tuple[np.ndarray, np.ndarray]]]):
        self._make: Callable[[], dict[str, tuple[np.ndarray, np.ndarray]]] | None = make
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _get(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self._make is not None:
            self._data, self._make = self._make(), None
        return self._data

    def __getitem__(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())
