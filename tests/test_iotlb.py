"""The IOTLB model (cmdqv_lab.iotlb) against hand-computed sequences, a naive LRU and LRU theory,
and the host-iotlb scenario (Q11) end to end."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdqv_lab.errors import ParamError
from cmdqv_lab.iotlb.model import ACCESS, ASID_MIX, INV_ASID, INV_RANGE, Iotlb, geometry
from cmdqv_lab.iotlb.traffic import Unmaps, build_events, iotlb_metrics
from cmdqv_lab.scenarios import simulate

# ----------------------------------------------------------------------------- hand-computed


def test_fully_associative_lru_by_hand() -> None:
    t = Iotlb(entries=3, ways=0)
    seq = [(1, 10), (1, 11), (2, 10), (1, 10), (1, 12), (1, 11), (2, 10)]
    # miss miss miss | hit (refreshes (1,10)) | (1,12) evicts LRU (1,11) | (1,11) evicts (2,10)
    # | (2,10) evicts (1,10), the least recently used of {(1,10)@4, (1,12)@5, (1,11)@6}
    assert [t.access(a, p) for a, p in seq] == [False, False, False, True, False, False, False]
    assert t.contents() == {(1, 12), (1, 11), (2, 10)}
    assert t.invalidate_range(1, 11, 1) == 1  # CMD_TLBI_NH_VA of page 11 in ASID 1
    assert t.contents() == {(1, 12), (2, 10)}
    assert t.invalidate_range(2, 11, 5) == 0  # ASID 2 has nothing in 11..15
    assert t.invalidate_asid(1) == 1  # CMD_TLBI_NH_ASID 1 leaves ASID 2
    assert t.contents() == {(2, 10)}
    assert t.access(2, 10) is True and t.access(1, 12) is False


def test_set_associative_by_hand() -> None:
    # 4 entries, 2 ways: 2 sets; ASID 0 puts page p in set p mod 2
    t = Iotlb(entries=4, ways=2)
    kinds = [ACCESS] * 6 + [INV_RANGE, ACCESS, INV_ASID, ACCESS]
    pages = [0, 2, 4, 0, 1, 4, 0, 0, 0, 1]
    npages = [1] * 6 + [2, 1, 0, 1]
    out = t.run(np.array(kinds), np.zeros(10, np.int64), np.array(pages), np.array(npages))
    # 0, 2 fill set 0; 4 evicts 0; 0 evicts 2; 1 fills set 1; 4 hits | range 0..1 removes 0 and 1 |
    # 0 misses | the ASID flush removes 4 and 0 | 1 misses
    assert out.tolist() == [0, 0, 0, 0, 0, 1, 2, 0, 2, 0]
    assert t.contents() == {(0, 1)}


def test_geometry_is_checked() -> None:
    assert geometry(512, 4) == (128, 4) and geometry(8, 0) == (1, 8)
    with pytest.raises(ParamError, match="iotlb_ways=3 must divide iotlb_entries=8"):
        Iotlb(8, 3)


def test_traffic_of_two_unmaps_by_hand() -> None:
    """One CPU, two unmaps of 2 pages, no long-lived traffic: the events and their costs."""
    ops = pl.DataFrame(
        {
            "cpu": [0, 0],
            "ready_ps": [3_000, 10_000],
            "complete_ps": [4_000, 12_000],
            "sync_complete_ps": [3_900, 11_500],
        }
    )
    u = Unmaps(pages=2, whole=False, devices=1, asid_base=1, buffer_page=np.array([100]))
    ev = build_events(ops, u, footprint=0, rate_mps=0.0, seed=0, name="t")
    # accesses at prev + (k + 1) * (ready - prev) // 3: op 0 at 1000, 2000; op 1 at 6000, 8000
    assert ev["t"].tolist() == [1_000, 2_000, 3_900, 6_000, 8_000, 11_500]
    assert ev["kind"].tolist() == [ACCESS, ACCESS, INV_RANGE, ACCESS, ACCESS, INV_RANGE]
    assert ev["page"].tolist() == [100, 101, 100, 100, 101, 100]
    m = iotlb_metrics(ev, entries=8, ways=0, walk_ns=500.0, link_gbps=4.096, devices=1, unmaps=2,
                      cmdq_ns_per_unmap=1_000.0)  # fmt: skip
    assert (m["iotlb_accesses"], m["iotlb_misses"], m["iotlb_entries_invalidated"]) == (4, 4, 4)
    assert m["walk_time_ns"] == 2_000.0 and m["inval_cost_ns_per_unmap"] == 2_000.0
    # 4 pages of 4096 B at 4.096 GB/s = 4000 ns of transfer, 2000 ns of walks
    assert m["dma_stall_fraction"] == pytest.approx(1 / 3)
    assert m["dma_throughput_gbps"] == pytest.approx(4 * 4096 / 6000)


# ----------------------------------------------------------------------------- properties


class NaiveTlb:
    """An independent LRU: one OrderedDict per set (most recently used last)."""

    def __init__(self, entries: int, ways: int) -> None:
        self.sets, self.ways = geometry(entries, ways)
        self.s: list[OrderedDict[tuple[int, int], None]] = [OrderedDict() for _ in range(self.sets)]

    def event(self, kind: int, asid: int, page: int, n: int) -> int:
        if kind == ACCESS:
            d = self.s[(page + asid * ASID_MIX) % self.sets]
            if (asid, page) in d:
                d.move_to_end((asid, page))
                return 1
            if len(d) == self.ways:
                d.popitem(last=False)
            d[(asid, page)] = None
            return 0
        removed = 0
        for d in self.s:
            for key in [k for k in d if k[0] == asid and (kind == INV_ASID or page <= k[1] < page + n)]:
                del d[key]
                removed += 1
        return removed


event_st = st.tuples(
    st.sampled_from([ACCESS] * 8 + [INV_RANGE, INV_ASID]), st.integers(0, 3), st.integers(0, 40),
    st.integers(0, 50),
)  # fmt: skip
geom_st = st.sampled_from([(1, 0), (4, 0), (8, 0), (8, 2), (16, 4), (16, 1), (12, 3)])


@settings(max_examples=150, deadline=None)
@given(geom_st, st.lists(event_st, max_size=120))
def test_model_equals_a_naive_lru(geom: tuple[int, int], events: list[tuple[int, int, int, int]]) -> None:
    entries, ways = geom
    gold = NaiveTlb(entries, ways)
    want = [gold.event(*e) for e in events]
    t = Iotlb(entries, ways)
    got = t.run(*(np.array([e[i] for e in events], np.int64) for i in range(4)))
    assert got.tolist() == want
    assert t.contents() == {k for d in gold.s for k in d}


@settings(max_examples=60, deadline=None)
@given(geom_st, st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60)), max_size=80), st.integers(0, 3),
       st.integers(0, 60), st.integers(0, 70))  # fmt: skip
def test_invalidation_removes_exactly_its_entries(
    geom: tuple[int, int], accesses: list[tuple[int, int]], asid: int, lo: int, n: int
) -> None:
    t = Iotlb(*geom)
    for a, p in accesses:
        t.access(a, p)
    before = t.contents()
    removed = t.invalidate_range(asid, lo, n)
    in_range = {(a, p) for a, p in before if a == asid and lo <= p < lo + n}
    assert t.contents() == before - in_range and removed == len(in_range)
    rest = t.contents()
    removed = t.invalidate_asid(asid)
    assert {a for a, _ in t.contents()} == {a for a, _ in rest} - {asid}
    assert t.contents() == {(a, p) for a, p in rest if a != asid} and removed == len(rest) - len(t.contents())


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 64), st.integers(1, 256), st.integers(0, 2**32 - 1))
def test_lru_hit_rate_of_a_uniform_footprint(entries: int, footprint: int, seed: int) -> None:
    """Uniform independent references to F pages through a fully associative LRU of E entries:
    the steady-state hit rate is min(1, E/F) (the cache holds min(E, F) distinct pages, each
    requested with probability 1/F)."""
    g = np.random.default_rng(seed)
    n, warm = 40_000, 10 * max(footprint, entries)
    pages = g.integers(0, footprint, n + warm)
    t = Iotlb(entries, 0)
    out = t.run(np.zeros(n + warm), np.ones(n + warm), pages, np.ones(n + warm))
    assert abs(out[warm:].mean() - min(1.0, entries / footprint)) < 0.025


# ----------------------------------------------------------------------------- the scenario


def test_threshold_changes_misses_and_commands() -> None:
    """The issue's done-when: max_tlbi_ops=16 and =512 report different iotlb_misses."""
    base = {"cpus": 4, "unmap_pages": 64}
    flush = simulate("host-iotlb", {**base, "max_tlbi_ops": 16}, seed=3, count=800)
    rng = simulate("host-iotlb", {**base, "max_tlbi_ops": 512}, seed=3, count=800)
    f, r = flush.metrics, rng.metrics
    assert f["asid_flush"] and not r["asid_flush"]
    assert (f["tlbis_per_unmap"], r["tlbis_per_unmap"]) == (1, 64)
    assert (f["commands"], r["commands"]) == (800 * 2, 800 * 65)  # + one CMD_SYNC each
    assert f["iotlb_misses"] != r["iotlb_misses"]
    # every buffer page is a new mapping: one miss each, whatever the threshold
    assert f["iotlb_buffer_misses"] == r["iotlb_buffer_misses"] == 800 * 64
    # flushing the ASID throws the long-lived pages away: a larger share of their lookups miss
    hot = {k: m["iotlb_hot_misses"] / (m["iotlb_accesses"] - 800 * 64) for k, m in (("f", f), ("r", r))}
    assert hot["f"] > hot["r"]
    assert f["walk_time_ns"] == f["iotlb_misses"] * 500.0


