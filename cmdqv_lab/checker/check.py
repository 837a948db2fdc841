"""Check a command stream under a routing policy: route it, replay it through the functional model,
and read the hazards back from the model's event log.

Steps (:func:`check`):

1. capacity: each guest VM of the stream asks the planner (:mod:`cmdqv_lab.virt.capacity`) for a
   VINTF, VCMDQs (``vcmdqs_per_vm``, default one per vCPU) and SID pairs for its devices; a VM left
   without a VINTF or VCMDQ is routed ``all-trap``;
2. routing: :func:`~cmdqv_lab.driver.routing.route_frame` with the VINTF's accepted opcodes and each
   VM's matched SIDs;
3. replay: :func:`~cmdqv_lab.checker.replay.replay` (trapped and host parts on the main queue,
   VCMDQ parts on the VM's VCMDQ under the CMDQV scheduler, errors recovered as Linux does);
4. analysis of the event log, per routed row (its queue and absolute position):

``ill``       the model raised ILL on a guest-owned VCMDQ: opcode outside the accepted set, or a SID
              matching none of the VINTF's SID pairs (the recovery turned it into a CMD_SYNC, so it
              never ran);
``q2``        an executed invalidation (TLBI_*, ATC_INV, CFGI_*) with no later CMD_SYNC *in its own
              queue* that its issuer (vm, cpu) waits for within the same op, while the op does wait
              for a SYNC on another queue, which covers nothing here;
``q3``        no such SYNC anywhere in the op, but a hardware-inserted SYNC (``hw_sync`` event)
              completed it: software cannot observe that, so the op's completion is unguaranteed;
``unsynced``  nothing completes it observably (no waited SYNC, no hardware SYNC).

A waited SYNC is a CMD_SYNC that ends a part whose ``wait`` is set and that completed in the log.
Informational (no hazard): batches split into parts, and those whose parts went to different
queues (the batch loses its ordering/atomicity). The routing's own ``illegal`` flag is compared
with the ILLs the model raised: ``disagreements`` must be empty.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from cmdqv_lab.checker.replay import ReplayResult, replay
from cmdqv_lab.checker.scenarios import Source
from cmdqv_lab.device.cmdqv import CmdqvParams
from cmdqv_lab.device.commands import INVALIDATION_OPCODES, Opcode
from cmdqv_lab.driver.routing import POLICIES, route_frame
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params, param
from cmdqv_lab.virt.capacity import ALLOCATIONS, CapacityPlan, VmPlan, VmRequest, plan
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA

KINDS = ("ill", "q2", "q3", "unsynced")
_SYNC = int(Opcode.CMD_SYNC)
_INV = frozenset(int(o) for o in INVALIDATION_OPCODES)
_NAMES = {int(o): o.name for o in Opcode}


@dataclass(frozen=True, kw_only=True)
class CheckOptions(Params):
    """Checker options (``--set`` keys besides the CMDQV geometry and the scenario's own)."""

    vcmdqs_per_vm: int = param(0, unit="VCMDQs", lo=0, hi=128, provenance="choice",
                               doc="VCMDQs wanted per VM (0: one per vCPU; the planner may give fewer)")  # fmt: skip
    allocation: str = param("linux", choices=ALLOCATIONS, provenance="choice", doc="VCMDQ allocation")
    host_vcmdqs: int = param(-1, lo=-1, hi=128, provenance="choice", doc="host VINTF0 VCMDQs (-1: default)")
    log2size: int = param(0, lo=0, hi=19, provenance="choice", doc="queue LOG2SIZE (0: fit the largest part)")
    devices: str = param("", provenance="choice",
                         doc="every VM's device SIDs, comma-separated (default: the SIDs its commands name)")  # fmt: skip

    def device_sids(self) -> list[int] | None:
        """``devices`` parsed (None when not given)."""
        if not self.devices.strip():
            return None
        try:
            return [int(x, 0) for x in self.devices.replace(" ", "").split(",") if x]
        except ValueError:
            raise ParamError(f"devices={self.devices!r} is not a comma-separated list of SIDs") from None


def split_overrides(sets: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``--set`` keys -> (CmdqvParams overrides, CheckOptions overrides, scenario overrides)."""
    geo, opt, rest = {}, {}, {}
    for k, v in sets.items():
        if k in CmdqvParams.field_infos():
            geo[k] = v
        elif k in CheckOptions.field_infos():
            opt[k] = v
        else:
            rest[k] = v
    return geo, opt, rest


@dataclass(frozen=True)
class Hazard:
    """One finding, with the command's position in the stream and in the model."""

    kind: str
    vm: int
    cpu: int
    op: int
    batch: int
    index: int | None  # position in its original batch (None: a SYNC the policy inserted)
    line: int | None  # trace line, for traces
    opcode: str
    queue: str
    pos: int
    reason: str

    def where(self) -> str:
        idx = "+" if self.index is None else str(self.index)
        line = f" line {self.line}" if self.line is not None else ""
        return f"vm{self.vm} cpu{self.cpu} op {self.op} batch {self.batch}[{idx}]{line}"


@dataclass
class CheckResult:
    """Hazards and summaries of one check (``to_dict`` is the ``--json`` object)."""

    source: str
    kind: str
    policy: str
    hazards: list[Hazard]
    stream: dict[str, Any]
    routed: dict[str, Any]
    model: dict[str, Any]
    capacity: dict[str, Any]
    split: dict[str, int]
    disagreements: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(h.kind for h in self.hazards)
        return {k: c.get(k, 0) for k in KINDS}

    @property
    def ok(self) -> bool:
        return not self.hazards

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "policy": self.policy,
            "ok": self.ok,
            "counts": {**self.counts, **{f"split_{k}": v for k, v in self.split.items()}},
            "hazards": [asdict(h) for h in self.hazards],
            "stream": self.stream,
            "routed": self.routed,
            "model": self.model,
            "capacity": self.capacity,
            "disagreements": self.disagreements,
        }


def plan_for(
    source: Source, params: CmdqvParams, options: CheckOptions
) -> tuple[CapacityPlan, dict[int, VmPlan]]:
    """The capacity plan of the stream's guest VMs (never strict) and frame VM id -> its place."""
    df = source.frame
    vms = sorted(int(v) for v in df.filter(pl.col("vm") >= 0)["vm"].unique().to_list())
    vcpus = dict(df.filter(pl.col("vm") >= 0).group_by("vm").agg(pl.col("cpu").n_unique()).iter_rows())
    given = options.device_sids()
    reqs = [
        VmRequest(tuple(given if given is not None else source.devices.get(vm, [])),
                  options.vcmdqs_per_vm or int(vcpus[vm]), f"vm{vm}")
        for vm in vms
    ]  # fmt: skip
    host = None if options.host_vcmdqs < 0 else options.host_vcmdqs
    p = plan(reqs, params, allocation=options.allocation, host_vcmdqs=host)
    return p, {vm: p.vms[i] for i, vm in enumerate(vms)}


def route(source: Source, policy: str, params: CmdqvParams, vms: Mapping[int, VmPlan]) -> pl.DataFrame:
    """Route the stream; VMs without a VCMDQ go ``all-trap``. Adds ``index`` (position in the
    original batch, null for inserted SYNCs), ``line`` (traces) and ``_i`` (source row)."""
    if policy not in POLICIES:
        raise ParamError(f"policy={policy!r} is not allowed: one of {', '.join(POLICIES)}")
    key = ["vm", "cpu", "batch"]
    df = source.frame.with_row_index("_i").with_columns(pl.int_range(pl.len()).over(key).alias("index"))
    if "line" not in df.columns:
        df = df.with_columns(pl.lit(None, pl.Int64).alias("line"))
    trapped = [vm for vm, vp in vms.items() if vp.queue_of(0) is None]
    sids = {vm: list(vp.matched_sids) for vm, vp in vms.items()}
    pieces = []
    for pol, sub in ((policy, df.filter(~pl.col("vm").is_in(trapped))), ("all-trap", df.filter(pl.col("vm").is_in(trapped)))):  # fmt: skip
        if sub.height == 0:
            continue
        r = route_frame(sub.select(list(WORKLOAD_SCHEMA)), pol, accepted=params.accepted_opcodes, sids=sids)
        orig = ~pl.col("inserted")
        r = r.with_row_index("_r").with_columns(
            pl.when(orig).then(orig.cast(pl.Int64).cum_sum().over(key) - 1).alias("index")
        )
        r = r.join(sub.select(*key, "index", "_i", "line"), on=[*key, "index"], how="left").sort("_r")
        pieces.append(r.drop("_r").with_columns(pl.col("_i").forward_fill().alias("_k")))
    if not pieces:  # an empty stream
        empty = route_frame(df.select(list(WORKLOAD_SCHEMA)), policy)
        pieces = [
            empty.with_columns(*[pl.lit(None, pl.Int64).alias(c) for c in ("index", "_i", "line", "_k")])
        ]
    out = pl.concat(pieces).sort(["_k", "inserted"], maintain_order=True).drop("_k")
    return out.with_columns(
        (pl.int_range(pl.len()).over([*key, "part"]) == pl.len().over([*key, "part"]) - 1).alias("_last")
    )


def analyse(
    routed: pl.DataFrame, rr: ReplayResult, params: CmdqvParams, vms: Mapping[int, VmPlan]
) -> tuple[list[Hazard], list[dict[str, Any]], dict[str, Any]]:
    """Hazards, routing/model disagreements and model counters from the replay's event log."""
    done: set[tuple[str, int]] = set()
    ill: set[tuple[str, int]] = set()
    hw: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    errors: Counter[str] = Counter()
    irqs = 0
    for e in rr.smmu.log:
        if e.kind == "complete":
            done.add((e.queue, e.pos or 0))
        elif e.kind == "error":
            errors[e.detail["cerror"]] += 1
            if e.detail["cerror"] == "ILL":
                ill.add((e.queue, e.pos or 0))
        elif e.kind == "hw_sync":
            hw[e.queue].append((e.pos or 0, e.seq, e.detail["reason"]))
        elif e.kind == "irq":
            irqs += 1
    hw_pos = {q: [p for p, _, _ in v] for q, v in hw.items()}
    col = {c: routed[c].to_list() for c in ("vm", "cpu", "op", "batch", "index", "line", "opcode", "sid",
                                            "path", "wait", "illegal", "_last")}  # fmt: skip
    queue, pos = rr.queue, rr.pos.tolist()
    n = routed.height
    is_ill = [(queue[i], pos[i]) in ill for i in range(n)]
    ran = [(queue[i], pos[i]) in done and not is_ill[i] for i in range(n)]
    hazards: list[tuple[int, Hazard]] = []

    def hz(i: int, kind: str, reason: str) -> None:
        h = Hazard(kind, col["vm"][i], col["cpu"][i], col["op"][i], col["batch"][i], col["index"][i],
                   col["line"][i], _NAMES[col["opcode"][i]], queue[i], pos[i], reason)  # fmt: skip
        hazards.append((i, h))

    cmdqv = rr.cmdqv
    for i in range(n):
        if is_ill[i]:
            hz(i, "ill", _ill_reason(col["opcode"][i], col["sid"][i], col["vm"][i], params, cmdqv, vms))
    later: dict[tuple[int, int, int], dict[str, int]] = {}
    for i in range(n - 1, -1, -1):
        op = col["opcode"][i]
        k = (col["vm"][i], col["cpu"][i], col["op"][i])
        if op == _SYNC:
            if col["wait"][i] and col["_last"][i] and ran[i]:
                later.setdefault(k, {})[queue[i]] = i
            continue
        if op not in _INV or not ran[i]:
            continue
        syncs = later.get(k, {})
        if queue[i] in syncs:
            continue
        other = [j for q, j in syncs.items() if q != queue[i]]
        if other:
            j = min(other)
            hz(i, "q2", f"its op waits for the CMD_SYNC at {queue[j]}@{pos[j]} (batch {col['batch'][j]}), "
                        f"which covers only {queue[j]}; no waited SYNC follows it on {queue[i]}")  # fmt: skip
            continue
        at = bisect.bisect_right(hw_pos.get(queue[i], []), pos[i])
        if at < len(hw_pos.get(queue[i], [])):
            _, seq, why = hw[queue[i]][at]
            hz(i, "q3", f"completed only by a hardware-inserted SYNC ({why}, event {seq}), "
                        "which software cannot observe")  # fmt: skip
        else:
            hz(i, "unsynced", f"no waited CMD_SYNC on {queue[i]} and no hardware SYNC: completion unknown")
    disagree = [
        {"row": i, "opcode": _NAMES[col["opcode"][i]], "queue": queue[i], "pos": pos[i],
         "routing_illegal": bool(col["illegal"][i]), "model_ill": is_ill[i]}
        for i in range(n) if bool(col["illegal"][i]) != is_ill[i]
    ]  # fmt: skip
    model = {
        "queues": sorted(set(queue)),
        "parts": rr.parts,
        "events": len(rr.smmu.log),
        "hw_syncs": sum(len(v) for v in hw.values()),
        "errors": dict(errors),
        "irqs": irqs,
        "recoveries": rr.recoveries,
    }
    return [h for _, h in sorted(hazards, key=lambda t: t[0])], disagree, model


def _ill_reason(
    op: int, sid: int | None, vm: int, params: CmdqvParams, cmdqv: Any, vms: Mapping[int, VmPlan]
) -> str:
    tail = "; the guest's recovery made it a CMD_SYNC: it never ran"
    if Opcode(op) not in params.accepted_opcodes:
        return f"opcode not accepted by a guest-owned VINTF (guest_opcodes={params.guest_opcodes}){tail}"
    vp = vms.get(vm)
    if (
        sid is not None
        and vp is not None
        and vp.vintf is not None
        and cmdqv.vintfs[vp.vintf].match_sid(sid) is None
    ):
        return f"SID 0x{sid:x} matches none of VINTF{vp.vintf}'s {len(vp.sid_pairs)} SID pairs{tail}"
    return f"ILL raised by the model{tail}"  # pragma: no cover - no other ILL cause in the stream form


def _stream_summary(source: Source) -> dict[str, Any]:
    df = source.frame
    guests = df.filter(pl.col("vm") >= 0).group_by("vm").agg(pl.col("cpu").n_unique()).sort("vm")
    ops = df.group_by("opcode").len().sort(["len", "opcode"], descending=[True, False])
    return {
        "name": source.name,
        "kind": source.kind,
        **source.info,
        "commands": df.height,
        "batches": df.select(pl.struct("vm", "cpu", "batch").n_unique()).item(),
        "ops": df.select(pl.struct("vm", "cpu", "op").n_unique()).item(),
        "vcpus": {int(v): int(c) for v, c in guests.iter_rows()},
        "host_commands": df.filter(pl.col("vm") < 0).height,
        "opcodes": {_NAMES[int(o)]: int(c) for o, c in ops.iter_rows()},
    }


def _capacity_summary(cap: CapacityPlan, vms: Mapping[int, VmPlan]) -> dict[str, Any]:
    per_vm = {
        vm: {"vintf": vp.vintf, "vcmdqs": list(vp.vcmdqs), "matched_sids": list(vp.matched_sids),
             "unfit_sids": list(vp.unfit_sids)}
        for vm, vp in vms.items()
    }  # fmt: skip
    return {"fits": cap.fits, "problems": list(cap.problems), "vms": per_vm}


def check(
    source: Source,
    policy: str,
    params: CmdqvParams | None = None,
    options: CheckOptions | None = None,
) -> CheckResult:
    """Check ``source`` under ``policy`` (see the module docstring).

    Parameters
    ----------
    source
        The stream (:func:`~cmdqv_lab.checker.scenarios.load_source`).
    policy
        A routing policy of :data:`~cmdqv_lab.driver.routing.POLICIES`.
    params
        CMDQV geometry and behaviour (accepted opcodes, SID pairs, ``hw_sync``, ``cmd_batch``).
    options
        Capacity and queue options (:class:`CheckOptions`).

    Returns
    -------
    CheckResult
        Hazards in issue order with positions, and summaries of the stream, routing, model and plan.

    >>> from cmdqv_lab.checker.scenarios import load_source
    >>> s = load_source("guest-mixed", {"ops": 300}, seed=1)
    >>> [(p, check(s, p).counts) for p in ("scan", "rely-hw-sync")][1][1]["q3"] > 0
    True
    >>> check(s, "first-opcode").ok, check(s, "scan").ok
    (False, True)
    """
    params = params if params is not None else CmdqvParams()
    options = options if options is not None else CheckOptions()
    cap, vms = plan_for(source, params, options)
    routed = route(source, policy, params, vms)
    rr = replay(routed, cap, params, vms, log2size=options.log2size)
    hazards, disagree, model = analyse(routed, rr, params, vms)
    per_batch = (
        routed.with_columns(pl.Series("_q", rr.queue))
        .group_by("vm", "cpu", "batch")
        .agg(pl.col("part").n_unique().alias("parts"), pl.col("_q").n_unique().alias("queues"))
    )
    paths = dict(routed.filter(~pl.col("inserted")).group_by("path").len().iter_rows())
    routed_info = {
        "rows": routed.height,
        "paths": {p: int(paths.get(p, 0)) for p in ("vcmdq", "trap", "host")},
        "inserted_syncs": int(routed["inserted"].sum()),
        "dropped_syncs": source.frame.height - int((~routed["inserted"]).sum()),
        "vcmdq_invalidations": routed.filter(
            (pl.col("path") == "vcmdq") & pl.col("opcode").is_in(list(_INV)) & ~pl.col("illegal")
        ).height,
    }
    return CheckResult(
        source.name,
        source.kind,
        policy,
        hazards,
        _stream_summary(source),
        routed_info,
        model,
        _capacity_summary(cap, vms),
        {
            "batches": int((per_batch["parts"] > 1).sum()),
            "across_queues": int((per_batch["queues"] > 1).sum()),
        },
        disagree,
    )


def compare(
    source: Source,
    policies: Iterable[str] = POLICIES,
    params: CmdqvParams | None = None,
    options: CheckOptions | None = None,
) -> pl.DataFrame:
    """One row per policy: hazard counts, split batches, paths, inserted/dropped SYNCs, disagreements."""
    rows = []
    for p in policies:
        r = check(source, p, params, options)
        rows.append({"policy": p, "ok": r.ok, **r.counts, "split": r.split["batches"],
                     "split_across_queues": r.split["across_queues"], **r.routed["paths"],
                     "inserted": r.routed["inserted_syncs"], "dropped": r.routed["dropped_syncs"],
                     "disagreements": len(r.disagreements)})  # fmt: skip
    return pl.DataFrame(rows)
