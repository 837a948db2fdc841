"""Exceptions for expected mistakes (bad parameters, malformed traces, bad specs).

Every error here is something a user can cause and fix; the CLI prints its message on one line
and exits with status 2, without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


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