def test_host_iotlb_is_deterministic_and_checks_its_input() -> None:
    a = simulate("host-iotlb", {"cpus": 2, "unmap_pages": 8}, seed=5, count=300).metrics
    b = simulate("host-iotlb", {"cpus": 2, "unmap_pages": 8}, seed=5, count=300).metrics
    assert a == b
    c = simulate("host-iotlb", {"cpus": 2, "unmap_pages": 8}, seed=6, count=300).metrics
    assert c["iotlb_misses"] != a["iotlb_misses"] or c["op_latency_ns"] != a["op_latency_ns"]
    with pytest.raises(ParamError, match="iotlb_ways=3 must divide iotlb_entries=512"):
        simulate("host-iotlb", {"iotlb_ways": 3}, count=10)


# ----------------------------------------------------------------------------- the Q11 analysis


def test_threshold_analysis_on_made_up_costs() -> None:
    from cmdqv_lab.analysis import threshold as th

    rows = []
    for cpus, slope in ((4, 1.0), (16, 4.0)):  # range cost grows with contention, flush does not
        for pages in (1, 16, 256):
            for flush in (True, False):
                cost = 100.0 + (50.0 if flush else slope * pages * 10.0)
                rows.append({**th.BASE, "cpus": cpus, "unmap_pages": pages, "asid_flush": flush,
                             "cmdq_ns_per_unmap": cost, "walk_ns_per_unmap": 0.0})  # fmt: skip
    runs = th.label_cases(pl.DataFrame(rows), th.BASE)
    assert sorted(set(runs["case"])) == ["base", "cpus = 16"]
    c = th.costs(runs)
    be = {r["case"]: r for r in th.break_even(c).iter_rows(named=True)}
    # base: range 110 vs flush 150 at 1 page, 260 vs 150 at 16; cpus=16: 140 vs 150, 740 vs 150
    assert be["base"]["best_threshold"] == 16 and be["cpus = 16"]["best_threshold"] == 16
    assert 1 < be["cpus = 16"]["crossing"] < be["base"]["crossing"] < 16
    lo = th.loss(c, 512).filter(pl.col("case") == "base").row(0, named=True)
    # 512 keeps range at 16 (260 vs 150) and 256 (2660 vs 150): (0 + 110/150 + 2510/150) / 3
    assert lo["mean_loss_pct"] == pytest.approx((110 / 150 + 2510 / 150) / 3 * 100)
    sens = th.sensitivity(th.by_quantity(th.break_even(c), th.BASE))
    assert sens["quantity"].to_list() == ["cpus"] and sens["spread"].item() > 1
    with pytest.raises(ValueError, match="base configuration"):
        th.label_cases(pl.DataFrame(rows).filter(pl.col("cpus") == 16), th.BASE)
