"""Guest paths: hand-computed timelines, agreement with the SimPy reference, and the grace preset."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cmdqv_lab.analysis.calibrate import CalibrationSpec, evaluate
from cmdqv_lab.engine.runner import EngineConfig, run_engine
from cmdqv_lab.platform import read_preset
from cmdqv_lab.scenarios import simulate
from cmdqv_lab.scenarios.base import get_scenario, resolve
from tests.reference.simpy_model import run_reference
from tests.test_engine_reference import CMD_FIELDS, OP_FIELDS

# round numbers so timelines can be computed by hand (ns)
SIMPLE = {
    "platform": "generic", "line_xfer_ns": 0, "line_local_ns": 0, "cmd_write_ns": 10, "mmio_write_ns": 100,
    "mmio_read_ns": 200, "spin_ns": 0, "msi_ns": 50, "fetch_ns": 20, "fetch_line_cmds": 1, "tlbi_service_ns": 300,
    "sync_service_ns": 40, "cfgi_service_ns": 500, "service_dist": "deterministic", "trap_user_ns": 2000,
    "vmm_trap_ns": 5000, "vmm_per_cmd_ns": 1000, "vmm_batch": 63, "guest_poll": "poll", "guest_unmap_ns": 3000,
    "vmm_ioctl_ns": 700, "vmm_read_ns": 300, "futex_wake_ns": 4000, "vmm_forward": "per-command", "udelay_us": 1,
    "poll_spins": 10, "think_dist": "deterministic",
    "guest_map_ns": 1000, "sync_wait": "msi", "vcmdq_sync_wait": "busy", "guest_sync_wait": "busy", "irq_latency_ns": 4000,
    "irq_handler_ns": 1000, "irq_ack_ns": 500, "guest_error_ns": 7000, "smmu_parallel": 1,
}  # fmt: skip


def one_op(scenario: str, **over: object) -> dict:  # type: ignore[type-arg]
    r = simulate(scenario, {**SIMPLE, **over}, seed=0, count=1, record=True)
    assert r.ops is not None
    return {"latency_ns": r.ops["latency_ps"][0] / 1000, "metrics": r.metrics, "cmds": r.commands}


def test_trap_timeline_by_hand() -> None:
    # guest unmap 3000; the guest driver writes 2 entries 20; its PROD write exits (half a trap, 1000);
    # the VMM thread takes the BQL, emulates (5000), forwards the TLBI (ioctl 700 + per command 1000;
    # host issue of TLBI+SYNC: write 20, doorbell 100, fetch+TLBI 320, fetch+SYNC 60, MSI 50), releases
    # the BQL; back 1000. The guest then polls CONS: cpu_relax (0), the read exits 1000, smmu_readl
    # 300 under the BQL, back 1000. (tests/test_guest_vmm.py has the multi-vCPU cases.)
    host = 20 + 100 + 320 + 60 + 50
    want = 3000 + 20 + 1000 + 5000 + 700 + 1000 + host + 1000 + 1000 + 300 + 1000
    got = one_op("guest-trap")
    assert got["latency_ns"] == pytest.approx(want)
    assert got["metrics"]["exits"] == 2 and got["metrics"]["illegal_commands"] == 0


def test_vcmdq_timeline_by_hand() -> None:
    # guest unmap 3000; write 2 entries 20; doorbell 100; fetch+TLBI 320, fetch+SYNC 60 (SYNC done at
    # 3000+20+100+380 = 3500 after the op starts); busy polling from the end of the doorbell (3120):
    # reads of 200 end at 3320, 3520 -> observed at 3520
    got = one_op("guest-vcmdq")
    assert got["latency_ns"] == pytest.approx(3520)
    assert got["metrics"]["exits"] == 0


def test_guest_vcmdq_sync_wait_is_queue_poll() -> None:
    # 4 TLBIs + SYNC on the VCMDQ: unmap 3000, write 50, doorbell 100 -> lands at 3150; the SMMU
    # completes the SYNC at 3150 + 4 x 320 + 60 = 4490. guest_sync_wait=poll with poll_spins=1 (every
    # queue_poll a udelay): udelay 1000 + CONS read 200 -> 4350 (not yet), udelay 2000 + 200 -> 6550.
    got = one_op("guest-vcmdq", granule_kib=16, guest_sync_wait="poll", poll_spins=1)
    assert got["latency_ns"] == pytest.approx(6550)
    # back-to-back CONS reads ("busy") from 3150 observe it at the 7th read, 4550
    assert one_op("guest-vcmdq", granule_kib=16, guest_sync_wait="busy")["latency_ns"] == pytest.approx(4550)
    # the host's vcmdq_sync_wait does not apply to a guest's VCMDQ
    same = one_op("guest-vcmdq", granule_kib=16, guest_sync_wait="poll", poll_spins=1, vcmdq_sync_wait="msi")
    assert same["latency_ns"] == pytest.approx(6550)


def test_fixup_timeline_by_hand() -> None:
    # the unmap carries a CFGI_CD (unsupported): TLBI, CFGI_CD, SYNC on the VCMDQ.
    # doorbell lands at 3000+30+100 = 3130; TLBI done at 3450; CFGI_CD raises ILL at 3450.
    # IRQ thread: latency 4000, handler 1000, emulate CFGI_CD+SYNC on the host queue (write 20,
    # doorbell 100, fetch+CFGI 520, fetch+SYNC 60, MSI 50 = 750), ack 500 -> resume at 3450+6250 = 9700.
    # The rewritten SYNC (fetch 20 + 40) and the guest's SYNC (fetch 20 + 40) complete at 9820;
    # busy polling from 3130 in steps of 200 observes it at 9930.
    got = one_op("guest-fixup", unsupported_fraction=1.0)
    assert got["metrics"]["illegal_commands"] == 1 and got["metrics"]["fixups"] == 1
    assert got["metrics"]["fixup_latency_ns"]["max"] == pytest.approx(6250)
    assert got["latency_ns"] == pytest.approx(9930)


def test_vcmdq_error_forwarded_to_guest() -> None:
    # first-opcode sends the mixed batch to the VCMDQ: ILL, forwarded to the guest (a guest IRQ),
    # the CFGI_CD is skipped (its invalidation never happens: the hazard the checker reports)
    got = one_op("guest-vcmdq", unsupported_fraction=1.0, policy="first-opcode")
    m = got["metrics"]
    assert (m["illegal_commands"], m["guest_irqs"], m["fixups"]) == (1, 1, 0)
    # scan traps the whole batch instead: no ILL, two exits
    m2 = one_op("guest-vcmdq", unsupported_fraction=1.0, policy="scan")["metrics"]
    assert (m2["illegal_commands"], m2["exits"]) == (0, 2)


@pytest.mark.parametrize(
    ("scenario", "over"),
    [
        ("guest-trap", {"threads": 2, "vms": 2, "granule_kib": 8}),
        ("guest-trap", {"threads": 3, "granule_kib": 16, "vmm_forward": "batched", "vmm_batch": 2}),
        ("guest-trap", {"threads": 3, "granule_kib": 8, "guest_poll": "irq", "futex_wake_ns": 20000}),
        ("guest-trap", {"threads": 3, "granule_kib": 4, "vmm_lock": False, "vmm_read_ns": 3000}),
        (
            "guest-vcmdq",
            {"threads": 3, "vcmdqs_per_vm": 2, "unsupported_fraction": 0.3, "policy": "first-opcode"},
        ),
        ("guest-vcmdq", {"threads": 2, "unsupported_fraction": 0.3, "policy": "split"}),
        ("guest-fixup", {"threads": 2, "vms": 2, "unsupported_fraction": 0.3}),
    ],
)
def test_guest_scenarios_match_the_reference(scenario: str, over: dict) -> None:  # type: ignore[type-arg]
    scn = get_scenario(scenario)
    params, plat = resolve(
        scn, {"platform": "grace", "line_xfer_ns": 47, "service_dist": "exponential", **over}
    )
    cfg, streams = scn.build(params, plat, 3, 60)
    blocks = [list(s) for s in streams]
    cfg = EngineConfig(**{**cfg.__dict__, "record": True})
    eng = run_engine(cfg, [iter(b) for b in blocks])
    ref = run_reference(cfg, blocks)
    assert eng.commands is not None and eng.ops is not None
    got = eng.commands.select(CMD_FIELDS).sort("queue", "slot")
    want = pl.DataFrame(ref.cmd_records, schema={k: got.schema[k] for k in CMD_FIELDS}).sort("queue", "slot")
    assert got.equals(want)
    got_o = eng.ops.select(OP_FIELDS).sort("op_id")
    want_o = pl.DataFrame(ref.op_records, schema={k: got_o.schema[k] for k in OP_FIELDS}).sort("op_id")
    assert got_o.equals(want_o)
    m = eng.metrics()
    assert (m["exits"], m["guest_irqs"], m["illegal_commands"], m["fixups"]) == (
        ref.counters["exits"], ref.counters["guest_irqs"], ref.counters["illegal"], ref.counters["fixups"])  # fmt: skip
    assert np.isclose(sum(ref.fixup_latencies), int(eng.g[26]))  # G_FIX_LAT_SUM


def test_grace_preset_within_15_percent_of_every_c2_row() -> None:
    spec = CalibrationSpec.load("grace")
    preset = read_preset("grace")
    rows = evaluate(spec, {k: preset.values[k] for k in spec.params})
    for row in rows:
        assert abs(row["rel_error"]) <= 0.15, row
    stored = {r["label"]: r["model"] for r in preset.meta["fit_row"]}
    for row in rows:
        assert row["model"] == pytest.approx(stored[row["label"]], abs=1.0)
    preds = {p["label"] for p in preset.meta["prediction"]}
    assert {
        f"{w} {g} KiB, {t} threads"
        for w in ("trapped", "VCMDQ")
        for g in (4, 16, 64, 128, 256)
        for t in (2, 4, 8)
    } == preds


def test_grace_cli_reports_unmap_latency(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "cmdqv_lab.cli", "simulate", "--scenario", "guest-trap", "--set", "platform=grace",
         "--set", "threads=1", "--set", "granule_kib=16", "--ops", "500", "--json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    res = json.loads(out.stdout)
    for key in (
        "exits",
        "guest_irqs",
        "illegal_commands",
        "fixups",
        "op_latency_ns",
        "queue_wait_ns",
        "ops_per_s",
    ):
        assert key in res["metrics"]
    assert 30_000 < res["metrics"]["op_latency_ns"]["mean"] < 55_000  # C2: 41.8 us


@pytest.mark.parametrize("scenario", ["guest-trap", "guest-vcmdq", "guest-fixup"])
def test_ops_per_s_per_cpu_counts_vcpus_not_the_irq_thread(scenario: str) -> None:
    m = simulate(scenario, {"threads": 2}, seed=0, count=200).metrics
    assert m["ops_per_s_per_cpu"] == pytest.approx(m["ops_per_s"] / 2)


def test_guest_workload_scenarios_route_registry_streams() -> None:
    """guest-wl-<workload>: first-opcode puts unsupported commands on the VCMDQ (ILL, forwarded to
    the guest), scan traps them (exits, no ILL); the same seed gives the same metrics."""
    from cmdqv_lab.workloads.registry import workload_names

    for name in workload_names():
        get_scenario(f"guest-wl-{name}")
    first = simulate("guest-wl-mixed", {"policy": "first-opcode"}, seed=1, count=2000).metrics
    scan = simulate("guest-wl-mixed", {"policy": "scan"}, seed=1, count=2000).metrics
    assert first["ops"] == scan["ops"] == 2000
    assert first["illegal_commands"] > 0 and first["guest_irqs"] == first["illegal_commands"]
    assert scan["illegal_commands"] == 0 and scan["exits"] > first["exits"]
    fixup = simulate("guest-wl-mixed", {"policy": "all-vcmdq", "path": "fixup"}, seed=1, count=2000).metrics
    assert fixup["guest_irqs"] == 0 and fixup["exits"] == 0
    assert fixup["fixups"] == fixup["illegal_commands"] > 0
    again = simulate("guest-wl-mixed", {"policy": "first-opcode"}, seed=1, count=2000).metrics
    assert again == first


def test_guest_workload_refuses_a_guestless_workload() -> None:
    from cmdqv_lab.errors import ParamError

    with pytest.raises(ParamError, match=r"guest-wl-mixed: vms=0 must be at least 1"):
        simulate("guest-wl-mixed", {"vms": 0}, count=100)
    assert simulate("guest-wl-mixed", {"vms": 0, "as_guest": True}, count=100).metrics["ops"] == 100
