"""The README's command-line examples run as written (its Python examples run as doctests)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli as run

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def block_after(marker: str, lang: str) -> list[str]:
    start = README.index(marker)
    hit = re.search(rf"```{lang}\n(.*?)```", README[start:], re.S)
    assert hit, f"no ```{lang} block after {marker!r}"
    return [ln for ln in hit.group(1).splitlines() if ln.strip()]


def test_the_shell_examples_of_your_own_section_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").symlink_to(ROOT / "data")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    lines = block_after("The same from a shell", "sh")
    assert len(lines) >= 5
    for line in lines:
        argv = shlex.split(line)
        if argv[0] == "cp":
            shutil.copy(argv[1], argv[2])
            continue
        assert argv[0] == "cmdqv-lab", line
        code, out, err = run(capsys, *argv[1:], *(["--workers", "1", "-q"] if argv[1] == "sweep" else []))
        assert code == 0, (line, err)
        assert out.strip(), line
    rows = (tmp_path / "my-sweep.csv").read_text().splitlines()
    assert rows[0].startswith("point,scenario,seed,count") and len(rows) == 1 + 8


def test_the_error_example_is_what_the_program_prints(capsys: pytest.CaptureFixture[str]) -> None:
    lines = block_after("A mistake\nprints one line", "console")
    command, expected = lines[0], lines[1]
    assert command.startswith("$ cmdqv-lab ")
    code, out, err = run(capsys, *shlex.split(command[2:])[1:])
    assert code == 2 and out == "" and err.strip() == expected
