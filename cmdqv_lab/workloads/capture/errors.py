"""The error a capture raises for problems a user can fix (missing tools, network, a hung guest)."""

from __future__ import annotations

from cmdqv_lab.errors import CmdqvError

__all__ = ["CaptureError"]


class CaptureError(CmdqvError, RuntimeError):
    """A capture could not run or its guest failed; the message says what is missing or went wrong."""
