"""The engine's cached libraries loaded without parsing their bitcode (engine/lazylink.py): the first
process parses and writes the symbol files, the next loads without parsing and gets the same
results, code compiled later still links against a library loaded that way, and a damaged symbol
file is parsed again and rewritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cmdqv_lab.engine import lazylink

SCRIPT = r"""
import json, sys
import numpy as np
from cmdqv_lab.engine import lazylink
lazylink.DIRECTORY = sys.argv[1]
from cmdqv_lab.scenarios import simulate
from cmdqv_lab.engine.layout import H_LEAVES, H_TREE, ID_BITS, TIME_NEVER
from cmdqv_lab.engine.loop import run_loop

metrics = simulate("host-map-unmap", {"cpus": 2}, seed=1, count=500).metrics
counts = dict(lazylink.COUNTS)

# the libraries loaded: their symbols, as numba would list them from the parsed bitcode
(lib,) = [o.library for o in run_loop.overloads.values()]
listed = lazylink._defined(lib._get_module_for_linking())

# a function compiled now, calling sched (loaded above), links against sched's library
from numba import njit
from cmdqv_lab.engine.mem import unmanaged
from cmdqv_lab.engine.sched import sched

@njit
def set_step(M, e, t):
    sched(unmanaged(M), e, t)

M = np.zeros(64, np.int64)
M[H_TREE], M[H_LEAVES] = 32, 4
M[32:40] = TIME_NEVER
set_step(M, 2, 7)
root = int(M[33])
print(json.dumps({"counts": counts, "end": dict(lazylink.COUNTS), "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                  "listed": sorted(listed), "root": root, "expect": (7 << ID_BITS) | 2}))
"""


def run(directory: Path) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(directory)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_symbol_files_round_trip_and_damage_is_detected() -> None:
    names = ["run_loop", ".const.a\nb", 'quote"d', "é"]
    blob = lazylink.pack(names)
    assert lazylink.unpack(blob) == sorted(names)
    assert lazylink.unpack(blob[:-2]) is None  # truncated
    flipped = bytearray(blob)
    flipped[len(lazylink.MAGIC) + 5] ^= 1
    assert lazylink.unpack(bytes(flipped)) is None
    assert lazylink.unpack(blob.replace(b"symbols 1", b"symbols 9")) is None
    assert lazylink.unpack(b"\xff\xfe") is None and lazylink.unpack(b"") is None


def test_second_process_loads_without_parsing_and_links_later_code(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "warm")], capture_output=True, check=True)
    first = run(tmp_path)  # engine in numba's cache; no symbol files yet
    files = sorted(tmp_path.glob("syms-*.txt"))
    assert first["counts"]["lazy"] == 0 and first["counts"]["parsed"] >= 2
    assert first["end"]["lazy"] == 0 and len(files) == first["end"]["parsed"]  # the later compile's too
    second = run(tmp_path)
    assert second["counts"] == {"lazy": first["counts"]["parsed"], "parsed": 0}
    assert second["end"] == {"lazy": first["end"]["parsed"], "parsed": 0}
    assert second["metrics"] == first["metrics"]
    assert second["root"] == second["expect"] == first["root"]  # compiled and linked after a lazy load
    assert second["listed"] == first["listed"]  # the parsed bitcode lists what the file said
    run_loop_file = [f for f in files if lazylink.unpack(f.read_bytes()) == first["listed"]]
    assert len(run_loop_file) == 1


def test_a_damaged_symbol_file_is_parsed_again_and_rewritten(tmp_path: Path) -> None:
    first = run(tmp_path)
    files = sorted(tmp_path.glob("syms-*.txt"))
    if not files:
        pytest.skip("no symbol files written")
    good = files[0].read_bytes()
    files[0].write_bytes(good[: len(good) // 2])
    again = run(tmp_path)
    assert again["end"]["parsed"] == 1 and again["end"]["lazy"] == len(files) - 1
    assert files[0].read_bytes() == good
    assert again["metrics"] == first["metrics"]
    assert not list(tmp_path.glob(".*"))  # no temporary file left
