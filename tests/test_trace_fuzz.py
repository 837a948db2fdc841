"""Hypothesis: generated valid traces parse exactly; arbitrary or mutated input only ever raises TraceFormatError."""

from __future__ import annotations

import gzip
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdqv_lab.errors import TraceFormatError
from cmdqv_lab.workloads.qemu_trace import parse_bytes, parse_text

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: opcode -> detail lines QEMU prints after it (one choice drawn per command)
MENU: dict[str, list[list[str]]] = {
    "SYNC": [[]],
    "PREFETCH_CONFIG": [[]],
    "TLBI_NH_VA": [
        ["smmuv3_s1_range_inval vmid=0 asid=3 addr=0x7000 tg=0 num_pages=0x1 ttl=0 leaf=1"],
        ["smmuv3_s1_range_inval vmid=0 asid=3 addr=0x3000 tg=1 num_pages=0x1 ttl=3 leaf=1",
         "smmuv3_s1_range_inval vmid=0 asid=3 addr=0x4000 tg=1 num_pages=0x4 ttl=3 leaf=1"],
    ],
    "TLBI_NH_ASID": [["smmuv3_cmdq_tlbi_nh_asid asid=4"]],
    "TLBI_NSNH_ALL": [["smmuv3_cmdq_tlbi_nh "]],
    "CFGI_STE": [["smmuv3_cmdq_cfgi_ste streamid= 0x8"], []],  # QEMU prints nothing for an unknown SID
    "CFGI_CD": [["smmuv3_cmdq_cfgi_cd sid=0x10"]],
    "ATC_INV": [["smmuv3_unhandled_cmd Unhandled command type=64"]],
}  # fmt: skip
NOISE = "smmuv3_translate_success 0000:00:01.0 sid=0x8 iova=0x1000 translated=0x2000 perm=0x1"


