"""The engine's input thread (runner._Prefetch): several streams read ahead by one thread give each
reader its own stream's items in order, errors at their position, and the same run as reading the
streams in the engine's order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import cmdqv_lab.engine.runner as R
from cmdqv_lab.engine.stream import IndependentStream
from cmdqv_lab.scenarios.base import simulate


def _source(k: int, n: int, fail_at: int = -1) -> Iterator[int]:
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"source {k} fails at {i}")
        yield 100 * k + i


def test_each_reader_gets_its_source_in_order() -> None:
    lengths = [5, 0, 9, 1, 7]
    pf = R._Prefetch([_source(k, n) for k, n in enumerate(lengths)], depth=2)  # type: ignore[misc]
    readers = [pf.reader(k) for k in range(len(lengths))]
    got: list[list[int]] = [[] for _ in lengths]
    order = np.random.default_rng(3).permutation(np.repeat(np.arange(len(lengths)), 12))
    for k in order:  # the engine asks in no fixed order, and past the ends
        item = next(readers[k], None)
        if item is not None:
            got[k].append(item)
    assert got == [[100 * k + i for i in range(n)] for k, n in enumerate(lengths)]
    pf.close()


def test_an_error_reaches_its_reader_at_its_position() -> None:
    pf = R._Prefetch([_source(0, 4), _source(1, 6, fail_at=2)], depth=2)  # type: ignore[misc]
    r0, r1 = pf.reader(0), pf.reader(1)
    assert [next(r1), next(r1)] == [100, 101]
    with pytest.raises(ValueError, match="source 1 fails at 2"):
        next(r1)
    assert list(r0) == [0, 1, 2, 3]  # the other stream is untouched
    pf.close()


def test_close_stops_the_thread() -> None:
    pf = R._Prefetch([_source(0, 10**6), _source(1, 10**6)], depth=2)  # type: ignore[misc]
    assert next(pf.reader(0)) == 0
    pf.close()
    for t in threading.enumerate():
        if t.name == "cmdqv-lab-input":
            t.join(timeout=5)
    assert not any(t.name == "cmdqv-lab-input" and t.is_alive() for t in threading.enumerate())


def test_items_ahead_are_bounded_in_total() -> None:
    """With many sources the thread builds at most ``ahead`` items in all (plus the one the reader
    waits for), not ``depth`` per source: memory stays flat with thousands of CPUs."""
    produced = [0]

    def counting(k: int) -> Iterator[int]:
        i = 0
        while True:
            produced[0] += 1
            yield 1000 * k + i
            i += 1

    pf = R._Prefetch([counting(k) for k in range(50)], depth=2, ahead=4)  # type: ignore[misc]
    assert next(pf.reader(7)) == 7000
    deadline = time.monotonic() + 5
    while produced[0] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # time to overshoot, if it would
    # the wanted item, 4 ahead, and at most one more of the wanted source (the thread may read it
    # again before the reader takes the first): not two per source
    assert 5 <= produced[0] <= 6
    assert next(pf.reader(7)) == 7001  # a wanted source is served past the bound
    pf.close()


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    used: list[bool] = []
    init = R._Rings.__init__

    def spy(self, *a, **k):  # type: ignore[no-untyped-def]
        init(self, *a, **k)
        used.append(self.prefetcher is not None)

    monkeypatch.setattr(R._Rings, "__init__", spy)
    return used


def test_independent_streams_are_read_ahead_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """host-map-unmap's per-CPU streams (IndependentStream) built by the thread, in its own order, give
    the same per-command records as reading them in the engine's order."""
    used = _spy(monkeypatch)
    sets = {"platform": "d06", "cpus": 3}
    n = 3 * 10_000  # 3 blocks of ops per CPU (the generator's blocks are 4096 ops)
    monkeypatch.setattr(R, "PREFETCH_MIN_OPS", 1 << 12)
    ahead = simulate("host-map-unmap", sets, count=n, record=True)
    monkeypatch.setattr(R, "PREFETCH_MIN_OPS", 1 << 62)
    inline = simulate("host-map-unmap", sets, count=n, record=True)
    assert used == [True, False]
    assert ahead.commands is not None and inline.commands is not None
    assert ahead.commands.height == 2 * n
    assert ahead.commands.equals(inline.commands)
    assert ahead.ops is not None and ahead.ops.equals(inline.ops)


def test_streams_that_may_share_state_are_read_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several plain generators (not IndependentStream) are never read ahead."""
    used = _spy(monkeypatch)
    monkeypatch.setattr(R, "PREFETCH_MIN_OPS", 1)
    from benchmarks.bench_engine import materialise

    cfg, blocks = materialise("host-map-unmap", {"platform": "d06", "cpus": 2}, 64, False)
    R.run_engine(cfg, [iter(b) for b in blocks])
    R.run_engine(cfg, [IndependentStream(iter(b)) for b in blocks])
    assert used == [False, True]


def test_no_input_thread_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """CMDQV_LAB_INPUT_THREAD=0 (set in a process pool's workers when they fill the cores) reads
    every stream in the engine's order, with the same result."""
    used = _spy(monkeypatch)
    monkeypatch.setattr(R, "PREFETCH_MIN_OPS", 1)
    from benchmarks.bench_engine import materialise

    cfg, blocks = materialise("host-map-unmap", {"platform": "d06", "cpus": 2}, 64, False)
    a = R.run_engine(cfg, [IndependentStream(iter(b)) for b in blocks])
    monkeypatch.setenv("CMDQV_LAB_INPUT_THREAD", "0")
    b = R.run_engine(cfg, [IndependentStream(iter(b)) for b in blocks])
    assert used == [True, False]
    assert (a.g == b.g).all()


def test_pool_workers_filling_the_cores_run_without_input_threads() -> None:
    import os

    from cmdqv_lab.experiments.executors import ProcessExecutor

    n = os.cpu_count() or 1
    with ProcessExecutor(n) as ex:
        seen = set(ex.imap_unordered(_input_thread_setting, range(2 * n)))
    assert seen == {"0"}
    if n > 1:
        with ProcessExecutor(n - 1) as ex:
            assert set(ex.imap_unordered(_input_thread_setting, range(2))) == {None}


def _input_thread_setting(_: int) -> str | None:
    import os

    return os.environ.get("CMDQV_LAB_INPUT_THREAD")


def test_a_bad_input_thread_setting_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.bench_engine import materialise
    from cmdqv_lab.errors import ParamError

    cfg, blocks = materialise("host-map-unmap", {"platform": "d06", "cpus": 1}, 16, False)
    monkeypatch.setenv("CMDQV_LAB_INPUT_THREAD", "false")
    with pytest.raises(ParamError, match=r"CMDQV_LAB_INPUT_THREAD='false' is not allowed: 0 .* or 1"):
        R.run_engine(cfg, [iter(b) for b in blocks])
