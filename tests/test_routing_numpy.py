"""A chunk's rows routed directly equal its frame routed, bit for bit; numpy injection equals its
polars version.

:func:`~cmdqv_lab.driver.route_rows.route_rows` on a chunk's rows (``Columns.of``) against the
chunk's frame through :func:`~cmdqv_lab.driver.routing.route_frame` (route_rows per CPU, then a
frame), a frame of two CPUs against each CPU routed alone, and the numpy
:func:`~cmdqv_lab.workloads.transforms.inject` against its frame version, on random chunks (random
opcodes, batches with and without CMD_SYNC, SYNC-only batches, ops without commands, empty chunks,
host rows, SIDs matched or not), and whole guest simulations with chunks routed as rows and as
frames. That route_frame still routes as the polars implementation did: ``test_routing_golden.py``.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.driver.route_rows import ROW_POLICIES, applies, route_rows
from cmdqv_lab.driver.routing import GUEST_ACCEPTED, GUEST_ACCEPTED_2021, POLICIES, route_frame
from cmdqv_lab.programs import compile as compile_mod
from cmdqv_lab.programs.compile import Columns, Routing
from cmdqv_lab.scenarios.base import simulate
from cmdqv_lab.workloads import transforms
from cmdqv_lab.workloads.stream import FIELD_COLUMNS, WORKLOAD_SCHEMA, Chunk, Rows, StreamChunk, as_frame

OPCODES = [int(o) for o in Opcode]
SYNC = int(Opcode.CMD_SYNC)
#: The guest streams' commands, drawn as often as all opcodes together (lone SYNCs, SYNC-first batches).
COMMON = [SYNC, int(Opcode.CMD_TLBI_NH_VA), int(Opcode.CMD_CFGI_CD), int(Opcode.CMD_ATC_INV)]
SIDS = (8, 16, 24)


@st.composite
def chunks(draw: Any, vm: int | None = None) -> Chunk:
    """One CPU's chunk: ops of batches of random opcodes; a batch may end with a CMD_SYNC (or be one)."""
    n_ops = draw(st.integers(0, 6))
    op, batch, opcode, kind = [], [], [], []
    b = 0
    for i in range(n_ops):
        k = draw(st.integers(0, 1))
        for _ in range(draw(st.integers(0, 3))):  # an op may have no command
            body = draw(st.lists(st.one_of(st.sampled_from(COMMON), st.sampled_from(OPCODES)), max_size=4))
            cmds = [*body, SYNC] if draw(st.booleans()) or not body else body
            for c in cmds:
                op.append(i)
                batch.append(b)
                opcode.append(c)
                kind.append(k)
            b += 1
    n = len(opcode)
    fields: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if draw(st.booleans()):
        sid = np.array(draw(st.lists(st.sampled_from(SIDS), min_size=n, max_size=n)), np.int64)
        ok = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
        fields["sid"] = (sid, ok)
    if draw(st.booleans()):
        fields["ssid"] = (np.arange(n, dtype=np.int32), np.ones(n, bool))
    rows = Rows(op=np.array(op, np.int64), batch=np.array(batch, np.int64), opcode=np.array(opcode, np.uint8),
                kind=np.array(kind, np.int8), kinds=("unmap", "flush"), fields=fields)  # fmt: skip
    t = np.array(draw(st.lists(st.integers(0, 10**6), min_size=n_ops, max_size=n_ops)), np.int64)
    v = draw(st.sampled_from([-1, 0, 1])) if vm is None else vm
    return Chunk(rows, draw(st.integers(0, 3)), v, draw(st.integers(0, 50)), draw(st.integers(0, 50)), t)


@st.composite
def routings(draw: Any) -> Routing:
    accepted = draw(
        st.one_of(
            st.sampled_from([GUEST_ACCEPTED, GUEST_ACCEPTED_2021]),
            st.frozensets(st.sampled_from(OPCODES), max_size=6),
        )
    )
    sids = draw(st.sampled_from([None, {0: [8]}, {0: [8, 16], 1: [24]}, {1: [8]}, {0: []}, {0: [8, 8, 16]}]))
    return Routing(draw(st.sampled_from(ROW_POLICIES)), frozenset(int(a) for a in accepted), sids)


