"""Reading untrusted input files with limits: size caps, bounded nesting, one-line errors.

Specs, presets, calibration files, manifests and sidecars are small text files a user (or a damaged
disk) may replace by anything: ``/dev/zero``, a gzip bomb, a 10,000-deep TOML array. Everything here
reads at most ``cap`` bytes (a larger input is refused with
:class:`~cmdqv_lab.errors.InputTooLargeError`, never read into memory) and turns the parsers'
recursion limit into :class:`~cmdqv_lab.errors.NestingError`; the caller chooses the error class for
malformed content. Traces are streamed by :mod:`cmdqv_lab.workloads.trace_io` instead.

>>> loads_toml("a = [[[1]]]", "x.toml")
{'a': [[[1]]]}
>>> loads_toml("a = " + "[" * 5000 + "]" * 5000, "deep.toml")
Traceback (most recent call last):
...
cmdqv_lab.errors.NestingError: deep.toml: nested too deeply to parse (recursion limit)
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from cmdqv_lab.errors import CmdqvError, InputTooLargeError, NestingError, environment_error

#: Size limits of the small input files (bytes).
MAX_SPEC_BYTES = 1 << 20
MAX_PRESET_BYTES = 1 << 20
MAX_MANIFEST_BYTES = 64 << 20
MAX_SIDECAR_BYTES = 1 << 20


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"


def read_bytes_capped(path: str | Path, cap: int, error: type[CmdqvError], what: str = "file") -> bytes:
    """The bytes of ``path``, refusing (without reading it all) anything longer than ``cap``.

    ``error`` is raised, naming the path, when the file is missing, a directory or unreadable;
    :class:`InputTooLargeError` when it is larger than ``cap`` (a device like ``/dev/zero`` too).
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(cap + 1)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a {what}") from None
    except (OSError, MemoryError) as e:
        env = environment_error(e, f"reading {path}")
        if env is not None:
            raise env from None
        assert isinstance(e, OSError)
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) > cap:
        raise InputTooLargeError(f"{path}: larger than the {_mib(cap)} limit for a {what}; not read")
    return data


def read_text_capped(path: str | Path, cap: int, error: type[CmdqvError], what: str = "file") -> str:
    """:func:`read_bytes_capped` decoded as UTF-8 (``error`` names the offset of a bad byte)."""
    data = read_bytes_capped(path, cap, error, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (bad byte at offset {e.start}), expected a {what}") from None


def loads_toml(text: str, source: str, error: type[CmdqvError] | None = None) -> dict[str, Any]:
    """Parse TOML; ``error`` (default: re-raise tomllib's) for invalid TOML, NestingError if too deep."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        if error is None:
            raise
        raise error(f"{source}: invalid TOML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise NestingError(f"{source}: nested too deeply to parse (recursion limit)") from None


def loads_json(text: str | bytes, source: str, error: type[CmdqvError]) -> Any:
    """Parse JSON; ``error`` for invalid JSON, NestingError if too deep."""
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{source}: not valid JSON ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise NestingError(f"{source}: nested too deeply to parse (recursion limit)") from None
