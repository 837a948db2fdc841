"""Mutated *real* traces (issue 17): never a crash, never a hang, and damage the format can show is
never reported as a clean trace.

The captures in ``data/traces`` are mutated the ways files get damaged: a line lost, the file cut
at any byte, bytes flipped in the text or in the gzip stream, lines duplicated, garbage inserted.
Properties:

* any mutation: the parser returns a trace or raises ``TraceFormatError`` (one line), within a
  generous time bound (a hang, not a speed, is what the bound catches); lenient parsing raises only
  when no command is left;
* losing a line QEMU's format makes detectable (a consume, an opcode, the consume_out of a pass
  that read commands unless an identical line follows, the only detail line of a command QEMU always
  describes) is reported with ``file:line``;
* a cut inside a line is reported; a cut between lines inside a pass is reported; a cut between two
  passes leaves a shorter trace that parses to exactly the commands before the cut (a capture that
  stopped there looks the same: that limit is the format's);
* a flipped bit in a gzip file is a gzip error (CRC) or leaves the commands unchanged;
* ``cmdqv-lab check`` on an empty or damaged trace exits 2 with one line, never "clean".
"""

from __future__ import annotations

import gzip
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdqv_lab.errors import TraceFormatError
from cmdqv_lab.workloads.qemu_events import REQUIRED_DETAILS
from cmdqv_lab.workloads.qemu_trace import parse_bytes

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "traces" / "qemu-smmuv3-linux6.1-smp1-lazy.log.gz"
GZ = REAL.read_bytes()
TEXT = gzip.decompress(GZ)
LINES = TEXT.decode().split("\n")[:-1]
ORIGINAL = parse_bytes(TEXT, source="t.log")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HANG_S = 60  # far above the ~10 ms a parse of this trace takes: only a hang trips it

_EVENT = re.compile(r"^(?:\d+@\d+\.\d+:)?(\w+)(?: (.*))?$")


@contextmanager
def no_hang(what: str) -> Iterator[None]:
    def alarm(*_: Any) -> None:
        raise AssertionError(f"{what}: still running after {HANG_S} s (a hang)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _event(line: str) -> tuple[str, str]:
    m = _EVENT.match(line)
    assert m is not None, line
    return m.group(1), m.group(2) or ""


def detectable_deletions(lines: list[str]) -> list[int]:
    """Indices of lines whose loss QEMU's format makes visible (see the module docstring)."""
    out: list[int] = []
    in_pass = False
    details: list[int] = []  # detail lines of the current command from its required set
    need: frozenset[str] | None = None

    def close() -> None:
        if need is not None and len(details) == 1:
            out.append(details[0])

    for i, line in enumerate(lines):
        name, args = _event(line)
        if name == "smmuv3_cmdq_consume":
            close()
            out.append(i)
            in_pass, details, need = True, [], None
        elif name == "smmuv3_cmdq_opcode":
            out.append(i)
            need = REQUIRED_DETAILS.get(args.removeprefix("<--- SMMU_"))
            details = []
        elif name == "smmuv3_cmdq_consume_out":
            close()
            following = _event(lines[i + 1]) if i + 1 < len(lines) else None
            if in_pass and following != (name, args):
                out.append(i)
            in_pass, details, need = False, [], None
        elif need is not None and name in need:
            details.append(i)
    return out


def pass_ends(lines: list[str]) -> set[int]:
    """Line counts at which a cut leaves only complete passes (after a consume_out, outside a pass)."""
    ends = {0}
    for i, line in enumerate(lines):
        if _event(line)[0] == "smmuv3_cmdq_consume_out":
            ends.add(i + 1)
    return ends


def parse_or_error(raw: bytes, lenient: bool = False) -> Any:
    with no_hang("parse"):
        try:
            return parse_bytes(raw, source="t.log", lenient=lenient)
        except TraceFormatError as e:
            assert "\n" not in str(e) and str(e).startswith("t.log"), str(e)
            return e


DELETABLE = detectable_deletions(LINES)


def test_the_real_trace_is_clean_and_has_what_the_mutations_need() -> None:
    assert ORIGINAL.commands.height == 249 and ORIGINAL.meta.malformed == {}
    assert len(DELETABLE) > 500 and len(LINES) == 750


@FUZZ
@given(st.sampled_from(DELETABLE))
def test_a_lost_structural_line_is_reported_with_its_line(i: int) -> None:
    raw = "".join(x + "\n" for j, x in enumerate(LINES) if j != i).encode()
    res = parse_or_error(raw)
    assert isinstance(res, TraceFormatError), f"line {i + 1} ({LINES[i]!r}) lost, trace accepted"
    m = re.match(r"t.log:(\d+): ", str(res))
    assert m is not None and abs(int(m.group(1)) - (i + 1)) <= 25, str(res)
    lenient = parse_or_error(raw, lenient=True)
    assert not isinstance(lenient, TraceFormatError) and sum(lenient.meta.malformed.values()) >= 1


@FUZZ
@given(st.integers(0, len(TEXT) - 1))
def test_a_cut_anywhere_is_reported_or_leaves_whole_passes(k: int) -> None:
    raw = TEXT[:k]
    res = parse_or_error(raw)
    n_complete = raw.count(b"\n")
    if k == 0 or (raw.endswith(b"\n") and n_complete in pass_ends(LINES)):
        # a shorter capture: exactly the commands before the cut (or no command: an error)
        before = ORIGINAL.commands.filter(ORIGINAL.commands["line"] <= n_complete)
        if before.height == 0:
            assert isinstance(res, TraceFormatError) and re.search(
                r"no SMMUv3 commands|empty trace", str(res)
            )
        else:
            assert not isinstance(res, TraceFormatError), str(res)
            assert res.commands.drop("line").equals(before.drop("line"))
        return
    assert isinstance(res, TraceFormatError), f"cut at byte {k} accepted"
    if not raw.endswith(b"\n"):
        assert f"t.log:{n_complete + 1}: last line" in str(res), str(res)


MUTATIONS: dict[str, Callable[[Any, bytearray], None]] = {}


def mutation(f: Callable[[Any, bytearray], None]) -> Callable[[Any, bytearray], None]:
    MUTATIONS[f.__name__] = f
    return f


@mutation
def flip(draw: Any, b: bytearray) -> None:
    i = draw(st.integers(0, len(b) - 1))
    b[i] ^= 1 << draw(st.integers(0, 7))


@mutation
def byte(draw: Any, b: bytearray) -> None:
    b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))


