"""Notebooks 03, 05 and 06 (Q4, Q6, Q7, Q8): their sweep specs load, and each notebook has the
parts the report expects (a ``parameters`` cell with ``smoke = False``, its answers)."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

from cmdqv_lab.experiments.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "03-q4-q7-capacity-irq.py": ("Q4", "Q7"),
    "05-q6-guest-paths.py": ("Q6",),
    "06-q8-guest-scaling.py": ("Q8",),
}
SPECS = sorted(p.stem for p in (ROOT / "data" / "specs").glob("nb-q[678]-*.toml"))


def test_the_specs_exist() -> None:
    assert len(SPECS) >= 13


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("quick", [False, True])
def test_spec_loads_and_every_combination_builds(name: str, quick: bool) -> None:
    spec = load_spec(ROOT / "data" / "specs" / f"{name}.toml", quick=quick)
    assert spec.name == name
    points = list(spec.points())
    assert points and len({p.seed for p in points}) >= 1


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS))
def test_notebook_has_parameters_cell_and_its_answers(notebook: str) -> None:
    nb = jupytext.read(ROOT / "notebooks" / notebook)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].source.strip() == "smoke = False"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for qid in NOTEBOOKS[notebook]:
        assert re.search(rf'answer\(\s*"{qid}"', code), qid
    used = set(re.findall(r'(?:sweep_frame|sweep|load)\("([^"]+)"', code))
    names = set(used)
    assert names and names <= set(SPECS)
    assert "plots.explorer(" in code and "widgets.explore(" in code
