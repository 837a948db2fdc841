"""The engine's invariant loads: compiled code never writes ``M``'s header or the run's constants.

``mem.hget`` and the section accessors load header words (a section's start, a size) with LLVM's
``!invariant.load``, and so do ``kget``'s loads of the run's constants (``K``): LLVM may then read
such a word once per function and keep it across stores into ``M``. That is only correct if no
compiled code ever stores into them. Checked two ways: every engine source is searched for a store
that could (a ``kset``, an assignment to ``M[H_...]``, a ``store`` at a header index), and runs of
every submission algorithm, the guest, trap, fix-up, IOTLB and open-queue scenarios leave the
header and ``K`` exactly as :func:`~cmdqv_lab.engine.runner.build_memory` wrote them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cmdqv_lab.engine.runner as runner
from cmdqv_lab.engine import layout as L
from cmdqv_lab.scenarios import simulate

ENGINE = Path(runner.__file__).parent


def test_no_engine_source_writes_the_header_or_the_constants() -> None:
    offenders = []
    for f in sorted(ENGINE.glob("*.py")):
        src = f.read_text()
        for pattern in (r"\bkset\b|\bkadd\b", r"\bstore\(M, H_", r"\bhset\b"):
            offenders += [f"{f.name}: {m.group(0)}" for m in re.finditer(pattern, src)]
        if f.name != "mem.py":  # mem.Memory (Python, before any compiled code) writes the header
            offenders += [f"{f.name}: {m.group(0)}" for m in re.finditer(r"\bM\[H_\w+\]\s*=[^=]", src)]
    assert not offenders, offenders


CASES: list[tuple[str, dict[str, Any], int]] = [
    ("host-map-unmap", {"platform": "d06", "cpus": 16}, 2000),
    ("host-map-unmap", {"platform": "d06", "cpus": 8, "submit": "atomic-add"}, 1000),
    ("host-map-unmap", {"cpus": 4, "submit": "spinlock"}, 1000),
    ("host-map-unmap", {"cpus": 4, "submit": "exclusive", "queues": "ecmdq"}, 1000),
    ("host-map-unmap", {"platform": "d06", "cpus": 8, "submit": "cas-spinlock-fallback"}, 1000),
    ("open-queue", {}, 20000),
    ("guest-vcmdq", {}, 1000),
    ("guest-trap", {}, 500),
    ("guest-fixup", {}, 300),
    ("host-iotlb", {}, 300),
]


@pytest.mark.parametrize(
    ("scenario", "overrides", "count"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_a_run_leaves_the_header_and_the_constants_as_built(
    scenario: str, overrides: dict[str, Any], count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    run = runner._run

    def checked(cfg: Any, mem: Any, *args: Any) -> Any:
        head, k = mem.M[: L.H_WORDS].copy(), mem.k.copy()
        try:
            return run(cfg, mem, *args)
        finally:
            seen.append((head, mem.M[: L.H_WORDS].copy(), k, mem.k.copy()))

    monkeypatch.setattr(runner, "_run", checked)
    simulate(scenario, overrides, count=count)
    assert seen, "the engine did not run"
    for head, head_after, k, k_after in seen:
        assert np.array_equal(head, head_after)
        assert np.array_equal(k, k_after)
