"""Capacity planner (Q4): VINTFs, VCMDQs and SID MATCH/REPLACE pairs for guest VMs and their devices.

Every guest VM that gets direct VCMDQs needs its own guest-owned VINTF (VMID replacement), one or
more VCMDQs allocated to that VINTF (``CMDQ_ALLOC``), and one SID_MATCH/SID_REPLACE pair per
passed-through device whose StreamID its commands name. The limits come from
:class:`~cmdqv_lab.device.cmdqv.CmdqvParams` (``CMDQV_PARAM``): ``num_vintfs`` (at most 64 by field
width), ``num_vcmdqs`` (at most 128) and ``sid_pairs_per_vintf`` (16). The host kernel's own VINTF0
(HYP_OWN=1) always counts: guests get VINTF1 onwards.

VCMDQ allocation (``allocation``):

``linux``  Linux's ``tegra241-cmdqv.c``: every VINTF has a fixed slice of
           ``num_vcmdqs / num_vintfs`` VCMDQs (global VCMDQ ``vintf * per + lidx``); the host
           preallocates its whole slice to VINTF0 (``host_vcmdqs`` defaults to the slice).
``pool``   what ``CMDQ_ALLOC`` permits: any free VCMDQ goes to any VINTF, host first, then VMs in
           order, logical indices ascending.

What does not fit is reported per VM: a VM with no VINTF (or no VCMDQ) uses only the trapped
path; fewer VCMDQs than wanted are shared by its vCPUs (vCPU ``k`` uses ``lvcmdq k % n``); a device
without a SID pair must use the trapped path, and an ATC_INV naming it on a VCMDQ raises ILL.
``strict=True`` turns the first shortfall into :class:`~cmdqv_lab.errors.CapacityError`.

Default StreamIDs (:func:`uniform_vms`): device ``d`` of a guest is ``(d + 1) * 8`` (QEMU's
``00:0d.0`` numbering, as in the captured traces); physical SIDs default to ``0x10000 + 8 k`` for
the ``k``-th device overall.

CLI (:mod:`cmdqv_lab.virt.plan_cli`): ``cmdqv-lab plan --vms N --devices-per-vm K [--vcmdqs-per-vm Q] [--host-vcmdqs H]
[--allocation linux|pool] [--strict] [--json] [--set num_vintfs=16 ...]``, or ``--spec FILE``
(TOML or JSON: optional ``allocation``, ``host_vcmdqs``, ``strict``, a ``[geometry]`` table of
CmdqvParams fields, and ``[[vm]]`` entries with ``sids``, optional ``vcmdqs``, ``name``, ``psids``).
Exit status 0 when everything fits, 1 when something does not (listed), 2 for errors (one line).

>>> p = plan(uniform_vms(2, 17, vcmdqs_per_vm=2))
>>> [(v.vintf, v.vcmdqs, v.lvcmdqs, len(v.sid_pairs), [hex(s) for s in v.unfit_sids]) for v in p.vms]
[(1, (2, 3), (0, 1), 16, ['0x88']), (2, (4, 5), (0, 1), 16, ['0x88'])]
>>> p.vintfs_used, p.vcmdqs_used, p.fits
(3, 6, False)
>>> plan(uniform_vms(64, 1), strict=True)
Traceback (most recent call last):
...
cmdqv_lab.errors.CapacityError: 64 VMs need 65 VINTFs with the host's VINTF0 but num_vintfs=64: at most 63 VMs fit
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.device.cmdqv import Cmdqv, CmdqvParams
from cmdqv_lab.errors import CapacityError
from cmdqv_lab.workloads.synthetic.common import guest_sid

ALLOCATIONS = ("linux", "pool")
#: First default physical StreamID (host side); the k-th device overall gets ``PSID_BASE + 8 k``.
PSID_BASE = 0x10000
_SID_MAX = (1 << 32) - 1
_GEOMETRY = ("num_vintfs", "num_vcmdqs", "sid_pairs_per_vintf")


@dataclass(frozen=True)
class VmRequest:
    """What one VM asks for: its devices' guest StreamIDs, VCMDQs, optional physical SIDs."""

    sids: tuple[int, ...] = ()
    vcmdqs: int = 1
    name: str = ""
    psids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SidPair:
    """One programmed SID_MATCH/SID_REPLACE pair: ``slot``, guest ``vsid`` -> physical ``psid``."""

    slot: int
    vsid: int
    psid: int


