"""Refilling a CPU's rings with the times alone (a uniform block whose program the rings already hold
in every slot, :func:`cmdqv_lab.engine.feed.feed_times`) gives the run a full copy gives."""

from __future__ import annotations

import numpy as np
import pytest

from cmdqv_lab.engine import runner
from cmdqv_lab.engine.stream import OpBlock
from cmdqv_lab.scenarios import simulate


def _run(monkeypatch: pytest.MonkeyPatch, shortcut: bool, scenario: str, over: dict, n: int):  # type: ignore[no-untyped-def, type-arg]
    calls = {"times": 0}
    real = runner.feed_times

    def counted(*a):  # type: ignore[no-untyped-def]
        calls["times"] += 1
        return real(*a)

    monkeypatch.setattr(runner, "feed_times", counted)
    if not shortcut:
        monkeypatch.setattr(runner._Rings, "_full_lap", lambda self, prog: 1 << 62)
    r = simulate(scenario, over, seed=3, count=n, record=True, record_limit=n + 10)
    monkeypatch.undo()
    return r, calls["times"]


@pytest.mark.parametrize(
    ("scenario", "over", "n"),
    [
        ("open-queue", {"rate_mcmd_s": 8.0, "service_ns": 100.0}, 200_000),  # rings of 2^17: 1.5 laps
        ("open-queue", {"rate_mcmd_s": 9.5, "service_ns": 100.0, "burst": 4.0}, 180_000),
    ],
)
def test_times_only_refill_gives_the_same_run(
    monkeypatch: pytest.MonkeyPatch, scenario: str, over: dict, n: int
) -> None:  # type: ignore[type-arg]
    fast, n_fast = _run(monkeypatch, True, scenario, over, n)
    full, n_full = _run(monkeypatch, False, scenario, over, n)
    assert n_fast > 0, "the shortcut was never taken: this test checks nothing"
    assert n_full == 0
    assert fast.metrics == full.metrics
    assert fast.engine.commands is not None and full.engine.commands is not None
    assert fast.engine.commands.equals(full.engine.commands)
    assert fast.engine.ops is not None and full.engine.ops is not None
    assert fast.engine.ops.equals(full.engine.ops)


def _cols(blk: OpBlock) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(getattr(blk, f), dtype=np.int64) for f in runner._BLOCK_FIELDS)


def test_a_block_that_does_not_repeat_its_first_op_is_not_taken_as_uniform() -> None:
    blk = OpBlock.uniform(n_ops=5, t=np.arange(5), opcodes=[0x12, 0x46], svc=[100, 50], sync=True, queue=0)
    prog = runner._Rings.uniform_program(_cols(blk))
    assert prog is not None and prog[2] == 2 and prog[6] == (0x12, 0x46)
    svc = np.tile(np.array([[100, 50]]), (5, 1))
    svc[3, 1] = 51  # one command of one op differs
    other = OpBlock.uniform(n_ops=5, t=np.arange(5), opcodes=[0x12, 0x46], svc=svc, sync=True, queue=0)
    assert runner._Rings.uniform_program(_cols(other)) is None
    queues = OpBlock.uniform(
        n_ops=5, t=np.arange(5), opcodes=[0x12], svc=[100], sync=False, queue=np.r_[0, 0, 1, 0, 0]
    )
    assert runner._Rings.uniform_program(_cols(queues)) is None
