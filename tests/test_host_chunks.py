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
