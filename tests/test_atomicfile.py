"""The one atomic file writer (:mod:`cmdqv_lab.atomicfile`): whole or not at all, whoever writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cmdqv_lab import atomicfile
from cmdqv_lab.experiments.cache import is_temporary


@pytest.mark.parametrize("durable", [True, False])
def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    target = atomicfile.write_bytes(tmp_path / "f.bin", b"old", durable=durable)
    names: list[str] = []

    def fail(src: str, dst: str) -> None:
        names.append(Path(src).name)
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomicfile.write_bytes(target, b"new", durable=durable)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    assert is_temporary(names[0])  # the sweep's cleanup recognises every writer's temporaries


def test_read_checked_is_none_for_a_missing_or_rejected_file(tmp_path: Path) -> None:
    f = atomicfile.write_bytes(tmp_path / "a", b"good", durable=False)
    assert atomicfile.read_checked(f, lambda b: b.decode() if b == b"good" else None) == "good"
    atomicfile.write_bytes(f, b"bad", durable=False)
    assert atomicfile.read_checked(f, lambda b: b.decode() if b == b"good" else None) is None
    assert atomicfile.read_checked(tmp_path / "missing", bytes.decode) is None
