"""Command encoding: round trip of every opcode and every field, scalar and batch paths agree."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cmdqv_lab.device.commands import (
    LAYOUT,
    Command,
    Field,
    Opcode,
    batch_from_bytes,
    batch_to_bytes,
    decode_batch,
    encode_batch,
    field_of,
    fields_of,
)


def _value(f: Field) -> st.SearchStrategy[int]:
    if f.in_place:  # an address kept at its bit position: a multiple of 2^lo within the mask
        return st.integers(0, (1 << f.width) - 1).map(lambda v: v << f.lo)
    return st.integers(0, f.max_value)


@st.composite
def commands(draw: st.DrawFn, opcode: Opcode | None = None) -> tuple[Opcode, dict[str, int]]:
    op = opcode if opcode is not None else draw(st.sampled_from(list(Opcode)))
    values = {f.name: draw(_value(f)) for f in fields_of(op)}
    return op, values


@given(commands())
def test_encode_decode_round_trip(cmd: tuple[Opcode, dict[str, int]]) -> None:
    op, values = cmd
    c = Command(op, **values)
    assert c.fields == values
    enc = c.encode()
    assert int(enc[0]) & 0xFF == op
    back = Command.decode(enc)
    assert back == c and back.fields == values
    assert Command.from_bytes(c.to_bytes()) == c


@given(st.sampled_from(list(Opcode)), st.data())
def test_each_field_alone_round_trips_and_touches_only_its_bits(op: Opcode, data: st.DataObject) -> None:
    for f in LAYOUT[op]:
        v = data.draw(_value(f))
        enc = Command(op, **{f.name: v}).encode()
        other = 1 - f.dword
        assert int(enc[f.dword]) & ~(f.mask | (0xFF if f.dword == 0 else 0)) == 0
        assert int(enc[other]) & ~(0xFF if other == 0 else 0) == 0
        assert Command.decode(enc)[f.name] == v


@given(st.sampled_from(list(Opcode)), st.data())
def test_batch_encoding_matches_scalar(op: Opcode, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 5))
    rows = [data.draw(commands(op))[1] for _ in range(n)]
    names = [f.name for f in fields_of(op)]
    arrays = {k: np.array([r[k] for r in rows], dtype=np.uint64) for k in names}
    batch = encode_batch(np.full(n, int(op)), **arrays)
    expected = np.vstack([Command(op, **r).encode() for r in rows]) if rows else np.zeros((0, 2), np.uint64)
    assert np.array_equal(batch, expected)
    assert [c.fields for c in decode_batch(batch)] == rows
    for k in names:
        assert field_of(batch, k).tolist() == [r[k] for r in rows]
    assert np.array_equal(batch_from_bytes(batch_to_bytes(batch)), batch)
