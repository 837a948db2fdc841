"""Q4/Q8 findings from the capacity planner: how many VMs, devices and VCMDQs fit on a CMDQV.

:mod:`cmdqv_lab.virt.capacity` places VMs; the functions here sweep it and tabulate what the
notebooks chart and quote.

>>> from cmdqv_lab.device.cmdqv import CmdqvParams
>>> max_fitting(CmdqvParams(num_vintfs=8, num_vcmdqs=32), 1, "linux")
7
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl


def served_table(geo: Any, vm_counts: Iterable[int], per_vm: Sequence[int] = (1, 2, 4, 8)) -> pl.DataFrame:
    """VMs asking for k VCMDQs each (one device): how many get a VINTF and everything they asked for."""
    from cmdqv_lab.virt.capacity import plan, uniform_vms

    rows = []
    counts = list(vm_counts)
    for alloc in ("linux", "pool"):
        for k in per_vm:
            for n in counts:
                p = plan(uniform_vms(n, 1, k), geo, allocation=alloc)
                rows.append(
                    {
                        "allocation": alloc,
                        "vcmdqs_per_vm": k,
                        "vms": n,
                        "vms_with_vintf": sum(v.vintf is not None for v in p.vms),
                        "vms_fully_served": sum(v.fits for v in p.vms),
                        "guest_vcmdqs": p.vcmdqs_used - len(p.host_vcmdqs),
                    }
                )
    return pl.DataFrame(rows)


def fit_status(geo: Any, vm_grid: Iterable[int], dev_counts: Sequence[int]) -> pl.DataFrame:
    """VMs x devices per VM (1 VCMDQ each, linux allocation): what fits and what traps."""
    from cmdqv_lab.virt.capacity import plan, uniform_vms

    rows = []
    for n in vm_grid:
        for d in dev_counts:
            p = plan(uniform_vms(n, d), geo)
            no_vintf = sum(v.vintf is None for v in p.vms)
            unfit = sum(len(v.unfit_sids) for v in p.vms if v.vintf is not None)
            if p.fits:
                status = "fits"
            elif no_vintf and not unfit:
                status = "some VMs get no VINTF"
            elif unfit and not no_vintf:
                status = "devices beyond the SID pairs"
            else:
                status = "both"
            rows.append({"vms": n, "devices_per_vm": d, "status": status, "devices_direct": p.sid_pairs_used,
                         "devices_trapped": n * d - p.sid_pairs_used})  # fmt: skip
    return pl.DataFrame(rows)


def max_fitting(params: Any, k: int, alloc: str) -> int:
    """The largest number of VMs for which every VM gets all its SID pairs and ``k`` VCMDQs."""
    from cmdqv_lab.virt.capacity import plan, uniform_vms

    best = 0
    for n in range(1, params.num_vintfs + 1):
        if plan(uniform_vms(n, params.sid_pairs_per_vintf, k), params, allocation=alloc).fits:
            best = n
    return best


def geometry_table(
    vintfs: Sequence[int] = (8, 16, 32, 64), vcmdqs: Sequence[int] = (32, 64, 128)
) -> pl.DataFrame:
    """Capacity limits across possible CMDQV geometries (Grace's is not public)."""
    from cmdqv_lab.device.cmdqv import CmdqvParams

    rows = []
    for nv in vintfs:
        for nq in vcmdqs:
            if nq < nv:
                continue
            g = CmdqvParams(num_vintfs=nv, num_vcmdqs=nq)
            rows.append(
                {
                    "num_vintfs": nv,
                    "num_vcmdqs": nq,
                    "vcmdqs_per_vintf_linux": nq // nv,
                    "max_vms_1_vcmdq": max_fitting(g, 1, "linux"),
                    "max_vms_2_vcmdqs_linux": max_fitting(g, 2, "linux"),
                    "max_vms_4_vcmdqs_linux": max_fitting(g, 4, "linux"),
                    "max_vms_4_vcmdqs_pool": max_fitting(g, 4, "pool"),
                    "direct_devices_total": (nv - 1) * g.sid_pairs_per_vintf,
                }
            )
    return pl.DataFrame(rows)


def vcmdqs_granted(geo: Any, wanted: Sequence[int] = (1, 2, 4, 8)) -> pl.DataFrame:
    """VCMDQs one guest gets when it asks for k, per allocator (Q8)."""
    from cmdqv_lab.virt.capacity import plan, uniform_vms

    rows = []
    for k in wanted:
        for alloc in ("linux", "pool"):
            p = plan(uniform_vms(1, 1, k), geo, allocation=alloc)
            rows.append({"vcmdqs_wanted": k, "allocation": alloc, "vcmdqs_granted": len(p.vms[0].vcmdqs)})
    return pl.DataFrame(rows)
