"""Start-up of a process that runs the cached engine: numba's registries are not loaded for a cache
hit (engine.load_numba_registries), nor numba's extension entry points or ``numpy.ma`` for the
engine's first calls (engine._first_call_shortcuts), and a later compile in the same process still
works (and loads the entry points)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from numba.core.errors import NumbaTypeError

SCRIPT = """
import sys
import numpy as np
from cmdqv_lab.scenarios import simulate

a = simulate("host-map-unmap", {"cpus": 2}, seed=1, count=500).metrics  # compiles or loads the engine
b = simulate("host-map-unmap", {"cpus": 2}, seed=1, count=500).metrics
assert a == b
from numba.core import entrypoints

print("loaded" if "numba.np.arraymath" in sys.modules else "skipped", "scipy" if "scipy.linalg" in sys.modules else "-")
print("ma" if "numpy.ma" in sys.modules else "no-ma", "ep" if entrypoints._already_initialized else "no-ep")
from numba import njit

@njit
def f(x):
    return np.dot(x, x)

assert f(np.ones(3)) == 3.0
print("compiled", "ep" if entrypoints._already_initialized else "no-ep")
"""


def test_cached_engine_loads_without_registries() -> None:
    run = lambda: subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)  # noqa: E731
    run()  # make sure the engine is in the on-disk cache
    out = run().stdout.split()
    assert out == ["skipped", "-", "no-ma", "no-ep", "compiled", "ep"], out


def test_engine_argument_types_are_numbas() -> None:
    """The first-call typing of a plain ndarray for an engine function gives numba's own type."""
    import numpy as np
    from numba import typeof
    from numba.core.typing.typeof import Purpose

    from cmdqv_lab.engine import load_numba_registries
    from cmdqv_lab.engine.feed import feed

    load_numba_registries()
    ro = np.arange(6, dtype=np.int64)
    ro.flags.writeable = False
    cases = [
        np.zeros(4, np.int64), np.zeros((3, 4), np.float64), np.zeros((3, 4), order="F"),
        np.arange(10)[::2], ro, np.zeros(3, np.bool_), np.zeros(2, np.float32), np.zeros((0,), np.int8),
    ]  # fmt: skip
    for a in cases:
        assert feed.typeof_pyval(a) == typeof(a, Purpose.argument), a
    with pytest.raises(NumbaTypeError, match="MaskedArray"):  # not a plain ndarray: numba's own path
        feed.typeof_pyval(np.ma.masked_array([1, 2]))
