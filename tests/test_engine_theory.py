"""The engine against queueing theory: M/D/1, M/M/1, and a closed loop against exact MVA."""

from __future__ import annotations

import pytest

from cmdqv_lab.analysis.theory import md1_wait, mm1_wait, mva_closed
from cmdqv_lab.scenarios import simulate


@pytest.mark.parametrize(("dist", "rho", "formula"), [
    ("deterministic", 0.5, md1_wait), ("deterministic", 0.8, md1_wait),
    ("exponential", 0.5, mm1_wait), ("exponential", 0.8, mm1_wait),
])  # fmt: skip
def test_open_queue_mean_wait(dist: str, rho: float, formula) -> None:  # type: ignore[no-untyped-def]
    service = 100.0
    rate = rho / service * 1000  # Mcmd/s
    r = simulate(
        "open-queue",
        {"rate_mcmd_s": rate, "service_ns": service, "service_dist": dist},
        seed=3,
        count=400_000,
    )
    want = formula(rate / 1000, service)
    got = r.metrics["queue_wait_ns"]["mean"]
    assert got == pytest.approx(want, rel=0.05)
    # utilisation and throughput follow the offered load
    assert r.metrics["smmu_busy_fraction"] == pytest.approx(rho, rel=0.02)
    # sojourn = wait + service (the sample mean of exponential service is within 1% of its mean)
    assert r.metrics["op_latency_ns"]["mean"] - got == pytest.approx(
        service, rel=1e-6 if dist == "deterministic" else 0.01
    )


def test_bursty_arrivals_wait_longer() -> None:
    base = {"rate_mcmd_s": 5.0, "service_ns": 100.0}
    smooth = simulate("open-queue", base, seed=1, count=100_000).metrics["queue_wait_ns"]["mean"]
    bursty = simulate("open-queue", {**base, "burst": 8}, seed=1, count=100_000).metrics["queue_wait_ns"][
        "mean"
    ]
    assert bursty > 3 * smooth


ZERO_COST = {
    "line_xfer_ns": 0, "line_local_ns": 0, "cmd_write_ns": 0, "mmio_write_ns": 0, "mmio_read_ns": 0,
    "msi_ns": 0, "fetch_ns": 0, "tlbis": 0, "service_dist": "exponential", "think_dist": "exponential",
}  # fmt: skip


@pytest.mark.parametrize("cpus", [1, 4, 16])
@pytest.mark.parametrize("submit", ["linux-lockfree", "spinlock"])
def test_closed_loop_matches_mva(cpus: int, submit: str) -> None:
    think, service = 900.0, 100.0
    params = {**ZERO_COST, "cpus": cpus, "submit": submit, "think_ns": think, "sync_service_ns": service,
              "platform": "generic"}  # fmt: skip
    r = simulate("host-map-unmap", params, seed=5, count=200_000)
    x, resp = mva_closed(cpus, think, service)
    assert r.metrics["ops_per_s"] / 1e9 == pytest.approx(x, rel=0.03)  # ops per ns
    assert r.metrics["op_latency_ns"]["mean"] == pytest.approx(resp, rel=0.05)
