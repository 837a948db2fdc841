"""Progress bars of long runs (sweeps, reproduction, calibration, the report build).

:func:`bar` is a tqdm bar from :mod:`tqdm.auto`: text on a terminal, a widget in Jupyter. Whether it
shows: ``enabled=True``/``False`` decide; ``None`` (the default) shows it on a terminal (stderr is
a TTY) or in a Jupyter kernel, and not when output goes to a file, a pipe or a test. The command
line's ``--quiet`` passes ``False``.

>>> b = bar(3, "demo", enabled=False)
>>> b.update(3); b.close()
>>> shown(None) in (True, False)
True
"""

from __future__ import annotations

import sys
from typing import Any


def in_jupyter() -> bool:
    """Whether this process is a Jupyter kernel (where tqdm.auto draws a widget)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def shown(enabled: bool | None) -> bool:
    """Whether a bar shows (see the module docstring)."""
    if enabled is not None:
        return enabled
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) or in_jupyter()


def bar(total: int | None, desc: str, *, unit: str = "pt", enabled: bool | None = None, **kw: Any) -> Any:
    """A :mod:`tqdm.auto` bar of ``total`` steps (None: unknown), disabled unless :func:`shown`."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not shown(enabled), **kw)
