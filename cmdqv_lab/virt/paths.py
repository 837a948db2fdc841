"""Guest submission paths as engine op programs.

A routed guest command stream (:func:`cmdqv_lab.driver.routing.route_frame`) becomes, per vCPU, a
sequence of ops whose steps the timing engine runs (:mod:`cmdqv_lab.engine.stream`):

``vcmdq`` part (pass-through)
    one batch on the vCPU's VCMDQ, written by the guest's own driver with no exit; the guest waits
    for its CMD_SYNC by polling the VCMDQ's CONS (mapped into the guest). Entries the VCMDQ does not
    accept carry ``CMD_ILLEGAL``: the queue raises ILL and the host's CMDQV IRQ thread either fixes
    it up (guest-fixup) or forwards the error to the guest (guest-vcmdq).
``trap`` part (trap-and-emulate vSMMU)
    the guest writes the entries into the emulated queue's memory, then its PROD write exits to the
    VMM (half of ``trap_user_ns`` out, half back), which - under the VM's lock when ``vmm_lock`` -
    walks the queue (``vmm_trap_ns``) and forwards the non-SYNC commands ``vmm_batch`` at a time,
    each chunk costing ``vmm_per_cmd_ns`` per command and issued by the host kernel on the host
    main CMDQ with a CMD_SYNC it waits for; the guest's own CMD_SYNC is emulated. The guest then
    learns of completion by polling CONS (one more trap: QEMU completed the queue inside the PROD
    write) or by a virtual interrupt (``guest_poll``).
``host`` part
    a batch on the host main CMDQ.

Every op starts with ``guest_unmap_ns`` of guest CPU work (part of the measured unmap latency).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.engine.layout import (
    CMD_ILLEGAL,
    CNT_EXITS,
    CNT_GUEST_IRQS,
    CNT_NONE,
    STEP_BATCH,
    STEP_DELAY,
    STEP_LOCK,
    STEP_UNLOCK,
)
from cmdqv_lab.engine.stream import OpBlock
from cmdqv_lab.platform import Platform
from cmdqv_lab.scenarios.streams import draw_service
from cmdqv_lab.units import ns

SYNC = int(Opcode.CMD_SYNC)


@dataclass(frozen=True)
class VcpuRoute:
    """Where one vCPU's parts go."""

    vcmdq: int  # its VCMDQ queue index (-1: none)
    host_queue: int  # the host main CMDQ
    lock: int  # its VM's VMM lock (-1: none)


class _Builder:
    """Accumulates steps and commands of one block."""

    def __init__(self) -> None:
        self.t: list[int] = []
        self.nb: list[int] = []
        self.kind: list[int] = []
        self.a: list[int] = []
        self.b: list[int] = []
        self.c: list[int] = []
        self.opc: list[np.ndarray] = []
        self.svc: list[np.ndarray] = []
        self.flags: list[np.ndarray] = []
        self._steps_before = 0

    def begin_op(self, t: int) -> None:
        self.t.append(t)
        self._steps_before = len(self.kind)

    def end_op(self) -> None:
        self.nb.append(len(self.kind) - self._steps_before)

    def delay(self, ps: int, counter: int = CNT_NONE) -> None:
        self.kind.append(STEP_DELAY)
        self.a.append(ps)
        self.b.append(counter)
        self.c.append(0)

    def lock(self, lk: int, unlock: bool = False) -> None:
        self.kind.append(STEP_UNLOCK if unlock else STEP_LOCK)
        self.a.append(lk)
        self.b.append(0)
        self.c.append(0)

    def batch(self, queue: int, opc: np.ndarray, svc: np.ndarray, flags: np.ndarray, wait: bool) -> None:
        self.kind.append(STEP_BATCH)
        self.a.append(int(opc.size))
        self.b.append(int(wait))
        self.c.append(queue)
        self.opc.append(opc)
        self.svc.append(svc)
        self.flags.append(flags)

    def forwards(
        self, queue: int, opc: np.ndarray, svc: np.ndarray, chunk: int, per_cmd_ps: int, sync_svc: int
    ) -> None:
        """The VMM forwarding ``opc`` ``chunk`` commands at a time: per chunk a delay (``per_cmd_ps``
        per command) and a host batch of the chunk plus a CMD_SYNC, waited for (vectorised)."""
        f = int(opc.size)
        if f == 0:
            return
        starts = np.arange(0, f, chunk)
        ks = np.minimum(chunk, f - starts)
        n = starts.size
        kind = np.empty(2 * n, np.int64)
        a = np.empty(2 * n, np.int64)
        b = np.empty(2 * n, np.int64)
        c = np.empty(2 * n, np.int64)
        kind[0::2], kind[1::2] = STEP_DELAY, STEP_BATCH
        a[0::2], a[1::2] = ks * per_cmd_ps, ks + 1
        b[0::2], b[1::2] = CNT_NONE, 1
        c[0::2], c[1::2] = 0, queue
        self.kind.extend(kind.tolist())
        self.a.extend(a.tolist())
        self.b.extend(b.tolist())
        self.c.extend(c.tolist())
        ends = starts + ks
        self.opc.append(np.insert(opc, ends, SYNC))
        self.svc.append(np.insert(svc, ends, sync_svc))
        self.flags.append(np.zeros(f + n, np.int64))

    def block(self) -> OpBlock:
        def cat(xs: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64)

        def i64(x: list[int]) -> np.ndarray:
            return np.asarray(x, dtype=np.int64)

        return OpBlock(
            i64(self.t), i64(self.nb), i64(self.kind), i64(self.a), i64(self.b), i64(self.c),
            cat(self.opc), cat(self.svc), cat(self.flags),
        )  # fmt: skip