@dataclass(frozen=True)
class VmPlan:
    """Where one VM landed: VINTF, VMID, global VCMDQs (logical index = position), SID pairs."""

    vm: int
    name: str
    vintf: int | None
    vmid: int | None
    vcmdqs_wanted: int
    vcmdqs: tuple[int, ...]
    sid_pairs: tuple[SidPair, ...]
    unfit_sids: tuple[int, ...]

    @property
    def lvcmdqs(self) -> tuple[int, ...]:
        """Logical VCMDQ indices in the VINTF (allocated ascending from 0)."""
        return tuple(range(len(self.vcmdqs)))

    @property
    def matched_sids(self) -> tuple[int, ...]:
        """Guest SIDs that have a SID pair (legal in commands on the VM's VCMDQs)."""
        return tuple(p.vsid for p in self.sid_pairs)

    @property
    def fits(self) -> bool:
        return self.vintf is not None and len(self.vcmdqs) == self.vcmdqs_wanted and not self.unfit_sids

    def queue_of(self, cpu: int) -> int | None:
        """Global VCMDQ used by vCPU ``cpu`` (``lvcmdq cpu % n``), or None without VCMDQs."""
        return self.vcmdqs[cpu % len(self.vcmdqs)] if self.vcmdqs else None


@dataclass(frozen=True)
class CapacityPlan:
    """A plan: geometry, allocation, the host's VINTF0 queues, per-VM placement and shortfalls."""

    params: CmdqvParams
    allocation: str
    host_vcmdqs: tuple[int, ...]
    vms: tuple[VmPlan, ...]
    problems: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def per_vintf(self) -> int | None:
        """VCMDQs per VINTF under ``linux`` allocation (None for ``pool``)."""
        p = self.params
        return p.num_vcmdqs // p.num_vintfs if self.allocation == "linux" else None

    @property
    def vintfs_used(self) -> int:
        return 1 + sum(v.vintf is not None for v in self.vms)

    @property
    def vcmdqs_used(self) -> int:
        return len(self.host_vcmdqs) + sum(len(v.vcmdqs) for v in self.vms)

    @property
    def sid_pairs_used(self) -> int:
        return sum(len(v.sid_pairs) for v in self.vms)

    def matched_sids(self) -> dict[int, list[int]]:
        """``{vm: [guest SIDs with a pair]}`` for :func:`cmdqv_lab.driver.routing.route_frame`."""
        return {v.vm: list(v.matched_sids) for v in self.vms}

    def frame(self) -> pl.DataFrame:
        """One row per VINTF user (host first, ``vm = -1``): vintf, vmid, VCMDQs, pairs, unfit SIDs."""
        rows = [
            dict(vm=-1, name="host", vintf=0, vmid=0, vcmdqs_wanted=len(self.host_vcmdqs),
                 vcmdqs=list(self.host_vcmdqs), lvcmdqs=list(range(len(self.host_vcmdqs))),
                 devices=0, sid_pairs=0, unfit_sids=[], fits=True)
        ]  # fmt: skip
        for v in self.vms:
            rows.append(
                dict(vm=v.vm, name=v.name, vintf=v.vintf, vmid=v.vmid, vcmdqs_wanted=v.vcmdqs_wanted,
                     vcmdqs=list(v.vcmdqs), lvcmdqs=list(v.lvcmdqs), devices=len(v.sid_pairs) + len(v.unfit_sids),
                     sid_pairs=len(v.sid_pairs), unfit_sids=list(v.unfit_sids), fits=v.fits)
            )  # fmt: skip
        schema: dict[str, Any] = {"vm": pl.Int32, "name": pl.String, "vintf": pl.Int32, "vmid": pl.Int32,
                  "vcmdqs_wanted": pl.Int32, "vcmdqs": pl.List(pl.Int32), "lvcmdqs": pl.List(pl.Int32),
                  "devices": pl.Int32, "sid_pairs": pl.Int32, "unfit_sids": pl.List(pl.Int64), "fits": pl.Boolean}  # fmt: skip
        return pl.DataFrame(rows, schema=schema)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: geometry, allocation, totals, problems and the :meth:`frame` rows."""
        p = self.params
        return {
            "geometry": {k: getattr(p, k) for k in _GEOMETRY},
            "allocation": self.allocation,
            "per_vintf": self.per_vintf,
            "fits": self.fits,
            "used": {
                "vintfs": self.vintfs_used,
                "vcmdqs": self.vcmdqs_used,
                "sid_pairs": self.sid_pairs_used,
            },
            "problems": list(self.problems),
            "vms": self.frame().to_dicts(),
        }

    def apply(self, cmdqv: Cmdqv, *, log2size: int = 8) -> None:
        """Program the functional model as the host driver and the VMM would: VINTF0 host-owned
        with its VCMDQs, then per VM a guest-owned VINTF (VMID), its SID pairs and its VCMDQs."""
        for k in _GEOMETRY:
            if getattr(cmdqv.params, k) != getattr(self.params, k):
                raise CapacityError(
                    f"plan made for {k}={getattr(self.params, k)} applied to a CMDQV with {getattr(cmdqv.params, k)}"
                )
        cmdqv.vintfs[0].configure(en=True, vmid=0, hyp_own=True)
        for lidx, q in enumerate(self.host_vcmdqs):
            cmdqv.setup_lvcmdq(q=q, vintf=0, lidx=lidx, log2size=log2size)
        for v in self.vms:
            if v.vintf is None:
                continue
            vintf = cmdqv.vintfs[v.vintf]
            vintf.configure(en=True, vmid=v.vmid or 0, hyp_own=False)
            for pair in v.sid_pairs:
                vintf.set_sid_pair(pair.slot, vsid=pair.vsid, psid=pair.psid)
            for lidx, q in enumerate(v.vcmdqs):
                cmdqv.setup_lvcmdq(q=q, vintf=v.vintf, lidx=lidx, log2size=log2size)


def uniform_vms(n_vms: int, devices_per_vm: int, vcmdqs_per_vm: int = 1) -> list[VmRequest]:
    """``n_vms`` identical VMs with devices ``guest_sid(0 .. devices_per_vm - 1)``.

    >>> uniform_vms(1, 2)
    [VmRequest(sids=(8, 16), vcmdqs=1, name='vm0', psids=None)]
    """
    if n_vms < 0 or devices_per_vm < 0:
        raise CapacityError(f"--vms={n_vms}, --devices-per-vm={devices_per_vm}: allowed >= 0")
    sids = tuple(guest_sid(d) for d in range(devices_per_vm))
    return [VmRequest(sids, vcmdqs_per_vm, f"vm{i}") for i in range(n_vms)]


def _check_requests(vms: Sequence[VmRequest]) -> None:
    seen: dict[int, int] = {}
    for i, r in enumerate(vms):
        if isinstance(r.vcmdqs, bool) or not isinstance(r.vcmdqs, int) or r.vcmdqs < 1:
            raise CapacityError(f"VM {i}: vcmdqs={r.vcmdqs!r}: allowed an integer >= 1")
        for what, ids in (("sid", r.sids), ("psid", r.psids or ())):
            bad = [s for s in ids if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= _SID_MAX]
            if bad:
                raise CapacityError(f"VM {i}: {what} {bad[0]!r} out of range: allowed 0 .. 0x{_SID_MAX:x}")
            dup = sorted({s for s in ids if list(ids).count(s) > 1})
            if dup:
                raise CapacityError(f"VM {i}: {what} 0x{dup[0]:x} listed twice")
        if r.psids is not None:
            if len(r.psids) != len(r.sids):
                raise CapacityError(f"VM {i}: {len(r.psids)} psids for {len(r.sids)} sids: give one per sid")
            for s in r.psids:
                if s in seen:
                    raise CapacityError(f"VM {i}: physical SID 0x{s:x} is already VM {seen[s]}'s")
                seen[s] = i


def plan(
    vms: Sequence[VmRequest],
    params: CmdqvParams | None = None,
    *,
    allocation: str = "linux",
    host_vcmdqs: int | None = None,
    strict: bool = False,
    vmid_base: int = 1,
) -> CapacityPlan:
    """Place ``vms`` on the CMDQV geometry ``params`` (VM ``i`` gets VINTF ``i + 1``, VMID
    ``vmid_base + i``); returns a :class:`CapacityPlan`. ``strict``: raise on the first shortfall.

    Raises
    ------
    CapacityError
        Malformed requests (bad counts or SIDs, a physical SID in two VMs, host_vcmdqs beyond the
        host's share), or with ``strict`` anything that does not fit.
    """
    p = params if params is not None else CmdqvParams()
    if allocation not in ALLOCATIONS:
        raise CapacityError(f"allocation={allocation!r} is not allowed: one of {', '.join(ALLOCATIONS)}")
    _check_requests(vms)
    per = p.num_vcmdqs // p.num_vintfs
    cap = per if allocation == "linux" else p.num_vcmdqs
    host_n = per if host_vcmdqs is None else host_vcmdqs
    if not 0 <= host_n <= cap:
        where = f"num_vcmdqs/num_vintfs = {per} per VINTF (linux)" if allocation == "linux" else "num_vcmdqs"
        raise CapacityError(f"host_vcmdqs={host_n} out of range: allowed 0 .. {cap} ({where})")
    problems: list[str] = []
    n, guests = len(vms), p.num_vintfs - 1
    if n > guests:
        problems.append(
            f"{n} VMs need {n + 1} VINTFs with the host's VINTF0 but num_vintfs={p.num_vintfs}: "
            f"at most {guests} VMs fit"
        )
    used = {s for r in vms for s in (r.psids or ())}
    next_psid = PSID_BASE
    free = list(range(host_n, p.num_vcmdqs))  # pool: ascending global indices after the host's
    out: list[VmPlan] = []
    for i, r in enumerate(vms):
        psids = list(r.psids) if r.psids is not None else []
        while len(psids) < len(r.sids):
            while next_psid in used:
                next_psid += 8
            psids.append(next_psid)
            used.add(next_psid)
        if i >= guests:
            out.append(VmPlan(i, r.name or f"vm{i}", None, None, r.vcmdqs, (), (), tuple(r.sids)))
            continue
        vintf = i + 1
        if allocation == "linux":
            got = tuple(vintf * per + lidx for lidx in range(min(r.vcmdqs, per)))
            if len(got) < r.vcmdqs:
                problems.append(
                    f"VM {i} wants {r.vcmdqs} VCMDQs but linux allocation gives each VINTF "
                    f"num_vcmdqs/num_vintfs = {per}: its vCPUs share {len(got)}"
                )
        else:
            got, free = tuple(free[: r.vcmdqs]), free[r.vcmdqs :]
            if len(got) < r.vcmdqs:
                problems.append(
                    f"VM {i} wants {r.vcmdqs} VCMDQs but only {len(got)} of num_vcmdqs={p.num_vcmdqs} "
                    f"are left (host {host_n})"
                )
        k = p.sid_pairs_per_vintf
        pairs = tuple(SidPair(s, v, ps) for s, (v, ps) in enumerate(zip(r.sids[:k], psids[:k])))
        unfit = tuple(r.sids[k:])
        if unfit:
            problems.append(
                f"VM {i} has {len(r.sids)} devices but a VINTF has sid_pairs_per_vintf={k}: {len(unfit)} "
                f"{'needs' if len(unfit) == 1 else 'need'} the trapped path "
                "(an ATC_INV naming one on a VCMDQ raises ILL)"
            )
        out.append(VmPlan(i, r.name or f"vm{i}", vintf, vmid_base + i, r.vcmdqs, got, pairs, unfit))
    if strict and problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CapacityError(problems[0] + more)
    # the host's VCMDQs are the first ones either way (linux: VINTF0's slice is 0 .. per - 1)
    return CapacityPlan(p, allocation, tuple(range(host_n)), tuple(out), tuple(problems))


# ----------------------------------------------------------------------------- spec files and CLI


def read_spec(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON plan spec into ``{"vms": [VmRequest], "geometry": {...}, options...}``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise CapacityError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise CapacityError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {e}"
        ) from None
    if not isinstance(raw, Mapping):
        raise CapacityError(f"{path}: expected a table/object at the top level")
    allowed = {"vm", "geometry", "allocation", "host_vcmdqs", "strict"}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise CapacityError(f"{path}: unknown key {extra[0]!r}: allowed {', '.join(sorted(allowed))}")
    vms = []
    for i, v in enumerate(raw.get("vm", [])):
        if not isinstance(v, Mapping) or set(v) - {"sids", "vcmdqs", "name", "psids"}:
            raise CapacityError(f"{path}: vm {i}: expected keys sids, vcmdqs, name, psids")
        psids = v.get("psids")
        vms.append(VmRequest(tuple(v.get("sids", ())), v.get("vcmdqs", 1), str(v.get("name", f"vm{i}")),
                             tuple(psids) if psids is not None else None))  # fmt: skip
    return {**{k: raw[k] for k in ("allocation", "host_vcmdqs", "strict") if k in raw},
            "geometry": dict(raw.get("geometry", {})), "vms": vms}  # fmt: skip
