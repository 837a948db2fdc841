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