def build_blocks(
    routed: pl.DataFrame,
    route: VcpuRoute,
    plat: Platform,
    rng: np.random.Generator,
    prefix_ps: int | None = None,
) -> OpBlock:
    """Turn one vCPU's routed frame into an op block (ops in order; ``t_ps`` is the think gap or the
    arrival). Each op starts with ``prefix_ps`` of CPU work (default: ``guest_unmap_ns``)."""
    b = _Builder()
    if routed.height == 0:
        return b.block()
    opcodes = routed["opcode"].to_numpy().astype(np.int64)
    svc = service_times(opcodes, plat, rng)
    flags = np.where(routed["illegal"].to_numpy(), CMD_ILLEGAL, 0).astype(np.int64)
    op = routed["op"].to_numpy()
    part_key = (routed["batch"].to_numpy() << 8) + routed["part"].to_numpy()
    path = routed["path"].to_numpy()
    wait = routed["wait"].to_numpy()
    t = routed["t_ps"].to_numpy()
    unmap = ns(plat.guest_unmap_ns) if prefix_ps is None else prefix_ps
    # boundaries of ops and parts
    op_start = np.flatnonzero(np.r_[True, op[1:] != op[:-1]])
    op_end = np.r_[op_start[1:], op.size]
    for s, e in zip(op_start, op_end):
        b.begin_op(int(t[s]))
        if unmap:
            b.delay(unmap)
        pk = part_key[s:e]
        p_start = s + np.flatnonzero(np.r_[True, pk[1:] != pk[:-1]])
        p_end = np.r_[p_start[1:], e]
        for ps_, pe in zip(p_start, p_end):
            sl = slice(int(ps_), int(pe))
            waited = bool(wait[pe - 1]) and opcodes[pe - 1] == SYNC
            where = path[ps_]
            if where == "vcmdq":
                b.batch(route.vcmdq, opcodes[sl], svc[sl], flags[sl], waited)
            elif where == "host":
                b.batch(route.host_queue, opcodes[sl], svc[sl], np.zeros(pe - ps_, np.int64), waited)
            else:
                _trap_part(b, route, plat, opcodes[sl], svc[sl], waited)
        b.end_op()
    return b.block()


def _trap_part(
    b: _Builder, route: VcpuRoute, plat: Platform, opc: np.ndarray, svc: np.ndarray, waited: bool
) -> None:
    b.delay(ns(plat.cmd_write_ns) * int(opc.size))  # the guest writes the emulated queue
    half = ns(plat.trap_user_ns) // 2
    b.delay(half, CNT_EXITS)  # PROD write exits to the VMM
    if plat.vmm_lock and route.lock >= 0:
        b.lock(route.lock)
    b.delay(ns(plat.vmm_trap_ns))
    fwd = opc != SYNC
    b.forwards(
        route.host_queue,
        opc[fwd],
        svc[fwd],
        plat.vmm_batch,
        ns(plat.vmm_per_cmd_ns),
        ns(plat.sync_service_ns),
    )
    if plat.vmm_lock and route.lock >= 0:
        b.lock(route.lock, unlock=True)
    b.delay(ns(plat.trap_user_ns) - half)  # back to the guest
    if waited:
        if plat.guest_poll == "poll":
            b.delay(ns(plat.trap_user_ns), CNT_EXITS)  # the CONS poll traps; the queue is already done
        else:
            b.delay(ns(plat.virq_inject_ns), CNT_GUEST_IRQS)


def service_times(opcodes: np.ndarray, plat: Platform, rng: np.random.Generator) -> np.ndarray:
    """One service time (ps) per command: the platform's mean for its opcode, drawn from its
    distribution (one draw per command, in order)."""
    mean_of = np.zeros(256)
    for o in Opcode:
        mean_of[int(o)] = plat.service_ns(int(o))
    if opcodes.size == 0:
        return np.zeros(0, np.int64)
    return draw_service(rng, mean_of[opcodes], plat.service_dist, 1).reshape(-1)


def stream_blocks(
    frames: Iterator[pl.DataFrame],
    route: VcpuRoute,
    plat: Platform,
    rng: np.random.Generator,
    prefix_ps: int | None = None,
) -> Iterator[OpBlock]:
    """Lazily convert a vCPU's routed frames into op blocks."""
    for f in frames:
        yield build_blocks(f, route, plat, rng, prefix_ps)
