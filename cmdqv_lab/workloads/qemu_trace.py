"""Parser of QEMU SMMUv3 trace logs: the real command stream a Linux guest sent to its SMMU.

QEMU's SMMUv3 model (``hw/arm/smmuv3.c``) consumes its whole command queue synchronously inside
the trapped write of ``SMMU_CMDQ_PROD`` (``smmuv3_cmdq_consume``) and prints, per *consume pass*::

    smmuv3_cmdq_consume prod=P cons=C prod.wrap=W cons.wrap=X   # loop head, before each command
    smmuv3_cmdq_opcode <--- SMMU_CMD_TLBI_NH_VA                 # the command read at slot C
    smmuv3_s1_range_inval vmid=0 asid=2 addr=0x... ...         # detail events of that command
    ...                                                         # (repeated per command)
    smmuv3_cmdq_consume_error Error on SMMU_CMD_X command execution: 1   # only on error
    smmuv3_cmdq_consume_out prod:P, cons:C', prod_wrap:W, cons_wrap:X'

A pass that read at least one command is one doorbell: a PROD write publishing that range (or the
GERRORN write resuming a queue an error stopped: ``resumed``). Event grammar per QEMU version:
:mod:`cmdqv_lab.workloads.qemu_events`; frames and their schemas: :mod:`cmdqv_lab.workloads.trace_frames`.
Lines may carry the ``pid@seconds.micros:`` prefix of ``-msg timestamp=on`` or not; files may be gzip.
Speed: about 0.4 million lines per second on one core (1.8 M lines, plain or gzip, in about 4.5 s).

Other events and text lines are skipped and counted (``meta.skipped``). A malformed line (a known
event with unparsable or out-of-range arguments, a truncated line, an opcode with no preceding
consume, a detail event after the wrong opcode, a command without the detail event QEMU always
prints for it, queue indices that do not follow, garbage, a last line without its newline) raises
:class:`~cmdqv_lab.errors.TraceFormatError` naming ``file:line`` and what was expected; with
``lenient=True`` it is skipped and counted in ``meta.malformed``. A trace without a single command
(an empty file, ``/dev/null``, another log) is an error in both modes. Files are read as a stream
with limits on line length and size (:mod:`~cmdqv_lab.workloads.trace_io`).

>>> log = '''1@5.000000:smmuv3_cmdq_consume prod=2 cons=0 prod.wrap=0 cons.wrap=0
... 1@5.000010:smmuv3_cmdq_opcode <--- SMMU_CMD_TLBI_NH_ASID
... 1@5.000011:smmuv3_cmdq_tlbi_nh_asid asid=3
... 1@5.000012:smmuv3_cmdq_consume prod=2 cons=1 prod.wrap=0 cons.wrap=0
... 1@5.000013:smmuv3_cmdq_opcode <--- SMMU_CMD_SYNC
... 1@5.000020:smmuv3_cmdq_consume_out prod:2, cons:2, prod_wrap:0, cons_wrap:0
... '''
>>> t = parse_text(log)
>>> t.commands.select("seq", "opcode", "asid", "cons", "doorbell").rows()
[(0, 'CMD_TLBI_NH_ASID', 3, 0, 0), (1, 'CMD_SYNC', None, 1, 0)]
>>> t.doorbells.select("n_commands", "cons_before", "cons_after", "time_s").rows()
[(2, 0, 2, 0.0)]
>>> parse_text("smmuv3_cmdq_opcode <--- SMMU_CMD_SYNC", source="x.log")
Traceback (most recent call last):
...
cmdqv_lab.errors.TraceFormatError: x.log:1: smmuv3_cmdq_opcode with no preceding smmuv3_cmdq_consume ...
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cmdqv_lab.workloads.qemu_parser import Parser
from cmdqv_lab.workloads.trace_frames import (
    BATCH_SCHEMA,
    COMMAND_SCHEMA,
    DOORBELL_SCHEMA,
    Trace,
    TraceMeta,
)
from cmdqv_lab.workloads.trace_io import TraceReader

__all__ = [
    "BATCH_SCHEMA",
    "COMMAND_SCHEMA",
    "DOORBELL_SCHEMA",
    "Trace",
    "TraceMeta",
    "parse_bytes",
    "parse_text",
    "parse_trace",
]


def parse_trace(path: str | Path, *, lenient: bool = False) -> Trace:
    """Parse a QEMU SMMUv3 trace log (plain or gzip) into a :class:`Trace`.

    Parameters
    ----------
    path
        The ``-trace ...,file=`` output of QEMU's log backend, optionally gzip-compressed.
    lenient
        Skip and count malformed lines (``meta.malformed``) instead of raising.

    Raises
    ------
    TraceFormatError
        The file is missing, a directory, binary, holds no command, or (unless ``lenient``) has a
        malformed line.
    InputTooLargeError
        More text than :data:`~cmdqv_lab.workloads.trace_io.MAX_TRACE_BYTES` (e.g. a gzip bomb).
    """
    reader = TraceReader(path, lenient=lenient)
    return Parser(str(path), lenient, False).run_blocks(reader.blocks(), reader)


def parse_bytes(raw: bytes, *, source: str = "<bytes>", lenient: bool = False) -> Trace:
    """Parse the bytes of a trace file (gzip recognised by its magic number)."""
    reader = TraceReader(raw, lenient=lenient, source=source)
    return Parser(source, lenient, False).run_blocks(reader.blocks(), reader)


def parse_text(text: str | Iterable[str], *, source: str = "<text>", lenient: bool = False) -> Trace:
    """Parse trace text: a string, or an iterable of lines without their newlines."""
    if isinstance(text, str):
        return Parser(source, lenient, False).run(_lines(text))
    return Parser(source, lenient, False).run([line.removesuffix("\r") for line in text])


def _lines(text: str) -> list[str]:
    """Split on newlines; CRLF line ends (a log copied through Windows) count as LF."""
    return (text.replace("\r\n", "\n") if "\r" in text else text).split("\n")
