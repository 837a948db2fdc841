"""Queue: PROD/CONS arithmetic against a naive gold model, wrap-bit properties, geometry refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cmdqv_lab.device.queue import Q_IDX, Q_WRP, Queue
from cmdqv_lab.errors import DeviceStateError, QueueConfigError


class GoldQueue:
    """The naive model: a Python list of entries plus two integers (entries produced, consumed)."""

    def __init__(self, log2size: int) -> None:
        self.capacity = 1 << log2size
        self.items: list[tuple[int, int]] = []
        self.produced = 0
        self.consumed = 0

    def push(self, entries: list[tuple[int, int]]) -> bool:
        if len(self.items) + len(entries) > self.capacity:
            return False
        self.items.extend(entries)
        self.produced += len(entries)
        return True

    def pop(self) -> tuple[int, int]:
        self.consumed += 1
        return self.items.pop(0)


entries_st = st.lists(
    st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)), min_size=0, max_size=300
)


class QueueMachine(RuleBasedStateMachine):
    @initialize(log2size=st.integers(7, 9))
    def setup(self, log2size: int) -> None:
        self.real = Queue(log2size)
        self.gold = GoldQueue(log2size)
        self.mod = 2 << log2size

    @rule(entries=entries_st)
    def write(self, entries: list[tuple[int, int]]) -> None:
        fits = self.real.queue_has_space(len(entries))
        assert fits == (len(self.gold.items) + len(entries) <= self.gold.capacity)
        batch = np.array(entries, dtype=np.uint64).reshape(-1, 2)
        if fits:
            positions = self.real.write(batch)
            assert list(positions) == list(range(self.gold.produced, self.gold.produced + len(entries)))
            assert self.gold.push(entries)
        else:
            with pytest.raises(DeviceStateError):
                self.real.write(batch)

    @rule(entries=entries_st)
    def write_slots_then_prod(self, entries: list[tuple[int, int]]) -> None:
        """The lock-free path: fill slots with queue_write, then one PROD register write."""
        if not self.real.queue_has_space(len(entries)):
            return
        prod = self.real.prod
        for i, e in enumerate(entries):
            self.real.write_entry(prod + i, np.array(e, dtype=np.uint64))
        self.real.set_prod(self.real.queue_inc_prod_n(len(entries)))
        assert self.gold.push(entries)

    @precondition(lambda self: self.gold.items)
    @rule(k=st.integers(1, 300))
    def consume(self, k: int) -> None:
        for _ in range(min(k, len(self.gold.items))):
            assert tuple(int(x) for x in self.real.read_entry(self.real.cons)) == self.gold.pop()
            self.real.queue_inc_cons()

    @rule(n=st.integers(0, 512))
    def inc_prod_is_pure_and_modular(self, n: int) -> None:
        n = n % (self.real.size + 1)
        assert self.real.queue_inc_prod_n(n) == (self.gold.produced + n) % self.mod
        assert self.real.prod == self.gold.produced % self.mod

    @invariant()
    def registers_match_gold(self) -> None:
        g, r = self.gold, self.real
        occupancy = g.produced - g.consumed
        assert 0 <= r.occupancy() == occupancy <= r.size
        assert r.prod == g.produced % self.mod
        assert r.cons == g.consumed % self.mod
        assert r.queue_full() == (occupancy == g.capacity)
        assert r.queue_empty() == (occupancy == 0)
        assert r.queue_space() == g.capacity - occupancy
        assert r.queue_has_space(g.capacity - occupancy)
        assert not r.queue_has_space(g.capacity - occupancy + 1)
        assert (r.prod_pos, r.cons_pos) == (g.produced, g.consumed)

    @invariant()
    def consumed_matches_gold(self) -> None:
        """queue_consumed(p) for the last few positions before and after CONS."""
        g, r = self.gold, self.real
        for pos in range(max(0, g.consumed - 3), g.consumed + 3):
            if g.produced - r.size <= pos < g.produced:
                assert r.queue_consumed(pos % self.mod) == (pos < g.consumed)


QueueMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_queue_against_gold_model = QueueMachine.TestCase


@given(shift=st.integers(7, 19), data=st.data())
def test_wrap_bit_toggles_exactly_when_index_wraps(shift: int, data: st.DataObject) -> None:
    size = 1 << shift
    p = data.draw(st.integers(0, 2 * size - 1))
    n = data.draw(st.integers(0, size))
    q = Queue(shift)
    q.prod = p
    new = q.queue_inc_prod_n(n)
    wrapped = Q_IDX(shift, p) + n >= size
    assert (Q_WRP(shift, new) != Q_WRP(shift, p)) == wrapped
    assert Q_IDX(shift, new) == (Q_IDX(shift, p) + n) % size
    assert new < 2 * size


@given(shift=st.integers(7, 12), steps=st.integers(1, 5000))
def test_inc_cons_wrap_toggles_at_index_zero(shift: int, steps: int) -> None:
    q = Queue(shift)
    toggles = 0
    for _ in range(steps):
        before = q.cons
        q.queue_inc_cons()
        if q.wrp(q.cons) != q.wrp(before):
            toggles += 1
            assert q.idx(q.cons) == 0 and q.idx(before) == q.size - 1
        else:
            assert q.idx(q.cons) == q.idx(before) + 1
    assert toggles == steps // q.size


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"log2size": 6}, "LOG2SIZE=6 out of range: allowed 7 .. 19 (Linux refuses <= 64 entries)"),
        ({"log2size": 20}, "LOG2SIZE=20 out of range: allowed 7 .. 19 (architectural maximum 19)"),
        ({"log2size": 16, "cmdqs": 15}, "LOG2SIZE=16 out of range: allowed 7 .. 15 (SMMU_IDR1.CMDQS=15)"),
        ({"log2size": 7, "cmdqs": 20}, "SMMU_IDR1.CMDQS=20 out of range: allowed 0 .. 19"),
        ({"log2size": 7, "cmdqs": 6}, "SMMU_IDR1.CMDQS=6 below the smallest LOG2SIZE 7"),
        ({"log2size": 8, "base": 0x1800}, "queue base 0x1800 not allowed"),
    ],
)
def test_geometry_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(QueueConfigError, match=re.escape(message)):
        Queue(**kwargs)


def test_raw_hardware_sizes_allowed_when_asked() -> None:
    assert Queue(0, min_log2size=0).size == 1
    assert Queue(19).size == 1 << 19


def test_prod_write_cannot_overrun_cons() -> None:
    q = Queue(7)
    q.write(np.zeros((100, 2), dtype=np.uint64))
    with pytest.raises(DeviceStateError, match=re.escape("would hold 129 entries: allowed at most 128")):
        q.set_prod(q.queue_inc_prod_n(29))
    q.set_prod(q.queue_inc_prod_n(28))
    assert q.queue_full()


def test_cons_register_carries_err_and_wrap() -> None:
    q = Queue(7)
    q.write(np.zeros((128, 2), dtype=np.uint64))
    for _ in range(128):
        q.queue_inc_cons()
    q.err = 3
    assert q.cons_reg == (3 << 24) | (1 << 7)
    assert q.base_reg == 7
