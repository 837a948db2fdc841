"""The cmdq->lock timeline of a nearly full queue (analysis.lockstate, issue 10): starvation with
set-zero, progress with clear-sign, read from successive stops of one deterministic run."""

from __future__ import annotations

import pytest

from cmdqv_lab.analysis.lockstate import lock_timeline

NEARLY_FULL = {
    "cpus": 64,
    "tlbis": 32,
    "cmdq_log2size": 8,
    "load_priority": "holder",
    "line_arbitration": "holder-first",
    "topology": "platform",
}
STOPS = [1_000_000, 2_000_000]


def test_set_zero_leaves_cpus_waiting_in_shared_lock_while_clear_sign_goes_on() -> None:
    bad = lock_timeline({**NEARLY_FULL, "exclusive_unlock": "set-zero"}, STOPS, count=64 * 20).to_dicts()
    good = lock_timeline({**NEARLY_FULL, "exclusive_unlock": "clear-sign"}, STOPS, count=64 * 20).to_dicts()
    # set-zero: the same CPUs still wait at both stops, their longest wait grew by the time between
    # them, and no operation completed in between
    assert bad[0]["in_shared_lock"] > 0 and bad[1]["in_shared_lock"] == bad[0]["in_shared_lock"]
    assert bad[1]["longest_shared_wait_ns"] - bad[0]["longest_shared_wait_ns"] == pytest.approx(
        STOPS[1] - STOPS[0]
    )
    assert bad[1]["ops_done"] == bad[0]["ops_done"]
    # clear-sign: operations complete between the stops and nobody has waited that long
    assert good[1]["ops_done"] > good[0]["ops_done"]
    assert good[1]["longest_shared_wait_ns"] < 0.1 * bad[1]["longest_shared_wait_ns"]


def test_a_stop_after_the_end_reports_the_end_state() -> None:
    t = lock_timeline({"cpus": 2, "exclusive_unlock": "clear-sign"}, [1e9], count=20)
    row = t.to_dicts()[0]
    assert row["ops_done"] == 20 and row["in_shared_lock"] == 0 and row["exclusive"] == 0
