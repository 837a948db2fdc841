"""An explorer in JupyterLab, in headless Chromium: one call draws it, a drag runs once, errors are one line.

The notebook's first cell is the one call a user writes; the second prints the explorer's run
count. The browser drags a slider across several positions (with ``debounce_s=0``, so only
``continuous_update=False`` stands between a drag and a run per position), picks a drop-down
value that cannot run, and reads the status line. JupyterLab runs on loopback with a kernel from
this environment; no remote requests are made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.jupyterlab_server import CHROMIUM, NO_CHROMIUM, running_lab

pytestmark = pytest.mark.browser

TOKEN = "cmdqv-widgets-test"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--proxy-server=http://127.0.0.1:9",
]  # fmt: skip

CELL = "from cmdqv_lab import widgets\nex = widgets.explore_host(cpus=4, count=500, debounce_s=0)\nex"
PROBE = (
    "import json\n"
    "probes = globals().get('probes', 0) + 1\n"
    'print("PROBE", probes, json.dumps([ex.runs_done, ex.result.params["cpus"], ex.error]))'
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL), nbformat.v4.new_code_cell(PROBE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "explore.ipynb")
    with running_lab(root, TOKEN) as base:
        yield base


def test_explorer_in_jupyterlab(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import Page, sync_playwright

    def run_cell(page: Page, i: int) -> None:
        page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")

    def probe(page: Page, k: int) -> list[Any]:
        """Run the probe cell for the k-th time and return what it printed."""
        run_cell(page, 1)
        out = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
        out.filter(has_text=f"PROBE {k} ").wait_for(timeout=60_000)
        m = re.search(rf"PROBE {k} (.*)", out.inner_text())
        assert m is not None
        return list(json.loads(m.group(1)))

    errors: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{lab}/lab/tree/explore.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
            run_cell(page, 0)
            chart = ".jupyter-widgets .jp-RenderedVegaLite svg.marks, .jupyter-widgets .jp-RenderedVegaLite canvas"
            page.wait_for_selector(chart, timeout=120_000)
            assert page.locator(".widget-dropdown select").count() >= 3
            assert probe(page, 1) == [1, 4, None]

            # drag the cpus slider over several positions, then release: one run
            slider = page.locator(".widget-slider", has=page.locator("label", has_text=re.compile("^cpus$")))
            handle = slider.locator(".noUi-handle")
            handle.scroll_into_view_if_needed()
            box = handle.bounding_box()
            assert box is not None
            x0, y0 = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x0, y0)
            page.mouse.down()
            for dx in (15, 30, 45, 60, 75):
                page.mouse.move(x0 + dx, y0, steps=4)
                page.wait_for_timeout(150)
            page.mouse.up()
            runs, cpus, error = probe(page, 2)
            assert runs == 2 and cpus > 4 and error is None
            assert slider.locator(".widget-readout").inner_text().strip() == str(cpus)

            # a combination that cannot run: one line in the status, no traceback
            submit = page.locator(
                ".widget-dropdown", has=page.locator("label", has_text=re.compile("^submit$"))
            )
            submit.locator("select").select_option("exclusive")
            status = page.locator(".jupyter-widgets .widget-html-content", has_text="needs one queue per CPU")
            status.first.wait_for(timeout=60_000)
            assert "Traceback" not in page.locator(".jupyter-widgets").first.inner_text()
            runs, cpus2, error = probe(page, 3)
            assert (runs, cpus2) == (2, cpus) and error.startswith("submit=exclusive needs one queue per CPU")
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            context.close()
    assert [e for e in errors if "vega" in e.lower() or "widget" in e.lower()] == []
