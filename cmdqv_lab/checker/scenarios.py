"""What the checker checks: a trace file, a checker scenario (``guest-mixed``) or a registry workload.

:func:`load_source` resolves ``TRACE_FILE|SCENARIO``: an existing path is a QEMU trace (see
:mod:`cmdqv_lab.checker.trace_stream`); a name in :data:`SCENARIOS` is a checker-side scenario; any
other name goes to :func:`cmdqv_lab.workloads.registry.generate`. Every source becomes one frame in
:data:`~cmdqv_lab.workloads.stream.WORKLOAD_SCHEMA`, in issue order (CPU streams interleaved op by
op), plus each guest VM's devices (guest StreamIDs, the capacity planner's input).

``guest-mixed`` is a guest's command stream for comparing routing policies (Q1, Q2, Q4): per vCPU,
strict unmaps of 1 .. ``max_tlbis`` CMD_TLBI_NH_VA closed by a CMD_SYNC;

* ``unsupported_frac`` of them carry one command a guest-owned VCMDQ does not accept (CFGI_CD,
  CFGI_STE, TLBI_NH_VAA or TLBI_NH_ALL) at a random position, the first included (Q1);
* ``atc_frac`` of them add a CMD_ATC_INV for one of the VM's ``devices`` before the SYNC; with the
  default 18 devices and 16 SID pairs, two devices have no pair and their ATC_INVs are illegal on a
  VCMDQ (Q4);
* ``lone_sync_frac`` of the plain-TLBI ones are issued as two batches, the TLBIs without SYNC, then
  a lone CMD_SYNC (the seed thread's Q2 case: Batch A {TLBI_NH_VA x2}, Batch B {CMD_SYNC}).

``impl=registry`` runs the registry's ``mixed`` workload instead (other overrides go to it unchanged;
rows its host issues become VM 0's; its devices are the SIDs it declares, so its *foreign* SIDs stay
unmatched). It is not the default because that generator also splits the SYNC off TLBI batches that
carry unsupported commands: ``scan``, ``split`` and ``homogeneous`` then trap batch A while its lone
SYNC goes to the VCMDQ, a genuine Q2 hazard of those per-batch policies, whereas ``guest-mixed``
keeps the lone-SYNC case to plain TLBI batches as in the thread, where those policies are safe.

>>> s = load_source("guest-mixed", {"ops": 40, "vms": 1}, seed=3)
>>> s.kind, s.info["generator"], s.devices[0][:3], sorted(s.frame["vm"].unique())
('scenario', 'builtin', [8, 16, 24], [0])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cmdqv_lab.checker.trace_stream import trace_frame
from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params, param
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.virt.capacity import guest_sid
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA, validate

O = Opcode  # noqa: E741
UNSUPPORTED = (O.CMD_CFGI_CD, O.CMD_CFGI_STE, O.CMD_TLBI_NH_VAA, O.CMD_TLBI_NH_ALL)
#: Opcodes whose SID names a device (CFGI_STE_RANGE names a range, not a device).
DEVICE_SID_OPCODES = [int(o) for o in (O.CMD_ATC_INV, O.CMD_CFGI_STE, O.CMD_CFGI_CD, O.CMD_CFGI_CD_ALL,
                                       O.CMD_PREFETCH_CONFIG, O.CMD_PREFETCH_ADDR, O.CMD_PRI_RESP,
                                       O.CMD_RESUME, O.CMD_STALL_TERM)]  # fmt: skip


@dataclass
class Source:
    """A command stream to check: the frame (issue order), each VM's devices, and a description."""

    name: str
    kind: str  # "trace" or "scenario"
    frame: pl.DataFrame  # WORKLOAD_SCHEMA (+ "line", "seq" for traces)
    devices: dict[int, list[int]]  # vm -> guest StreamIDs of its devices
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class GuestMixedParams(Params):
    """Parameters of the checker's ``guest-mixed`` scenario (see the module docstring)."""

    EXTRA_KEYS = ("impl",)

    vms: int = param(2, unit="VMs", lo=1, hi=63, provenance="choice", doc="guest VMs")
    vcpus: int = param(2, unit="vCPUs", lo=1, hi=256, provenance="choice", doc="vCPUs per VM")
    ops: int = param(4000, unit="ops", lo=1, hi=10**7, provenance="choice", doc="unmaps in total")
    max_tlbis: int = param(
        8, unit="commands", lo=1, hi=62, provenance="choice", doc="TLBIs per unmap: 1 .. max"
    )
    unsupported_frac: float = param(
        0.1, lo=0, hi=1, provenance="choice", doc="unmaps whose batch carries one unsupported command"
    )
    atc_frac: float = param(0.2, lo=0, hi=1, provenance="choice", doc="unmaps adding an ATC_INV")
    lone_sync_frac: float = param(
        0.05, lo=0, hi=1, provenance="choice", doc="plain unmaps issued as {TLBIs}, then {CMD_SYNC}"
    )
    devices: int = param(18, unit="devices", lo=1, hi=4096, provenance="choice", doc="devices per VM")


