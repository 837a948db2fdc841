"""The d06 preset reproduces calibration.md C1 and stores its held-out predictions."""

from __future__ import annotations

import pytest

from cmdqv_lab.analysis.calibrate import CalibrationSpec, evaluate, fit, render_preset
from cmdqv_lab.platform import load_platform, read_preset


@pytest.fixture(scope="module")
def spec() -> CalibrationSpec:
    return CalibrationSpec.load("d06")


def test_fit_uses_only_c1_rows(spec: CalibrationSpec) -> None:
    cpus = sorted({r.overrides["cpus"] for r in spec.targets})
    assert cpus == [2, 4, 8, 16]
    assert {r.overrides["submit"] for r in spec.targets} == {"linux-lockfree", "atomic-add"}
    held_out = {r.overrides["cpus"] for r in spec.predictions}
    assert {32, 64, 96} <= held_out
    # a prediction at a C1 CPU count is of an algorithm C1 did not measure (e.g. cas-spinlock-fallback)
    for r in spec.predictions:
        if r.overrides["cpus"] in cpus:
            assert r.overrides["submit"] not in {"linux-lockfree", "atomic-add"}, r.label


def test_d06_preset_within_15_percent_of_every_fitted_row(spec: CalibrationSpec) -> None:
    preset = read_preset("d06")
    values = {k: preset.values[k] for k in spec.params}
    rows = evaluate(spec, values)
    for row in rows:
        assert abs(row["rel_error"]) <= 0.15, row
    stored = {r["label"]: r["model"] for r in preset.meta["fit_row"]}
    for row in rows:  # the stored residuals are what a fresh run computes (deterministic)
        assert row["model"] == pytest.approx(stored[row["label"]], abs=1.0)


def test_predictions_are_stored_with_the_preset() -> None:
    preds = {p["label"]: p for p in read_preset("d06").meta["prediction"]}
    for sub in ("v5.9-rc1 lock-free", "atomic-add reserve"):
        for cpus in (32, 64, 96):
            assert preds[f"{sub}, {cpus} CPUs"]["model"] > 0
    ratio = preds["v5.9-rc1 lock-free, 64 CPUs: cmpxchg success ratio"]["model"]
    assert 0 < ratio <= 1


def test_preset_values_are_marked_fitted() -> None:
    preset = read_preset("d06")
    spec = CalibrationSpec.load("d06")
    assert {k for k, v in preset.provenance.items() if v == "fitted"} == set(spec.params)
    plat = load_platform("d06")
    assert plat.tlbi_service_ns <= 320  # C4's upper bound on Hi1620
    assert 30 <= plat.line_xfer_die_ns <= 38 and 72 <= plat.line_xfer_xdie_ns <= 87  # C4


@pytest.mark.slow
def test_refit_runs_and_renders(spec: CalibrationSpec) -> None:
    res = fit(spec, maxiter=4, count=4000)
    for k, (lo, hi, _) in spec.params.items():
        assert lo <= res.values[k] <= hi
    text = render_preset(spec, res, "test")
    assert "[[fit_row]]" in text and "[[prediction]]" in text
    assert res.evaluations >= 4
