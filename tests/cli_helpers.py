"""Running ``cmdqv-lab`` in the test process."""

from __future__ import annotations

import pytest

from cmdqv_lab.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``cmdqv-lab ARGS`` in this process: (exit status, stdout, stderr), as the console script."""
    try:
        rv = main(list(args))
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
