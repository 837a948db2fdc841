"""The SMMU's IOTLB: per-ASID tagged translations, LRU replacement, invalidation by range or ASID.

What it models. The translations a device's DMA uses are cached in the SMMU's TLB, one entry per
(ASID, 4 KiB page) here (stage 1, leaf 4 KiB pages, one domain per ASID). A lookup that misses costs
a table walk (``walk_ns``, charged by :mod:`cmdqv_lab.iotlb.traffic`) and fills an entry, evicting
the least recently used entry of its set. Invalidations remove entries:

* ``CMD_TLBI_NH_VA`` with ASID and address (and, with range invalidation, NUM/SCALE) removes the
  entries of that ASID whose page lies in the range (SMMUv3, IHI 0070, section 4.4 "TLB
  invalidation"; Linux issues one per page without RIL, ``__arm_smmu_tlb_inv_range``);
* ``CMD_TLBI_NH_ASID`` removes every entry of the ASID (same section; Linux
  ``arm_smmu_tlb_inv_asid``, reached from ``arm_smmu_tlb_inv_context``).

What it does not model. The architecture leaves the TLB's size, organisation, replacement policy,
walk caches and prefetching IMPLEMENTATION DEFINED, so the geometry here (``iotlb_entries`` entries
in sets of ``iotlb_ways``, true LRU per set, ``iotlb_ways = 0`` fully associative) is an
assumption with a range. No walk caches (a flushed ASID costs full walks), no block or contiguous
entries (one entry per 4 KiB page), no global entries, no stage 2, no micro-TLBs in front.

The set of a page is ``(page + asid * ASID_MIX) mod sets`` (a fixed hash; an assumption like the
rest of the geometry). Everything is integer and sequential: the same events give the same result.

One implementation: :func:`run_events` (numba) applies a sequence of events to a TLB state;
:class:`Iotlb` is a small stateful wrapper over it for tests and notebooks.

>>> t = Iotlb(entries=2, ways=0)
>>> [t.access(1, p) for p in (10, 11, 10, 12, 11)]
[False, False, True, False, False]
>>> sorted(t.contents())
[(1, 11), (1, 12)]
>>> t.invalidate_asid(1), t.contents()
(2, set())
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params, param

#: Event kinds of :func:`run_events`.
ACCESS, INV_RANGE, INV_ASID = 0, 1, 2
#: Multiplier mixing the ASID into the set index (a fixed odd constant).
ASID_MIX = 40503
_EMPTY = -1


@dataclass(frozen=True, kw_only=True)
class IotlbParams(Params):
    """Geometry of the SMMU TLB and the cost of a miss."""

    iotlb_entries: int = param(
        512, unit="entries", lo=1, hi=1 << 16, provenance="assumption",
        source="IMPLEMENTATION DEFINED in SMMUv3 (IHI 0070): no public size for the modelled SMMU; "
        "range: tens to thousands of entries",
        doc="TLB entries (one per ASID and 4 KiB page)",
    )  # fmt: skip
    iotlb_ways: int = param(
        4, unit="entries per set", lo=0, hi=1 << 16, provenance="assumption",
        source="IMPLEMENTATION DEFINED in SMMUv3 (IHI 0070); LRU replacement is also an assumption",
        doc="associativity: entries per set, LRU within a set (0: fully associative LRU)",
    )  # fmt: skip
    walk_ns: float = param(
        500.0, unit="ns", lo=0, hi=1e5, provenance="assumption",
        source="no public number: a 4-level stage-1 walk is up to 4 dependent memory reads "
        "(~100-150 ns each from DRAM), fewer with walk caches; range 100-2000 ns",
        doc="table walk on an IOTLB miss (the device's translation waits for it)",
    )  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        geometry(self.iotlb_entries, self.iotlb_ways)


def geometry(entries: int, ways: int) -> tuple[int, int]:
    """``(sets, ways)`` of a TLB of ``entries`` with ``ways`` per set (0: fully associative)."""
    w = entries if ways == 0 else ways
    if w > entries or entries % w:
        raise ParamError(
            f"iotlb_ways={ways} must divide iotlb_entries={entries} (or be 0: fully associative)"
        )
    return entries // w, w


@njit(cache=True)
def _set_of(asid: int, page: int, sets: int) -> int:
    return (page + asid * ASID_MIX) % sets


@njit(cache=True)
def run_events(
    kind: np.ndarray,
    asid: np.ndarray,
    page: np.ndarray,
    npages: np.ndarray,
    tag_asid: np.ndarray,
    tag_page: np.ndarray,
    stamp: np.ndarray,
    clock: int,
    out: np.ndarray,
) -> int:
    """Apply events ``i = 0 ..`` in order to the TLB ``(tag_asid, tag_page, stamp)`` (``sets x ways``).

    ``ACCESS``: look up ``(asid, page)``; ``out[i] = 1`` on a hit (the entry becomes most recently
    used), ``0`` on a miss (the page is filled into an empty way of its set, else over the least
    recently used one). ``INV_RANGE``: remove the entries of ``asid`` with ``page <= p < page +
    npages``; ``INV_ASID``: remove every entry of ``asid``; ``out[i]`` = entries removed. Returns the
    LRU clock to pass to the next call.
    """
    sets, ways = tag_asid.shape
    entries = sets * ways
    for i in range(kind.size):
        k, a, p = kind[i], asid[i], page[i]
        if k == ACCESS:
            s = _set_of(a, p, sets)
            clock += 1
            hit, empty, lru = -1, -1, 0
            for w in range(ways):
                if tag_asid[s, w] == a and tag_page[s, w] == p:
                    hit = w
                    break
                if tag_asid[s, w] == _EMPTY:
                    if empty < 0:
                        empty = w
                elif stamp[s, w] < stamp[s, lru]:
                    lru = w
            victim = empty if empty >= 0 else lru
            if hit >= 0:
                stamp[s, hit] = clock
                out[i] = 1
            else:
                tag_asid[s, victim] = a
                tag_page[s, victim] = p
                stamp[s, victim] = clock
                out[i] = 0
        elif k == INV_ASID or (k == INV_RANGE and npages[i] >= entries):
            hi = p + npages[i]
            removed = 0
            for s in range(sets):
                for w in range(ways):
                    if tag_asid[s, w] == a and (k == INV_ASID or p <= tag_page[s, w] < hi):
                        tag_asid[s, w] = _EMPTY
                        tag_page[s, w] = _EMPTY
                        stamp[s, w] = 0
                        removed += 1
            out[i] = removed
        else:  # a short range: only the sets its pages map to
            removed = 0
            for q in range(p, p + npages[i]):
                s = _set_of(a, q, sets)
                for w in range(ways):
                    if tag_asid[s, w] == a and tag_page[s, w] == q:
                        tag_asid[s, w] = _EMPTY
                        tag_page[s, w] = _EMPTY
                        stamp[s, w] = 0
                        removed += 1
            out[i] = removed
    return clock


class Iotlb:
    """A TLB state and :func:`run_events` one event at a time (tests, notebooks) or in arrays."""

    def __init__(self, entries: int, ways: int = 0) -> None:
        sets, w = geometry(entries, ways)
        self.tag_asid = np.full((sets, w), _EMPTY, np.int64)
        self.tag_page = np.full((sets, w), _EMPTY, np.int64)
        self.stamp = np.zeros((sets, w), np.int64)
        self.clock = 0

    def run(self, kind: np.ndarray, asid: np.ndarray, page: np.ndarray, npages: np.ndarray) -> np.ndarray:
        """Apply the events (arrays of equal length); one result per event (see :func:`run_events`)."""
        arrs = [np.ascontiguousarray(x, dtype=np.int64) for x in (kind, asid, page, npages)]
        if len({a.size for a in arrs}) != 1:
            raise ParamError("IOTLB events: kind, asid, page and npages must have the same length")
        if arrs[0].size and (arrs[1].min() < 0 or arrs[2].min() < 0 or arrs[3].min() < 0):
            raise ParamError("IOTLB events: asid, page and npages must be non-negative")
        out = np.zeros(arrs[0].size, np.int64)
        kind_, asid_, page_, npages_ = arrs
        self.clock = run_events(
            kind_, asid_, page_, npages_, self.tag_asid, self.tag_page, self.stamp, self.clock, out
        )
        return out

    def _one(self, kind: int, asid: int, page: int, n: int) -> int:
        return int(self.run(np.array([kind]), np.array([asid]), np.array([page]), np.array([n]))[0])

    def access(self, asid: int, page: int) -> bool:
        """A DMA translation of ``page`` in ``asid``: True on a hit."""
        return self._one(ACCESS, asid, page, 1) == 1

    def invalidate_range(self, asid: int, page: int, npages: int) -> int:
        """CMD_TLBI_NH_VA over ``npages`` pages from ``page``: entries removed."""
        return self._one(INV_RANGE, asid, page, npages)

    def invalidate_asid(self, asid: int) -> int:
        """CMD_TLBI_NH_ASID: entries removed."""
        return self._one(INV_ASID, asid, 0, 0)

    def contents(self) -> set[tuple[int, int]]:
        """The cached ``(asid, page)`` pairs."""
        valid = self.tag_asid != _EMPTY
        return set(zip(self.tag_asid[valid].tolist(), self.tag_page[valid].tolist(), strict=True))
