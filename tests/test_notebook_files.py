"""The notebooks as files: saving one from JupyterLab leaves it unchanged, helpers are not copied.

JupyterLab saves a jupytext notebook through jupytext's contents manager; the test drives that
manager directly (as the server does on save, with the kernel metadata a run adds) and requires
the file to come back byte for byte (notebooks/jupytext.toml keeps version numbers out of the
header). The JupyterLab side, a double click opening a notebook, is tests/test_notebooks_lab.py.
"""

from __future__ import annotations

import ast
import asyncio
import shutil
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.py"))


def _save_roundtrip(root: Path, name: str) -> None:
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

    cm = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(root_dir=str(root))

    async def go() -> None:
        model = await cm.get(name)
        nb = model["content"]
        nb["metadata"]["language_info"] = {"name": "python", "version": "3.13.0", "file_extension": ".py"}
        await cm.save({"type": "notebook", "format": "json", "content": nb}, name)

    asyncio.run(go())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saving_from_jupyterlab_keeps_the_file(path: Path, tmp_path: Path) -> None:
    shutil.copy(ROOT / "notebooks" / "jupytext.toml", tmp_path / "jupytext.toml")
    shutil.copy(path, tmp_path / path.name)
    _save_roundtrip(tmp_path, path.name)
    assert (tmp_path / path.name).read_text() == path.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_header_names_the_project_kernel(path: Path) -> None:
    import jupytext

    nb = jupytext.read(path)
    assert nb.metadata["kernelspec"]["name"] == "cmdqv-lab"


def test_helpers_are_not_copied_between_notebooks() -> None:
    """A function defined in two notebooks belongs in cmdqv_lab.analysis (issue 12, item 5)."""
    defined: Counter[str] = Counter()
    per_notebook = {}
    for path in NOTEBOOKS:
        names = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
        per_notebook[path.name] = names
        defined.update(names)
    assert [n for n, c in defined.items() if c > 1] == []
    assert sum(len(v) for v in per_notebook.values()) <= 15, per_notebook


def test_notebooks_show_no_raw_frames() -> None:
    """No ``display(frame)`` and no frame as a cell's last expression: tables go through result_table."""
    import jupytext

    for path in NOTEBOOKS:
        for cell in jupytext.read(path).cells:
            if cell.cell_type != "code":
                continue
            tree = ast.parse(cell.source)
            calls = [
                n
                for n in ast.walk(tree)
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "display"
            ]
            for c in calls:
                assert c.args and isinstance(c.args[0], ast.Call), f"{path.name}: display() of a bare value"
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = tree.body[-1].value
                ok = isinstance(last, ast.Call)
                assert ok, f"{path.name}: a cell ends in a bare expression (shown as a raw dump)"
