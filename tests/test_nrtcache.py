"""numba's runtime library from cmdqv-lab's cache (engine/nrtcache.py): a fresh process compiles
and saves it, the next loads it and runs code that allocates, a corrupt file is compiled again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cmdqv_lab.engine import nrtcache

CHILD = """
import sys
import cmdqv_lab.engine.nrtcache as n
n.install(sys.argv[1])
import numba, numpy as np

@numba.njit
def f(k):
    a = np.zeros(k)          # NRT allocation and reference counting
    a[1] = 2.5
    return a.sum() + len([1, 2, 3])

assert f(10) == 5.5
print(n.LAST)
"""


def _child(d: Path) -> str:
    out = subprocess.run([sys.executable, "-c", CHILD, str(d)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_pack_unpack_and_corruption() -> None:
    blob = nrtcache.pack(b"\x7fELF object", b"BC bitcode")
    assert nrtcache.unpack(blob) == (b"\x7fELF object", b"BC bitcode")
    flipped = bytearray(blob)
    flipped[len(nrtcache.MAGIC) + 20] ^= 1
    assert nrtcache.unpack(bytes(flipped)) is None
    assert nrtcache.unpack(blob[:-1]) is None
    assert nrtcache.unpack(b"x" + blob[1:]) is None
    assert nrtcache.unpack(b"") is None


def test_compiled_once_then_loaded_and_corrupt_recompiled(tmp_path: Path) -> None:
    assert _child(tmp_path) == "compiled"
    (f,) = tmp_path.glob("nrt-*.bin")
    good = f.read_bytes()
    assert nrtcache.unpack(good) is not None
    assert _child(tmp_path) == "loaded"
    f.write_bytes(good[: len(good) // 2])  # truncated
    assert _child(tmp_path) == "compiled"
    assert f.read_bytes() == good  # rewritten whole (same numba, same machine)
    assert not list(tmp_path.glob(".*"))  # no temporary file left
