"""Sweep points that are not simulations: the checker (``check:<source>``) and notebook 09's
``sensitivity`` runs, through the same specs, sweeps and publication as the timing scenarios."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab.analysis import validation
from cmdqv_lab.analysis.hazards import policy_safety, q2_corner_cases
from cmdqv_lab.analysis.summary import load_sweep
from cmdqv_lab.checker.check import check
from cmdqv_lab.checker.scenarios import load_source
from cmdqv_lab.errors import SpecError
from cmdqv_lab.experiments.spec import parse_spec
from cmdqv_lab.experiments.sweep import run_sweep
from cmdqv_lab.experiments.tasks import get_task

CHECK_SPEC = """
name = "t-check"
scenario = "check:mixed"
count = 120
seeds = [3]
[fixed]
vms = 1
threads = 2
unsupported_fraction = 0.2
[grid]
mix_per = ["command", "batch"]
policy = ["first-opcode", "split"]
"""


def test_a_checker_sweep_gives_the_checker_counts_of_each_point(tmp_path: Path) -> None:
    spec = parse_spec(CHECK_SPEC, "t.toml")
    run_sweep(spec, tmp_path / "s", workers=1, progress=False, publish=tmp_path / "pub")
    df = load_sweep(tmp_path / "pub")
    assert df.height == 4 and df["scenario"].unique().to_list() == ["check:mixed"]
    for row in df.iter_rows(named=True):
        over = {"vms": 1, "threads": 2, "unsupported_fraction": 0.2, "mix_per": row["mix_per"], "ops": 120}
        r = check(load_source("mixed", over, seed=3), row["policy"])
        assert (row["ill"], row["q2"], row["disagreements"]) == (r.counts["ill"], r.counts["q2"], 0)
        assert row["trap_commands"] == r.routed["paths"]["trap"]
        assert row["inserted_syncs"] == r.routed["inserted_syncs"]
    first = df.filter(pl.col("policy") == "first-opcode")
    assert first["ill"].min() > 0 and df.filter(pl.col("policy") == "split")["ill"].sum() == 0
    assert policy_safety(df)["ill_per_1e4_ops"].to_list() == [v * 1e4 / 120 for v in df["ill"].to_list()]


def test_a_checker_spec_names_the_bad_key() -> None:
    with pytest.raises(SpecError, match=r"t.toml: grid.polcy: unknown parameter 'polcy'.*policy"):
        parse_spec(CHECK_SPEC.replace('policy = ["first', 'polcy = ["first'), "t.toml")
    with pytest.raises(SpecError, match=r"t.toml: grid.policy: policy='nope' is not allowed"):
        parse_spec(CHECK_SPEC.replace('"split"]', '"nope"]'), "t.toml")


def test_a_scenario_source_shadows_the_checkers_field_of_the_same_name() -> None:
    t = get_task("check:guest-mixed")
    assert isinstance(t.resolve({})["devices"], int)  # guest-mixed's device count, not the checker's SID list
    r = t.run({"policy": "first-opcode"}, 1, 300, False)
    table, examples = q2_corner_cases(pl.DataFrame([{**r.params, **r.metrics, "count": 300}]))
    assert r.metrics["q2"] == r.metrics["q2_on_vcmdq"] + r.metrics["q2_trapped"] > 0
    assert table["q2_unmaps_per_1e4"][0] == r.metrics["q2_unmaps"] * 1e4 / 300
    assert examples["first-opcode"] == r.metrics["example_q2"] != ""


def test_a_sensitivity_point_moves_one_parameter_to_its_range_value() -> None:
    t = get_task("sensitivity")
    assert (
        validation.range_value("fetch_line_cmds", 1 / 3) == 2
        and validation.range_value("spin_ns", 1.0) == 50.0
    )
    assert validation.range_points("fetch_line_cmds", smoke=False) == [1, 2, 4, 8]
    with pytest.raises(Exception, match="parameter='nope' is not allowed"):
        t.resolve({"parameter": "nope"})
    p = t.run({"parameter": "sync_service_ns", "fraction": 1.0}, 1, 400, False)
    assert p.metrics["value"] == 300.0 and p.metrics["refused"] == ""
    assert set(validation.CONCLUSIONS) <= set(p.metrics)


def test_sensitivity_table_counts_a_repeated_value_once_and_finds_the_ends() -> None:
    rows = [{"parameter": "none", "fraction": 0.0, "value": float("nan"), "q9": 1.0, "q6": 2.0, "fix": 4.0,
             "refused": ""}]  # fmt: skip
    for f, v, q9 in ((0.0, 1.0, 1.0), (1 / 3, 1.0, 1.0), (2 / 3, 2.0, 1.5), (1.0, 4.0, 2.0)):
        rows.append({"parameter": "smmu_parallel", "fraction": f, "value": v, "q9": q9, "q6": 2.0, "fix": 4.0,
                     "refused": ""})  # fmt: skip
    rows.append({"parameter": "spin_ns", "fraction": 1.0, "value": 50.0, "q9": float("nan"), "q6": float("nan"),
                 "fix": float("nan"), "refused": "out of range"})  # fmt: skip
    sens, base, errors = validation.sensitivity(pl.DataFrame(rows))
    q9 = sens.filter(pl.col("conclusion") == validation.CONCLUSIONS["q9"])
    assert q9["value"].to_list() == [1.0, 2.0, 4.0] and q9["end"].to_list() == ["low", "between", "high"]
    assert q9["change_pct"].to_list() == [0.0, 50.0, 100.0] and base == {"q9": 1.0, "q6": 2.0, "fix": 4.0}
    assert errors == ["spin_ns=50.0: out of range"]


def test_the_published_sensitivity_sweep_covers_every_assumption() -> None:
    frame = load_sweep(Path(__file__).resolve().parents[1] / "data" / "results" / "nb-cal-sensitivity")
    swept = [p for p in frame["parameter"].unique(maintain_order=True).to_list() if p != "none"]
    assert swept == validation.assumed_parameters()
