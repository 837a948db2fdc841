"""guest-noisy (Q12): victim metrics against the plain guest scenarios, the victim/aggressor split,
hand-checked metric arithmetic, the bounds of cmdqv_lab.analysis.noisy, the SimPy reference, the CLI."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from cmdqv_lab.analysis.noisy import bound_ns, hurt, private_bound_ns, turn_ns
from cmdqv_lab.engine.runner import EngineConfig, run_engine
from cmdqv_lab.errors import ParamError
from cmdqv_lab.scenarios import simulate
from cmdqv_lab.scenarios.base import get_scenario, resolve
from cmdqv_lab.scenarios.guest_noisy import group_metrics, latency_stats
from tests.cli_helpers import run_cli
from tests.reference.simpy_model import run_reference
from tests.test_engine_reference import CMD_FIELDS, OP_FIELDS

PLAIN = {"shared": ("guest-trap", {}), "private": ("guest-vcmdq", {"policy": "all-vcmdq"})}


def test_latency_stats_by_hand() -> None:
    lat = np.arange(1, 101, dtype=np.int64) * 1000  # 1 .. 100 ns
    assert latency_stats(lat) == {"mean": 50.5, "p50": 50.0, "p99": 99.0, "max": 100.0}
    assert latency_stats(np.array([7000], np.int64)) == {"mean": 7.0, "p50": 7.0, "p99": 7.0, "max": 7.0}
    assert latency_stats(np.zeros(0, np.int64))["p99"] is None


def test_group_metrics_by_hand() -> None:
    # victims: CPU 0 and 1; aggressor: CPU 2, which finishes first at t = 10 us: the window
    ops = pl.DataFrame(
        {
            "cpu": [0, 0, 1, 1, 0, 2, 2],
            "complete_ps": [2_000_000, 4_000_000, 3_000_000, 12_000_000, 11_000_000, 5_000_000, 10_000_000],
            "latency_ps": [1000, 3000, 2000, 9000, 8000, 4_000_000, 5_000_000],
            "cmds": [2, 2, 2, 2, 2, 257, 257],
        }
    )
    m = group_metrics(ops, victim_cpus=2)
    assert m["window_ns"] == 10_000.0
    assert m["victim_ops_measured"] == 3  # the ops at 11 and 12 us lie after the window
    assert m["victim_op_latency_ns"] == {"mean": 2.0, "p50": 2.0, "p99": 3.0, "max": 3.0}
    assert m["victim_ops_per_s"] == pytest.approx(3 / 10e-6)
    assert m["aggressor_ops_per_s"] == pytest.approx(2 / 10e-6)
    assert m["aggressor_commands_per_s"] == pytest.approx(514 / 10e-6)


@pytest.mark.parametrize("sharing", ["shared", "private"])
def test_without_aggressors_the_victim_is_the_plain_scenario(sharing: str) -> None:
    """One victim, no aggressor: the same ops as guest-trap / guest-vcmdq with one VM, op for op."""
    name, extra = PLAIN[sharing]
    r = simulate("guest-noisy", {"queue_sharing": sharing, "aggressor_vms": 0}, seed=5, count=400)
    plain = simulate(name, {"vms": 1, **extra}, seed=5, count=400, record=True)
    assert plain.ops is not None and r.engine.ops is not None
    assert np.array_equal(r.engine.ops["latency_ps"].to_numpy(), plain.ops["latency_ps"].to_numpy())
    v = r.metrics["victim_op_latency_ns"]
    assert r.metrics["victim_ops_measured"] == 400
    assert v["mean"] == pytest.approx(plain.metrics["op_latency_ns"]["mean"], rel=1e-12)
    assert v["max"] == plain.metrics["op_latency_ns"]["max"]
    assert v == latency_stats(plain.ops["latency_ps"].to_numpy())
    assert r.metrics["aggressor_ops_per_s"] == 0


@pytest.mark.parametrize("sharing", ["shared", "private"])
def test_aggressors_do_not_lower_the_victims_p99(sharing: str) -> None:
    p99 = []
    for a in (0, 1, 4):
        m = simulate("guest-noisy", {"queue_sharing": sharing, "aggressor_vms": a}, seed=1, count=600).metrics
        assert m["victim_ops_measured"] >= 540  # aggressors outlast (nearly) every victim op
        if a:
            assert m["aggressor_ops_per_s"] > 0
        p99.append(m["victim_op_latency_ns"]["p99"])
    assert p99[0] <= p99[1] <= p99[2]
    assert p99[2] > p99[0]


@pytest.mark.parametrize("sharing", ["shared", "private"])
def test_victims_and_aggressors_are_split_by_cpu(sharing: str) -> None:
    """2 victim VMs then 2 aggressor VMs x 2 vCPUs: CPUs 0-1 unmap 4 KiB, CPUs 2-5 unmap 64 KiB."""
    over = {"queue_sharing": sharing, "victim_vms": 2, "aggressor_vms": 2, "aggressor_threads": 2,
            "aggressor_granule_kib": 64}  # fmt: skip
    r = simulate("guest-noisy", over, seed=2, count=200)
    ops = r.engine.ops
    assert ops is not None
    per_cpu = ops.group_by("cpu").agg(pl.col("cmds").unique()).sort("cpu")
    # the guest's own batch: 16 TLBIs + CMD_SYNC (on its VCMDQ, or on its emulated vSMMU queue: the
    # VMM thread's forwarded host batches are not the vCPU's commands)
    want_aggr = [17]
    want_victim = [2]
    assert per_cpu["cpu"].to_list() == [0, 1, 2, 3, 4, 5]  # the IRQ (private) and VMM threads record no op
    for cpu, cmds in per_cpu.iter_rows():
        assert sorted(cmds) == (want_victim if cpu < 2 else want_aggr), cpu
    m = r.metrics
    assert m["aggressor_commands_per_s"] == pytest.approx(m["aggressor_ops_per_s"] * want_aggr[0])
    window = ops.filter(pl.col("complete_ps") <= m["window_ns"] * 1000)
    assert m["victim_ops_measured"] == window.filter(pl.col("cpu") < 2).height
    lat = window.filter(pl.col("cpu") < 2)["latency_ps"].to_numpy()
    assert m["victim_op_latency_ns"] == latency_stats(lat)


def test_turn_and_bounds_by_hand() -> None:
    # CLK_BATCH 256 ns over 184.3 ns TLBIs: 2 commands, 2 fetches (one for the burst, one misaligned)
    assert turn_ns(cmd_batch=32, clk_batch_ns=256, tlbi_ns=184.3, fetch_ns=31, fetch_line=4) == pytest.approx(
        430.6
    )
    assert turn_ns(cmd_batch=8, clk_batch_ns=0, tlbi_ns=100, fetch_ns=10, fetch_line=4) == pytest.approx(830)
    # busy polling with 300 ns CONS reads from t = 0: the victim's own TLBI + SYNC + fetch end at
    # 160 ns (seen at 300); 4 turns of 830 ns later (3480 ns) the read ending at 3600 sees it
    row = {"queue_sharing": "private", "victim_vms": 1, "aggressor_vms": 4, "smmu_parallel": 1, "cmd_batch": 8,
           "clk_batch_ns": 0.0, "tlbi_service_ns": 100.0, "sync_service_ns": 50.0, "fetch_ns": 10.0,
           "fetch_line_cmds": 4, "victim_granule_kib": 4, "guest_sync_wait": "busy", "msi_ns": 0.0, "sev_ns": 0.0,
           "mmio_read_ns": 300.0, "spin_ns": 0.0, "udelay_us": 1.0, "poll_spins": 10}  # fmt: skip
    assert bound_ns(row) == pytest.approx(3600 - 300)
    # two processors: queues 1 (victim) and 3, 5 (aggressors) on processor 1, queues 2 and 4 on 0
    assert private_bound_ns({**row, "smmu_parallel": 2}) == pytest.approx(2100 - 300)  # 1820 ns: seen at 2100
    assert private_bound_ns({**row, "smmu_parallel": 8}) == 0.0
    # queue_poll: 9 polls of 300 ns (2700 ns), then udelay(1 us) + a read (4000 ns), udelay(2 us) + a read ...
    assert private_bound_ns({**row, "guest_sync_wait": "poll"}) == pytest.approx(4000 - 300)
    assert private_bound_ns({**row, "cmd_batch": 0}) == float("inf")
    shared = {"queue_sharing": "shared", "aggressor_vms": 3, "aggressor_threads": 4, "vmm_lock": True,
              "victim_granule_kib": 4, "vmm_forward": "batched", "vmm_batch": 63, "tlbi_service_ns": 100.0,
              "sync_service_ns": 50.0, "fetch_ns": 10.0, "fetch_line_cmds": 4}  # fmt: skip
    # 63 TLBIs + SYNC: 16 bursts of 4 and one more for a misaligned start
    assert bound_ns(shared) == pytest.approx(3 * (6300 + 50 + 17 * 10))
    assert bound_ns({**shared, "vmm_lock": False}) == pytest.approx(12 * (6300 + 50 + 17 * 10))
    # one ioctl per command: a TLBI + SYNC per forward; a 16 KiB victim unmap is 4 of them
    per_cmd = {**shared, "vmm_forward": "per-command", "victim_granule_kib": 16}
    assert bound_ns(per_cmd) == pytest.approx(4 * 3 * (100 + 50 + 2 * 10))


def test_private_extra_latency_stays_within_the_turn_bound() -> None:
    """The measured increase of the victim's worst unmap is at most the arbitration estimate."""
    base = {"queue_sharing": "private", "cmd_batch": 8, "clk_batch_ns": 0.0}
    m0 = simulate("guest-noisy", {**base, "aggressor_vms": 0}, seed=3, count=500)
    for a in (1, 3):
        r = simulate("guest-noisy", {**base, "aggressor_vms": a}, seed=3, count=500)
        extra = r.metrics["victim_op_latency_ns"]["max"] - m0.metrics["victim_op_latency_ns"]["max"]
        bound = bound_ns(r.params)
        assert 0 < extra <= bound, (a, extra, bound)
        assert extra > 0.5 * (a * 8 * r.params["tlbi_service_ns"])  # a flood does fill the turns


