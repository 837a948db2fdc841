"""``cmdqv-lab plan``: the capacity planner (:mod:`cmdqv_lab.virt.capacity`) on the command line.

The text output summarises: consecutive VMs that landed alike (same VCMDQ count, SID pairs and
devices left out) share one row, with their VM, VINTF, VMID and VCMDQ ranges (``--detail``: one row
per VM), problems that differ only in the VM are listed once with the VMs they concern, and a
summary line counts what fits. ``--json`` prints the whole plan.

>>> from cmdqv_lab.virt.capacity import plan, uniform_vms
>>> print(format_plan(plan(uniform_vms(4, 2))).splitlines()[3])
0-3   vm0..vm3       1-4   1-4  2 .. 8         0          2/16       -
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence

import click

from cmdqv_lab.device.cmdqv import CmdqvParams
from cmdqv_lab.errors import CapacityError
from cmdqv_lab.virt.capacity import ALLOCATIONS, CapacityPlan, VmPlan, plan, read_spec, uniform_vms


def _ids(xs: Sequence[int], fmt: str = "{}") -> str:
    return ",".join(fmt.format(x) for x in xs) if xs else "-"


def _span(a: object, b: object) -> str:
    return str(a) if a == b else f"{a}-{b}"


def _shape(v: VmPlan) -> tuple[object, ...]:
    """What makes two VMs' rows alike (everything but their numbers)."""
    return (v.vintf is None, len(v.vcmdqs), v.vcmdqs_wanted, len(v.sid_pairs), v.unfit_sids)


def _groups(vms: Sequence[VmPlan]) -> list[list[VmPlan]]:
    out: list[list[VmPlan]] = []
    for v in vms:
        if out and _shape(out[-1][-1]) == _shape(v) and out[-1][-1].vm + 1 == v.vm:
            out[-1].append(v)
        else:
            out.append([v])
    return out


def _row(group: list[VmPlan], k: int) -> str:
    a, b = group[0], group[-1]
    vm = _span(a.vm, b.vm)
    name = a.name[:10] if a is b else f"{a.name}..{b.name}"[:12]
    vintf = "-" if a.vintf is None else _span(a.vintf, b.vintf)
    vmid = "-" if a.vmid is None else _span(a.vmid, b.vmid)
    short = f" of {a.vcmdqs_wanted}" if len(a.vcmdqs) < a.vcmdqs_wanted else ""
    if a is b or not a.vcmdqs:
        q = _ids(a.vcmdqs) + short
    else:
        q = f"{_ids(a.vcmdqs)} .. {_ids(b.vcmdqs)}" + (f" ({len(a.vcmdqs)}{short} each)" if short else "")
    pairs = f"{len(a.sid_pairs)}/{k}" if a.vintf is not None else "-"
    unfit = _ids(a.unfit_sids, "0x{:x}")
    if a is not b and a.unfit_sids:
        unfit = f"{len(a.unfit_sids)} each: {unfit}"
    return f"{vm:<5} {name:<12} {vintf:>5} {vmid:>5}  {q:<14} {_ids(a.lvcmdqs):<10} {pairs:<10} {unfit}"


def _problems(problems: Sequence[str]) -> list[str]:
    """Problems that differ only in ``VM i`` once, with the VMs: ``VMs 0-62 (63): ...``."""
    grouped: dict[str, list[int]] = {}
    for m in problems:
        hit = re.match(r"VM (\d+) (.*)", m)
        key = hit.group(2) if hit else m
        grouped.setdefault(key, []).append(int(hit.group(1)) if hit else -1)
    out = []
    for text, vms in grouped.items():
        if vms == [-1]:
            out.append(text)
        elif len(vms) == 1:
            out.append(f"VM {vms[0]} {text}")
        else:
            span = (
                _span(vms[0], vms[-1]) if vms == list(range(vms[0], vms[-1] + 1)) else ",".join(map(str, vms))
            )
            out.append(f"VMs {span} ({len(vms)} VMs): each {text}")
    return out


def summary(p: CapacityPlan) -> str:
    """One line: VMs with a VINTF, VCMDQs, devices with a SID pair and those on the trapped path."""
    n = len(p.vms)
    placed = [v for v in p.vms if v.vintf is not None]
    devices = sum(len(v.sid_pairs) + len(v.unfit_sids) for v in p.vms)
    paired = sum(len(v.sid_pairs) for v in p.vms)
    wanted = sum(v.vcmdqs_wanted for v in placed)
    got = sum(len(v.vcmdqs) for v in placed)
    parts = [f"{len(placed)} of {n} VMs get a VINTF"]
    if n > len(placed):
        parts[0] += f" ({n - len(placed)} use only the trapped path)"
    parts.append(f"they get {got} of the {wanted} VCMDQs they want")
    parts.append(
        f"{paired:,} of {devices:,} devices have a SID pair ({devices - paired:,} take the trapped path)"
    )
    return "summary: " + "; ".join(parts)


