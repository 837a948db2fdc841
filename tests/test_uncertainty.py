"""Identifiability and prediction ranges over assumptions, on a calibration whose answers are known.

The open-queue scenario's ``offered_load`` is ``rate_mcmd_s * service_ns / 1000``. A row measured at
rate 5 Mcmd/s pins ``service_ns`` to 100 whatever the assumed rate; a prediction made at the
*assumed* rate (4 .. 6, nominal 5) is then 0.5 with range 0.4 .. 0.6, moved only by the rate.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cmdqv_lab.analysis.calibrate import CALIBRATION_DIR, CalibrationSpec, Row, analyse, fit, render_preset
from cmdqv_lab.analysis.uncertainty import Check
from cmdqv_lab.errors import ParamError


def _spec(**over: object) -> CalibrationSpec:
    kw: dict = dict(
        preset="toy", scenario="open-queue", metric="offered_load", count=2000, seed=1,
        base={"rate_mcmd_s": 5.0, "log2size": 10},
        params={"service_ns": (50.0, 200.0, 80.0)},
        targets=(Row("rate 5", {"rate_mcmd_s": 5.0}, 0.5),),
        predictions=(Row("assumed rate", {}, None, "offered_load"), Row("rate 2", {"rate_mcmd_s": 2.0}, None, "offered_load")),
        path=CALIBRATION_DIR / "toy.toml",
        assumptions={"rate_mcmd_s": (4.0, 6.0)},
        checks=(Check("assumed / rate 2", "assumed rate", "rate 2", 2.0, 3.0, 2.5),),
    )  # fmt: skip
    kw.update(over)
    return CalibrationSpec(**kw)


@pytest.fixture(scope="module")
def analysed():  # type: ignore[no-untyped-def]
    spec = _spec()
    res = fit(spec, maxiter=60)
    return spec, analyse(spec, res, maxiter=30)


def test_the_fit_recovers_the_parameter_the_row_pins(analysed) -> None:  # type: ignore[no-untyped-def]
    _, res = analysed
    assert res.values["service_ns"] == pytest.approx(100.0, abs=0.2)
    assert res.checks[0]["value"] == pytest.approx(2.5, rel=1e-2) and res.checks[0]["ok"]


def test_identifiability_sees_a_constrained_parameter(analysed) -> None:  # type: ignore[no-untyped-def]
    _, res = analysed
    (row,) = res.identifiability
    assert row["parameter"] == "service_ns" and row["constrained"] and not row["at_bound"]
    assert row["sensitivity_min"] == pytest.approx(1.0, rel=1e-3)  # offered load is proportional to it
    assert row["rel_sigma"] == pytest.approx(0.02, rel=1e-3)  # the noise floor over a slope of 1


def test_ranges_are_the_profiled_ends_of_the_assumption(analysed) -> None:  # type: ignore[no-untyped-def]
    _, res = analysed
    r = {x["label"]: x for x in res.ranges}
    assumed, fixed = r["assumed rate"], r["rate 2"]
    assert assumed["low"] == pytest.approx(0.4, rel=5e-3) and assumed["high"] == pytest.approx(0.6, rel=5e-3)
    assert assumed["moved_most_by"] == "rate_mcmd_s"
    # a prediction at a set rate does not move: the refit keeps service_ns at 100 at both ends
    assert fixed["high"] - fixed["low"] == pytest.approx(0.0, abs=2e-3)
    assert {(p["assumption"], p["end"]) for p in res.profiles} == {
        ("rate_mcmd_s", "low"),
        ("rate_mcmd_s", "high"),
    }


def test_the_preset_text_carries_ranges_assumptions_and_checks(analysed) -> None:  # type: ignore[no-untyped-def]
    import tomllib

    spec, res = analysed
    data = tomllib.loads(render_preset(spec, res, "toy"))
    pred = {p["label"]: p for p in data["prediction"]}["assumed rate"]
    assert pred["low"] < pred["model"] < pred["high"] and pred["moved_most_by"] == "rate_mcmd_s"
    assert data["assumption"][0] == {"parameter": "rate_mcmd_s", "nominal": 5.0, "low": 4.0, "high": 6.0}
    assert data["check"][0]["ok"] is True and data["identifiability"][0]["constrained"] is True


def test_an_assumption_needs_a_nominal_value_inside_its_range(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import cmdqv_lab.analysis.calibrate as cal

    text = (cal.CALIBRATION_DIR / "d06.toml").read_text()
    bad = text.replace("[fit.assumptions]\n", "[fit.assumptions]\nnot_in_base = [1.0, 2.0]\n")
    (tmp_path / "bad.toml").write_text(bad)
    monkeypatch.setattr(cal, "CALIBRATION_DIR", tmp_path)
    with pytest.raises(ParamError, match=r"not_in_base.*nominal value"):
        CalibrationSpec.load("bad")


def test_an_assumption_end_the_rows_cannot_fit_is_excluded_and_its_data_limit_found() -> None:
    # the row (measured at the assumed rate) needs service_ns = 500 / rate: 111 at the nominal 4.5,
    # 125 at 4, but 83 at 6, below the parameter's bound of 100: that end leaves the row 20 % off.
    # With service_ns at its bound the row is within 15 % up to rate 5.75; three bisections
    # between 4.5 and 6 stop at 5.625.
    spec = _spec(
        base={"rate_mcmd_s": 4.5, "log2size": 10},
        params={"service_ns": (100.0, 200.0, 120.0)},
        targets=(Row("assumed rate", {}, 0.5),),
        predictions=(Row("rate 2", {"rate_mcmd_s": 2.0}, None, "offered_load"),),
        assumptions={"rate_mcmd_s": (4.0, 6.0)},
        checks=(),
    )
    res = analyse(spec, fit(spec, maxiter=60), maxiter=40)
    ends = {p["end"]: p for p in res.profiles}
    assert set(ends) == {"low", "high", "high (data limit)"}
    assert (
        ends["low"]["consistent"]
        and not ends["high"]["consistent"]
        and ends["high (data limit)"]["consistent"]
    )
    assert ends["high"]["max_rel_error"] == pytest.approx(0.2, abs=0.01)
    assert ends["high (data limit)"]["value"] == pytest.approx(5.625)
    (r,) = res.ranges
    assert r["profiles_used"] == 2
    # service_ns: 125 at rate 4, 100 (its bound) at 5.625 -> offered load at rate 2: 0.25 and 0.2
    assert r["low"] == pytest.approx(0.2, rel=5e-3) and r["high"] == pytest.approx(0.25, rel=5e-3)


@pytest.mark.parametrize("name", ["d06", "grace"])
def test_calibration_assumption_ranges_are_the_sensitivity_ranges(name: str) -> None:
    from cmdqv_lab.analysis.validation import RANGES

    spec = CalibrationSpec.load(name)
    for k, (lo, hi) in spec.assumptions.items():
        if k in RANGES:  # one plausible range per assumption, used by calibrate and by notebook 09
            assert (lo, hi) == RANGES[k][:2], k
        assert lo <= spec.base[k] <= hi, k
