"""In JupyterLab, double-clicking a notebook opens it as a notebook with the project's kernel, and
running and saving it leaves the git tree clean.

JupyterLab runs with the set-up ``make lab`` installs (:func:`cmdqv_lab.report.lab.install`: the
``cmdqv-lab`` kernel and jupytext's notebook as the default viewer of Python files), here under a
temporary prefix. The root is a small git repository holding ``notebooks/jupytext.toml`` and a
notebook with the real notebooks' header; the test double-clicks it in the file browser, checks
the notebook panel and the kernel name, runs every cell, saves, and asks git for changes.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmdqv_lab.report.lab import KERNEL_DISPLAY, install
from tests.jupyterlab_server import CHROMIUM, NO_CHROMIUM, running_lab

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "cmdqv-lab-test"
NOTEBOOK = """\
# %% [markdown]
# # A small notebook
#
# With the header every notebook in notebooks/ has.

# %% tags=["parameters"]
smoke = False

# %%
import polars as pl

from cmdqv_lab import plots
from cmdqv_lab.report import answer

plots.enable()
df = pl.DataFrame({"cpus": [1, 2, 4], "ops_per_s": [1.0, 1.9, 3.5], "policy": "a"})
plots.show(plots.throughput_vs_cpus(df, kind="computed"))
answer("Q9", "Made up: 3.5 ops/s at 4 CPUs.", numbers=[("ops/s at 4 CPUs", "3.5", "computed")])
print("ran", smoke)
"""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    base = tmp_path_factory.mktemp("lab")
    prefix, root = base / "prefix", base / "repo"
    (root / "notebooks").mkdir(parents=True)
    install(prefix)
    shutil.copy(ROOT / "notebooks" / "jupytext.toml", root / "notebooks" / "jupytext.toml")
    header = (ROOT / "notebooks" / "04-q5-guest-opcodes.py").read_text().split("# ---\n")[1]
    (root / "notebooks" / "01-small.py").write_text("# ---\n" + header + "# ---\n\n" + NOTEBOOK)
    shutil.copy(ROOT / ".gitignore", root / ".gitignore")  # the project's own ignores (.ipynb_checkpoints)
    _git(root, "init", "-q")
    (root / ".git" / "info").mkdir(parents=True, exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("lab.log\n")  # the test server's log, not JupyterLab's
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "notebook")
    args = (f"--LabApp.app_settings_dir={prefix / 'share' / 'jupyter' / 'lab' / 'settings'}",)
    with running_lab(root, TOKEN, args, env={"JUPYTER_PATH": str(prefix / "share" / "jupyter")}) as url:
        yield url, root


def test_double_click_opens_a_notebook_and_running_it_keeps_the_tree_clean(
    lab: tuple[str, Path], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url, root = lab
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                  "--proxy-server=http://127.0.0.1:9"],
            viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        try:
            page = context.new_page()
            page.goto(f"{url}/lab/tree/notebooks?token={TOKEN}")
            item = page.locator(".jp-DirListing-item", has_text="01-small.py")
            item.wait_for(timeout=90_000)
            item.dblclick()
            panel = page.locator(".jp-NotebookPanel")
            panel.wait_for(timeout=60_000)  # a notebook, not a text editor
            assert page.locator(".jp-FileEditor").count() == 0
            kernel = page.locator(".jp-KernelName, .jp-Toolbar-kernelName").first
            page.wait_for_function(
                "name => [...document.querySelectorAll('.jp-KernelName, .jp-Toolbar-kernelName')]"
                ".some(e => e.textContent.includes(name))",
                arg=KERNEL_DISPLAY,
                timeout=60_000,
            )
            assert KERNEL_DISPLAY in (kernel.text_content() or "")
            page.wait_for_function(  # the kernel is up before anything runs
                "name => document.body.textContent.includes(name + ' | Idle')",
                arg=KERNEL_DISPLAY,
                timeout=120_000,
            )
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.locator("li[data-command='runmenu:run-all']").click()
            try:
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                    ".some(e => e.textContent.includes('ran False'))",
                    timeout=180_000,
                )
            except Exception:
                page.screenshot(path=str(tmp_path / "lab-failure.png"))
                print("screenshot:", tmp_path / "lab-failure.png", (root.parent / "repo" / "lab.log"))
                raise
            assert page.locator(".jp-RenderedVegaLite").count() == 1
            panel.click()
            page.keyboard.press("Control+s")
            page.wait_for_function(
                "() => !document.querySelector('.jp-mod-current.jp-mod-dirty')", timeout=30_000
            )
            page.wait_for_timeout(1000)
        finally:
            context.close()
    assert _git(root, "status", "--porcelain") == ""
