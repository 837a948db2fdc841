"""host-map-unmap gives the same per-command results whatever the size of the blocks its streams are
generated and compiled in (the generators and the service-time draws take one value per op or
command, in order), so the block size is a speed choice only."""

from __future__ import annotations

from typing import Any

import pytest
from polars.testing import assert_frame_equal

import cmdqv_lab.scenarios.host as host
from cmdqv_lab.scenarios.base import simulate

CASES = [
    {"platform": "d06", "cpus": 3},
    {"platform": "d06", "cpus": 2, "service_dist": "exponential", "think_dist": "exponential"},
    {"platform": "generic", "cpus": 2, "arrival": "poisson", "rate_kops_s": 800, "service_dist": "uniform"},
]


@pytest.mark.parametrize("over", CASES)
def test_block_size_does_not_change_results(over: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    default = simulate("host-map-unmap", over, seed=5, count=3000, record=True)
    params = host.DmaMapParams
    monkeypatch.setattr(host, "DmaMapParams", lambda **kw: params(**{**kw, "chunk": 37}))
    small = simulate("host-map-unmap", over, seed=5, count=3000, record=True)
    assert default.engine.commands is not None and small.engine.commands is not None
    assert default.engine.commands.height == 6000
    assert_frame_equal(default.engine.commands, small.engine.commands)
    assert default.metrics == small.metrics


@pytest.mark.parametrize("dist", ["deterministic", "exponential"])
@pytest.mark.parametrize("prefix_ps", [0, 2500])
def test_a_repeating_chunk_compiles_as_row_by_row_for_every_host_queue(dist: str, prefix_ps: int) -> None:
    """A generator's repeating chunk is compiled from one instance's program, cached per period (not
    per route) with the CPU's host queue put in afterwards: for each route the op programs equal
    compiling the chunk's rows one by one (the general path)."""
    import numpy as np

    from cmdqv_lab.engine.layout import STEP_BATCH
    from cmdqv_lab.engine.stream import _FIELDS
    from cmdqv_lab.platform import load_platform
    from cmdqv_lab.programs.compile import Columns, compile_chunk, compile_columns
    from cmdqv_lab.programs.topology import Route
    from cmdqv_lab.rng import stream as rng_stream

    plat = load_platform("d06", {"service_dist": dist})
    p = host.HostMapUnmapParams(cpus=2, tlbis=3)
    chunk = next(iter(host._workload(p, plat, 5, 40).chunks[1]))
    assert chunk.rows.period is not None
    for q in (0, 3, 7, 0):  # the last one after others were compiled
        route = Route(host_queue=q)
        got = compile_chunk(chunk, route, plat, rng_stream(9, "svc", q), prefix_ps=prefix_ps)
        want = compile_columns(
            Columns.of(chunk, None), route, plat, rng_stream(9, "svc", q), prefix_ps=prefix_ps
        )
        for f in _FIELDS:
            assert np.array_equal(getattr(got, f), getattr(want, f)), (q, f)
        assert (
            set(got.s_c[got.s_kind == STEP_BATCH].tolist()) == {q}
            and not got.s_c[got.s_kind != STEP_BATCH].any()
        )
