"""The engine's flat memory (engine/mem.py): large fresh buffers are mappings of ordinary pages,
and a buffer given back is reused by the next run with the same results."""

from __future__ import annotations

import errno
import mmap
from pathlib import Path

import numpy as np
import pytest

from cmdqv_lab.engine import mem
from cmdqv_lab.scenarios import simulate


@pytest.fixture(autouse=True)
def empty_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mem, "_pool", [])


def _mapped(a: np.ndarray) -> bool:
    """Whether ``a`` is a view of an mmap (np.frombuffer keeps a memoryview of it)."""
    return isinstance(a.base, memoryview) and isinstance(a.base.obj, mmap.mmap)


def _huge_pages_allowed(a: np.ndarray) -> bool | None:
    """Whether any mapping under ``a``'s bytes may get transparent huge pages (``THPeligible: 1``
    or ``hg`` among its flags); None where smaps does not say."""
    smaps = Path("/proc/self/smaps")
    if not smaps.exists() or "THPeligible:" not in (text := smaps.read_text()):
        return None
    lo_a, hi_a = a.ctypes.data, a.ctypes.data + a.nbytes
    overlaps, allowed = False, False
    for line in text.splitlines():
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(x, 16) for x in head.split("-"))
            overlaps = lo < hi_a and lo_a < hi
        elif overlaps and head == "THPeligible:":
            allowed |= line.split()[1] == "1"
        elif overlaps and head == "VmFlags:":
            allowed |= "hg" in line.split()[1:]
    return allowed


def test_large_fresh_buffers_are_zeroed_mappings_without_huge_pages() -> None:
    words = mem._SMALL_PAGES_WORDS + 4096
    a = mem._zeroed(words)
    assert _mapped(a) and a.dtype == np.int64 and a.size == words
    assert a.flags.writeable and not a.any()
    a[::512] = 7
    assert int(a.sum()) == 7 * len(range(0, words, 512))
    assert mem._storage(a[10:20]) is a
    allowed = _huge_pages_allowed(a)
    if allowed is None:
        pytest.skip("this kernel's smaps has no THPeligible field")
    assert not allowed


def test_a_mapping_the_system_refuses_is_a_memory_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(mem.mmap, "mmap", refuse)
    with pytest.raises(MemoryError, match="cannot map"):
        mem._zeroed(mem._SMALL_PAGES_WORDS)


def test_small_fresh_buffers_are_plain_arrays() -> None:
    a = mem._zeroed(1000)
    assert a.base is None and not a.any() and mem._storage(a[3:]) is a


def test_a_mapped_buffer_given_back_is_reused_by_the_next_run_with_the_same_results() -> None:
    params = {"platform": "d06", "cpus": 64}
    first = simulate("host-map-unmap", params, seed=3, count=640)
    assert len(mem._pool) == 1 and _mapped(mem._pool[0])  # 64 CPUs: a mapping
    given = mem._pool[0]
    again = simulate("host-map-unmap", params, seed=3, count=640)
    assert again.metrics == first.metrics
    assert mem._pool and mem._pool[0] is given  # taken, used and given back again
