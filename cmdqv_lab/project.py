"""Where data comes from: the data shipped with the code, and the project a command is run from.

Two kinds of files, found in two different ways:

* **Built-in data** belongs to the code: platform presets (``params``), calibration files
  (``calibration``), captured traces (``traces``) and sweep specs (``specs``). A preset is fitted
  for a version of the code, so it must come from the same tree as the code, never from whatever
  directory a command happens to run in. :func:`builtin_data` returns ``data/<kind>`` of the source
  checkout the package is imported from (an editable install, or a checkout on ``sys.path``), else
  the copy a wheel carries in ``cmdqv_lab/_data/<kind>`` (``setup.py`` copies ``data/`` there when
  it builds one).
* **Project data** belongs to a checkout a user works in: published results
  (``data/results``), the sweep cache (``.cache/sweeps``), notebooks. :func:`find_project` looks
  for it from the current directory upwards: the first directory whose ``pyproject.toml`` names
  the ``cmdqv-lab`` project. ``cmdqv-lab reproduce`` without arguments uses it and says which;
  nothing falls back silently to some other tree's data.

A checkout is recognised by its ``pyproject.toml`` (``[project] name = "cmdqv-lab"``), so an
installed package in ``site-packages`` (which has none beside it) never takes a neighbouring
``data/`` directory for its own.

>>> (builtin_data("params") / "generic.toml").is_file()
True
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

from cmdqv_lab.errors import CmdqvError

#: The ``[project] name`` of a cmdqv-lab checkout's pyproject.toml.
PROJECT_NAME = "cmdqv-lab"
#: Kinds of built-in data (subdirectories of ``data/`` shipped with the package).
BUILTIN_KINDS = ("params", "calibration", "specs", "traces")
_PACKAGE = Path(__file__).resolve().parent


class ProjectError(CmdqvError, RuntimeError):
    """No cmdqv-lab project where one is needed."""


def is_project(directory: Path) -> bool:
    """Whether ``directory`` holds a ``pyproject.toml`` of the cmdqv-lab project."""
    path = directory / "pyproject.toml"
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return False
    project = data.get("project")
    return isinstance(project, dict) and project.get("name") == PROJECT_NAME


@functools.lru_cache(maxsize=1)
def source_checkout() -> Path | None:
    """The checkout the package is imported from, or None for an installed package."""
    root = _PACKAGE.parent
    return root if is_project(root) and (root / "data").is_dir() else None


def builtin_data(kind: str) -> Path:
    """The directory of built-in data ``kind`` (see the module docstring)."""
    if kind not in BUILTIN_KINDS:
        raise ValueError(f"unknown built-in data {kind!r}: one of {', '.join(BUILTIN_KINDS)}")
    root = source_checkout()
    return root / "data" / kind if root is not None else _PACKAGE / "_data" / kind


def find_project(start: Path | None = None) -> Path | None:
    """The nearest cmdqv-lab project at or above ``start`` (default: the current directory)."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if is_project(d):
            return d
    return None


def project_root(start: Path | None = None) -> Path:
    """:func:`find_project`, or the source checkout of the package, else :class:`ProjectError`."""
    root = find_project(start) or source_checkout()
    if root is None:
        raise ProjectError(
            f"{(start or Path.cwd())}: not inside a cmdqv-lab checkout (no pyproject.toml naming "
            f"{PROJECT_NAME} here or above); run from the checkout or name the directory"
        )
    return root
