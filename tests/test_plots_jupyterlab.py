"""``show()`` output is drawn natively by JupyterLab (its own Vega-Lite 5 renderer), in headless Chromium.

This is the check behind the choice of mime type in :mod:`cmdqv_lab.plots.display`: JupyterLab 4.6
renders ``application/vnd.vegalite.v5+json`` (not Altair 6's ``...v6.json`` key) and the v6.4
specs our builders emit, slider included. The notebook is written with nbformat (outputs from
:func:`chart_bundle`) and signed as trusted, so no kernel runs; JupyterLab is started on loopback
and stopped after.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import polars as pl
import pytest
from nbformat.sign import NotebookNotary

from cmdqv_lab import plots
from cmdqv_lab.plots.display import chart_bundle
from tests.jupyterlab_server import CHROMIUM, NO_CHROMIUM, running_lab

pytestmark = pytest.mark.browser

TOKEN = "cmdqv-test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    root = tmp_path_factory.mktemp("lab")
    sweep = pl.DataFrame(
        [{"queues": q, "cpus": c, "ops_per_s": float(q * c)} for q in (1, 2, 3) for c in (1, 2, 4, 8)]
    )
    charts = [
        plots.explorer(sweep, "cpus", "ops_per_s", None, "queues"),
        plots.hazard_counts(pl.DataFrame({"policy": ["a", "b"], "hazard": ["ill", "sync"], "count": [2, 1]})),
        plots.throughput_vs_cpus(sweep.rename({"queues": "policy"}).with_columns(pl.col("policy").cast(str))),
    ]
    nb = nbformat.v4.new_notebook()
    for c in charts:
        out = nbformat.v4.new_output("display_data", data=chart_bundle(c))
        nb.cells.append(nbformat.v4.new_code_cell("plots.show(chart)", outputs=[out]))
    # trusted, as the outputs of a user's own kernel are: JupyterLab 4.6.7 and later draw Vega only in
    # trusted notebooks (an untrusted one shows the text line); signed with a secret of the test's own
    data = root / "jupyter-data"
    data.mkdir()
    NotebookNotary(data_dir=str(data)).sign(nb)
    nbformat.write(nb, root / "charts.ipynb")
    with running_lab(root, TOKEN, env={"JUPYTER_DATA_DIR": str(data)}) as base:
        yield base


def test_jupyterlab_draws_show_output(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update",
                  "--proxy-server=http://127.0.0.1:9"],
        )  # fmt: skip
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{lab}/lab/tree/charts.ipynb?token={TOKEN}")
            outputs = page.locator(".jp-RenderedVegaLite")
            page.wait_for_function(
                "() => document.querySelectorAll('.jp-RenderedVegaLite svg.marks, "
                ".jp-RenderedVegaLite canvas').length >= 3",
                timeout=90_000,
            )
            assert outputs.count() == 3
            assert page.locator(".jp-RenderedVegaLite input[type=range]").count() == 1
            assert page.locator(".jp-RenderedSVG, .jp-RenderedImage").count() == 0  # Vega, not the fallback
        finally:
            context.close()
    assert [e for e in errors if "vega" in e.lower()] == []
