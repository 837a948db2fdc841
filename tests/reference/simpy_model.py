"""A plain SimPy reference model of the engine's protocol (test-only).

It implements the semantics documented in :mod:`cmdqv_lab.engine` with ordinary Python objects and
SimPy processes, independently of the compiled engine's flat memory, ring buffers and tournament
tree. On the same inputs it must produce identical per-command and per-op times.

Scheduling: every wake-up of an entity is a SimPy event scheduled with ``priority = entity id``
(command processors ``0..P-1`` before CPUs ``P..``), so simultaneous steps run in entity order, as
the engine's ``(time, entity)`` keys do. A process yields exactly where the engine schedules.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import simpy

from cmdqv_lab.engine.runner import EngineConfig
from cmdqv_lab.engine.stream import OpBlock

SYNC = 0x46


@dataclass
class Line:
    """A contended cache line: a FIFO server."""

    free: int = 0
    owner: int = -1

    def access(self, cpu: int, now: int, local: int, xfer: int) -> int:
        start = max(now, self.free)
        end = start + (local if self.owner == cpu else xfer)
        self.free, self.owner = end, cpu
        return end


@dataclass
class Slot:
    opcode: int = 0
    svc: int = 0
    illegal: bool = False
    rec: dict[str, Any] | None = None
    publish: int = -1
    waiter: int = -1  # CPU waiting on this CMD_SYNC
    async_op: dict[str, Any] | None = None
    valid: int = -1


@dataclass
class Queue:
    log2: int
    alg: str
    wait: str
    proc: int
    err: str = "none"
    vmm: bool = False  # emulated by the VMM (consumed in the trapped PROD write)
    bql: int = -1
    halted: bool = False
    prod: int = 0
    owned: bool = False
    cons_shadow: int = 0
    ver: int = 0
    lock: int = 0
    owner_prod: int = 0
    valid_upto: int = 0
    hw_prod: int = 0
    fetch: int = 0
    fetched: int = 0  # entries below this were read by the last fetch burst
    hw_cons: int = 0
    owner_waiter: int = -1
    valid_waiter: int = -1
    space_waiters: list[int] = field(default_factory=list)
    fifo: deque[int] = field(default_factory=deque)
    slots: dict[int, Slot] = field(default_factory=dict)
    lines: dict[str, Line] = field(
        default_factory=lambda: {k: Line() for k in ("llq", "lock", "valid", "owner")}
    )

    @property
    def size(self) -> int:
        return 1 << self.log2

    def slot(self, ctr: int) -> Slot:
        return self.slots.setdefault(ctr % self.size, Slot())


@dataclass
class Step:
    kind: str  # batch, delay, lock, unlock, resume
    a: int
    b: int
    c: int
    cmds: list[tuple[int, int, int]]  # (opcode, svc, flags) of a batch


@dataclass
class Op:
    t: int
    steps: list[Step]


KINDS = {0: "batch", 1: "delay", 2: "lock", 3: "unlock", 4: "resume"}  # engine-appended: vmm_*, wake


def ops_of(blocks: list[OpBlock]) -> list[Op]:
    out = []
    for blk in blocks:
        si = ci = 0
        for i in range(blk.n_ops):
            steps = []
            for _ in range(int(blk.nb[i])):
                kind = KINDS[int(blk.s_kind[si])]
                a, b, c = int(blk.s_a[si]), int(blk.s_b[si]), int(blk.s_c[si])
                cmds = []
                if kind == "batch":
                    cmds = [
                        (int(blk.c_opc[ci + j]), int(blk.c_svc[ci + j]), int(blk.c_flags[ci + j]))
                        for j in range(a)
                    ]
                    ci += a
                steps.append(Step(kind, a, b, c, cmds))
                si += 1
            out.append(Op(int(blk.t[i]), steps))
    return out


class Reference:
    """Run ``cfg`` on fully materialised per-CPU op lists; collect records like the engine."""

    def __init__(self, cfg: EngineConfig, streams: list[list[OpBlock]]):
        self.cfg = cfg
        self.k = cfg.costs
        self.env = simpy.Environment()
        self.P = cfg.n_procs
        self.queues = [Queue(q.log2size, q.alg, q.wait, q.proc, q.err, q.vmm, q.bql) for q in cfg.queues]
        for q in self.queues:
            q.lock = -1 if q.alg == "spinlock" else 0  # spinlock: holder CPU, -1 free
        self.proc_queues = [
            [i for i, q in enumerate(cfg.queues) if q.proc == p and not q.vmm] for p in range(self.P)
        ]
        # VMM threads: one per trapping vCPU, runnable only while it is out in an exit
        self.thread_of = {v: t for v, t in cfg.vmm_threads}
        self.vcpu_of = {t: v for v, t in cfg.vmm_threads}
        self.vmm_ops: dict[int, deque[Op]] = {t: deque() for t in self.vcpu_of}
        self.vmm_asleep: dict[int, bool] = {t: False for t in self.vcpu_of}
        self.cur_op: dict[int, int] = {}
        self.val: dict[int, int] = {}
        self.owner_start: dict[int, int] = {}
        self.ops = [ops_of(s)[: cfg.quotas[c]] for c, s in enumerate(streams)]
        self.cmd_records: list[dict[str, Any]] = []
        self.op_records: list[dict[str, Any]] = []
        self.ops_started = 0
        # per-CPU wait state
        self.sync_done: list[int] = [-1] * cfg.n_cpus
        self.waiting: list[tuple[simpy.Event, int, int] | None] = [None] * cfg.n_cpus
        self.blocked: dict[int, simpy.Event] = {}
        # processors
        self.pstate = ["idle"] * self.P
        self.pcur = [-1] * self.P
        self.pturn = [0] * self.P
        self.pturn_t0 = [0] * self.P
        self.prr = [len(x) - 1 for x in self.proc_queues]
        self.pevent: list[simpy.Event | None] = [None] * self.P
        self.hw_syncs = 0
        self.counters = {"exits": 0, "guest_irqs": 0, "illegal": 0, "fixups": 0}
        self.fixup_latencies: list[int] = []
        self.locks: list[int] = [-1] * cfg.n_locks
        self.lock_fifo: list[deque[int]] = [deque() for _ in range(cfg.n_locks)]
        self.irq_ops: deque[Op] = deque()
        self.irq_asleep = False
        for p in range(self.P):
            self.env.process(self.processor(p))
        for c in range(cfg.n_cpus):
            if c == cfg.irq_cpu:
                self.env.process(self.irq_thread(c))
            elif c in self.vcpu_of:
                self.env.process(self.vmm_thread(c))
            else:
                self.env.process(self.cpu(c))

    # ------------------------------------------------------------------ scheduling helpers
    def at(self, entity: int, t: int) -> simpy.Event:
        ev = self.env.event()
        ev._ok = True
        ev._value = None
        self.env.schedule(ev, priority=entity, delay=t - self.env.now)
        return ev

    def block(self, c: int) -> simpy.Event:
        ev = self.env.event()
        self.blocked[c] = ev
        return ev

    def wake(self, c: int, t: int) -> None:
        ev = self.blocked.pop(c)
        ev._ok = True
        ev._value = None
        self.env.schedule(ev, priority=self.P + c, delay=t - self.env.now)

    def line(self, c: int, q: Queue, name: str) -> int:
        return q.lines[name].access(c, self.env.now, self.k.line_local, self.k.line_xfer)

    # ------------------------------------------------------------------ CMD_SYNC observation
    def observed(self, mode: str, t0: int, tc: int) -> int:
        k = self.k
        if mode == "msi":
            return max(t0, tc) + k.msi
        if mode == "sev":
            return max(t0, tc + k.sev) + k.mmio_read
        if mode == "busy":
            t = t0
            while True:  # back-to-back CONS reads
                t += k.spin + k.mmio_read
                if tc <= t or k.spin + k.mmio_read == 0:
                    return max(t, tc) if k.spin + k.mmio_read == 0 else t
        if k.spin + k.mmio_read + k.udelay == 0:
            return max(t0, tc)
        t, spin_cnt, delay = t0, 0, k.udelay
        while True:  # queue_poll without SEV
            spin_cnt += 1
            if spin_cnt < k.poll_spins:
                t += k.spin
            else:
                t += delay
                delay *= 2
                spin_cnt = 0
            t += k.mmio_read
            if tc <= t:
                return t

    def wait_sync(self, c: int, q: Queue, t0: int):
        if self.sync_done[c] >= 0:
            yield self.at(self.P + c, self.observed(q.wait, t0, self.sync_done[c]))
            return
        ev = self.block(c)
        self.waiting[c] = (ev, t0, 0)
        yield ev

    # ------------------------------------------------------------------ queue memory
    def write(
        self,
        c: int,
        q: Queue,
        qi: int,
        start: int,
        cmds: list[tuple[int, int, int]],
        sync: int,
        ctx: dict[str, Any],
        async_op: bool,
    ) -> None:
        n = len(cmds)
        for i, (opc, svc, flags) in enumerate(cmds):
            s = q.slot(start + i)
            s.opcode, s.svc, s.illegal = opc, svc, bool(flags & 1)
            s.waiter = c if (sync and i == n - 1 and not async_op) else -1
            s.async_op = None
            rec = {
                "op_id": ctx["op_id"], "cpu": c, "queue": qi, "slot": start + i, "opcode": opc,
                "issue_ps": ctx["issue"], "reserved_ps": ctx["reserved"], "written_ps": self.env.now,
                "publish_ps": -1, "consume_start_ps": -1, "complete_ps": -1, "retries": ctx["retries"],
            }  # fmt: skip
            self.cmd_records.append(rec)
            s.rec = rec
        if async_op and n:
            q.slot(start + n - 1).async_op = {"op_id": ctx["op_id"], "cpu": c, "ready": ctx["ready"], "n": n}
        if sync:
            self.sync_done[c] = -1

    def publish(self, q: Queue, new_prod: int) -> None:
        now = self.env.now
        if new_prod <= q.hw_prod:
            return
        for ctr in range(q.hw_prod, new_prod):
            s = q.slot(ctr)
            s.publish = now
            if s.rec is not None:
                s.rec["publish_ps"] = now
        q.hw_prod = new_prod
        p = q.proc
        if self.pstate[p] == "idle":
            if len(self.proc_queues[p]) == 1:
                if not q.halted:
                    self.prr[p], self.pturn[p], self.pturn_t0[p] = 0, 0, now
                    if self.start(p, self.queues.index(q)):
                        self.kick(p, self.busy_until[p])
            else:
                self.kick(p, now)

    # ------------------------------------------------------------------ SMMU command processors
    busy_until: dict[int, int]

    def kick(self, p: int, t: int) -> None:
        ev = self.pevent[p]
        if ev is not None and not ev.triggered:
            ev._ok = True
            ev._value = None
            self.env.schedule(ev, priority=p, delay=t - self.env.now)
            self.pevent[p] = None

    def start(self, p: int, qi: int) -> bool:
        q = self.queues[qi]
        ctr = q.fetch
        s = q.slot(ctr)
        if s.illegal and q.err != "none":
            self.raise_error(qi, s)
            return False
        q.fetch += 1
        if s.rec is not None:
            s.rec["consume_start_ps"] = self.env.now
        cost = s.svc
        if ctr >= q.fetched:  # read a burst: the aligned line of fetch_line entries, as far as PROD
            cost += self.k.fetch
            line_end = (ctr // self.k.fetch_line + 1) * self.k.fetch_line
            q.fetched = min(line_end, q.hw_prod)
        self.pstate[p], self.pcur[p] = "busy", qi
        self.busy_until[p] = self.env.now + cost
        return True

    # ------------------------------------------------------------------ queue errors (CMDQV IRQ)
    def raise_error(self, qi: int, s: Slot) -> None:
        """ILL: the queue halts; the single IRQ thread gets an op to handle it (arriving now)."""
        q, k = self.queues[qi], self.k
        q.halted = True
        self.counters["illegal"] += 1
        steps = [Step("delay", k.irq_latency, 0, 0, []), Step("delay", k.irq_handler, 0, 0, [])]
        if q.err == "fixup":  # emulate the command on the host queue, waiting for a CMD_SYNC
            steps.append(
                Step("batch", 2, 1, self.cfg.fixup_queue, [(s.opcode, s.svc, 0), (SYNC, k.sync_svc, 0)])
            )
        else:  # forward to the guest (VMM event, vIRQ, guest ISR); the command is skipped
            steps.append(Step("delay", k.guest_error, 2, 0, []))
        steps += [Step("delay", k.irq_ack, 0, 0, []), Step("resume", qi, 0, 0, [])]
        self.irq_ops.append(Op(self.env.now, steps))
        if self.irq_asleep:
            self.irq_asleep = False
            self.wake(self.cfg.irq_cpu, self.env.now)

    def resume(self, qi: int) -> None:
        q = self.queues[qi]
        s = q.slot(q.fetch)
        s.opcode, s.svc, s.illegal = SYNC, self.k.sync_svc, False
        q.halted = False
        if q.err == "fixup":
            self.counters["fixups"] += 1
        if self.pstate[q.proc] == "idle":
            self.kick(q.proc, self.env.now)

    def complete(self, qi: int) -> None:
        q, now = self.queues[qi], self.env.now
        s = q.slot(q.hw_cons)
        if s.rec is not None:
            s.rec["complete_ps"] = now
        if s.opcode == SYNC and s.waiter >= 0:
            c = s.waiter
            self.sync_done[c] = now
            w = self.waiting[c]
            if w is not None:
                self.waiting[c] = None
                ev, t0, _ = w
                self.blocked.pop(c, None)
                ev._ok = True
                ev._value = None
                self.env.schedule(ev, priority=self.P + c, delay=self.observed(q.wait, t0, now) - now)
        if s.async_op is not None:
            a = s.async_op
            self.op_records.append({"op_id": a["op_id"], "cpu": a["cpu"], "queue": qi, "ready_ps": a["ready"],
                                    "complete_ps": now, "sync_complete_ps": now, "cmds": a["n"], "batches": 1, "retries": 0})  # fmt: skip
        q.hw_cons += 1
        if q.space_waiters:
            for c in sorted(q.space_waiters):
                self.wake(c, now)
            q.space_waiters.clear()

    def has_work(self, qi: int) -> bool:
        q = self.queues[qi]
        return q.hw_prod > q.fetch and not q.halted

    def processor(self, p: int):
        k = self.k
        while True:
            if self.pstate[p] == "idle":
                ev = self.env.event()
                self.pevent[p] = ev
                yield ev
            else:
                yield self.at(p, self.busy_until[p])
            now = self.env.now
            if self.pstate[p] == "busy":
                self.complete(self.pcur[p])
                self.pturn[p] += 1
            cur = self.pcur[p]
            if cur >= 0 and self.has_work(cur):
                over = (k.cmd_batch > 0 and self.pturn[p] >= k.cmd_batch) or (
                    k.clk_batch > 0 and now - self.pturn_t0[p] >= k.clk_batch
                )
                if not over and self.start(p, cur):
                    continue
            lst = self.proc_queues[p]
            nxt, pos = -1, self.prr[p]
            for j in range(1, len(lst) + 1):
                pos = (self.prr[p] + j) % len(lst)
                if self.has_work(lst[pos]):
                    nxt = lst[pos]
                    break
            if k.hw_sync_insert and cur >= 0 and self.pturn[p] > 0:
                self.pstate[p], self.pcur[p], self.pturn[p] = "hwsync", -1, 0
                self.busy_until[p] = now + k.hw_sync
                self.hw_syncs += 1
                continue
            while nxt >= 0:
                self.prr[p], self.pturn[p], self.pturn_t0[p] = pos, 0, now
                if self.start(p, nxt):
                    break
                nxt, rr = -1, pos  # that queue halted: look further
                for j in range(1, len(lst) + 1):
                    pos = (rr + j) % len(lst)
                    if self.has_work(lst[pos]):
                        nxt = lst[pos]
                        break
            if nxt < 0:
                self.pstate[p], self.pcur[p], self.pturn[p] = "idle", -1, 0

    # ------------------------------------------------------------------ CPUs
    def cpu(self, c: int):  # type: ignore[no-untyped-def]
        e = self.P + c
        for op in self.ops[c]:
            now = self.env.now
            ready = op.t if self.cfg.open_loop else now + op.t
            yield self.at(e, max(now, ready) if self.cfg.open_loop else ready)
            yield from self.run_op(c, op, ready, irq=False)

    def irq_thread(self, c: int):  # type: ignore[no-untyped-def]
        """The host's CMDQV threaded interrupt handler: one op per error, one at a time."""
        e = self.P + c
        while True:
            if not self.irq_ops:
                self.irq_asleep = True
                yield self.block(c)
                continue
            op = self.irq_ops.popleft()
            yield self.at(e, max(self.env.now, op.t))
            yield from self.run_op(c, op, op.t, irq=True)

    def vmm_thread(self, c: int):  # type: ignore[no-untyped-def]
        """A vCPU's VMM thread: runs the emulation of each exit its vCPU appends (engine/vmm.py)."""
        e = self.P + c
        while True:
            if not self.vmm_ops[c]:
                self.vmm_asleep[c] = True
                yield self.block(c)
                continue
            op = self.vmm_ops[c].popleft()
            yield self.at(e, max(self.env.now, op.t))
            yield from self.run_op(c, op, op.t, irq=False)

    def submit_vmm(self, v: int, steps: list[Step]) -> None:
        t = self.thread_of[v]
        self.vmm_ops[t].append(Op(self.env.now, steps))
        if self.vmm_asleep[t]:
            self.vmm_asleep[t] = False
            self.wake(t, self.env.now)

    def prod_exit_ops(self, v: int, qi: int, end: int) -> list[Step]:
        """The emulation of vCPU ``v``'s PROD write of ``end`` to emulated queue ``qi``."""
        q, k = self.queues[qi], self.k
        start = q.hw_cons
        steps = [Step("lock", q.bql, 0, 0, [])] if q.bql >= 0 else []
        steps += [Step("vmm_prod", qi, end, 0, []), Step("delay", k.vmm_trap, 0, 0, [])]
        fwd = [
            (q.slot(ctr).opcode, q.slot(ctr).svc, 0)
            for ctr in range(start, end)
            if q.slot(ctr).opcode != SYNC
        ]
        if not k.vmm_batched:  # one ioctl per command: the command + CMD_SYNC on the host main cmdq
            for cmd in fwd:
                steps += [Step("delay", k.vmm_ioctl + k.vmm_per_cmd, 0, 0, []),
                          Step("batch", 2, 1, 0, [cmd, (SYNC, k.sync_svc, 0)])]  # fmt: skip
        elif fwd:  # one ioctl; the host issues chunks of vmm_chunk + CMD_SYNC
            steps.append(Step("delay", k.vmm_ioctl + k.vmm_per_cmd * len(fwd), 0, 0, []))
            for i in range(0, len(fwd), k.vmm_chunk):
                part = fwd[i : i + k.vmm_chunk]
                steps.append(Step("batch", len(part) + 1, 1, 0, [*part, (SYNC, k.sync_svc, 0)]))
        steps.append(Step("vmm_done", qi, end, 0, []))
        if q.bql >= 0:
            steps.append(Step("unlock", q.bql, 0, 0, []))
        steps.append(Step("wake", v, k.trap - k.trap // 2, 0, []))
        return steps

    def read_exit_ops(self, v: int, qi: int) -> list[Step]:
        q, k = self.queues[qi], self.k
        steps = [Step("lock", q.bql, 0, 0, [])] if q.bql >= 0 else []
        steps += [Step("delay", k.vmm_read, 0, 0, []), Step("vmm_read", qi, 0, v, [])]
        if q.bql >= 0:
            steps.append(Step("unlock", q.bql, 0, 0, []))
        steps.append(Step("wake", v, k.trap - k.trap // 2, 0, []))
        return steps

    def vmm_effect(self, st: Step) -> None:
        """A VMM thread's register step: PROD takes effect, CONS reaches PROD, CONS is read, wake."""
        now, k = self.env.now, self.k
        if st.kind == "vmm_prod":
            q = self.queues[st.a]
            for ctr in range(q.hw_prod, st.b):
                sl = q.slot(ctr)
                sl.publish = now
                if sl.rec is not None:
                    sl.rec["publish_ps"] = now
                    sl.rec["consume_start_ps"] = now
            q.hw_prod = max(q.hw_prod, st.b)
        elif st.kind == "vmm_done":
            q = self.queues[st.a]
            for ctr in range(q.hw_cons, st.b):
                sl = q.slot(ctr)
                if sl.rec is not None:
                    sl.rec["complete_ps"] = now
                if sl.opcode == SYNC and sl.waiter >= 0:
                    w = sl.waiter
                    self.sync_done[w] = now
                    wt = self.waiting[w]
                    if wt is not None:  # the virtual interrupt reaches the waiter
                        self.waiting[w] = None
                        ev, t0, _ = wt
                        self.blocked.pop(w, None)
                        self.counters["guest_irqs"] += 1
                        ev._ok = True
                        ev._value = None
                        self.env.schedule(ev, priority=self.P + w, delay=max(t0, now) + k.virq - now)
            q.hw_cons = st.b
            if q.space_waiters:
                for w in sorted(q.space_waiters):
                    self.wake(w, now)
                q.space_waiters.clear()
        elif st.kind == "vmm_read":
            self.val[st.c] = self.queues[st.a].hw_cons
        else:  # wake: back in the guest after the return half of the trap
            self.wake(st.a, now + st.b)

    def run_op(self, c: int, op: Op, ready: int, irq: bool):  # type: ignore[no-untyped-def]
        thread = c in self.vcpu_of
        if thread:  # a VMM thread works for its vCPU's current op
            ctx: dict[str, Any] = {"op_id": self.cur_op[self.vcpu_of[c]], "ready": ready, "retries": 0}
        else:
            ctx = {"op_id": self.ops_started, "ready": ready, "retries": 0}
            self.ops_started += 1
            self.cur_op[c] = ctx["op_id"]
        op_retries = op_cmds = n_batches = 0
        sync_t = -1
        last_q = -1
        for i, st in enumerate(op.steps):
            if st.kind == "delay":
                if st.b == 1:
                    self.counters["exits"] += 1
                elif st.b == 2:
                    self.counters["guest_irqs"] += 1
                yield self.at(self.P + c, self.env.now + st.a)
                continue
            if st.kind == "lock":
                if self.locks[st.a] < 0:
                    self.locks[st.a] = c
                else:
                    self.lock_fifo[st.a].append(c)
                    yield self.block(c)
                continue
            if st.kind == "unlock":
                if self.lock_fifo[st.a]:
                    w = self.lock_fifo[st.a].popleft()
                    self.locks[st.a] = w
                    self.wake(w, self.env.now + self.k.futex_wake)  # the sleeping waiter's futex wake-up
                else:
                    self.locks[st.a] = -1
                continue
            if st.kind == "resume":
                self.resume(st.a)
                continue
            if st.kind in ("vmm_prod", "vmm_done", "vmm_read", "wake"):
                self.vmm_effect(st)
                continue
            n, sync, qi, cmds = st.a, st.b, st.c, st.cmds
            q = self.queues[qi]
            last_q = qi
            ctx.update(issue=self.env.now, retries=0, reserved=-1)
            if q.alg in ("linux-lockfree", "atomic-add"):
                yield from self.lockfree(c, q, qi, cmds, sync, ctx)
            elif q.alg == "spinlock":
                yield from self.spinlock(c, q, qi, cmds, sync, ctx)
            elif q.alg == "exclusive":
                yield from self.exclusive(c, q, qi, cmds, sync, ctx)
            else:
                yield from self.direct(c, q, qi, cmds, ctx, i == len(op.steps) - 1)
                sync = 0
            op_retries += ctx["retries"]
            op_cmds += n
            n_batches += 1
            if sync:
                sync_t = self.sync_done[c]
        if irq:
            self.fixup_latencies.append(self.env.now - ready)
        elif thread:
            pass
        elif not (op.steps and op.steps[-1].kind == "batch" and self.queues[last_q].alg == "direct"):
            self.op_records.append({"op_id": ctx["op_id"], "cpu": c, "queue": last_q, "ready_ps": ready,
                                    "complete_ps": self.env.now, "sync_complete_ps": sync_t, "cmds": op_cmds,
                                    "batches": n_batches, "retries": op_retries})  # fmt: skip

    def space_wait(self, c: int, q: Queue):
        q.space_waiters.append(c)
        yield self.block(c)

    def lockfree(
        self, c: int, q: Queue, qi: int, cmds: list[tuple[int, int, int]], sync: int, ctx: dict[str, Any]
    ):
        e, n, k = self.P + c, len(cmds), self.k
        # llq.val = READ_ONCE(cmdq->q.llq.val)
        end = self.line(c, q, "llq")
        seen = (q.ver, q.prod, q.cons_shadow)
        yield self.at(e, end)
        while True:
            ver, prod, cons = seen
            if q.size - (prod - cons) < n:  # arm_smmu_cmdq_poll_until_not_full
                yield self.at(e, self.env.now + k.mmio_read)  # readl(CONS)
                if q.hw_cons > q.cons_shadow:
                    end = self.line(c, q, "llq")  # WRITE_ONCE(llq.cons, CONS)
                    q.cons_shadow = q.hw_cons
                    q.ver += 1
                    yield self.at(e, end)
                elif q.size - (q.prod - q.hw_cons) < n:
                    yield from self.space_wait(c, q)  # truly full: wait for CONS to move
                    continue
                end = self.line(c, q, "llq")  # llq.val = READ_ONCE(cmdq->q.llq.val)
                seen = (q.ver, q.prod, q.cons_shadow)
                yield self.at(e, end)
                continue
            end = self.line(c, q, "llq")  # cmpxchg_relaxed(&llq.val, old, new)
            if q.alg == "atomic-add" or q.ver == ver:
                start, owner = q.prod, not q.owned
                q.prod += n
                q.owned = True
                q.ver += 1
                ctx["reserved"] = end
                yield self.at(e, end)
                break
            ctx["retries"] += 1
            seen = (q.ver, q.prod, q.cons_shadow)
            yield self.at(e, end)
        while start + n - q.hw_cons > q.size:  # atomic-add ran ahead of CONS
            yield from self.space_wait(c, q)
        yield self.at(e, self.env.now + n * k.cmd_write)
        self.write(c, q, qi, start, cmds, sync, ctx, False)
        if sync:  # arm_smmu_cmdq_shared_lock
            end = self.line(c, q, "lock")
            q.lock += 1
            yield self.at(e, end)
        end = self.line(c, q, "valid")  # arm_smmu_cmdq_set_valid_map
        for ctr in range(start, start + n):
            q.slot(ctr).valid = ctr
        while q.valid_upto < q.prod and q.slot(q.valid_upto).valid == q.valid_upto:
            q.valid_upto += 1
        if q.valid_waiter >= 0 and q.valid_upto >= self.owner_end[q.valid_waiter]:
            w, q.valid_waiter = q.valid_waiter, -1
            self.wake(w, end)
        yield self.at(e, end)
        if owner:
            while True:  # wait until the previous owner is done
                end = self.line(c, q, "owner")
                if q.owner_prod == start:
                    yield self.at(e, end)
                    break
                q.owner_waiter = c
                yield self.block(c)
            end = self.line(c, q, "llq")  # fetch_andnot(OWNED): gather
            gathered = q.prod
            self.owner_end[c] = gathered
            q.owned = False
            q.ver += 1
            yield self.at(e, end)
            while True:  # poll the valid map over the gathered range
                end = self.line(c, q, "valid")
                if q.valid_upto >= gathered:
                    yield self.at(e, end)
                    break
                q.valid_waiter = c
                yield self.block(c)
            if q.vmm:  # the PROD write exits; the VMM thread emulates it and wakes us
                self.counters["exits"] += 1
                yield self.at(e, self.env.now + k.trap // 2)
                ev = self.block(c)
                self.submit_vmm(c, self.prod_exit_ops(c, qi, gathered))
                yield ev
            else:
                yield self.at(e, self.env.now + k.mmio_write)  # write PROD
                self.publish(q, gathered)
            end = self.line(c, q, "owner")  # owner_prod = prod
            q.owner_prod = gathered
            if q.owner_waiter >= 0:
                w, q.owner_waiter = q.owner_waiter, -1
                self.wake(w, end)
            yield self.at(e, end)
        if not sync:
            return
        slot = start + n - 1
        if q.wait != "msi":
            end = self.line(c, q, "llq")
            seen_cons = q.cons_shadow
            yield self.at(e, end)
            if seen_cons <= slot and q.vmm:
                yield from self.vmm_sync_wait(c, q, qi, slot)
            elif seen_cons <= slot:
                yield from self.wait_sync(c, q, self.env.now)
        else:
            yield from self.wait_sync(c, q, self.env.now)
        end = self.line(c, q, "lock")  # shared_tryunlock: atomic_read(&lock)
        last = q.lock == 1
        yield self.at(e, end)
        if last:
            end = self.line(c, q, "llq")
            q.cons_shadow = slot + 1
            q.ver += 1
            yield self.at(e, end)
        end = self.line(c, q, "lock")
        q.lock -= 1
        yield self.at(e, end)

    owner_end: dict[int, int]

    def vmm_sync_wait(self, c: int, q: Queue, qi: int, slot: int):  # type: ignore[no-untyped-def]
        """poll_until_consumed on an emulated queue: queue_poll, then a trapped CONS read (or a vIRQ)."""
        e, k = self.P + c, self.k
        if q.wait == "virq":
            if self.sync_done[c] >= 0:
                self.counters["guest_irqs"] += 1
                yield self.at(e, max(self.env.now, self.sync_done[c]) + k.virq)
                return
            ev = self.block(c)
            self.waiting[c] = (ev, self.env.now, 0)
            yield ev
            return
        spins, delay = 0, k.udelay
        while True:
            spins += 1
            if spins < k.poll_spins:
                t = self.env.now + k.spin
            else:
                t = self.env.now + delay
                delay *= 2
                spins = 0
            yield self.at(e, t)
            self.counters["exits"] += 1
            yield self.at(e, self.env.now + k.trap // 2)
            ev = self.block(c)
            self.submit_vmm(c, self.read_exit_ops(c, qi))
            yield ev
            if self.val[c] > slot:
                return

    def spinlock(
        self, c: int, q: Queue, qi: int, cmds: list[tuple[int, int, int]], sync: int, ctx: dict[str, Any]
    ):
        e, n, k = self.P + c, len(cmds), self.k
        end = self.line(c, q, "lock")
        if q.lock < 0:
            q.lock = c
        else:
            q.fifo.append(c)
            yield self.block(c)
            end = self.line(c, q, "lock")
        ctx["reserved"] = end
        yield self.at(e, end)
        for i, cmd in enumerate(cmds):
            while q.prod + 1 - q.hw_cons > q.size:
                yield from self.space_wait(c, q)
            yield self.at(e, self.env.now + k.cmd_write + k.mmio_write)
            ctr = q.prod
            q.prod += 1
            self.write(c, q, qi, ctr, [cmd], sync if i == n - 1 else 0, ctx, False)
            self.publish(q, ctr + 1)
        if sync:
            yield from self.wait_sync(c, q, self.env.now)
        end = self.line(c, q, "lock")
        if q.fifo:
            w = q.fifo.popleft()
            q.lock = w
            self.wake(w, end)
        else:
            q.lock = -1
        yield self.at(e, end)

    def exclusive(
        self, c: int, q: Queue, qi: int, cmds: list[tuple[int, int, int]], sync: int, ctx: dict[str, Any]
    ):
        e, n, k = self.P + c, len(cmds), self.k
        while q.prod + n - q.hw_cons > q.size:
            yield from self.space_wait(c, q)
            yield self.at(e, self.env.now + k.mmio_read)
        start = q.prod
        q.prod += n
        ctx["reserved"] = self.env.now
        yield self.at(e, self.env.now + n * k.cmd_write)
        self.write(c, q, qi, start, cmds, sync, ctx, False)
        yield self.at(e, self.env.now + k.mmio_write)
        self.publish(q, start + n)
        if sync:
            yield from self.wait_sync(c, q, self.env.now)

    def direct(
        self, c: int, q: Queue, qi: int, cmds: list[tuple[int, int, int]], ctx: dict[str, Any], last: bool
    ):
        n = len(cmds)
        while q.prod + n - q.hw_cons > q.size:
            yield from self.space_wait(c, q)
        start = q.prod
        q.prod += n
        ctx["reserved"] = self.env.now
        self.write(c, q, qi, start, cmds, 0, ctx, last)
        self.publish(q, start + n)

    def run(self) -> Reference:
        self.busy_until = {}
        self.owner_end = {}
        self.env.run()
        return self


def run_reference(cfg: EngineConfig, streams: list[list[OpBlock]]) -> Reference:
    ref = Reference(cfg, streams)
    ref.busy_until = {}
    ref.owner_end = {}
    ref.env.run()
    return ref
