"""Replay a routed command stream through the functional device model.

The model is an :class:`~cmdqv_lab.device.smmu.SMMU` with a Tegra241 CMDQV programmed from a
:class:`~cmdqv_lab.virt.capacity.CapacityPlan` (host-owned VINTF0, one guest-owned VINTF per VM
with its VMID, SID pairs and VCMDQs). Each part of a routed batch (:func:`route_frame` rows with the
same vm, cpu, batch and part) is written at PROD of one queue:

* ``trap`` and ``host`` parts go to the SMMU's main command queue (the host's, where the VMM
  forwards trapped guest commands), consumed at once; errors are recovered by Linux's GERROR
  handler (:func:`~cmdqv_lab.driver.recovery.arm_smmu_gerror_handler`);
* ``vcmdq`` parts go to the VM's VCMDQ ``lvcmdq cpu % n`` and are consumed by the CMDQV's hardware
  scheduler (:meth:`~cmdqv_lab.device.cmdqv.Cmdqv.schedule`), which logs hardware-inserted SYNCs when
  ``hw_sync`` is on. An error raises the CMDQV interrupt; the host ISR forwards a guest VINTF's error
  to user space and the guest's driver recovers it (skip_err: the bad command becomes a CMD_SYNC),
  so the stream continues (:func:`~cmdqv_lab.driver.recovery.tegra241_cmdqv_isr`,
  :func:`~cmdqv_lab.driver.recovery.guest_handle_vevent`).

Commands are encoded from the frame (null fields as zero; so a CMD_SYNC has CS=SIG_NONE, the
Tegra VCMDQ form; the signal does not change which commands a SYNC covers). Trapped guest commands
are forwarded as written (the VMM's VMID/SID translation is not modelled: it changes no hazard).
The result maps every routed row to its queue and absolute position, so the event log can be read
back per row.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from cmdqv_lab.device.cmdq import CommandQueue
from cmdqv_lab.device.cmdqv import Cmdqv, CmdqvParams
from cmdqv_lab.device.smmu import SMMU, SmmuConfig
from cmdqv_lab.driver.recovery import (
    arm_smmu_gerror_handler,
    drain,
    guest_handle_vevent,
    tegra241_cmdqv_isr,
)
from cmdqv_lab.errors import ParamError
from cmdqv_lab.virt.capacity import CapacityPlan, VmPlan
from cmdqv_lab.workloads.stream import WORKLOAD_SCHEMA, encode

MAX_LOG2SIZE = 19


@dataclass
class ReplayResult:
    """Where each routed row went (``queue`` name, absolute ``pos``) and the model after the run."""

    smmu: SMMU
    queue: list[str]
    pos: np.ndarray
    parts: int
    recoveries: int

    @property
    def cmdqv(self) -> Cmdqv:
        assert self.smmu.cmdqv is not None
        return self.smmu.cmdqv


def _stopped(cq: CommandQueue) -> Callable[[], bool]:
    return lambda: cq.stopped


def _schedule(cmdqv: Cmdqv, cq: CommandQueue) -> Callable[[], int]:
    """The CMDQV scheduler, stopping once it consumed what ``cq`` holds (every other VCMDQ is empty
    here, so this only skips the scheduler's final pass that finds nothing to do)."""
    return lambda: cmdqv.schedule(max_commands=max(1, cq.queue.occupancy()))


def part_starts(routed: pl.DataFrame) -> np.ndarray:
    """Row indices where a new part starts (plus the end), in issue order.

    >>> df = pl.DataFrame({"vm": [0, 0, 0, 0], "cpu": [0, 0, 0, 1], "batch": [0, 0, 0, 0],
    ...                    "part": [0, 0, 1, 0], "path": ["vcmdq", "vcmdq", "trap", "vcmdq"]})
    >>> part_starts(df).tolist()
    [0, 2, 3, 4]
    """
    keys = ["vm", "cpu", "batch", "part", "path"]
    new = pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys]).fill_null(True)
    starts = routed.select(new.alias("n"))["n"].to_numpy().nonzero()[0]
    return np.append(starts, routed.height).astype(np.int64)


def queue_log2size(routed: pl.DataFrame, log2size: int = 0) -> int:
    """``log2size`` if given, else the smallest LOG2SIZE >= 8 holding the largest part."""
    starts = part_starts(routed)
    longest = int(np.diff(starts).max()) if len(starts) > 1 else 1
    need = max(8, int(longest).bit_length())
    size = log2size or need
    if size > MAX_LOG2SIZE or (1 << size) <= longest:
        raise ParamError(
            f"a part of {longest} commands does not fit a queue of LOG2SIZE {size}: allowed <= 19"
        )
    return size


def build_model(plan: CapacityPlan, params: CmdqvParams, log2size: int) -> SMMU:
    """An SMMU (main queue of ``2^log2size`` entries) with a CMDQV programmed from ``plan``."""
    smmu = SMMU(SmmuConfig(cmdq_log2size=log2size), cmdqv=params)
    assert smmu.cmdqv is not None
    plan.apply(smmu.cmdqv, log2size=log2size)
    return smmu


def replay(
    routed: pl.DataFrame,
    plan: CapacityPlan,
    params: CmdqvParams,
    vms: Mapping[int, VmPlan],
    *,
    log2size: int = 0,
) -> ReplayResult:
    """Submit every part of ``routed`` to its queue and consume it (recovering errors).

    ``vms`` maps the frame's VM ids to their place in ``plan``.
    """
    size = queue_log2size(routed, log2size)
    smmu = build_model(plan, params, size)
    cmdqv = smmu.cmdqv
    assert cmdqv is not None
    batch = encode(routed.select(list(WORKLOAD_SCHEMA)))
    starts = part_starts(routed)
    vm_col, cpu_col = routed["vm"].to_list(), routed["cpu"].to_list()
    path_col = routed["path"].to_list()
    queue: list[str] = [""] * routed.height
    pos = np.zeros(routed.height, dtype=np.int64)
    recoveries = 0
    main = smmu.cmdq

    def guest_recover() -> None:
        for ev in tegra241_cmdqv_isr(cmdqv):
            guest_handle_vevent(cmdqv, ev)

    for a, b in itertools.pairwise(starts.tolist()):
        cq: CommandQueue
        if path_col[a] == "vcmdq":
            q = vms[vm_col[a]].queue_of(cpu_col[a])
            if q is None:  # pragma: no cover - check() routes VMs without VCMDQs with all-trap
                raise ParamError(f"VM {vm_col[a]} has no VCMDQ but a part was routed to one")
            cq = cmdqv.vcmdqs[q]
            positions = cq.submit(batch[a:b])
            recoveries += drain(_schedule(cmdqv, cq), _stopped(cq), guest_recover)
        else:
            cq = main
            positions = main.submit(batch[a:b])
            recoveries += drain(main.consume_all, _stopped(main), lambda: arm_smmu_gerror_handler(smmu))
        queue[a:b] = [cq.name] * (b - a)
        pos[a:b] = np.arange(positions.start, positions.stop)
    return ReplayResult(smmu, queue, pos, len(starts) - 1, recoveries)
