"""notebooks/template.py, the starter notebook, runs in smoke mode and does the three things it says.

Its code cells run here in this process, in order, with ``smoke = True`` set after the cell tagged
``parameters`` (what papermill injects), so the test costs seconds rather than a kernel start and a
fresh engine load; the report's notebooks run in a real kernel in tests/test_notebooks.py. It is
not one of the report's ``NN-topic.py`` notebooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jupytext
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "notebooks" / "template.py"


def run_smoke(path: Path) -> dict[str, Any]:
    nb = jupytext.read(path)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "smoke = False" in cells[tagged[0]].source
    ns: dict[str, Any] = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        exec(compile(cell.source, f"{path.name} code cell {i}", "exec"), ns)
        if i == tagged[0]:
            ns["smoke"] = True
    return ns


def test_template_runs_in_smoke_mode_and_shows_the_three_steps(capsys: Any) -> None:
    from cmdqv_lab.report.execute import discover

    assert TEMPLATE not in discover(ROOT / "notebooks")  # not part of the report
    ns = run_smoke(TEMPLATE)
    out = capsys.readouterr().out
    # 1. a run, printed with its configuration and metrics
    assert ns["run"].metrics["ops"] == 2_000 and ns["run"].params["cpus"] == 8
    assert "host-map-unmap  seed 1  ops 2,000" in out and "config platform=d06 cpus=8" in out
    assert "scenario parameters" in out and "platform parameters" not in out
    # 2. an explorer: ran once on creation, a series per algorithm along the CPU axis
    ex = ns["explorer"]
    assert ex.error is None and ex.runs_done == 1
    # 3. two configurations compared over CPUs and seeds, and their latency distributions
    compared = ns["compared"]
    assert set(compared["config"]) == {"main CMDQ", "ECMDQ per CPU"}
    assert compared.height == 2 * 3 * 2 and compared["ops_per_s"].min() > 0
    summary = ns["summary"]
    assert summary.height == 2 and (summary["p99_ns"] >= summary["p50_ns"]).all()
    assert isinstance(ns["latency"], pl.DataFrame) and ns["latency"].height == 2 * 2_000
