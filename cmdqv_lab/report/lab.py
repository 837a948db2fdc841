"""JupyterLab set-up: double-clicking ``notebooks/NN-topic.py`` opens it as a notebook with the
project's kernel.

The notebooks are jupytext percent scripts (diffable, no outputs in git). :func:`install` writes,
under a Jupyter prefix (the project's ``.venv`` for ``make lab``):

- ``share/jupyter/kernels/cmdqv-lab/kernel.json``: the kernel the notebooks' headers name, running
  this Python (so a notebook sees this environment's packages, whatever JupyterLab runs it);
- ``share/jupyter/lab/settings/overrides.json``: JupyterLab's default viewer for Python files is
  jupytext's notebook ("Jupytext Notebook"), so a double click opens a notebook, not a text file.

Saving a notebook from JupyterLab rewrites the ``.py`` exactly as it is (``notebooks/jupytext.toml``
keeps jupytext version numbers out of the header), so running one does not dirty the tree.
``make lab`` runs ``python -m cmdqv_lab.report.lab`` and then ``jupyter lab notebooks``.

>>> import tempfile
>>> out = install(Path(tempfile.mkdtemp()))
>>> sorted(p.name for p in out)
['kernel.json', 'overrides.json']
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: The kernel named in every notebook's header.
KERNEL_NAME = "cmdqv-lab"
KERNEL_DISPLAY = "Python (cmdqv-lab)"

#: JupyterLab settings: Python files open with jupytext's notebook view.
OVERRIDES: dict[str, dict[str, object]] = {
    "@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}},
}


def kernel_spec() -> dict[str, object]:
    """The kernel.json of the project's kernel (this Python)."""
    return {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL_DISPLAY,
        "language": "python",
        "metadata": {"debugger": True},
    }


def install(prefix: Path = Path(sys.prefix)) -> list[Path]:
    """Write the kernel and the viewer settings under ``prefix``; returns the files written."""
    kdir = prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME
    kdir.mkdir(parents=True, exist_ok=True)
    kfile = kdir / "kernel.json"
    kfile.write_text(json.dumps(kernel_spec(), indent=2) + "\n")
    sdir = prefix / "share" / "jupyter" / "lab" / "settings"
    sdir.mkdir(parents=True, exist_ok=True)
    sfile = sdir / "overrides.json"
    current: dict[str, dict[str, object]] = {}
    if sfile.is_file():
        try:
            current = json.loads(sfile.read_text())
        except json.JSONDecodeError:
            current = {}
    for plugin, values in OVERRIDES.items():
        current.setdefault(plugin, {}).update(values)
    sfile.write_text(json.dumps(current, indent=2) + "\n")
    return [kfile, sfile]


if __name__ == "__main__":  # pragma: no cover
    for f in install():
        print(f"lab: wrote {f}")