def via_route_frame(chunk: StreamChunk, routing: Routing) -> Columns:
    """The chunk's frame routed by route_frame (a frame of host rows only is not routed, as in
    ``Columns.of``: route_frame would split its batches under split and homogeneous)."""
    df = as_frame(chunk)
    if df.height == 0 or bool((df["vm"] < 0).all()):
        return Columns.of(df, routing)
    return routed(df, routing)


def routed(df: pl.DataFrame, routing: Routing) -> Columns:
    return Columns.routed(route_frame(df, routing.policy, accepted=routing.accepted, sids=routing.sids))


def assert_same(a: Columns, b: Columns) -> None:
    for name in ("op", "t", "opcode", "part", "path", "wait", "illegal"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


@settings(max_examples=400)
@given(chunks(), routings())
def test_numpy_routing_equals_route_frame(chunk: Chunk, routing: Routing) -> None:
    want = via_route_frame(chunk, routing)
    assert_same(Columns.of(chunk, routing), want)
    assert_same(Columns.of(chunk.frame(), routing), want)  # the same rows as a frame


@settings(max_examples=400)
@given(chunks(vm=0), st.sampled_from(["split", "homogeneous"]), st.frozensets(st.sampled_from(OPCODES)))
def test_split_policies_equal_route_frame(chunk: Chunk, policy: str, accepted: frozenset[int]) -> None:
    """Parts by support and by type, their inserted CMD_SYNCs, a closing SYNC joining its run."""
    r = Routing(policy, accepted, {0: [8]})
    assert_same(Columns.of(chunk, r), via_route_frame(chunk, r))


def test_homogeneous_splits_tlbis_from_other_commands() -> None:
    opc = np.array([Opcode.CMD_TLBI_NH_VA, Opcode.CMD_PREFETCH_CONFIG, Opcode.CMD_SYNC], np.uint8)
    rows = Rows(np.zeros(3, np.int64), np.zeros(3, np.int64), opc, np.zeros(3, np.int8), ("unmap",), {})
    ch = Chunk(rows, 0, 0, 0, 0, np.zeros(1, np.int64))
    r = Routing("homogeneous", frozenset())
    want = via_route_frame(ch, r)
    assert want.opcode.tolist() == [int(Opcode.CMD_TLBI_NH_VA), SYNC, int(Opcode.CMD_PREFETCH_CONFIG), SYNC]
    assert_same(Columns.of(ch, r), want)


@settings(max_examples=200)
@given(chunks(), chunks(), routings())
def test_frames_of_two_cpus_equal_route_frame(a: Chunk, b: Chunk, routing: Routing) -> None:
    """A frame of two CPUs (or VMs) routes each CPU's rows as if alone (host rows included)."""
    assume((a.vm, a.cpu) != (b.vm, b.cpu))
    df = pl.concat([a.frame(), b.frame()])
    assume(df.height > 0)
    alone = [routed(x.frame(), routing) for x in (a, b) if x.height]
    want = Columns(*[np.concatenate([getattr(c, f) for c in alone]) for f in Columns.__dataclass_fields__])
    assert_same(routed(df, routing), want)
    if not bool((df["vm"] < 0).all()):
        assert_same(Columns.of(df, routing), want)


@given(chunks(vm=0), st.sampled_from(ROW_POLICIES))
def test_sync_only_batches(chunk: Chunk, policy: str) -> None:
    """Every batch a lone CMD_SYNC (waited), and batches without one."""
    rows = chunk.rows
    n = rows.opcode.size
    for opcode in (np.full(n, SYNC, np.uint8), np.full(n, int(Opcode.CMD_TLBI_NH_VA), np.uint8)):
        ch = Chunk(
            Rows(rows.op, rows.batch, opcode, rows.kind, rows.kinds, rows.fields), 0, 0, 0, 0, chunk.t_ps
        )
        r = Routing(policy, GUEST_ACCEPTED)
        assert_same(Columns.of(ch, r), via_route_frame(ch, r))


def test_empty_and_host_chunks_take_the_host_path() -> None:
    empty = Rows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.int8),
                 ("unmap",), {})  # fmt: skip
    r = route_rows(empty.opcode, empty.batch, empty.sync(), "scan", vm=0)
    assert r.take.size == 0 and r.path.dtype == np.int64
    assert route_rows(
        np.array([SYNC]), np.array([0]), np.array([True]), "all-vcmdq", vm=-1
    ).path.tolist() == [0]


