"""The consume-pass state machine behind :func:`cmdqv_lab.workloads.qemu_trace.parse_trace`.

:class:`Parser` reads trace lines in order and rebuilds what QEMU's ``smmuv3_cmdq_consume`` did:
which pass (doorbell) read which slot, which command was there, and the detail events QEMU printed
while executing it. It checks the sequence as it goes (an opcode needs a consume line before it,
CONS advances one slot per command and wraps at the queue size, PROD is constant in a pass, detail
events follow the opcode they describe, a command QEMU always describes has its detail event, the
last line ends with a newline) and reports the first violation with ``file:line``, or, lenient,
counts it and carries on. A trace with no command at all is an error either way: an empty file is
not a clean trace. A fast path handles the four frequent events with one regular expression;
everything else goes through the per-event grammar of :mod:`qemu_events`. Lines arrive in blocks
(:class:`~cmdqv_lab.workloads.trace_io.TraceReader`), so a trace is never held in memory as text.

>>> p = Parser("t.log", lenient=True, gz=False)
>>> t = p.run(["smmuv3_cmdq_opcode <--- SMMU_CMD_SYNC", "smmuv3_cmdq_consume_out prod:0, cons:0, prod_wrap:0, cons_wrap:0 ",
...            "smmuv3_cmdq_consume prod=1 cons=0 prod.wrap=0 cons.wrap=0", "smmuv3_cmdq_opcode <--- SMMU_CMD_TLBI_NH_ASID",
...            "smmuv3_cmdq_consume_out prod:1, cons:1, prod_wrap:0, cons_wrap:0 "])
>>> t.meta.malformed, t.meta.empty_passes, t.commands.height
({'sequence': 1, 'missing_detail': 1}, 1, 1)
>>> Parser("t.log", lenient=True, gz=False).run(["smmuv3_translate_success sid=0x8"])
Traceback (most recent call last):
...
cmdqv_lab.errors.TraceFormatError: t.log: no SMMUv3 commands in 1 lines (no smmuv3_cmdq_opcode event: not a command-queue trace?)
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

from cmdqv_lab.errors import TraceFormatError
from cmdqv_lab.workloads import qemu_events as ev
from cmdqv_lab.workloads.trace_frames import DETAIL_FIELDS, Trace, TraceMeta, build_trace
from cmdqv_lab.workloads.trace_io import TraceReader

__all__ = ["Parser"]

_VMID_ASID = (-1, 0xFFFF)  # QEMU prints -1 for "not used"
_SID = (0, 0xFFFFFFFF)


class Parser:
    """The consume-pass state machine; one instance per parse."""

    def __init__(self, source: str, lenient: bool, gz: bool) -> None:
        self.source, self.lenient, self.gz = source, lenient, gz
        self.skipped: dict[str, int] = {}
        self.malformed: dict[str, int] = {}
        self.rows: list[tuple[Any, ...]] = []  # trace_frames.ROW_FIELDS per command
        self.details: dict[int, list[Any]] = {}  # command row -> trace_frames.DETAIL_FIELDS
        self.errors: dict[int, str] = {}
        self.drows: list[tuple[Any, ...]] = []  # trace_frames.DOORBELL_ROW_FIELDS per doorbell
        self.n_events = self.passes = self.empty = self.stalled = self.unterminated = 0
        self.variants: set[str] = set()
        self.t0: int | None = None
        self.t_last: int | None = None
        self.log2size: int | None = None
        self.pass_: list[Any] | None = None  # open pass: line, t, pid, prod, pw, cons, cw, first, n, error
        self.slot: tuple[int, int, int] | None = None  # (cons, wrap, line) of the last consume line
        self.slot_used = False  # a command was read at that slot
        self.cmd: int | None = None  # the command row detail events may still attach to
        self.cmd_details: set[str] = set()
        self.need: frozenset[str] | None = None  # detail events one of which the open command still needs
        self.last_out: tuple[int, int] | None = None  # (prod, wrap) at the end of the previous pass
        self.prev_stopped = False
        self.n_lines = 0

    def _fail(self, kind: str, lineno: int, msg: str) -> None:
        """A malformed or inconsistent line: raise, or (lenient) count it."""
        if not self.lenient:
            raise TraceFormatError(f"{self.source}:{lineno}: {msg}")
        self.malformed[kind] = self.malformed.get(kind, 0) + 1

    def _check(self, name: str, lineno: int, *checks: tuple[str, int, tuple[int, int]]) -> bool:
        for what, v, (lo, hi) in checks:
            if not lo <= v <= hi:
                digits = str(abs(v))
                shown = (
                    str(v)
                    if len(digits) <= 20
                    else f"{'-' if v < 0 else ''}{digits[:8]}...({len(digits)} digits)"
                )
                self._fail("bad_arguments", lineno, f"{name}: {what}={shown} out of range {lo} .. {hi}")
                return False
        return True

    def run(self, lines: list[str]) -> Trace:
        """Parse ``lines`` (without their newlines; the list may be modified) into a :class:`Trace`.

        A last element ``""`` is the end of a text that ended with a newline and is dropped.
        """
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        return self.run_blocks([lines])

    def run_blocks(self, blocks: Iterable[list[str]], reader: TraceReader | None = None) -> Trace:
        """Parse blocks of lines (``reader``'s, if given: its partial last line is reported)."""
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of small tuples: the cyclic GC would rescan them again and again
        try:
            self._run(blocks, reader)
            if reader is not None:
                self.gz = reader.gz
            if not self.rows:
                what = (
                    f"no SMMUv3 commands in {self.n_lines} lines"
                    if self.n_lines
                    else "empty trace (no lines)"
                )
                raise TraceFormatError(
                    f"{self.source}: {what} (no smmuv3_cmdq_opcode event: not a command-queue trace?)"
                )
            return build_trace(self.rows, self.details, self.errors, self.drows, self._meta())
        finally:
            if gc_was_enabled:
                gc.enable()

    def _meta(self) -> TraceMeta:
        variants, t0, t1 = self.variants, self.t0, self.t_last
        return TraceMeta(
            source=self.source, lenient=self.lenient, n_lines=self.n_lines, n_events=self.n_events,
            skipped=dict(self.skipped), malformed=dict(self.malformed),
            format="mixed" if len(variants) > 1 else next(iter(variants), "unknown"),
            has_timestamps=t0 is not None, t0_us=t0,
            duration_s=None if t0 is None or t1 is None else (t1 - t0) / 1e6,
            passes=self.passes, empty_passes=self.empty, stalled_passes=self.stalled,
            unterminated_passes=self.unterminated, queue_log2size=self.log2size, gzip=self.gz,
        )  # fmt: skip

    def _run(self, blocks: Iterable[list[str]], reader: TraceReader | None) -> None:
        it = iter(blocks)
        block = next(it, None)
        base = 0
        while block is not None:
            nxt = next(it, None)
            # the number of the file's last line, once it is in this block (none if it has no newline)
            n = base + len(block) if nxt is None and (reader is None or reader.partial is None) else -1
            self._run_block(block, base, n)
            base += len(block)
            block = nxt
        self.n_lines = base
        partial = reader.partial if reader is not None else None
        if partial is not None:
            self.n_lines += 1
            shown = repr(partial if len(partial) <= 100 else partial[:100] + "...")
            self._fail(
                "truncated",
                self.n_lines,
                f"last line {shown} has no newline (file cut short?); --lenient drops it",
            )
        self._close_command()
        if self.pass_ is not None:
            self._fail(
                "unterminated",
                self.n_lines,
                f"trace ends inside the consume pass opened at line {self.pass_[0]}"
                " (expected smmuv3_cmdq_consume_out; file cut short?)",
            )
            self.unterminated += 1
            self._close_pass(None, None, None, None)

    def _close_command(self) -> None:
        """The open command is complete: it must have had a detail event QEMU always prints."""
        need, self.need = self.need, None
        if need is not None and self.cmd is not None:
            line, op = self.rows[self.cmd][0], self.rows[self.cmd][6]
            self._fail(
                "missing_detail",
                line,
                f"{op} is not followed by its {' or '.join(sorted(need))} line (a line lost?)",
            )

    def _run_block(self, lines: list[str], base: int, n: int) -> None:
        hot, generic, known = ev.HOT.match, ev.LINE.match, ev.KNOWN
        rows, opnames, max_index = self.rows, ev.OPCODE_NAMES, ev.MAX_INDEX
        required = ev.REQUIRED_DETAILS
        t: int | None
        pid: int | None
        for lineno, line in enumerate(lines, base + 1):
            m = hot(line)
            if m is None:  # a rarer event, another event, or not an event
                m = generic(line)
                name = m.group(4) if m is not None else None
                if name not in known:
                    kind, what = ev.classify_other(
                        line, name, m is not None and m.group(5) is not None, lineno == n
                    )
                    if kind != "skip":
                        self._fail(kind, lineno, what)
                        continue
                    self.skipped[what] = self.skipped.get(what, 0) + 1
                    if m is not None and m.group(1) is not None:  # another event: its time still counts
                        ts = int(m.group(2)) * 1_000_000 + int(m.group(3).ljust(6, "0"))
                        self.t0 = ts if self.t0 is None else self.t0
                        self.t_last = ts
                    continue
                assert m is not None and name is not None
                pid_s, sec, usec, _, args = m.groups()
                t = int(sec) * 1_000_000 + int(usec.ljust(6, "0")) if pid_s is not None else None
                pid = int(pid_s) if pid_s is not None else None
                ok = self._slow(name, (args or "").rstrip(" "), lineno, t, pid, lineno == n)
            else:
                g = m.groups()
                if g[0] is not None:
                    usec = g[2]
                    t = int(g[1]) * 1_000_000 + int(usec if len(usec) == 6 else usec.ljust(6, "0"))
                    pid = int(g[0])
                else:
                    t = pid = None
                li = m.lastindex
                if li == 7:
                    prod, cons, pw, cw = int(g[3]), int(g[4]), int(g[5]), int(g[6])
                    p, slot = self.pass_, self.slot
                    if (
                        p is not None
                        and slot is not None
                        and self.slot_used
                        and p[9] is None
                        and self.need is None
                        and prod == p[3]
                        and pw == p[4]
                        and cons == slot[0] + 1
                        and cw == slot[1]
                        and cons <= max_index
                    ):
                        self.slot, self.slot_used, self.cmd = (cons, cw, lineno), False, None  # common case
                        ok = True
                    else:
                        ok = self._consume(prod, cons, pw, cw, lineno, t, pid)
                elif li == 8:
                    p, slot, spec = self.pass_, self.slot, opnames.get(g[7])
                    if (
                        spec is not None
                        and p is not None
                        and slot is not None
                        and not self.slot_used
                        and p[9] is None
                    ):
                        self.cmd = len(rows)  # the common case of _opcode
                        rows.append((lineno, t, p[2] if pid is None else pid, p[8], slot[0], slot[1], *spec))
                        p[8] += 1
                        self.slot_used = True
                        self.cmd_details = set()
                        self.need = required.get(spec[0])
                        ok = True
                    else:
                        ok = self._opcode(g[7], lineno, t, pid)
                elif li == 12:
                    ok = self._consume_out(int(g[8]), int(g[9]), int(g[10]), int(g[11]), lineno, t)
                else:
                    ok = self._range_inval(g[12:20], lineno)
            if ok:
                self.n_events += 1
                if t is not None:
                    if self.t0 is None:
                        self.t0 = t
                    self.t_last = t

    def _slow(self, name: str, args: str, lineno: int, t: int | None, pid: int | None, last: bool) -> bool:
        """A known event the fast path did not match: parse it with its own grammar."""
        m = ev.ARGS[name].fullmatch(args)
        if m is None:
            cut = " (last line: file cut short?)" if last else ""
            self._fail(
                "bad_arguments", lineno, f"{name}: cannot parse {args!r}; expected {ev.EXPECTED[name]}{cut}"
            )
            return False
        g = m.groups()
        if name in ("smmuv3_cmdq_consume", "smmuv3_cmdq_consume_out"):
            prod, cons, pw, cw = (int(x) for x in g)
            if name == "smmuv3_cmdq_consume":
                return self._consume(prod, cons, pw, cw, lineno, t, pid)
            return self._consume_out(prod, cons, pw, cw, lineno, t)
        if name == "smmuv3_cmdq_opcode":
            return self._opcode(g[0], lineno, t, pid)
        if name == "smmuv3_cmdq_consume_error":
            return self._consume_error(int(g[1]), lineno)
        if name.endswith("range_inval"):
            return self._range_inval(g, lineno, name)
        return self._detail(name, g, lineno)

    # ------------------------------------------------------------------ core events
    def _next_slot(self, cons: int, wrap: int) -> bool:
        """Whether (cons, wrap) is the slot after the last one read; learns the queue size at a wrap."""
        assert self.slot is not None
        c, w, _ = self.slot
        if cons == c + 1 and wrap == w:
            return True
        if cons == 0 and wrap != w and (c + 1) & c == 0 and self.log2size in (None, c.bit_length()):
            self.log2size = c.bit_length()
            return True
        return False

    def _queue(self, name: str, prod: int, cons: int, pw: int, cw: int, lineno: int) -> bool:
        if prod <= ev.MAX_INDEX and cons <= ev.MAX_INDEX and pw | cw <= 1:
            return True
        w = "." if name == "smmuv3_cmdq_consume" else "_"
        index, wrap = (0, ev.MAX_INDEX), (0, 1)
        return self._check(
            name,
            lineno,
            ("prod", prod, index),
            ("cons", cons, index),
            (f"prod{w}wrap", pw, wrap),
            (f"cons{w}wrap", cw, wrap),
        )

    def _consume(
        self, prod: int, cons: int, pw: int, cw: int, lineno: int, t: int | None, pid: int | None
    ) -> bool:
        if not self._queue("smmuv3_cmdq_consume", prod, cons, pw, cw, lineno):
            return False
        self._close_command()
        p, prev = self.pass_, self.slot
        if p is not None and prev is not None:
            lost = None
            if p[9] is not None or not self.slot_used:
                lost = (
                    "sequence",
                    f"smmuv3_cmdq_consume after line {prev[2]}, which read no command; expected"
                    " smmuv3_cmdq_opcode, smmuv3_cmdq_consume_error or smmuv3_cmdq_consume_out",
                )
            elif (prod, pw) != (p[3], p[4]):
                lost = (
                    "inconsistent",
                    f"prod={prod} prod.wrap={pw} changed inside the consume pass opened at"
                    f" line {p[0]} (expected prod={p[3]} prod.wrap={p[4]})",
                )
            elif not self._next_slot(cons, cw):
                self._fail(
                    "inconsistent",
                    lineno,
                    f"cons={cons} cons.wrap={cw} does not follow the command at"
                    f" line {prev[2]} (expected cons={prev[0] + 1} cons.wrap={prev[1]})",
                )
            if lost is not None:  # lenient: take the consume_out line as lost and start a new pass
                self._fail(lost[0], lineno, lost[1])
                self.unterminated += 1
                self._close_pass(None, None, None, None)
                p = None
        if p is None:
            self.passes += 1
            self.pass_ = [lineno, t, pid, prod, pw, cons, cw, len(self.rows), 0, None]
        self.slot, self.slot_used, self.cmd = (cons, cw, lineno), False, None
        return True

    def _opcode(self, qname: str, lineno: int, t: int | None, pid: int | None) -> bool:
        spec = ev.OPCODE_NAMES.get(qname)
        if spec is None:
            self._fail(
                "bad_arguments",
                lineno,
                f"smmuv3_cmdq_opcode: unknown command name {qname!r};"
                f" expected {ev.EXPECTED['smmuv3_cmdq_opcode']}",
            )
            return False
        p, slot = self.pass_, self.slot
        if p is None or slot is None or self.slot_used or p[9] is not None:
            self._fail(
                "sequence",
                lineno,
                "smmuv3_cmdq_opcode with no preceding smmuv3_cmdq_consume"
                " (each command read is announced by a smmuv3_cmdq_consume line)",
            )
            return False
        self.cmd = len(self.rows)
        self.rows.append((lineno, t, p[2] if pid is None else pid, p[8], slot[0], slot[1], *spec))
        p[8] += 1
        self.slot_used = True
        self.cmd_details = set()
        self.need = ev.REQUIRED_DETAILS.get(spec[0])
        return True

    def _consume_error(self, code: int, lineno: int) -> bool:
        if code not in ev.CERROR:
            self._fail(
                "bad_arguments",
                lineno,
                f"smmuv3_cmdq_consume_error: error code {code}, allowed 1 (ILL), 2 (ABT), 3 (ATC_INV_SYNC)",
            )
            return False
        p = self.pass_
        if p is None or p[9] is not None:
            self._fail(
                "sequence",
                lineno,
                "smmuv3_cmdq_consume_error outside a consume pass"
                " (expected after smmuv3_cmdq_consume or smmuv3_cmdq_opcode)",
            )
            return False
        p[9] = error = ev.CERROR[code]
        if self.slot_used and self.cmd is not None:
            self.errors[self.cmd] = error
        self.need = None  # a failed command is not executed: QEMU describes nothing
        self.cmd = None
        return True

    def _consume_out(self, prod: int, cons: int, pw: int, cw: int, lineno: int, t: int | None) -> bool:
        if not self._queue("smmuv3_cmdq_consume_out", prod, cons, pw, cw, lineno):
            return False
        self._close_command()
        p, slot = self.pass_, self.slot
        if p is None:
            self.empty += 1
        elif (prod, pw) != (p[3], p[4]):
            self._fail(
                "inconsistent",
                lineno,
                f"prod:{prod} prod_wrap:{pw} differs from the pass opened at"
                f" line {p[0]} (expected prod:{p[3]} prod_wrap:{p[4]})",
            )
        elif slot is not None:
            c, w, ln = slot
            if p[9] is not None or not self.slot_used:
                good, want = (cons, cw) == (c, w), f"cons:{c} cons_wrap:{w}, the slot it stopped at"
            else:
                good = (cons, cw) == (prod, pw) and self._next_slot(cons, cw)
                want = f"cons:{prod} cons_wrap:{pw}: one past line {ln}'s slot, equal to prod"
            if not good:
                self._fail(
                    "inconsistent", lineno, f"cons:{cons} cons_wrap:{cw} after line {ln}; expected {want}"
                )
        if p is not None:
            self._close_pass(lineno, t, cons, cw)
        self.last_out = (prod, pw)
        self.slot, self.cmd = None, None
        return True

    def _close_pass(self, lineno: int | None, t: int | None, cons: int | None, cw: int | None) -> None:
        p = self.pass_
        assert p is not None
        self.pass_ = None
        stopped = p[9] is not None or not self.slot_used
        if p[8] == 0:
            self.stalled += 1
            self.prev_stopped = True
            return
        b = self.last_out or (None, None)
        self.drows.append(
            (
                len(self.drows),
                p[0],
                lineno,
                p[1],
                t,
                p[2],
                b[0],
                b[1],
                p[3],
                p[4],
                p[5],
                p[6],
                cons,
                cw,
                p[8],
                p[7],
                p[9],
                self.prev_stopped,
            )
        )
        self.prev_stopped = stopped

    # ------------------------------------------------------------------ detail events
    def _attach(self, name: str, lineno: int) -> int | None:
        """The command row a detail event belongs to, if it may follow that row's opcode."""
        r, allowed = self.cmd, ev.DETAIL_OPCODES[name]
        if r is None:
            self._fail(
                "sequence",
                lineno,
                f"{name} does not follow a smmuv3_cmdq_opcode line"
                " (detail events come right after the command they describe)",
            )
            return None
        line, op = self.rows[r][0], self.rows[r][6]
        if allowed is not None and op not in allowed:
            self._fail(
                "sequence",
                lineno,
                f"{name} follows {op} (line {line}); expected it after {' or '.join(sorted(allowed))}",
            )
            return None
        if name in self.cmd_details and not name.endswith("range_inval"):
            self._fail("sequence", lineno, f"second {name} for the command at line {line}")
            return None
        self.cmd_details.add(name)
        if self.need is not None and name in self.need:
            self.need = None
        return r

    def _range_inval(self, g: tuple[str, ...], lineno: int, name: str | None = None) -> bool:
        vmid, asid, addr, tg, pages, ttl, leaf = (
            int(g[0]),
            int(g[1]),
            int(g[2], 16),
            int(g[3]),
            int(g[4], 16),
            int(g[5]),
            int(g[6]),
        )
        stage = int(g[7]) if g[7] else None
        name = name or ("smmuv3_range_inval" if stage is not None else "smmuv3_s1_range_inval")
        if not (
            -1 <= vmid <= 0xFFFF
            and -1 <= asid <= 0xFFFF
            and 1 <= pages <= 1 << 52
            and tg | ttl <= 3
            and leaf <= 1
            and addr < 1 << 64
            and (stage is None or 1 <= stage <= 3)
        ):
            self._check(
                name,
                lineno,
                ("vmid", vmid, _VMID_ASID),
                ("asid", asid, _VMID_ASID),
                ("tg", tg, (0, 3)),
                ("ttl", ttl, (0, 3)),
                ("leaf", leaf, (0, 1)),
                ("num_pages", pages, (1, 1 << 52)),
                ("addr", addr, (0, (1 << 64) - 1)),
                ("stage", stage or 1, (1, 3)),
            )
            return False
        r = self._attach(name, lineno)
        if r is None:
            return False
        d = self.details.get(r)
        if d is None:
            self.details[r] = [
                None if vmid == -1 else vmid,
                None if asid == -1 else asid,
                None,
                None,
                addr,
                pages,
                tg,
                ttl,
                leaf == 1,
                stage,
                1,
            ]
        else:  # QEMU split the range into power-of-two pieces: one event each
            d[5] += pages
            d[10] += 1
        self.variants.add(ev.VARIANT[name])
        return True

    def _detail(self, name: str, g: tuple[str | None, ...], lineno: int) -> bool:
        vals: dict[str, int] = {}
        checks: list[tuple[str, int, tuple[int, int]]] = []
        if name == "smmuv3_cmdq_cfgi_ste":
            vals["sid"] = int(g[0], 16) if g[0] is not None else int(g[1] or 0)
            checks.append(("streamid", vals["sid"], _SID))
        elif name in ("smmuv3_cmdq_cfgi_ste_range", "smmuv3_cmdq_cfgi_cd"):
            vals["sid"] = int(g[0] or "", 16)
            checks.append(("start" if name.endswith("range") else "sid", vals["sid"], _SID))
            if name.endswith("range"):
                vals["sid_end"] = int(g[1] or "", 16)
                checks.append(("end", vals["sid_end"], (vals["sid"], _SID[1])))
        elif (
            name in ("smmuv3_cmdq_tlbi_nh_asid", "smmuv3_cmdq_tlbi_nh", "smmuv3_cmdq_tlbi_s12_vmid") and g[0]
        ):
            what = "asid" if name.endswith("asid") else "vmid"
            vals[what] = int(g[0])
            checks.append((what, vals[what], _VMID_ASID))
        if not self._check(name, lineno, *checks):
            return False
        r = self._attach(name, lineno)
        if r is None:
            return False
        value = self.rows[r][7]
        if name == "smmuv3_unhandled_cmd" and value is not None and int(g[0] or 0) != value:
            self._fail("sequence", lineno, f"{name}: type={g[0]} does not match {self.rows[r][6]} ({value})")
            return False
        d = self.details.setdefault(r, [None] * 10 + [0])
        for k, v in vals.items():
            d[_DETAIL_INDEX[k]] = None if v == -1 else v
        if name == "smmuv3_cmdq_tlbi_nh":
            self.variants.add("qemu-10" if g[0] else "qemu-7/8")
        elif name in ev.VARIANT:
            self.variants.add(ev.VARIANT[name])
        return True


_DETAIL_INDEX = {k: i for i, k in enumerate(DETAIL_FIELDS)}
