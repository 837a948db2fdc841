"""How notebooks get sweep data: published results in full mode, the quick variant in smoke mode.

:func:`sweep_frame` is the one call a notebook makes for a figure's data:

* ``smoke=True``: run the spec's ``[quick]`` variant (seconds) into ``.cache/sweeps/<name>-quick``
  (reused while the code is unchanged) and return it;
* ``smoke=False``: load ``data/results/<name>`` if it is published (a packed file, verified on
  read: :mod:`.packed`; ``cmdqv-lab reproduce`` re-runs it), else run the full sweep into
  ``.cache/sweeps/<name>``.

Either way the frame has one row per point (see :func:`cmdqv_lab.analysis.summary.load_sweep`)
and the returned :class:`SweepData` says where it came from, so a notebook can print it. Specs,
results and the cache are those of the project the notebook runs in
(:func:`cmdqv_lab.project.project_root`: the checkout holding the current directory). A point
found damaged in the cache is recomputed with one line on stderr.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cmdqv_lab.errors import SpecError
from cmdqv_lab.project import project_root


@dataclass(frozen=True)
class SweepData:
    name: str
    frame: pl.DataFrame
    source: str  # "published", "computed" or "quick"
    path: Path

    def describe(self) -> str:
        what = {
            "published": "published results",
            "computed": "computed now (not published)",
            "quick": "smoke run (quick variant)",
        }
        try:
            where = self.path.relative_to(project_root())
        except ValueError:
            where = self.path
        return f"{self.name}: {self.frame.height} points, {what[self.source]} in {where}"


LOCK_WAIT_S = 3600.0
"""How long a notebook waits for another process writing the same sweep directory."""


def sweep_frame(name: str, *, smoke: bool, workers: int | None = None) -> SweepData:
    """The points of sweep ``name`` (``data/specs/<name>.toml``) as a frame (see module doc).

    ``workers`` matters only when the sweep has to run. By default a smoke run uses one process (the
    report executes several notebooks at once) and a full run one per CPU, at most four.
    """
    from cmdqv_lab.analysis.summary import load_sweep
    from cmdqv_lab.experiments.spec import load_spec
    from cmdqv_lab.experiments.sweep import run_sweep

    root = project_root()
    spec_path = root / "data" / "specs" / f"{name}.toml"
    if not spec_path.is_file():
        raise SpecError(f"{spec_path}: no such sweep spec")
    published = root / "data" / "results" / name
    if not smoke and (published / "manifest.json").is_file():
        return SweepData(name, load_sweep(published), "published", published)
    out = root / ".cache" / "sweeps" / (f"{name}-quick" if smoke else name)
    spec = load_spec(spec_path, quick=smoke)
    # Two notebooks (or two report builds) may need the same sweep at once: the second waits for
    # the first and then finds every point cached.
    if workers is None:
        workers = 1 if smoke else min(4, os.cpu_count() or 1)
    report = run_sweep(spec, out, workers=workers, progress=False, prune=True, wait_s=LOCK_WAIT_S)
    for note in report.notes():
        print(f"{name}: {note}", file=sys.stderr)
    return SweepData(name, load_sweep(out), "quick" if smoke else "computed", out)