def test_route_rows_covers_every_policy_of_batches_as_runs() -> None:
    assert set(ROW_POLICIES) == set(POLICIES)
    assert applies("split", np.arange(3)) and not applies("scan", np.array([0, 2, 1]))


@given(chunks(), st.sampled_from([0.0, 0.3, 1.0]),
       st.sampled_from([Opcode.CMD_CFGI_CD, Opcode.CMD_CFGI_STE, Opcode.CMD_TLBI_NH_ALL, Opcode.CMD_ATC_INV]),
       st.integers(0, 2**32))  # fmt: skip
def test_numpy_inject_equals_inject_frame(chunk: Chunk, fraction: float, opcode: Opcode, seed: int) -> None:
    g1, g2 = np.random.default_rng(seed), np.random.default_rng(seed)
    got = transforms._inject_rows(chunk, g1, fraction, int(opcode), 0x1234)
    want = transforms._inject_frame(chunk.frame(), g2, fraction, int(opcode), 0x1234)
    assert_frame_equal(got.frame(), want)
    assert g1.random() == g2.random()  # the same draws


@given(chunks(), st.sampled_from([0.3, 1.0]), st.integers(0, 2**32))
def test_numpy_inject_equals_inject_frame_when_ops_are_not_runs(
    chunk: Chunk, fraction: float, seed: int
) -> None:
    perm = np.random.default_rng(seed).permutation(chunk.height)  # the rows shuffled: ops interleave
    r = chunk.rows
    rows = Rows(op=r.op[perm], batch=r.batch[perm], opcode=r.opcode[perm], kind=r.kind[perm], kinds=r.kinds,
                fields={f: (v[perm], ok[perm]) for f, (v, ok) in r.fields.items()})  # fmt: skip
    shuffled = Chunk(rows, chunk.cpu, chunk.vm, chunk.op0, chunk.batch0, chunk.t_ps)
    g1, g2 = np.random.default_rng(seed), np.random.default_rng(seed)
    got = transforms._inject_rows(shuffled, g1, fraction, int(Opcode.CMD_CFGI_CD), 0x1234)
    want = transforms._inject_frame(shuffled.frame(), g2, fraction, int(Opcode.CMD_CFGI_CD), 0x1234)
    assert_frame_equal(got.frame(), want)
    assert g1.random() == g2.random()


