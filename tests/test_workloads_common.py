"""Synthetic workloads: registry, stream form, determinism, chunking, laziness, parameter errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from workload_helpers import collect, frames, gen

from cmdqv_lab.device.commands import decode_batch, opcode_values
from cmdqv_lab.errors import ParamError
from cmdqv_lab.workloads.registry import generate, get_workload, workload_names
from cmdqv_lab.workloads.stream import encode, validate
from cmdqv_lab.workloads.synthetic import io as sio
from cmdqv_lab.workloads.synthetic.common import Rows, Template, Var, quotas, vm_sids

NAMES = ["config-churn", "dma-map", "fio", "mixed", "netperf"]

#: One configuration per generator and mode that matters, each small.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("dma-map", {"threads": 3, "ops": 50, "granule_kib": 12}),
    ("dma-map", {"ops": 40, "granule_kib": 132, "ril": True, "ats": True, "vms": 2, "threads": 2}),
    ("dma-map", {"ops": 300, "mode": "lazy", "fq_entries": 16, "ats": True, "fq_timeout_ms": 0.01}),
    ("dma-map", {"ops": 20, "granule_kib": 64, "stage": "s2", "mode": "lazy", "fq_entries": 4}),
    ("fio", {"jobs": 2, "ops": 60, "bs_kib": 16, "ats": True}),
    ("fio", {"jobs": 2, "ops": 300, "loop": "closed", "mode": "lazy", "fq_entries": 8, "fq_timer": "linux"}),
    ("netperf", {"ops": 200, "vms": 2, "threads": 2, "pkt_bytes": 9000, "ats": True, "sids_per_vm": 3}),
    ("netperf", {"ops": 500, "mode": "lazy", "pps": 1e5, "fq_timeout_ms": 0.05, "fq_entries": 8}),
    ("config-churn", {"cycles": 30, "vms": 2, "threads": 2, "sids_per_vm": 3, "ats": True, "cd_all": True}),
    ("config-churn", {"cycles": 10, "stage": "s2", "prefetch": False}),
    (
        "mixed",
        {"ops": 200, "unsupported_fraction": 0.3, "split_sync_fraction": 0.3, "foreign_sid_fraction": 0.2},
    ),
    (
        "mixed",
        {"ops": 200, "mix_per": "batch", "unsupported_fraction": 0.5, "atc_same_batch": True, "vms": 0},
    ),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


def test_all_generators_are_registered_with_docs_and_param_tables() -> None:
    assert set(NAMES) <= set(workload_names())
    for name in NAMES:
        spec = get_workload(name)
        table = spec.params().table()
        assert spec.doc and table.height >= 8
        assert table.filter(pl.col("doc") == "").height == 0, f"{name}: every parameter has a doc"


@pytest.mark.parametrize(("name", "over"), CASES, ids=IDS)
def test_every_frame_validates_and_encodes(name: str, over: dict[str, Any]) -> None:
    w = generate(name, {**over, "chunk": 7}, seed=5)
    assert (
        len(w.cpus)
        == len(w.streams)
        == max(1, over.get("vms", 0 if name != "mixed" else 2))
        * over.get("threads", over.get("jobs", 1 if name != "mixed" else 2))
    )
    got = frames(w)
    for (vm, cpu), fs in zip(w.cpus, got):
        assert fs, "every stream has ops"
        for f in fs:
            validate(f)
            assert f["op"].n_unique() <= 7
            assert set(f["vm"]) == {vm} and set(f["cpu"]) == {cpu}
            enc = encode(f)
            assert (opcode_values(enc) == f["opcode"].to_numpy()).all()
    df = validate(
        pl.concat([f for fs in got for f in fs])
    )  # the streams of several VMs together (vCPU numbers repeat)
    assert df.height > 0


@pytest.mark.parametrize(("name", "over"), CASES, ids=IDS)
def test_same_seed_same_frames_and_chunk_size_does_not_matter(
    name: str, over: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = gen(name, seed=11, **over)
    b = gen(name, seed=11, **over, chunk=3)
    monkeypatch.setattr(sio, "LAZY_BLOCK", 5)  # lazy mode scans unmaps in blocks
    c = gen(name, seed=11, **over, chunk=1)
    assert a.equals(b) and a.equals(c)


def test_different_seeds_differ() -> None:
    for name, over in CASES:
        a, d = gen(name, seed=1, **over), gen(name, seed=2, **over)
        assert not a.equals(d), name


def test_a_stream_does_not_depend_on_the_other_streams() -> None:
    one = collect(generate("netperf", {"threads": 1, "ops": 100}, seed=3))
    four = collect(generate("netperf", {"threads": 4, "ops": 400}, seed=3))
    assert one.equals(four.filter(pl.col("cpu") == 0))


def test_op_counts_per_thread_follow_the_quotas() -> None:
    assert quotas(10, 3) == [4, 3, 3] and sum(quotas(7, 7)) == 7
    df = gen("dma-map", threads=3, ops=10)
    assert df.group_by("cpu").agg(pl.col("op").n_unique()).sort("cpu")["op"].to_list() == [4, 3, 3]
    df = gen("config-churn", cycles=5, vms=2, threads=2)
    counts = df.group_by("vm", "cpu").agg(pl.col("op").n_unique()).sort("vm", "cpu")["op"].to_list()
    assert counts == [4, 2, 2, 2]  # two ops (attach, detach) per cycle; 5 cycles over 4 streams


def test_vm_and_cpu_convention_and_ids() -> None:
    w = generate("dma-map", {"vms": 3, "threads": 2, "ops": 12, "sids_per_vm": 2, "vmid_base": 7}, seed=0)
    assert w.cpus == ((0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1))
    df = collect(w).filter(pl.col("opcode") != 70)
    assert df.group_by("vm").agg(pl.col("vmid").unique()).sort("vm")["vmid"].to_list() == [[7], [8], [9]]
    host = gen("dma-map", ops=2).filter(pl.col("opcode") != 70)
    assert set(host["vm"]) == {-1} and set(host["vmid"]) == {0}
    assert vm_sids(w.params) == {0: [512, 513], 1: [768, 769], 2: [1024, 1025]}
    assert vm_sids(generate("fio", {}).params) == {-1: [256]}


def test_streams_are_lazy_a_huge_workload_is_not_materialised() -> None:
    w = generate("dma-map", {"ops": 10**11, "threads": 2, "chunk": 1000}, seed=0)
    first = next(w.streams[1])
    assert first.height == 2000 and first["op"].to_list()[-1] == 999
    w = generate("mixed", {"ops": 10**11, "chunk": 100}, seed=0)
    assert next(w.streams[0])["op"].n_unique() == 100
    w = generate("netperf", {"ops": 10**11, "mode": "lazy"}, seed=0)
    assert next(w.streams[0]).height > 0


@pytest.mark.parametrize(
    ("name", "over", "match"),
    [
        ("fio", {"bs_kib": 6}, "bs_kib=6 is not a multiple of 4 KiB"),
        ("dma-map", {"granule_kib": 0}, "granule_kib=0 is out of range"),
        ("fio", {"stage": "s2", "vms": 1}, "stage='s2' needs vms=0"),
        ("fio", {"mode": "eager"}, "mode='eager' is not allowed"),
        ("fio", {"jobs": 2, "threads": 2}, "give jobs or threads"),
        ("netperf", {"pps": "fast"}, "pps='fast' is not a number"),
        ("config-churn", {"rate_hz": 1000, "hold_us": 1000}, "hold_us=1000 must be below"),
        ("mixed", {"unsupported": "CFGI_STE,FOO"}, "unknown kind 'FOO'"),
        ("mixed", {"unsupported_fraction": 0.95}, "unsupported_fraction=0.95 is out of range"),
        ("mixed", {"unsupported": "", "unsupported_fraction": 0.1}, "needs unsupported_fraction=0"),
        ("dma-map", {"vms": 10, "vmid_base": 65530}, "exceeds the 16-bit VMID space"),
        ("netperf", {"threads": 4096, "ring": 65536, "pkt_bytes": 1 << 20}, "do not fit a 48-bit IOVA space"),
        ("dma-map", {"nope": 1}, "unknown parameter 'nope'"),
    ],
)
def test_parameter_errors_are_one_line(name: str, over: dict[str, Any], match: str) -> None:
    with pytest.raises(ParamError, match=match) as e:
        w = generate(name, over)
        next(w.streams[0])
    assert "\n" not in str(e.value)


def test_fio_accepts_jobs_as_threads() -> None:
    assert generate("fio", {"jobs": "3"}).cpus == ((-1, 0), (-1, 1), (-1, 2))


def test_template_expansion_and_nulls() -> None:
    t = Template.build([("x", [([(0x12, {"asid": Var("a"), "addr": Var("i", 0x1000)})], True)])])
    rows = t.expand(2, {"a": np.array([3, 4]), "i": np.array([0x10000, 0x20000], np.uint64)})
    df = rows.frame(cpu=1, vm=-1, op0=5, batch0=9, t_ps=np.array([7, 8]))
    assert df["op"].to_list() == [5, 5, 6, 6] and df["batch"].to_list() == [9, 9, 10, 10]
    assert df["asid"].to_list() == [3, None, 4, None] and df["addr"].to_list() == [
        0x11000,
        None,
        0x21000,
        None,
    ]
    assert df["sync"].all() and df["t_ps"].to_list() == [7, 7, 8, 8]
    assert str(decode_batch(encode(validate(df)))[0]).startswith("CMD_TLBI_NH_VA vmid=0 asid=3 addr=0x11000")
    z = np.zeros(0, np.int64)
    empty = Rows(z, z, z, z, kinds=("x",), fields={}).frame(cpu=0, vm=-1, op0=0, batch0=0, t_ps=z)
    assert empty.height == 0 and validate(empty).height == 0
