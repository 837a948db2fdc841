"""Helpers for the fault-injection tests: tasks that kill their worker, mounts, and kill points.

Functions run in spawned pool workers must be importable there, hence a module of their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def square_or_die(task: dict[str, Any]) -> int:
    """``index**2``, but SIGKILL this worker for tasks marked ``die`` (once, if a ``marker`` is given).

    A marker file makes the death happen only on the first attempt, as an OOM kill under transient
    memory pressure would.
    """
    if task.get("die"):
        marker = task.get("marker")
        if marker is None or not Path(marker).exists():
            if marker is not None:
                Path(marker).write_text("died once")
            os.kill(os.getpid(), signal.SIGKILL)
    return int(task["index"]) ** 2


class _TornDown:
    """Writes its file when collected: at an interpreter's teardown, for an object kept in a cycle."""

    def __init__(self, path: str):
        self.path = path
        self.me = self  # a cycle: only the garbage collector frees it
        # kept here: at the teardown, builtins such as open() are gone first
        self.os_open, self.os_close, self.flags = os.open, os.close, os.O_CREAT | os.O_WRONLY

    def __del__(self) -> None:
        self.os_close(self.os_open(self.path, self.flags))


def mark_exit(task: dict[str, Any]) -> int:
    """Leave traces of how this worker process exits: ``<dir>/atexit-<pid>`` from an exit handler
    registered now (after the pool's initializer), ``<dir>/teardown-<pid>`` when the interpreter is
    torn down (a cycle collected at the end, with the collector off until then), and a line on
    stdout that is still in its buffer."""
    import atexit
    import gc
    import sys

    d, pid = Path(task["dir"]), os.getpid()
    atexit.register(lambda: (d / f"atexit-{pid}").write_text("ran"))
    gc.disable()
    _TornDown(str(d / f"teardown-{pid}"))
    sys.stdout.write(f"unflushed {pid}")
    return int(task["index"])


#: A wrapper around ``cmdqv-lab``: SIGKILL the process just before it renames a temporary file over
#: a path ending in KILL_AT (after the temporary file is written and fsynced), as a crash between
#: writing and committing a file would.
KILL_IN_RENAME = """
import os, signal, sys
target = os.environ["KILL_AT"]
real = os.replace
def replace(src, dst, *args, **kw):
    if str(dst).endswith(target):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kw)
os.replace = replace
from cmdqv_lab.cli import main
main(sys.argv[1:])
"""


def can_mount() -> bool:
    """Whether this process may mount file systems (root with CAP_SYS_ADMIN, as in CI)."""
    if os.geteuid() != 0:
        return False
    probe = Path("/proc/self/mountinfo")
    return probe.exists()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``path`` for the duration of the block."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if r.returncode != 0:
        raise OSError(f"mount tmpfs on {path}: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