@st.composite
def valid_traces(draw: Any) -> tuple[list[str], dict[str, Any]]:
    """A consistent trace: passes over a small queue (so CONS wraps), optional errors, prefixes, noise."""
    log2 = draw(st.integers(2, 4))
    size = 1 << log2
    c = w = 0  # CONS index and wrap
    prod = pw = 0
    lines: list[str] = []
    cmds: list[tuple[str, int, int, str | None]] = []
    doorbells: list[int] = []
    resume = False

    def q(name: str, sep: str, p: int, pwr: int, cc: int, cwr: int) -> str:
        if sep == "=":
            return f"smmuv3_cmdq_consume prod={p} cons={cc} prod.wrap={pwr} cons.wrap={cwr}"
        return f"smmuv3_cmdq_consume_out prod:{p}, cons:{cc}, prod_wrap:{pwr}, cons_wrap:{cwr} "

    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()) and not resume and draw(st.integers(0, 5)) == 0:
            lines.append(q("out", ":", prod, pw, c, w))  # an empty pass (e.g. a CR0 write)
            continue
        if not resume:
            n = draw(st.integers(1, size - 1))
            prod, pw = (c + n) % size, w ^ ((c + n) // size)
        pending = (prod - c) % size or size
        error_at = draw(st.one_of(st.none(), st.integers(1, pending))) if not resume else None
        n_read = 0
        for k in range(pending):
            lines.append(q("consume", "=", prod, pw, c, w))
            if draw(st.integers(0, 9)) == 0:
                lines.append(NOISE)
            if error_at is not None and k + 1 == error_at:
                lines += [
                    "smmuv3_cmdq_opcode <--- UNKNOWN",
                    "smmuv3_cmdq_consume_error Error on UNKNOWN command execution: 1",
                ]
                cmds.append(("UNKNOWN", c, w, "ILL"))
                n_read += 1
                break
            name = "SYNC" if (resume and k == 0) else draw(st.sampled_from(sorted(MENU)))
            lines.append(f"smmuv3_cmdq_opcode <--- SMMU_CMD_{name}")
            lines += draw(st.sampled_from(MENU[name]))
            cmds.append(("CMD_" + name, c, w, None))
            n_read += 1
            c, w = (c + 1) % size, w ^ ((c + 1) // size)
        lines.append(q("out", ":", prod, pw, c, w))
        doorbells.append(n_read)
        resume = error_at is not None
    if resume:  # leave no error pending at the end: resume once more
        pending = (prod - c) % size or size
        for _ in range(pending):
            lines += [q("consume", "=", prod, pw, c, w), "smmuv3_cmdq_opcode <--- SMMU_CMD_SYNC"]
            cmds.append(("CMD_SYNC", c, w, None))
            c, w = (c + 1) % size, w ^ ((c + 1) // size)
        lines.append(q("out", ":", prod, pw, c, w))
        doorbells.append(pending)
    if draw(st.booleans()):
        lines = [
            f"{draw(st.integers(1, 9))}@{100 + i // 7}.{(i * 37) % 1_000_000:06d}:{x}"
            for i, x in enumerate(lines)
        ]
    return lines, {"cmds": cmds, "doorbells": doorbells, "log2": log2}


NO_COMMANDS = re.compile(r"^<(text|bytes)>: (empty trace \(no lines\)|no SMMUv3 commands in \d+ lines) ")


@FUZZ
@given(valid_traces())
def test_generated_traces_parse_exactly(case: tuple[list[str], dict[str, Any]]) -> None:
    lines, want = case
    if not want["cmds"]:  # nothing to check is an error, not a clean trace
        with pytest.raises(TraceFormatError, match=NO_COMMANDS):
            parse_text(lines)
        return
    t = parse_text(lines)
    c = t.commands
    assert list(zip(c["opcode"], c["cons"], c["cons_wrap"], c["error"])) == want["cmds"]
    assert t.doorbells["n_commands"].to_list() == want["doorbells"]
    assert t.meta.queue_log2size in (None, want["log2"])
    assert t.meta.malformed == {}
    assert sum(t.summary()["batch_sizes"].values()) == len(want["doorbells"])


@st.composite
def mutated(draw: Any) -> list[str]:
    lines, _ = draw(valid_traces())
    lines = list(lines)
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["delete", "duplicate", "swap", "truncate", "garbage", "digits"]))
        if how == "delete":
            del lines[i]
        elif how == "duplicate":
            lines.insert(i, lines[i])
        elif how == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif how == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif how == "garbage":
            lines.insert(i, draw(st.text(max_size=30)).replace("\n", " "))
        else:
            lines[i] = re.sub(r"\d+", lambda m: str(draw(st.integers(-5, 1 << 21))), lines[i], count=1)
    return lines


def _check_error(e: TraceFormatError, n: int) -> None:
    msg = str(e)
    assert "\n" not in msg
    if NO_COMMANDS.match(msg):
        return
    m = re.match(r"<text>:(\d+): ", msg)
    assert m is not None and 1 <= int(m.group(1)) <= max(n, 1), msg


def _lenient(lines: list[str]) -> Any:
    """Lenient parsing never raises on text, except when there is no command at all."""
    try:
        return parse_text(lines, lenient=True)
    except TraceFormatError as e:
        assert NO_COMMANDS.match(str(e)), str(e)
        return None


@FUZZ
@given(mutated())
def test_mutated_traces_fail_only_with_trace_format_errors(lines: list[str]) -> None:
    try:
        parse_text(lines)
    except TraceFormatError as e:
        _check_error(e, len(lines))
    t = _lenient(lines)
    if t is not None:
        assert t.doorbells["n_commands"].sum() == t.commands.height
        assert t.meta.n_lines == len(lines) or (
            lines and lines[-1] == "" and t.meta.n_lines == len(lines) - 1
        )


@FUZZ
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=60), max_size=20))
def test_arbitrary_text_lines(lines: list[str]) -> None:
    lines = [x.replace("\n", " ") for x in lines]
    try:
        parse_text(lines)
    except TraceFormatError as e:
        _check_error(e, len(lines))
    _lenient(lines)


@FUZZ
@given(st.binary(max_size=400), st.booleans(), st.booleans())
def test_arbitrary_bytes(raw: bytes, compress: bool, lenient: bool) -> None:
    data = gzip.compress(raw) if compress else raw
    try:
        t = parse_bytes(data, lenient=lenient)
    except TraceFormatError as e:
        assert str(e).startswith("<bytes>") and "\n" not in str(e)
    else:
        assert t.doorbells["n_commands"].sum() == t.commands.height
