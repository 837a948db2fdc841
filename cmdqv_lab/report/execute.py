"""Find, convert and execute the report's notebooks (jupytext percent files run by papermill).

The ``notebooks/NN-topic.py`` files are the source of truth. Each is converted to ``.ipynb`` in
memory, checked for a cell tagged ``parameters`` that sets ``smoke``, and executed by papermill
in this Python (the kernel is started with ``sys.executable``, whatever kernelspec named
``python3`` another installation registered). ``smoke=True`` is injected in smoke mode, and the
kernel also sees ``CMDQV_SMOKE=1`` (the variable nbmake runs can use).

A failure raises :class:`~cmdqv_lab.errors.ReportError` with a one-line message naming the
notebook and the cell, e.g. ``notebook 03-sync.py failed in cell 5 (`r = run(spec)`): ValueError:
...``.

>>> NOTEBOOK_NAME.match("03-sync-hazard.py") is not None, NOTEBOOK_NAME.match("scratch.py") is None
(True, True)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec

from cmdqv_lab.errors import ReportError

#: File names of report notebooks: two digits, a dash, a topic.
NOTEBOOK_NAME = re.compile(r"^\d{2}-[A-Za-z0-9][A-Za-z0-9_-]*\.py$")

_SMOKE_LINE = re.compile(r"^smoke\s*(:\s*bool\s*)?=", re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

KERNEL_NAME = "python3"


class ThisPythonKernelManager(AsyncKernelManager):
    """Start kernels with the running interpreter, so notebooks see this environment's packages.

    The kernel talks over Unix-domain sockets (``transport="ipc"``), not TCP ports on loopback.
    Each manager gets its own socket-path prefix: jupyter_client's default (``kernel-ipc`` in the
    working directory, numbered by probing for existing files) lets two kernels started at the
    same time in the same directory pick the same sockets.
    """

    def __init__(self, **kwargs: Any) -> None:
        if os.name == "posix":
            kwargs.setdefault("transport", "ipc")
            if kwargs["transport"] == "ipc":
                kwargs.setdefault(
                    "ip",
                    os.path.join(
                        tempfile.gettempdir(), f"cmdqv-kernel-{os.getpid()}-{uuid.uuid4().hex[:12]}"
                    ),
                )
        super().__init__(**kwargs)

    async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
        """Start the kernel with its stderr in a log file beside its sockets, not in the build's output:
        a kernel killed with its build (SIGTERM) may log a traceback while it goes, and a notebook's
        own errors reach the build through the kernel's messages anyway."""
        if "stderr" not in kw:
            log = os.path.join(
                tempfile.gettempdir(), f"cmdqv-kernel-{os.getpid()}-{uuid.uuid4().hex[:12]}.log"
            )
            with open(log, "ab") as f:  # the kernel keeps its own copy of the descriptor
                kw["stderr"] = f
                await super().start_kernel(**kw)
            return
        await super().start_kernel(**kw)

    @property
    def kernel_spec(self) -> KernelSpec:
        if self._kernel_spec is None:
            self._kernel_spec = KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name=f"Python {sys.version_info.major}.{sys.version_info.minor} (cmdqv-lab)",
                language="python",
                metadata={"debugger": False},
            )
        return self._kernel_spec


@dataclass(frozen=True)
class Executed:
    """One executed notebook."""

    source: Path  #: the ``NN-topic.py`` file
    ipynb: Path  #: the executed notebook written by papermill
    seconds: float  #: wall time of the execution


def discover(notebooks_dir: Path) -> list[Path]:
    """The report notebooks of a directory, sorted by name (``NN-topic.py`` files only)."""
    if not notebooks_dir.is_dir():
        raise ReportError(f"notebooks directory {notebooks_dir} does not exist")
    found = sorted(p for p in notebooks_dir.iterdir() if p.is_file() and NOTEBOOK_NAME.match(p.name))
    if not found:
        raise ReportError(
            f"no notebooks in {notebooks_dir} (expected jupytext percent files named NN-topic.py)"
        )
    return found


def load(path: Path) -> Any:
    """Read a jupytext percent file as an nbformat notebook and check its ``parameters`` cell."""
    import jupytext

    try:
        nb = jupytext.read(path, fmt="py:percent")
    except Exception as e:  # jupytext raises assorted errors on malformed files
        raise ReportError(f"notebook {path.name}: cannot read it as a jupytext percent file: {e}") from None
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1:
        what = "no cell" if not params else f"{len(params)} cells"
        raise ReportError(
            f'notebook {path.name}: {what} tagged parameters (need exactly one: `# %% tags=["parameters"]`)'
        )
    if params[0].cell_type != "code" or not _SMOKE_LINE.search(params[0].source):
        raise ReportError(f"notebook {path.name}: the parameters cell must set `smoke = False`")
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    for i, cell in enumerate(nb.cells, start=1):
        cell.metadata["cmdqv_cell"] = i
    return nb


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            text = line.strip()
            return text if len(text) <= 60 else text[:57] + "..."
    return ""


def _one_line(text: str) -> str:
    text = _ANSI.sub("", text or "").strip()
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= 200 else first[:197] + "..."


def _failing_cell(nb: Any, source: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source == source:
            n = cell.metadata.get("cmdqv_cell", "?")
            return f"cell {n} (`{_first_line(source)}`)"
    return f"cell (`{_first_line(source)}`)"


def execute(
    path: Path,
    out_ipynb: Path,
    *,
    smoke: bool,
    timeout: float | None = None,
    cwd: Path | None = None,
) -> Executed:
    """Execute one notebook with papermill and write the executed ``.ipynb``.

    Parameters
    ----------
    path
        The ``NN-topic.py`` source.
    out_ipynb
        Where the executed notebook goes (its directory is created).
    smoke
        Inject ``smoke=True`` (and set ``CMDQV_SMOKE=1`` for the kernel).
    timeout
        Seconds one cell may run (None: no limit).
    cwd
        Working directory of the kernel (default: the notebook's directory).
    """
    import nbformat
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    nb = load(path)
    out_ipynb.parent.mkdir(parents=True, exist_ok=True)
    src_ipynb = out_ipynb.with_name(out_ipynb.stem + ".input.ipynb")
    nbformat.write(nb, src_ipynb)
    old = os.environ.get("CMDQV_SMOKE")
    os.environ["CMDQV_SMOKE"] = "1" if smoke else "0"
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(src_ipynb),
            str(out_ipynb),
            parameters={"smoke": True} if smoke else {},
            kernel_name=KERNEL_NAME,
            progress_bar=False,
            log_output=False,
            cwd=str(cwd or path.parent),
            execution_timeout=timeout,
            start_timeout=120,
            kernel_manager_class=ThisPythonKernelManager,
        )
    except PapermillExecutionError as e:
        where = _failing_cell(nb, e.source)
        raise ReportError(
            f"notebook {path.name} failed in {where}: {e.ename}: {_one_line(e.evalue)}"
        ) from None
    except CellTimeoutError:
        raise ReportError(f"notebook {path.name}: a cell ran longer than the {timeout:g} s limit") from None
    except DeadKernelError as e:
        raise ReportError(f"notebook {path.name}: the kernel died ({_one_line(str(e))})") from None
    finally:
        if old is None:
            os.environ.pop("CMDQV_SMOKE", None)
        else:
            os.environ["CMDQV_SMOKE"] = old
        src_ipynb.unlink(missing_ok=True)
    return Executed(path, out_ipynb, time.perf_counter() - t0)
