"""The answer logic the notebooks call (cmdqv_lab.analysis), on small frames with known results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab.analysis.bottleneck import first_saturated, lazy_speedup, verdict
from cmdqv_lab.analysis.breakeven import break_even, break_even_text, crossing_table, per_unsupported_cost
from cmdqv_lab.analysis.capacity import geometry_table, max_fitting
from cmdqv_lab.analysis.fixup import md1_deviation, md1_latency, service_time, storm_points
from cmdqv_lab.analysis.frames import value
from cmdqv_lab.analysis.hazards import first_opcode_ill_closed_form, hw_sync_overhead
from cmdqv_lab.analysis.host import bottleneck_table, c1_kind, line_xfer_table
from cmdqv_lab.analysis.scaling import best_and_worst, compare_with, gain_table
from cmdqv_lab.analysis.validation import RANGES, assumed_parameters, rms_log_error
from cmdqv_lab.errors import FrameError


def test_break_even_interpolates_and_labels_the_cases() -> None:
    f = [0.0, 0.1, 0.2]
    assert break_even(f, [1.0, 1.5, 2.5], [1.2, 1.6, 2.0]) == (
        pytest.approx(0.1 + 0.1 * (1 / 16 / (0.25 + 1 / 16))),
        "12%",
    )
    assert break_even(f, [1.0, 1.5, 2.0], [1.0, 1.2, 1.4]) == (0.1, "< 10%")  # equal at 0, slower next
    assert break_even(f, [2.0, 2.0, 2.0], [1.0, 1.0, 1.0]) == (0.0, "0%")
    assert break_even(f, [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]) == (None, "none")


def test_crossing_table_and_its_words() -> None:
    means = pl.DataFrame(
        {"load": ["L"] * 6, "path": ["fixup"] * 3 + ["trap"] * 3, "unsupported_fraction": [0.0, 0.5, 1.0] * 2,
         "mean": [1.0, 3.0, 5.0, 4.0, 4.0, 4.0]}
    )  # fmt: skip
    t = crossing_table(means, ["load"])
    row = t.row(0, named=True)
    assert row["versus"] == "trap" and row["speedup_at_0"] == 4.0 and row["break_even"] == "75%"
    assert break_even_text(t, "trap") == "up to 75%" and break_even_text(t, "split") == "n/a"


def test_per_unsupported_cost_is_the_slope_minus_the_knob() -> None:
    one = pl.DataFrame(
        {"path": ["fixup"] * 3, "irq_latency_ns": [5000] * 3, "vmm_trap_ns": [0] * 3,
         "unsupported_fraction": [0.0, 0.5, 1.0], "op_latency_ns_mean": [1000.0, 5000.0, 9000.0]}
    )  # fmt: skip
    row = per_unsupported_cost(one).row(0, named=True)
    assert row["extra_ns_per_unsupported_unmap"] == pytest.approx(8000) and row[
        "fixed_part_ns"
    ] == pytest.approx(3000)


def test_closed_form_and_hw_sync_overhead() -> None:
    assert first_opcode_ill_closed_form(0.1, 2, "batch") == pytest.approx(0.1 * 2 / 3)
    with pytest.raises(ValueError, match="mix_per"):
        first_opcode_ill_closed_form(0.1, 2, "op")
    d = pl.DataFrame(
        {"size": [4, 4], "turn_limit": ["CMD_BATCH only"] * 2, "cmd_batch": [1, 1], "hw_sync": ["off", "on, 50 ns"],
         "mean_us": [10.0, 12.5], "p99_us": [20.0, 30.0], "kops_per_s": [100.0, 80.0], "hw_syncs_per_op": [0.0, 2.0]}
    )  # fmt: skip
    on = hw_sync_overhead(d).filter(pl.col("hw_sync") != "off").row(0, named=True)
    assert on["latency_change"] == pytest.approx(0.25) and on["throughput_change"] == pytest.approx(-0.2)


def test_capacity_limits_from_the_geometry() -> None:
    from cmdqv_lab.device.cmdqv import CmdqvParams

    assert max_fitting(CmdqvParams(), 1, "linux") == 63  # 64 VINTFs, VINTF0 is the host's
    assert max_fitting(CmdqvParams(), 4, "linux") == 0  # Linux gives each VINTF 128 / 64 = 2 VCMDQs
    g = geometry_table((8,), (32,)).row(0, named=True)
    assert g["vcmdqs_per_vintf_linux"] == 4 and g["direct_devices_total"] == 7 * 16


def test_fixup_service_and_md1() -> None:
    from types import SimpleNamespace

    frame = pl.DataFrame(
        {"vms": [1, 4], "vcpus": [2, 8], "unsupported_fraction": [0.01, 0.01], "fixup_latency_ns_p50": [10_000.0, 30_000.0],
         "fixups_per_s": [10_000.0, 50_000.0], "fixup_latency_ns_mean": [10_500.0, 20_000.0],
         "fixup_latency_ns_p99": [12_000.0, 40_000.0], "op_latency_ns_mean": [1.0, 2.0], "ops_per_s": [1.0, 2.0],
         "ops_per_s_per_cpu": [1.0, 1.0], "smmu_busy_fraction": [0.1, 0.5]}
    )  # fmt: skip
    s0, emul = service_time(frame, SimpleNamespace(irq_latency_ns=5000, irq_handler_ns=2000, irq_ack_ns=500))
    assert (s0, emul) == (10_000.0, 2_500.0)
    pts = storm_points(frame, s0)
    assert pts["rho"].to_list() == pytest.approx([0.1, 0.5])
    assert pts["md1_ns"][1] == pytest.approx(md1_latency(0.5, s0)) == pytest.approx(15_000)
    dev = md1_deviation(pts)
    assert dev["vs_md1"][1] == pytest.approx(20_000 / 15_000 - 1)


def test_gain_table_best_worst_and_the_nvidia_comparison() -> None:
    iv = pl.DataFrame(
        {
            "config": ["c"] * 4,
            "k": ["1", "2", "1", "2"],
            "threads": [2, 2, 8, 8],
            "mean": [100.0, 90.0, 200.0, 220.0],
        }
    )
    tp = iv.with_columns(mean=pl.lit(1.0))
    g = gain_table(iv, tp)
    bw = best_and_worst(g).row(0, named=True)
    assert (
        bw["threads"] == 2
        and bw["inval_reduction"] == pytest.approx(0.1)
        and bw["worst"] == pytest.approx(-0.1)
    )
    assert compare_with((0.25, 0.3), 0.2) == "above" and compare_with((0.05, 0.2), 0.2) == "within"
    assert compare_with((0.1, 0.3), 0.2) == "around"


def test_host_tables() -> None:
    df = pl.DataFrame(
        {"cpus": [2, 32, 16], "submit": ["linux-lockfree", "linux-lockfree", "spinlock"], "queues": "main"}
    )
    assert c1_kind(df)["kind"].to_list() == ["fitted", "predicted", "predicted"]
    summary = pl.DataFrame(
        {"smmu_parallel": [1] * 3, "config": ["a"] * 3, "cpus": [16] * 3,
         "metric": ["ops_per_s_per_cpu", "smmu_busy_fraction", "cas_success_ratio"], "mean": [1e5, 0.97, 0.5]}
    )  # fmt: skip
    assert bottleneck_table(summary, [16])["bottleneck"].to_list() == ["SMMU-bound"]
    xm = pl.DataFrame(
        {"line_xfer_xdie_ns": [80.0] * 3, "cpus": [16] * 3, "smmu_parallel": [1] * 3, "ops_per_s_per_cpu": [100.0, 200.0, 400.0],
         "config": ["main cmdq, lock-free", "8 VCMDQs (cpu % N), lock-free", "ECMDQ per CPU, exclusive"]}
    )  # fmt: skip
    assert line_xfer_table(xm)["exclusive / main lock-free"].to_list() == [4.0]


def test_bottleneck_verdicts() -> None:
    assert (
        verdict({"saturated": True, "smmu_busy_fraction": 0.5, "cpu_in_cmdq_pct": 100})
        == "saturated: software"
    )
    assert verdict({"saturated": False, "smmu_busy_fraction": 0.2, "cpu_in_cmdq_pct": 30}) == "costs CPU time"
    v = pl.DataFrame(
        {"workload": ["n"] * 3, "mode": ["strict"] * 3, "config": ["m"] * 3, "saturated": [False, True, True],
         "offered_unmaps_per_s": [1e5, 4e5, 2e5]}
    )  # fmt: skip
    assert first_saturated(v, "n", "m") == 2e5 and first_saturated(v, "n", "x") is None
    dsum = pl.DataFrame(
        {"config": ["m"] * 2, "threads": [1, 1], "mode": ["strict", "lazy"], "unmaps_per_s_per_cpu": [100.0, 250.0],
         "cmdq_cpu_share": [0.5, 0.01]}
    )  # fmt: skip
    assert lazy_speedup(dsum)["lazy speed-up"].to_list() == [2.5]


def test_validation_helpers() -> None:
    assert set(assumed_parameters()) == set(RANGES)
    assert rms_log_error([0.0, 0.0]) == 0.0


def test_value_needs_exactly_one_row() -> None:
    df = pl.DataFrame({"a": [1, 1], "b": [2.0, 3.0]})
    with pytest.raises(FrameError, match="2 rows where a=1"):
        value(df, "b", a=1)


def test_docs_sources_md_is_generated_from_the_bibliography() -> None:
    from cmdqv_lab.report import sources

    root = Path(__file__).resolve().parents[1]
    assert (root / "docs" / "sources.md").read_text() == sources.markdown(), (
        "regenerate: python -m cmdqv_lab.report.sources > docs/sources.md"
    )


def test_every_notebook_citation_is_in_the_bibliography() -> None:
    import re

    from cmdqv_lab.report import sources

    root = Path(__file__).resolve().parents[1]
    ids = set()
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]-*.py")):
        ids |= set(re.findall(r"\.\./docs/sources\.md#([a-z0-9.-]+)", nb.read_text()))
    assert ids and ids <= set(sources.load())


def test_stale_build_directories_of_dead_builders_are_removed(tmp_path: Path) -> None:
    from cmdqv_lab.report.site import remove_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".site.building-{dead.pid}"
    alive = tmp_path / f".site.building-{os.getpid() + 0}"
    other = tmp_path / f".site.building-{os.getppid()}"
    for d in (stale, alive, other):
        d.mkdir()
    said: list[str] = []
    assert remove_stale(tmp_path / "site", said.append) == [stale]
    assert not stale.exists() and alive.exists() and other.exists()
    assert str(dead.pid) in said[0]
