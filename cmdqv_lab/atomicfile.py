"""Files written whole or not at all, and files read back only if they check out.

One implementation for every writer in the project (sweep results and manifests, the engine's
compile caches, exported figures, calibrated presets): the data goes to a temporary file beside the
target, named ``.NAME.PID.HEX.tmp`` so that a writer killed half way leaves a file whose dead writer
can be recognised and cleaned up (:func:`cmdqv_lab.experiments.cache.remove_stale_temporaries`), and
is renamed over the target. With ``durable`` the file and its directory are fsynced first, so the
rename survives a power loss; caches that are checked on every read and can be rebuilt skip that.
Standard library only: the engine imports it before anything else.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: A temporary file: ``.NAME.PID.HEX.tmp``.
TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.(?P<tag>[0-9a-f]+)\.tmp$")


def temp_name(path: Path) -> Path:
    """The temporary file a writer of ``path`` uses: ``.NAME.PID.HEX.tmp`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (its directory made if missing) and return the path.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> write_bytes(d / "sub" / "f.txt", b"x").read_bytes(), [p.name for p in (d / "sub").iterdir()]
    (b'x', ['f.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if durable:
        _fsync_dir(path.parent)
    return path


def read_checked(path: str | os.PathLike[str], unpack: Callable[[bytes], T | None]) -> T | None:
    """``unpack`` of the file's bytes, or None if it cannot be read (or does not check out)."""
    try:
        with open(path, "rb") as f:
            return unpack(f.read())
    except OSError:
        return None