def test_inject_into_a_frame_whose_ops_are_not_runs() -> None:
    # rows of ops 5 and 7 interleave: one draw per op in the order of their first rows; each chosen
    # op gets the command before the row after its first, and a row picked twice gets one
    ops = [5, 7, 5, 7, 9]
    df = pl.DataFrame({"op": ops}).with_columns(
        pl.lit(0, pl.Int32).alias("cpu"), pl.lit(0, pl.Int32).alias("vm"), pl.col("op").cast(pl.Int64),
        pl.Series("batch", [0, 1, 0, 1, 2], pl.Int64), pl.lit(0, pl.Int64).alias("t_ps"),
        pl.lit(False).alias("sync"), pl.lit("unmap").alias("kind"),
        pl.lit(int(Opcode.CMD_TLBI_NH_VA), pl.UInt8).alias("opcode"),
        *[pl.lit(None, WORKLOAD_SCHEMA[f]).alias(f) for f in FIELD_COLUMNS],
    ).select(list(WORKLOAD_SCHEMA))  # fmt: skip
    g = np.random.default_rng(0)
    out = transforms._inject_frame(df, g, 1.0, int(Opcode.CMD_CFGI_CD), 0x99)
    # op 5 (first row 0) -> before row 1; op 7 (first row 1) -> before row 2; op 9 (one row) -> before
    # row 4; a new row copies the row it goes before (op, batch, ...)
    assert out["op"].to_list() == [5, 7, 7, 5, 5, 7, 9, 9]
    new = out["opcode"] == int(Opcode.CMD_CFGI_CD)
    assert new.to_list() == [False, True, False, True, False, False, True, False]
    assert out.filter(new)["sid"].to_list() == [0x99] * 3
    assert out.filter(new)["ssid"].to_list() == [0] * 3
    assert out["kind"].to_list() == ["mixed"] * 8
    g2 = np.random.default_rng(0)
    g2.random(3)
    assert g.random() == g2.random()  # one draw per op, no more

    # op 7 alone chosen (draws 0.9, 0.1, 0.9 against fraction 0.5): its rows become mixed; its new
    # row goes before row 2, whose op (5) it takes, with op 5's kind
    class Draws:
        def random(self, n: int) -> np.ndarray:
            return np.array([0.9, 0.1, 0.9])[:n]

    out = transforms._inject_frame(df, cast(np.random.Generator, Draws()), 0.5, int(Opcode.CMD_CFGI_CD), 0x99)
    assert out["op"].to_list() == [5, 7, 5, 5, 7, 9]
    assert out["kind"].to_list() == ["unmap", "mixed", "unmap", "unmap", "mixed", "unmap"]


GUEST_RUNS = [
    ("guest-fixup", {"vms": 2, "threads": 3, "unsupported_fraction": 0.2}),
    ("guest-fixup", {"vms": 4, "threads": 6}),
    ("guest-trap", {"vms": 2, "threads": 2, "unsupported_fraction": 0.3}),
    *[("guest-vcmdq", {"vms": 2, "threads": 2, "unsupported_fraction": 0.3, "policy": p}) for p in POLICIES],
    ("guest-vcmdq", {"vms": 1, "threads": 2, "granule_kib": 64, "unsupported_fraction": 0.5, "policy": "scan-fanout"}),
    ("guest-noisy", {"aggressor_vms": 1, "queue_sharing": "shared"}),
    ("guest-noisy", {"aggressor_vms": 1, "queue_sharing": "private"}),
    *[("guest-mixed", {"policy": p, "lone_sync_frac": 0.3, "sid_pairs": 4}) for p in ROW_POLICIES],
]  # fmt: skip


@pytest.mark.parametrize(("scenario", "params"), GUEST_RUNS)
def test_guest_simulations_equal_with_chunks_as_rows_and_as_frames(
    scenario: str, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = simulate(scenario, {"platform": "grace", **params}, seed=3, count=300)
    monkeypatch.setattr(compile_mod, "applies", lambda policy, batch: False)  # chunks routed as frames
    monkeypatch.setattr(transforms, "_runs", lambda op: False)
    slow = simulate(scenario, {"platform": "grace", **params}, seed=3, count=300)
    assert fast.metrics == slow.metrics


def test_a_sid_listed_twice_matches_once() -> None:
    opc = np.array([Opcode.CMD_TLBI_NH_VA, Opcode.CMD_ATC_INV, Opcode.CMD_SYNC], np.uint8)
    sid = (np.array([0, 8, 0], np.int64), np.array([False, True, False]))
    rows = Rows(
        np.zeros(3, np.int64), np.zeros(3, np.int64), opc, np.zeros(3, np.int8), ("unmap",), {"sid": sid}
    )
    ch = Chunk(rows, 0, 0, 0, 0, np.zeros(1, np.int64))
    r = Routing("scan", GUEST_ACCEPTED, {0: [8, 8]})
    want = via_route_frame(ch, r)
    assert want.opcode.size == 3 and (want.path == 1).all()
    assert_same(Columns.of(ch, r), want)