def format_plan(pl_: CapacityPlan, *, detail: bool = False) -> str:
    """The text ``cmdqv-lab plan`` prints (see the module docstring)."""
    p = pl_.params
    k = p.sid_pairs_per_vintf
    alloc = f"linux ({pl_.per_vintf} VCMDQs per VINTF)" if pl_.allocation == "linux" else "pool"
    lines = [
        f"CMDQV: {p.num_vintfs} VINTFs, {p.num_vcmdqs} VCMDQs, {k} SID pairs per VINTF; allocation {alloc}",
        f"{'vm':<5} {'name':<12} {'vintf':>5} {'vmid':>5}  {'vcmdqs':<14} {'lvcmdqs':<10} {'sid pairs':<10} "
        "devices not fitting (trapped path)",
    ]
    host = pl_.host_vcmdqs
    lines.append(
        f"{'host':<5} {'host':<12} {0:>5} {0:>5}  {_ids(host):<14} {_ids(range(len(host))):<10} {'-':<10} -"
    )
    groups = [[v] for v in pl_.vms] if detail else _groups(pl_.vms)
    lines += [_row(g, k) for g in groups]
    lines.append(f"used: VINTFs {pl_.vintfs_used}/{p.num_vintfs}  VCMDQs {pl_.vcmdqs_used}/{p.num_vcmdqs}  "
                 f"SID pairs {pl_.sid_pairs_used}/{(p.num_vintfs - 1) * k}")  # fmt: skip
    problems = list(pl_.problems) if detail else _problems(pl_.problems)
    lines += [f"does not fit: {m}" for m in problems]
    if pl_.vms:
        lines.append(summary(pl_))
    lines.append(
        "everything fits" if pl_.fits else f"does not fit: {len(pl_.problems)} problems (listed above)"
    )
    return "\n".join(lines)


@click.command("plan")
@click.option("--vms", type=int, default=None, help="Guest VMs (each gets its own VINTF).")
@click.option("--devices-per-vm", type=int, default=None, help="Passed-through devices per VM.")
@click.option("--vcmdqs-per-vm", type=int, default=None, help="VCMDQs wanted per VM (default 1).")
@click.option(
    "--host-vcmdqs", type=int, default=None, help="VCMDQs of the host's VINTF0 (default its share)."
)
@click.option(
    "--allocation", type=click.Choice(ALLOCATIONS), default=None, help="VCMDQ allocation (default linux)."
)
@click.option("--strict", is_flag=True, help="Fail (exit 2) unless everything fits.")
@click.option(
    "--spec", "spec_path", type=click.Path(dir_okay=False), default=None, help="TOML/JSON plan spec."
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="CMDQV geometry (num_vintfs=...).")
@click.option(
    "--detail", is_flag=True, help="One row per VM and every problem (default: alike VMs share a row)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def plan_cmd(
    vms: int | None,
    devices_per_vm: int | None,
    vcmdqs_per_vm: int | None,
    host_vcmdqs: int | None,
    allocation: str | None,
    strict: bool,
    spec_path: str | None,
    sets: tuple[str, ...],
    detail: bool,
    as_json: bool,
) -> None:
    """Plan VINTFs, VCMDQs and SID pairs for guest VMs; list what does not fit (exit 1)."""
    from cmdqv_lab.cli_simulate import parse_sets

    if spec_path is not None:
        if vms is not None or devices_per_vm is not None or vcmdqs_per_vm is not None:
            raise CapacityError("give --spec or --vms/--devices-per-vm/--vcmdqs-per-vm, not both")
        spec = read_spec(spec_path)
        requests = spec["vms"]
    else:
        if vms is None or devices_per_vm is None:
            raise CapacityError("give --vms N and --devices-per-vm K (or --spec FILE)")
        spec = {"geometry": {}}
        requests = uniform_vms(vms, devices_per_vm, 1 if vcmdqs_per_vm is None else vcmdqs_per_vm)
    geometry = {**spec["geometry"], **parse_sets(sets)}
    params = CmdqvParams.from_overrides(geometry)
    result = plan(
        requests,
        params,
        allocation=allocation or spec.get("allocation", "linux"),
        host_vcmdqs=host_vcmdqs if host_vcmdqs is not None else spec.get("host_vcmdqs"),
        strict=strict or bool(spec.get("strict", False)),
    )
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_plan(result, detail=detail))
    if not result.fits:
        sys.exit(1)  # a SystemExit passes through click and cli.main unchanged
