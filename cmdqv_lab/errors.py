"""Exceptions for expected mistakes (bad parameters, malformed traces, bad specs).

Every error here is something a user can cause and fix; the CLI prints its message on one line
and exits with status 2, without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CmdqvError(Exception):
    """Base class of all expected, user-facing errors."""

    exit_code = 2


class ParamError(CmdqvError, ValueError):
    """A parameter is unknown, malformed or out of its allowed range."""


class CommandFieldError(CmdqvError, ValueError):
    """A command field is unknown for its opcode or its value does not fit the field."""


class QueueConfigError(CmdqvError, ValueError):
    """A queue geometry the driver refuses or the hardware cannot have."""


class DeviceStateError(CmdqvError, RuntimeError):
    """A register write or allocation the modelled hardware forbids in its current state."""


class TraceFormatError(CmdqvError, ValueError):
    """A trace file is missing, binary or has a malformed line (message names file:line)."""


class SpecError(CmdqvError, ValueError):
    """A sweep spec is malformed (message names the spec file and key)."""


class CapacityError(CmdqvError, ValueError):
    """A VM/device configuration cannot fit the CMDQV geometry."""


class DeadlockError(CmdqvError, RuntimeError):
    """A simulated configuration stopped making progress (e.g. atomic-add reservations past CONS)."""


class FrameError(CmdqvError, ValueError):
    """A frame does not suit an analysis or chart helper (missing column, too many rows, bad option)."""


class ReportError(CmdqvError, RuntimeError):
    """The report cannot be built (no notebooks, a notebook failed, unsafe output directory)."""


# ----------------------------------------------------------------------------- suggestions
def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` closest to ``name``, case-insensitive: difflib similarity at least
    0.6 and within 0.08 of the best match (so a clear winner comes alone).

    >>> closest("cpu", ["cpus", "submit", "queues", "vcmdqs"])
    ['cpus']
    >>> closest("D06", ["d06", "generic", "grace"])
    ['d06']
    >>> closest("tlbi_servce_ns", ["tlbi_service_ns", "cfgi_service_ns", "sync_service_ns"])
    ['tlbi_service_ns']
    """
    lower: dict[str, str] = {}
    for c in choices:
        lower.setdefault(str(c).lower(), str(c))
    key = str(name).lower()
    scored = []
    for low, c in lower.items():
        m = difflib.SequenceMatcher(None, key, low)
        if m.real_quick_ratio() >= 0.6 and m.quick_ratio() >= 0.6 and m.ratio() >= 0.6:
            scored.append((m.ratio(), c))
    scored.sort(key=lambda t: -t[0])
    return [c for r, c in scored[:n] if r >= scored[0][0] - 0.08]


def suggest(name: str, choices: Iterable[str], *, see: str = "", limit: int = 12) -> str:
    """The end of an "unknown NAME" message: the closest valid names, else the valid names.

    Short lists (at most ``limit``) are listed; for longer ones ``see`` says where to look.

    >>> suggest("cpu", ["cpus", "submit", "queues"])
    'did you mean cpus? (one of cpus, submit, queues)'
    >>> suggest("cpu", [f"p{i}" for i in range(50)] + ["cpus"], see="cmdqv-lab describe X lists all 51")
    'did you mean cpus? (cmdqv-lab describe X lists all 51)'
    >>> suggest("zzz", ["scan", "split"])
    'one of scan, split'
    >>> suggest("zzz", [f"p{i}" for i in range(50)])
    'none of the 50 valid names is close'
    """
    names = list(dict.fromkeys(str(c) for c in choices))
    near = closest(name, names)
    listing = "one of " + ", ".join(names) if len(names) <= limit else see
    if near:
        head = (
            "did you mean " + (near[0] if len(near) == 1 else ", ".join(near[:-1]) + " or " + near[-1]) + "?"
        )
        return f"{head} ({listing})" if listing else head
    return listing or f"none of the {len(names)} valid names is close"


# ------------------------------------------------------------------------------ the environment
# Failures of the machine rather than of the input. Each has its own exit status (README, "The
# command line"), so a script or CI job can tell a full disk from a bad parameter.


class WorkerDiedError(CmdqvError, RuntimeError):
    """A worker process died twice running the same point (killed, e.g. by the OOM killer)."""

    exit_code = 3


class DiskFullError(CmdqvError, OSError):
    """No space left on the device (ENOSPC, EDQUOT)."""

    exit_code = 4


class ReadOnlyError(CmdqvError, OSError):
    """An output location cannot be written (read-only file system, permission denied)."""

    exit_code = 5


class OutOfMemoryError(CmdqvError, MemoryError):
    """The process ran out of memory."""

    exit_code = 6


class NestingError(CmdqvError, ValueError):
    """An input file is nested too deeply to parse (e.g. a TOML array inside 10,000 arrays)."""

    exit_code = 7


class InputTooLargeError(CmdqvError, ValueError):
    """An input exceeds a size limit (file, decompressed trace, line, grid, simulated entities)."""

    exit_code = 8


#: errno values that mean "the disk is full" and "this place cannot be written".
_DISK_FULL = {"ENOSPC", "EDQUOT", "EFBIG"}
_READ_ONLY = {"EROFS", "EACCES", "EPERM"}


def environment_error(exc: BaseException, doing: str = "") -> CmdqvError | None:
    """The user-facing error for an expected failure of the environment, or None (a bug: re-raise).

    ``doing`` says what was being done (``"writing the sweep results"``). OSErrors other than a full
    disk or a write refused by the file system, and exceptions other than MemoryError, are not
    translated.

    >>> import errno
    >>> e = environment_error(OSError(errno.ENOSPC, "No space left on device", "/x/y.tmp"), "writing y")
    >>> type(e).__name__, e.exit_code, str(e)
    ('DiskFullError', 4, '/x/y.tmp: no space left on the device (writing y); free space or choose another directory')
    >>> environment_error(OSError(errno.ENOENT, "No such file")) is None
    True
    """
    import errno as _errno

    if isinstance(exc, CmdqvError):
        return exc
    what = f" ({doing})" if doing else ""
    if isinstance(exc, MemoryError):
        return OutOfMemoryError(f"out of memory{what}; give the process more memory or a smaller input")
    if isinstance(exc, OSError) and exc.errno is not None:
        name = _errno.errorcode.get(exc.errno, "")
        where = exc.filename if exc.filename is not None else "output"
        if name in _DISK_FULL:
            return DiskFullError(
                f"{where}: no space left on the device{what}; free space or choose another directory"
            )
        if name in _READ_ONLY:
            reason = "read-only file system" if name == "EROFS" else "permission denied"
            return ReadOnlyError(f"{where}: cannot write ({reason}){what}; choose a writable directory")
    return None