def test_hurt_pairs_seeds_with_the_run_without_aggressors() -> None:
    df = pl.DataFrame(
        {
            "queue_sharing": ["shared"] * 6,
            "aggressor_vms": [0, 0, 1, 1, 2, 2],
            "seed": [0, 1, 0, 1, 0, 1],
            "victim_op_latency_ns_p99": [100.0, 110.0, 130.0, 130.0, 150.0, 170.0],
        }
    )
    h = hurt(df, ["queue_sharing"])
    assert h["aggressor_vms"].to_list() == [1, 2]
    assert h["extra_ns"].to_list() == [25.0, 55.0]
    assert h["base"].to_list() == [105.0, 105.0]
    assert h["n"].to_list() == [2, 2]
    assert h["extra_pct"][0] == pytest.approx((30 / 100 + 20 / 110) / 2 * 100)


def test_bad_input_is_one_line() -> None:
    with pytest.raises(ParamError, match="victim_granule_kib=6 is not a multiple of 4 KiB"):
        simulate("guest-noisy", {"victim_granule_kib": 6}, count=10)
    with pytest.raises(ParamError, match="exceed 63 VMs"):
        simulate("guest-noisy", {"victim_vms": 32, "aggressor_vms": 40}, count=10)
    with pytest.raises(ParamError, match="whose records the metrics keep"):
        simulate("guest-noisy", {"victim_think_ns": 1e8, "aggressor_granule_kib": 4,
                                 "queue_sharing": "private"}, count=1000)  # fmt: skip