def _unmaps(p: GuestMixedParams, vm: int, cpu: int, n: int, seed: int) -> pl.DataFrame:
    g = rng_stream(seed, "guest-mixed", vm, cpu)
    k = g.integers(1, p.max_tlbis + 1, n)
    bad = g.random(n) < p.unsupported_frac
    bad_at = (g.random(n) * (k + 1)).astype(np.int64)
    bad_op = g.integers(0, len(UNSUPPORTED), n)
    atc = g.random(n) < p.atc_frac
    lone = (g.random(n) < p.lone_sync_frac) & ~bad & ~atc
    dev = g.integers(0, p.devices, (n, 2))
    cols: dict[str, list[Any]] = {
        c: [] for c in ("op", "batch", "sync", "opcode", "asid", "sid", "addr", "leaf", "ssid")
    }
    batch, page = 0, 0
    for i in range(n):
        cmds: list[tuple[int, int | None, int | None]] = []  # opcode, sid, addr
        for j in range(int(k[i]) + 1):
            if bad[i] and j == bad_at[i]:
                op = UNSUPPORTED[bad_op[i]]
                sid = guest_sid(int(dev[i, 0])) if op in (O.CMD_CFGI_CD, O.CMD_CFGI_STE) else None
                cmds.append((int(op), sid, (page << 12) if op == O.CMD_TLBI_NH_VAA else None))
            if j < k[i]:
                cmds.append((int(O.CMD_TLBI_NH_VA), None, page << 12))
                page += 1
        if atc[i]:
            cmds.append((int(O.CMD_ATC_INV), guest_sid(int(dev[i, 1])), None))
        sync: list[tuple[int, int | None, int | None]] = [(int(O.CMD_SYNC), None, None)]
        parts = [cmds, sync] if lone[i] else [cmds + sync]
        for b, part in enumerate(parts):
            for opcode, sid, addr in part:
                cols["op"].append(i)
                cols["batch"].append(batch)
                cols["sync"].append(b == len(parts) - 1)
                cols["opcode"].append(opcode)
                cols["sid"].append(sid)
                cols["addr"].append(addr)
                tlbi = opcode in (O.CMD_TLBI_NH_VA, O.CMD_TLBI_NH_VAA)
                cols["leaf"].append(True if tlbi else None)
                cols["asid"].append(1 + vm if opcode == O.CMD_TLBI_NH_VA else None)
                cols["ssid"].append(0 if opcode == O.CMD_CFGI_CD else None)
            batch += 1
    m = len(cols["op"])
    df = pl.DataFrame(cols).with_columns(
        pl.lit(cpu).alias("cpu"),
        pl.lit(vm).alias("vm"),
        pl.lit(0).alias("t_ps"),
        pl.lit("mixed").alias("kind"),
        pl.when(pl.col("asid").is_not_null()).then(0).alias("vmid"),
        *[pl.lit(None).alias(c) for c in ("num", "scale", "ttl", "range")],
        pl.when(pl.col("leaf").is_not_null()).then(1).alias("tg"),
        pl.when(pl.col("opcode") == int(O.CMD_ATC_INV)).then(52).alias("size"),
    )
    assert df.height == m
    return df.select([pl.col(c).cast(t) for c, t in WORKLOAD_SCHEMA.items()])


