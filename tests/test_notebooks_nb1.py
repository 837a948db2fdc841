"""Notebooks 00, 07, 08, 09 and their sweep specs: structure and spec invariants.

Their smoke build is in tests/test_notebooks.py (one report of every notebook)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest

from cmdqv_lab.experiments.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["00-tour.py", "07-q9-host-scaling.py", "08-q10-bottleneck.py", "09-calibration-validation.py"]
SPECS = [
    "nb-q9-host-scaling",
    "nb-q9-vcmdq-percpu",
    "nb-q9-line-xfer",
    "nb-q10-dma-map",
    "nb-q10-netperf",
    "nb-q10-fio",
    "nb-q10-trace-replay",
    "nb-cal-closed-mva",
]
#: Each notebook's sweeps (besides published ones), so a renamed spec fails here rather than in the report.
USES = {
    "07-q9-host-scaling.py": ["nb-q9-host-scaling", "nb-q9-vcmdq-percpu", "nb-q9-line-xfer"],
    "08-q10-bottleneck.py": ["nb-q10-dma-map", "nb-q10-netperf", "nb-q10-fio", "nb-q10-trace-replay"],
    "09-calibration-validation.py": ["open-queue-rate", "nb-cal-closed-mva"],
    "00-tour.py": ["q9-host-cpus-submit"],
}


def spec_path(name: str) -> Path:
    return ROOT / "data" / "specs" / f"{name}.toml"


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", SPECS)
def test_specs_load_and_every_combination_builds(name: str, quick: bool) -> None:
    spec = load_spec(spec_path(name), quick=quick)  # builds every combination, no simulation
    assert spec.name == name and spec.points()
    assert len(spec.seeds) >= 2  # confidence intervals need two seeds


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", ["nb-q10-dma-map", "nb-q10-netperf", "nb-q10-fio"])
def test_flush_queue_sweeps_end_on_a_full_queue(name: str, quick: bool) -> None:
    """Every CPU's unmaps are a multiple of the flush queue, so no run ends waiting for the timer."""
    spec = load_spec(spec_path(name), quick=quick)
    for combo in spec.combinations():
        p = {**dict(spec.fixed), **dict(combo)}
        assert spec.count % (p["threads"] * p["fq_entries"]) == 0, (name, combo)


def _grid(name: str, quick: bool, key: str) -> set:
    spec = load_spec(spec_path(name), quick=quick)
    return {dict(c)[key] for c in spec.combinations()}


@pytest.mark.parametrize("quick", [False, True])
def test_sweeps_hold_the_points_the_answers_read(quick: bool) -> None:
    for name in ("nb-q9-host-scaling", "nb-q9-vcmdq-percpu"):
        assert {16, 64} <= _grid(name, quick, "cpus")
        assert {1, 128} <= _grid(name, quick, "smmu_parallel")
    assert {1, 16} <= _grid("nb-q10-dma-map", quick, "threads")
    assert 50_000.0 in _grid("nb-q10-netperf", quick, "pps")
    assert 1e6 in _grid("nb-q10-fio", quick, "iops")
    assert {"linux6.1-smp4-strict", "linux6.1-smp4-lazy"} <= _grid("nb-q10-trace-replay", quick, "trace")


def _code_cells(name: str) -> list[str]:
    nb = jupytext.read(ROOT / "notebooks" / name)
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_structure(name: str) -> None:
    cells = _code_cells(name)
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].source.strip() == "smoke = False"
    source = "\n".join(c.source for c in cells)
    assert "plots.explorer(" in source and "param_table(" in source and "widgets." in source
    for spec in USES[name]:
        assert f'sweep_frame("{spec}"' in source and spec_path(spec).is_file()
    text = (ROOT / "notebooks" / name).read_text()
    assert re.search(r"^# > \*\*|^# \w", text, re.M)  # markdown prose (the question quoted)


@pytest.mark.parametrize("name", ["07-q9-host-scaling.py", "08-q10-bottleneck.py"])
def test_answers_are_built_from_computed_numbers(name: str) -> None:
    calls = []
    for cell in _code_cells(name):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "answer":
                calls.append(node)
    assert len(calls) == 1
    text = calls[0].args[1]
    assert any(isinstance(n, ast.JoinedStr) for n in ast.walk(text))  # an f-string, not a constant
    digits = [n.value for n in ast.walk(text) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    # literal text may name CPU counts and the like, but not results: no decimals or percentages
    assert not [d for d in digits if re.search(r"\d+\.\d|\d+ ?%", d)], digits