@pytest.mark.parametrize("sharing", ["shared", "private"])
def test_guest_noisy_matches_the_reference(sharing: str) -> None:
    scn = get_scenario("guest-noisy")
    over = {"queue_sharing": sharing, "aggressor_vms": 2, "aggressor_granule_kib": 16, "cmd_batch": 3,
            "clk_batch_ns": 300.0, "service_dist": "exponential", "line_xfer_ns": 47}  # fmt: skip
    params, plat = resolve(scn, over)
    assert plat is not None
    cfg, streams = scn.build(params, plat, 3, 12)
    blocks = [list(s) for s in streams]
    cfg = EngineConfig(**{**cfg.__dict__, "record": True, "record_limit": 100_000})
    eng = run_engine(cfg, [iter(b) for b in blocks])
    ref = run_reference(cfg, blocks)
    assert eng.commands is not None and eng.ops is not None
    got = eng.commands.select(CMD_FIELDS).sort("queue", "slot")
    want = pl.DataFrame(ref.cmd_records, schema={k: got.schema[k] for k in CMD_FIELDS}).sort("queue", "slot")
    assert got.equals(want)
    got_o = eng.ops.select(OP_FIELDS).sort("op_id")
    want_o = pl.DataFrame(ref.op_records, schema={k: got_o.schema[k] for k in OP_FIELDS}).sort("op_id")
    assert got_o.equals(want_o)


@pytest.mark.parametrize("sharing", ["shared", "private"])
def test_cli_reports_the_victims_p99(capsys: pytest.CaptureFixture[str], sharing: str) -> None:
    # the done-when command of issue 15 (default size: 3000 victim unmaps)
    code, out, err = run_cli(
        capsys, "simulate", "-s", "guest-noisy", "--set", f"queue_sharing={sharing}", "--set", "platform=grace",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    m = json.loads(out)["metrics"]
    assert m["victim_op_latency_ns"]["p99"] > 0
    assert m["aggressor_ops_per_s"] > 0
    code, out, _ = run_cli(
        capsys, "simulate", "-s", "guest-noisy", "--set", f"queue_sharing={sharing}", "--ops", "300"
    )
    assert code == 0 and "victim_op_latency_ns" in out and "p99" in out
    code, _, err = run_cli(capsys, "simulate", "-s", "guest-noisy", "--set", "queue_sharing=both")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "queue_sharing" in err
