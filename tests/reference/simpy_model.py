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
    """A contended cache line: a FIFO server, or holder-first arbitration (see cmdqv_lab.engine.lines)."""

    free: int = 0
    owner: int = -1
    run: int = 0  # consecutive accesses by owner
    pending: dict[int, int] = field(default_factory=dict)  # cpu -> request time
    arb: int = -1  # the pending CPU carrying the next arbitration
    resv: int = -1  # granted, not yet served
    round: int = -1  # requests made up to this time go before later ones
    index: int = 0  # the engine's line number (queue * LINES_PER_Q + which)


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
    slock: int = -1  # cas-spinlock-fallback: holder of cmdq->slock
    gsync: int = 0  # atomic-add: llq.sync, the CMD_SYNCs reserved since the owner cleared the word
    xcl: bool = False  # cmdq->lock held exclusively (its sign bit); ``lock`` is the rest of the word
    lock_waiters: list[int] = field(default_factory=list)  # CPUs spinning in shared_lock
    llq_waiters: list[int] = field(default_factory=list)  # CPUs in poll_until_not_full's queue_poll loop
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
        default_factory=lambda: {k: Line() for k in ("llq", "lock", "valid", "owner", "cons")}
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
        self.v59 = cfg.costs.cmdq_layout == 1  # owner_prod, lock and the valid_map pointer share a line
        for qi, q in enumerate(self.queues):
            q.lock = -1 if q.alg == "spinlock" else 0  # spinlock: holder CPU, -1 free
            for which, name in enumerate(("llq", "lock", "valid", "owner", "cons")):
                q.lines[name].index = qi * 5 + which  # the engine's line number (LINES_PER_Q = 5)
            if self.v59:
                q.lines["owner"] = q.lines["lock"]
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
        self.xu = int(cfg.costs.excl_unlock)
        self.lgen = [0] * cfg.n_cpus
        self.bypass = 0
        self.lgrant: list[Line | None] = [None] * cfg.n_cpus  # 0 none, 1 set-zero, 2 clear-sign
        self.poll_t0: dict[int, int] = {}
        self.slw: list[int] = []  # shared_lock durations
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

    # ------------------------------------------------------------------ cache lines
    def distance(self, a: int, b: int) -> int:
        k = self.k
        if a == b:
            return 0
        if not k.topology:
            return 1
        if a // k.cluster_cpus == b // k.cluster_cpus:
            return 1
        if a // k.die_cpus == b // k.die_cpus:
            return 2
        if a // k.socket_cpus == b // k.socket_cpus:
            return 3
        return 4

    def home_distance(self, cpu: int) -> int:
        """cmdqv_lab.engine.lines.xfer_cost (runner.home_die): the requester's distance to the lines' home die."""
        k = self.k
        if k.line_home == 0:
            return 0
        die = 1 if k.line_home == 1 else k.socket_cpus // k.die_cpus
        if cpu // k.die_cpus == die:
            return 2
        return 3 if cpu // k.socket_cpus == die * k.die_cpus // k.socket_cpus else 4

    def xfer(self, prev: int, cpu: int) -> int:
        k = self.k
        if prev == cpu:
            return k.line_local
        if not k.topology:
            return k.line_xfer
        d = max(2 if prev < 0 else self.distance(prev, cpu), self.home_distance(cpu))
        return {1: k.xfer_cluster, 2: k.xfer_die, 3: k.xfer_xdie, 4: k.xfer_socket}[d]

    def holder_wins(self, c: int, ln_index: int) -> bool:
        """cmdqv_lab.engine.lines.holder_wins, written again: splitmix64's finaliser of (time, CPU, line)."""
        ppm = self.k.line_hold_ppm
        if ppm >= 1_000_000:
            return True
        m = (1 << 64) - 1
        h = (self.env.now * 0x9E3779B97F4A7C15 + c * 4099 + ln_index) & m
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & m
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & m
        h ^= h >> 31
        return h % 1_000_000 < ppm

    def window_end(self, ln: Line) -> int:
        return ln.free + (self.k.line_hold if ln.run < self.k.line_hold_max else 0)

    def sched_cpu(self, c: int, t: int | None) -> None:
        """The engine's ``sched`` for a CPU waiting for a line: its one pending wake-up is now at ``t``
        (None: none); earlier timers are void."""
        self.lgen[c] += 1
        if t is None:
            return
        g = self.lgen[c]
        ev = self.env.event()
        ev._ok = True
        ev._value = None

        def fire(_ev: simpy.Event, c: int = c, g: int = g) -> None:
            if self.lgen[c] == g and c in self.blocked:
                self.wake(c, self.env.now)

        ev.callbacks.append(fire)
        self.env.schedule(ev, priority=self.P + c, delay=t - self.env.now)

    def line(self, c: int, q: Queue, name: str, read: bool = False) -> int:
        """An access to line ``name``: an atomic or a store, or a plain load (``read``: no holder priority)."""
        ln, now = q.lines[name], self.env.now
        start = max(now, ln.free)
        prev = ln.owner
        end = start + self.xfer(prev, c)
        ln.free, ln.owner = end, c
        if not self.k.line_arb:
            return end
        no_priority = read and self.k.load_priority == 1  # load_priority=none: a load takes it shared
        ln.run = self.k.line_hold_max if no_priority else (ln.run + 1 if prev == c else 1)
        ln.resv = -1
        if ln.pending:
            if ln.arb < 0:
                ln.arb = min(ln.pending)
            self.sched_cpu(ln.arb, self.window_end(ln))
        return end

    def try_grant(self, c: int, ln: Line) -> bool:
        """:func:`cmdqv_lab.engine.lines.line_grant` (holder-first)."""
        now = self.env.now
        if self.lgrant[c] is ln:
            self.lgrant[c] = None
            return True
        wend = self.window_end(ln)
        if c not in ln.pending:
            if ln.resv < 0:
                if not ln.pending and (now >= wend or c == ln.owner):
                    return True
                if c == ln.owner and now < wend and self.holder_wins(c, ln.index):
                    self.bypass += 1
                    return True
            ln.pending[c] = now
            if ln.arb < 0 and ln.resv < 0:
                ln.arb = c
                self.sched_cpu(c, wend)
            else:
                self.sched_cpu(c, None)
            return False
        if ln.resv >= 0:
            self.sched_cpu(c, None)
            return False
        if now < wend:
            self.sched_cpu(c, wend)
            return False
        run_out = ln.run >= self.k.line_hold_max

        def key(w: int) -> tuple[int, int, int]:
            d = self.distance(ln.owner, w) if ln.owner >= 0 else 1
            return (5 if (w == ln.owner and run_out) else d, ln.pending[w], w)

        if all(t > ln.round for t in ln.pending.values()):
            ln.round = now  # a new round: every pending request
        best = min((w for w, t in ln.pending.items() if t <= ln.round), key=key)
        if ln.pending[best] > min(ln.pending.values()):
            self.bypass += 1
        del ln.pending[best]
        ln.resv = best
        if best == c:
            ln.arb = -1
            return True
        self.lgrant[best] = ln
        self.sched_cpu(best, now)
        self.sched_cpu(c, None)
        return False

    def grant(self, c: int, q: Queue, name: str):  # type: ignore[no-untyped-def]
        """Wait until CPU ``c`` may access line ``name`` (fifo: at once)."""
        if not self.k.line_arb:
            return
        while not self.try_grant(c, q.lines[name]):
            yield self.block(c)

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
            if q.alg in ("linux-lockfree", "atomic-add", "cas-spinlock-fallback"):
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

    def aa_reserve(self, c: int, q: Queue, n: int, sync: int, ctx: dict[str, Any]):  # type: ignore[no-untyped-def]
        """Garry's v2: atomic64_fetch_add(sync, count, prod), then READ_ONCE(llq.cons) on its own line."""
        e, k = self.P + c, self.k
        yield from self.grant(c, q, "llq")
        end = self.line(c, q, "llq")  # atomic64_fetch_add(space.val, &cmdq->q.llq.atomic)
        start, owner = q.prod, not q.owned
        q.prod += n
        q.owned = True
        q.gsync += sync
        q.ver += 1
        ctx["reserved"] = end
        yield self.at(e, end)
        yield from self.grant(c, q, "cons")
        end = self.line(c, q, "cons", read=True)  # space.cons = READ_ONCE(cmdq->q.llq.cons)
        has_space = start + n - q.cons_shadow <= q.size
        yield self.at(e, end if has_space else end + k.mmio_read)  # else readl(CONS)
        return start, owner

    def lf_reserve(self, c: int, q: Queue, n: int, ctx: dict[str, Any]):  # type: ignore[no-untyped-def]
        """linux-lockfree / cas-spinlock-fallback: read llq, space check, cmpxchg (retried)."""
        e, k = self.P + c, self.k
        # llq.val = READ_ONCE(cmdq->q.llq.val)
        yield from self.grant(c, q, "llq")
        end = self.line(c, q, "llq", read=True)
        seen = (q.ver, q.prod, q.cons_shadow)
        yield self.at(e, end)
        locked = False  # cas-spinlock-fallback: holding cmdq->slock
        while True:
            ver, prod, cons = seen
            if q.size - (prod - cons) < n and locked:  # spin_unlock(&cmdq->slock) before polling
                yield from self.slock_release(c, q)
                locked = False
            if q.size - (prod - cons) < n and self.xu:
                seen = yield from self.poll_until_not_full(c, q)
                continue
            if q.size - (prod - cons) < n:  # arm_smmu_cmdq_poll_until_not_full
                yield self.at(e, self.env.now + k.mmio_read)  # readl(CONS)
                if q.hw_cons > q.cons_shadow:
                    hw = q.hw_cons
                    yield from self.grant(c, q, "llq")
                    end = self.line(c, q, "llq")  # WRITE_ONCE(llq.cons, CONS)
                    q.cons_shadow = hw
                    q.ver += 1
                    yield self.at(e, end)
                elif q.size - (q.prod - q.hw_cons) < n:
                    yield from self.space_wait(c, q)  # truly full: wait for CONS to move
                    continue
                yield from self.grant(c, q, "llq")
                end = self.line(c, q, "llq", read=True)  # llq.val = READ_ONCE(cmdq->q.llq.val)
                seen = (q.ver, q.prod, q.cons_shadow)
                yield self.at(e, end)
                continue
            yield from self.grant(c, q, "llq")
            end = self.line(c, q, "llq")  # cmpxchg_relaxed(&llq.val, old, new)
            if q.ver == ver:
                start, owner = q.prod, not q.owned
                q.prod += n
                q.owned = True
                q.ver += 1
                ctx["reserved"] = end
                yield self.at(e, end)
                if locked:
                    yield from self.slock_release(c, q)
                return start, owner
            ctx["retries"] += 1
            if q.alg == "cas-spinlock-fallback":
                yield self.at(e, end)
                if not locked:  # spin_lock(&cmdq->slock)
                    yield from self.grant(c, q, "lock")
                    end = self.line(c, q, "lock")
                    if q.slock < 0:
                        q.slock = c
                    else:
                        q.fifo.append(c)
                        yield self.block(c)
                        yield from self.grant(c, q, "lock")
                        end = self.line(c, q, "lock")  # cond_read: LDXR + WFE (exclusive)
                    locked = True
                    yield self.at(e, end)
                yield from self.grant(c, q, "llq")
                end = self.line(c, q, "llq", read=True)  # llq.val = READ_ONCE(cmdq->q.llq.val)
                seen = (q.ver, q.prod, q.cons_shadow)
                yield self.at(e, end)
                continue
            seen = (q.ver, q.prod, q.cons_shadow)
            yield self.at(e, end)

    def lockfree(
        self, c: int, q: Queue, qi: int, cmds: list[tuple[int, int, int]], sync: int, ctx: dict[str, Any]
    ):
        e, n, k = self.P + c, len(cmds), self.k
        if q.alg == "atomic-add":
            start, owner = yield from self.aa_reserve(c, q, n, sync, ctx)
        else:
            start, owner = yield from self.lf_reserve(c, q, n, ctx)
        while start + n - q.hw_cons > q.size:  # atomic-add ran ahead of CONS
            yield from self.space_wait(c, q)
        yield self.at(e, self.env.now + n * k.cmd_write)
        self.write(c, q, qi, start, cmds, sync, ctx, False)
        if sync and q.alg != "atomic-add":  # arm_smmu_cmdq_shared_lock (v2: the owner takes it)
            yield from self.shared_lock(c, q)
        yield from self.valid_map_pointer(c, q)
        yield from self.grant(c, q, "valid")
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
                yield from self.grant(c, q, "owner")
                end = self.line(c, q, "owner")  # cond_read: LDXR + WFE (exclusive)
                if q.owner_prod == start:
                    yield self.at(e, end)
                    break
                q.owner_waiter = c
                yield self.block(c)
            yield from self.grant(c, q, "llq")
            end = self.line(c, q, "llq")  # fetch_andnot(OWNED): gather
            gathered = q.prod
            self.owner_end[c] = gathered
            q.owned = False
            sync_count, q.gsync = q.gsync, 0
            q.ver += 1
            yield self.at(e, end)
            yield from self.valid_map_pointer(c, q)
            while True:  # poll the valid map over the gathered range
                yield from self.grant(c, q, "valid")
                end = self.line(c, q, "valid")  # cond_read: LDXR + WFE (exclusive)
                if q.valid_upto >= gathered:
                    yield self.at(e, end)
                    break
                q.valid_waiter = c
                yield self.block(c)
            if q.alg == "atomic-add":  # arm_smmu_cmdq_shared_lock(cmdq, sync_count)
                t0 = self.env.now
                yield from self.grant(c, q, "lock")
                end = self.line(c, q, "lock")
                q.lock += sync_count
                self.slw.append(end - t0)
                yield self.at(e, end)
            if q.vmm:  # the PROD write exits; the VMM thread emulates it and wakes us
                self.counters["exits"] += 1
                yield self.at(e, self.env.now + k.trap // 2)
                ev = self.block(c)
                self.submit_vmm(c, self.prod_exit_ops(c, qi, gathered))
                yield ev
            else:
                yield self.at(e, self.env.now + k.mmio_write)  # write PROD
                self.publish(q, gathered)
            yield from self.grant(c, q, "owner")
            end = self.line(c, q, "owner")  # owner_prod = prod
            q.owner_prod = gathered
            if q.owner_waiter >= 0:
                w, q.owner_waiter = q.owner_waiter, -1
                self.wake(w, end)
            yield self.at(e, end)
        if not sync:
            return
        slot = start + n - 1
        cons_line = "cons" if q.alg == "atomic-add" else "llq"
        if q.wait != "msi":
            yield from self.grant(c, q, cons_line)
            end = self.line(c, q, cons_line, read=True)
            seen_cons = q.cons_shadow
            yield self.at(e, end)
            if seen_cons <= slot and q.vmm:
                yield from self.vmm_sync_wait(c, q, qi, slot)
            elif seen_cons <= slot:
                yield from self.wait_sync(c, q, self.env.now)
        else:
            yield from self.wait_sync(c, q, self.env.now)
        yield from self.grant(c, q, "lock")
        end = self.line(c, q, "lock", read=True)  # shared_tryunlock: atomic_read(&lock)
        last = q.lock == 1
        yield self.at(e, end)
        if last:
            yield from self.grant(c, q, cons_line)
            end = self.line(c, q, cons_line)
            changed = q.cons_shadow != slot + 1
            q.cons_shadow = slot + 1
            q.ver += 1
            if changed:
                self.wake_llq_pollers(q, end)
            yield self.at(e, end)
        yield from self.grant(c, q, "lock")
        end = self.line(c, q, "lock")
        q.lock -= 1
        yield self.at(e, end)

    owner_end: dict[int, int]

    def valid_map_pointer(self, c: int, q: Queue):  # type: ignore[no-untyped-def]
        """The v5.9 layout: load cmdq->valid_map, on the line of owner_prod and lock."""
        if self.v59:
            yield from self.grant(c, q, "lock")
            end = self.line(c, q, "lock", read=True)
            yield self.at(self.P + c, end)

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

    # ------------------------------------------------------------------ cmdq->lock (exclusive_unlock)
    def poll_seen(self, t0: int, tw: int) -> int:
        """First queue_poll read at or after ``tw`` of a loop begun at ``t0`` (reads of an unchanged line
        are cache hits: only cpu_relax and the doubling udelay count)."""
        k = self.k
        if k.spin + k.udelay == 0:
            return max(t0, tw)
        t, spin_cnt, delay = t0, 0, k.udelay
        while True:
            spin_cnt += 1
            if spin_cnt < k.poll_spins:
                t += k.spin
            else:
                t += delay
                delay *= 2
                spin_cnt = 0
            if tw <= t:
                return t

    def wake_lock_waiters(self, q: Queue, t: int) -> None:
        for w in sorted(q.lock_waiters):
            self.wake(w, t)
        q.lock_waiters.clear()

    def wake_llq_pollers(self, q: Queue, t: int) -> None:
        for w in sorted(q.llq_waiters):
            self.wake(w, self.poll_seen(self.poll_t0[w], t))
        q.llq_waiters.clear()

    def poll_until_not_full(self, c: int, q: Queue):
        """arm_smmu_cmdq_poll_until_not_full with cmdq->lock; returns the llq snapshot it read."""
        e, k = self.P + c, self.k
        yield from self.grant(c, q, "lock")
        end = self.line(c, q, "lock")  # exclusive_trylock: cmpxchg(&lock, 0, INT_MIN)
        if not q.xcl and q.lock == 0:
            q.xcl = True
            yield self.at(e, end + k.mmio_read)  # readl_relaxed(cons_reg)
            yield from self.grant(c, q, "llq")
            end = self.line(c, q, "llq")  # WRITE_ONCE(llq.cons, CONS)
            if q.hw_cons != q.cons_shadow:
                q.cons_shadow = q.hw_cons
                q.ver += 1
                self.wake_llq_pollers(q, end)
            yield self.at(e, end)
            yield from self.grant(c, q, "lock")
            end = self.line(c, q, "lock")  # exclusive_unlock
            q.xcl = False
            if self.xu == 1:  # set-zero
                q.lock = 0
            self.wake_lock_waiters(q, end)
            yield self.at(e, end)
            yield from self.grant(c, q, "llq")
            end = self.line(c, q, "llq", read=True)  # llq->val = READ_ONCE(llq.val)
            seen = (q.ver, q.prod, q.cons_shadow)
            yield self.at(e, end)
            return seen
        yield self.at(e, end)
        t0 = -1
        while True:  # queue_poll loop
            yield from self.grant(c, q, "llq")
            end = self.line(c, q, "llq", read=True)
            seen = (q.ver, q.prod, q.cons_shadow)
            yield self.at(e, end)
            if seen[1] - seen[2] < q.size:  # !queue_full(llq)
                return seen
            if t0 < 0:
                t0 = self.env.now
            if q.ver != seen[0]:
                yield self.at(e, self.poll_seen(t0, self.env.now))
                continue
            self.poll_t0[c] = t0
            q.llq_waiters.append(c)
            yield self.block(c)

    def slock_release(self, c: int, q: Queue):
        """spin_unlock(&cmdq->slock): hand it to the next waiter (FIFO)."""
        yield from self.grant(c, q, "lock")
        end = self.line(c, q, "lock")
        if q.fifo:
            w = q.fifo.popleft()
            q.slock = w
            self.wake(w, end)
        else:
            q.slock = -1
        yield self.at(self.P + c, end)

    def shared_lock(self, c: int, q: Queue):
        """arm_smmu_cmdq_shared_lock: fetch_inc; if the lock was exclusive, wait (set-zero: cond_read
        VAL >= 0 then cmpxchg(val, val + 1); clear-sign: cond_read VAL > 0)."""
        e = self.P + c
        t0 = self.env.now
        yield from self.grant(c, q, "lock")
        end = self.line(c, q, "lock")  # atomic_fetch_inc_relaxed
        q.lock += 1
        if not self.xu or not q.xcl:
            self.slw.append(end - t0)
            yield self.at(e, end)
            return
        yield self.at(e, end)
        clear_sign = self.xu == 2

        def ok() -> bool:
            return not q.xcl and (q.lock > 0 if clear_sign else True)

        while True:
            if not ok():
                q.lock_waiters.append(c)
                yield self.block(c)
            yield from self.grant(c, q, "lock")
            end = self.line(c, q, "lock")  # the cond_read (LDXR + WFE: exclusive)
            if not ok():
                yield self.at(e, end)
                continue
            if clear_sign:
                yield self.at(e, end)
                break
            val = q.lock
            yield self.at(e, end)
            yield from self.grant(c, q, "lock")
            end = self.line(c, q, "lock")  # cmpxchg(&lock, val, val + 1)
            if not q.xcl and q.lock == val:
                q.lock += 1
                yield self.at(e, end)
                break
            yield self.at(e, end)
        self.slw.append(self.env.now - t0)

    def spinlock(
        self, c: int, q: Queue, qi: int, cmds: list[tuple[int, int, int]], sync: int, ctx: dict[str, Any]
    ):
        e, n, k = self.P + c, len(cmds), self.k
        yield from self.grant(c, q, "lock")
        end = self.line(c, q, "lock")
        if q.lock < 0:
            q.lock = c
        else:
            q.fifo.append(c)
            yield self.block(c)
            yield from self.grant(c, q, "lock")
            end = self.line(c, q, "lock")  # cond_read: LDXR + WFE (exclusive)
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
        yield from self.grant(c, q, "lock")
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


def run_reference(cfg: EngineConfig, streams: list[list[OpBlock]], until_ps: int | None = None) -> Reference:
    """Run to the end, or process the steps at times up to ``until_ps`` (as ``run_engine(until_ps=...)``)."""
    ref = Reference(cfg, streams)
    ref.busy_until = {}
    ref.owner_end = {}
    ref.env.run(until=None if until_ps is None else until_ps + 1)
    return ref
