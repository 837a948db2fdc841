"""``guest-mixed``: guests issuing the checker's mixed stream (Q1, Q2, Q4) on pass-through VCMDQs.

The workload is :mod:`cmdqv_lab.workloads.synthetic.guest_mixed` (unsupported commands, ATC_INVs,
lone SYNCs); ``policy`` routes every batch with the VCMDQ accepting ``guest_opcodes`` and, of each
VM's devices, the first ``sid_pairs`` SIDs (a VINTF's SID MATCH/REPLACE pairs: the others are
illegal on a VCMDQ). Queues, paths and the IRQ thread are those of ``guest-wl-<workload>``
(:mod:`cmdqv_lab.scenarios.guest_workload`). ``cmdqv-lab check guest-mixed --policy P`` replays the
same stream through the functional model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cmdqv_lab.device.cmdqv import GUEST_OPCODE_SETS
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.programs.compile import Routing
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.scenarios.guest_workload import GuestTopology, guest_wl_prefix, guest_wl_topology
from cmdqv_lab.scenarios.workload import combine_params
from cmdqv_lab.workloads.stream import Workload
from cmdqv_lab.workloads.synthetic.guest_mixed import GuestMixedParams, guest_mixed_workload


@dataclass(frozen=True, kw_only=True)
class _SidPairs(Params):
    sid_pairs: int = param(
        16, unit="pairs", lo=1, hi=16, provenance="measured", source="domain.md 5: 16 SID MATCH/REPLACE pairs per VINTF",
        doc="SID pairs of each VM's VINTF (devices beyond them are illegal on its VCMDQ)",
    )  # fmt: skip


GuestMixedScenarioParams = combine_params(
    "GuestMixedScenarioParams", GuestTopology, GuestMixedParams, _SidPairs, drop=("as_guest",)
)


def _workload(p: Any, _plat: Platform, seed: int, n: int) -> Workload:
    own = GuestMixedParams.field_infos()
    values = {k: v for k, v in p.to_dict().items() if k in own}
    return guest_mixed_workload(GuestMixedParams(**{**values, "ops": n}), seed)


def _routing(p: Any, _plat: Platform, w: Workload) -> Routing:
    sids = {vm: devs[: p.sid_pairs] for vm, devs in w.params["devices_by_vm"].items()}
    return Routing(p.policy, frozenset(int(o) for o in GUEST_OPCODE_SETS[p.guest_opcodes]), sids)


register(
    Scenario(
        name="guest-mixed",
        doc="guest-mixed: guests issue unmaps with unsupported commands, ATC_INVs and lone SYNCs (Q1, Q2, Q4)",
        params=GuestMixedScenarioParams,
        workload=_workload,
        topology=guest_wl_topology,
        routing=_routing,
        prefix_ns=guest_wl_prefix,
        default_count=4000,
    )
)