def guest_mixed(overrides: Mapping[str, Any], seed: int) -> Source:
    """The ``guest-mixed`` scenario (built here, or the registry's ``mixed`` with ``impl=registry``)."""
    over = dict(overrides)
    impl = str(over.pop("impl", "builtin"))
    if impl not in ("builtin", "registry"):
        raise ParamError(f"impl={impl!r} is not allowed: one of builtin, registry")
    if impl == "registry":
        src = registry_source("mixed", over, seed)
        frame = src.frame.with_columns(pl.col("vm").clip(lower_bound=0))  # the host's rows: a guest's
        devices = {max(vm, 0): sids for vm, sids in src.devices.items()}
        return Source("guest-mixed", "scenario", frame, devices, {**src.info, "generator": "registry:mixed"})
    p = GuestMixedParams.from_overrides(over)
    n = p.vms * p.vcpus
    quotas = [p.ops // n + (1 if i < p.ops % n else 0) for i in range(n)]
    frames = [
        validate(
            _unmaps(p, i // p.vcpus, i % p.vcpus, q, seed), f"guest-mixed vm{i // p.vcpus} cpu{i % p.vcpus}"
        )
        for i, q in enumerate(quotas)
        if q
    ]
    frame = interleave(frames)
    devices = {vm: [guest_sid(d) for d in range(p.devices)] for vm in range(p.vms)}
    return Source("guest-mixed", "scenario", frame, devices,
                  {"generator": "builtin", "params": p.to_dict(), "seed": seed})  # fmt: skip


#: Checker-side scenarios: name -> (builder(overrides, seed), one-line description).
SCENARIOS: dict[str, tuple[Callable[[Mapping[str, Any], int], Source], str]] = {
    "guest-mixed": (
        guest_mixed,
        "guest unmaps with unsupported commands, ATC_INVs and lone SYNCs (Q1, Q2, Q4)",
    ),
}


def interleave(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate per-CPU frames, interleaving CPUs op by op (stable within each CPU).

    The result is not passed to :func:`~cmdqv_lab.workloads.stream.validate`, which orders ops and
    batches per ``cpu`` column alone (vCPU 0 of two VMs would look like one CPU going back).
    """
    if not frames:
        return pl.DataFrame(schema=WORKLOAD_SCHEMA)
    df = pl.concat(frames, how="vertical_relaxed")
    return df.with_row_index("_r").sort(["op", "vm", "cpu", "_r"]).drop("_r")


def infer_devices(frame: pl.DataFrame) -> dict[int, list[int]]:
    """Each guest VM's devices: the distinct SIDs its commands name (sorted)."""
    named = frame.filter(
        (pl.col("vm") >= 0) & pl.col("opcode").is_in(DEVICE_SID_OPCODES) & pl.col("sid").is_not_null()
    )
    out: dict[int, list[int]] = {int(v): [] for v in frame.filter(pl.col("vm") >= 0)["vm"].unique().to_list()}
    for vm, sids in named.group_by("vm").agg(pl.col("sid").unique().sort()).iter_rows():
        out[int(vm)] = [int(s) for s in sids]
    return out


def registry_source(name: str, overrides: Mapping[str, Any], seed: int) -> Source:
    """A registry workload (:func:`cmdqv_lab.workloads.registry.generate`) as one frame."""
    from cmdqv_lab.workloads.registry import generate

    w = generate(name, overrides, seed=seed)
    # validate() orders ops and batches per cpu column only: check each CPU stream before interleaving
    frames = [validate(pl.concat(list(s), how="vertical_relaxed"), name) for s in w.streams]
    frame = interleave([f for f in frames if f.height])
    return Source(name, "scenario", frame, declared_devices(w.params) or infer_devices(frame),
                  {"generator": f"registry:{name}", "params": w.params, "seed": seed})  # fmt: skip


def declared_devices(params: Mapping[str, Any]) -> dict[int, list[int]] | None:
    """The devices a synthetic workload declares (``vm_sids`` of its parameters), if it has that
    helper and declares ``sids_per_vm``: commands naming other SIDs are then *foreign* (unmatched)."""
    if "sids_per_vm" not in params:
        return None
    try:
        from cmdqv_lab.workloads.synthetic.common import vm_sids  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover - depends on the workloads package version
        return None
    return {int(vm): list(sids) for vm, sids in vm_sids(params).items()}


def trace_source(path: Path) -> Source:
    from cmdqv_lab.workloads.qemu_trace import parse_trace

    trace = parse_trace(path)
    frame, skipped = trace_frame(trace)
    s = trace.summary()
    info = {"file": str(path), "format": s["format"], "threads": s["threads"], "unknown_skipped": skipped}
    return Source(path.name, "trace", frame, infer_devices(frame), info)


def scenario_names() -> list[str]:
    from cmdqv_lab.workloads.registry import workload_names

    return sorted(set(SCENARIOS) | set(workload_names()))


def load_source(source: str, overrides: Mapping[str, Any] | None = None, *, seed: int = 0) -> Source:
    """Resolve ``source`` (a trace path or a scenario name) into a :class:`Source`."""
    overrides = dict(overrides or {})
    path = Path(source)
    if path.exists() or path.suffix in (".gz", ".log") or "/" in source:
        if overrides:
            raise ParamError(f"unknown parameter {next(iter(overrides))!r} for a trace file")
        return trace_source(path)
    if source in SCENARIOS:
        return SCENARIOS[source][0](overrides, seed)
    if source in scenario_names():
        return registry_source(source, overrides, seed)
    raise ParamError(
        f"{source!r} is neither a trace file nor a scenario: scenarios {', '.join(scenario_names())}"
    )
