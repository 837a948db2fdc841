"""Widget latency: how long an explorer takes to answer a slider move, for every notebook's explorer.

    python benchmarks/bench_widgets.py

Each notebook's own ``widgets.explore...(...)`` call is read from ``notebooks/NN-*.py`` (its source
expression, parsed with :mod:`ast`: the benchmark measures exactly what the notebook shows, with
``smoke = False``), built without its first run and with no debounce timer, run once (warm), then
timed over moves of its first control to other values: the time from ``set`` to the redrawn chart
(simulations, summary, chart), as wall time and as the process's CPU time (what it costs on a free
core: on a shared machine the wall time includes waiting for one). The explorer's debounce delay
(a user's slider move waits that long before the run starts) is printed beside it. Median of the
moves.

Beside each, the 95% interval its status line shows for the charted metric at that op count (over
seeds, or by batch means over one run's ops). Measured before issue 16's widget work at load 3-4
(CPU s per move): single-run explorers 0.05-0.25 s, comparisons and x sweeps 0.3-2.7 s; after it
every explorer's default answers in 0.05-0.33 s (DESIGN.md, "Speed as the user sees it").
"""

from __future__ import annotations

import ast
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from cmdqv_lab import widgets  # noqa: E402
from cmdqv_lab.widgets import Control  # noqa: E402
from cmdqv_lab.widgets.runs import metric_interval  # noqa: E402

TARGET_S = 0.3


def explorer_calls(nb: Path) -> list[ast.Call]:
    """The top-level ``widgets.explore*(...)`` expression statements of a notebook file."""
    out = []
    for node in ast.parse(nb.read_text()).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            f = node.value.func
            named = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "widgets"
            if named and f.attr.startswith("explore"):  # type: ignore[union-attr]
                out.append(node.value)
    return out


def constants(nb: Path) -> dict[str, Any]:
    """The notebook's top-level ``NAME = literal`` assignments (names an explorer call may use)."""
    out: dict[str, Any] = {}
    for node in ast.parse(nb.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def build(call: ast.Call, nb: Path) -> Any:
    """The explorer the call builds, without its first run and without the debounce timer."""
    call.keywords += [ast.keyword("run", ast.Constant(False)), ast.keyword("scheduler", ast.Constant(None))]
    expr = ast.fix_missing_locations(ast.Expression(call))
    ns = {**constants(nb), "widgets": widgets, "Control": Control, "smoke": False}
    return eval(compile(expr, str(nb), "eval"), ns)  # the project's own notebook source, not input data


def moves(ex: Any) -> list[tuple[str, Any]]:
    """Up to three other values of the explorer's first numeric or choice control."""
    for name, b in ex.controls.items():
        if name == "platform":
            continue
        w = b.widget
        opts = getattr(w, "options", None)
        if opts:
            vals = [o[1] if isinstance(o, tuple) else o for o in opts]
        elif hasattr(w, "min") and hasattr(w, "max"):
            lo, hi = (w.base**w.min, w.base**w.max) if hasattr(w, "base") else (w.min, w.max)  # log sliders
            vals = sorted({type(w.value)(lo + (hi - lo) * f) for f in (0.25, 0.5, 0.75)})
        else:
            continue
        vals = [v for v in vals if v != w.value][:3]
        if vals:
            return [(name, v) for v in vals]
    return []


def main() -> None:
    print(f"{describe()}; target <= {TARGET_S} s per slider move")
    print(
        f"{'notebook':<30} {'scenario':<16} {'sims/move':>9} {'count':>7} {'move s (median)':>16} {'CPU s':>6} "
        f"{'debounce s':>11}  interval shown"
    )
    worst = 0.0
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.py")):
        for call in explorer_calls(nb):
            ex = build(call, nb)
            ex.run()  # warm: compiled code loaded, caches filled
            ts, cpu = [], []
            for name, v in moves(ex):
                t, c = time.perf_counter(), time.process_time()
                ex.set(**{name: v})
                ts.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
                assert ex.error is None, ex.error
            med = statistics.median(ts) if ts else float("nan")
            med_cpu = statistics.median(cpu) if cpu else float("nan")
            worst = max(worst, med)
            sims = len(ex.plan())
            iv = metric_interval(ex.last) if ex.last else None
            print(f"{nb.stem[:30]:<30} {ex.scenario.name:<16} {sims:>9} {ex.count.value:>7,} {med:>16.3f} "
                  f"{med_cpu:>6.3f} {ex.debounce_s:>11.2f}  {iv.text() if iv else 'none'}")  # fmt: skip
    print(
        f"slowest explorer: {worst:.3f} s per move ({'meets' if worst <= TARGET_S else 'misses'} the target)"
    )


if __name__ == "__main__":
    main()
