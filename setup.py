"""Build hook: a wheel carries the built-in data the command line reads at run time.

``data/params`` (platform presets), ``data/calibration``, ``data/specs`` and ``data/traces`` are
copied into the wheel as ``cmdqv_lab/_data/<kind>/``; :func:`cmdqv_lab.project.builtin_data` finds
them there when the package is not imported from a checkout. An editable install reads ``data/``
of its checkout directly, so nothing is copied for it. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: data/<kind>/* file suffixes shipped (cmdqv_lab.project.BUILTIN_KINDS).
SHIPPED = {
    "params": (".toml",),
    "calibration": (".toml",),
    "specs": (".toml", ".md"),
    "traces": (".gz", ".json"),
}


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for kind, suffixes in SHIPPED.items():
            for f in sorted((ROOT / "data" / kind).iterdir()):
                if f.is_file() and f.name.endswith(suffixes):
                    dest = Path(self.build_lib) / "cmdqv_lab" / "_data" / kind / f.name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dest)


setup(cmdclass={"build_py": BuildPyWithData})
