"""Start-up of a process that runs the cached engine: numba's registries are not loaded for a cache
hit (engine.load_numba_registries), and a later compile in the same process still works."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import numpy as np
from cmdqv_lab.scenarios import simulate

a = simulate("host-map-unmap", {"cpus": 2}, seed=1, count=500).metrics  # compiles or loads the engine
b = simulate("host-map-unmap", {"cpus": 2}, seed=1, count=500).metrics
assert a == b
print("loaded" if "numba.np.arraymath" in sys.modules else "skipped", "scipy" if "scipy.linalg" in sys.modules else "-")
from numba import njit

@njit
def f(x):
    return np.dot(x, x)

assert f(np.ones(3)) == 3.0
print("compiled")
"""


def test_cached_engine_loads_without_registries() -> None:
    run = lambda: subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)  # noqa: E731
    run()  # make sure the engine is in the on-disk cache
    out = run().stdout.split()
    assert out == ["skipped", "-", "compiled"], out