@mutation
def garbage(draw: Any, b: bytearray) -> None:
    i = draw(st.integers(0, len(b)))
    b[i:i] = draw(st.binary(min_size=1, max_size=40))


@mutation
def duplicate(draw: Any, b: bytearray) -> None:
    lines = bytes(b).split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    lines.insert(i, lines[i])
    b[:] = b"\n".join(lines)


@mutation
def huge_number(draw: Any, b: bytearray) -> None:
    m = list(re.finditer(rb"\d+", bytes(b)))
    s = m[draw(st.integers(0, len(m) - 1))]
    b[s.start() : s.end()] = b"9" * draw(st.sampled_from([30, 4200, 5000, 70000]))


@st.composite
def mutated(draw: Any) -> bytes:
    b = bytearray(TEXT)
    for _ in range(draw(st.integers(1, 4))):
        MUTATIONS[draw(st.sampled_from(sorted(MUTATIONS)))](draw, b)
    return bytes(b)


@FUZZ
@given(mutated(), st.booleans())
def test_any_mutation_is_a_trace_or_one_clean_error(raw: bytes, gz: bool) -> None:
    data = gzip.compress(raw) if gz else raw
    res = parse_or_error(data)
    lenient = parse_or_error(data, lenient=True)
    if isinstance(lenient, TraceFormatError):
        assert isinstance(res, TraceFormatError)
        assert re.search(
            r"no SMMUv3 commands|empty trace|binary file|not a text file|line longer", str(lenient)
        )
    else:
        assert lenient.doorbells["n_commands"].sum() == lenient.commands.height
    if not isinstance(res, TraceFormatError):
        assert res.meta.malformed == {}


@FUZZ
@given(st.integers(0, len(GZ) * 8 - 1))
def test_a_flipped_bit_in_a_gzip_trace_is_caught_or_harmless(bit: int) -> None:
    b = bytearray(GZ)
    b[bit // 8] ^= 1 << (bit % 8)
    res = parse_or_error(bytes(b))
    if not isinstance(res, TraceFormatError):
        assert res.commands.equals(ORIGINAL.commands)


@pytest.mark.parametrize("damage", ["empty", "lost-opcode", "lost-detail", "cut", "binary"])
def test_check_never_calls_a_damaged_trace_clean(tmp_path: Path, damage: str) -> None:
    import subprocess
    import sys

    path = tmp_path / "t.log"
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "binary":
        path.write_bytes(b"\x00" * 100)
    elif damage == "cut":
        path.write_bytes(TEXT[: len(TEXT) // 2 + 7])
    else:
        opcode = damage == "lost-opcode"
        i = next(
            j for j in DELETABLE if ("smmuv3_cmdq_opcode" in LINES[j]) == opcode and "consume" not in LINES[j]
        )
        path.write_bytes("".join(x + "\n" for j, x in enumerate(LINES) if j != i).encode())
    r = subprocess.run(
        [sys.executable, "-m", "cmdqv_lab.cli", "check", str(path), "--policy", "scan"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "clean" not in r.stdout and r.stderr.count("\n") == 1 and str(path) in r.stderr
