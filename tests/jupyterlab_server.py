"""Start JupyterLab on loopback for the browser tests, and stop it after.

Used by tests/test_plots_jupyterlab.py and tests/test_widgets_browser.py. The server gets a fixed
token, the given root directory, no update or news checks (no remote requests), and its log goes to
``root/lab.log`` (quoted when it does not start within a minute).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = "needs Debian's chromium at /usr/bin/chromium (scripts/install-sysdeps installs it)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_lab(
    root: Path, token: str, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> Iterator[str]:
    """A JupyterLab server over ``root``; yields its base URL once ``/api/status`` answers."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *extra_args,
    ]  # fmt: skip
    log = (root / "lab.log").open("w")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, env={**os.environ, **(env or {})}
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start: {(root / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
        log.close()
