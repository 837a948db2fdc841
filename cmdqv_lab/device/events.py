"""The functional model's event log: one record per thing the device (or a driver routine) did.

The log is how tests and the correctness checker observe the model: which command was consumed
at which queue position, when a CMD_SYNC completed and how it signalled, when a queue stopped on
an error and when the error was acknowledged. There is no time; ``seq`` orders the records.

Kinds:

``submit``    software wrote entries and PROD (detail: ``n``, ``prod``)
``consume``   the consumer executed the entry at CONS (detail: ``executed`` dwords after any rewrite)
``complete``  a command's effect is complete (right after ``consume``, or later for an ATC_INV
              whose invalidation timed out); a CMD_SYNC's ``complete`` carries its ``cs`` signal
``msi``       an MSI write by a CMD_SYNC with CS=SIG_IRQ (detail: ``addr``, ``data``)
``sev``       a CMD_SYNC with CS=SIG_SEV generated an event
``error``     the queue stopped at ``pos`` (detail: ``cerror`` name, ``cons`` register)
``ack``       the error was acknowledged (GERRORN / ERRACK written); consumption may resume
``skip_err``  the driver rewrote the faulting slot into a CMD_SYNC (detail: ``replaced`` dwords)
``hw_sync``   a CMDQV hardware-inserted SYNC (no slot, no CONS change, no signal)
``irq``       the CMDQV error interrupt was raised

``pos`` is the absolute (unwrapped) queue position: the n-th entry ever written to that queue has
``pos == n``, so "no command lost or run twice" is a statement about ``pos`` values.

>>> log = EventLog()
>>> e = log.add("consume", "cmdq", index=3, pos=3, opcode=0x46)
>>> e.opname, len(log), [x.kind for x in log.of("consume")]
('CMD_SYNC', 1, ['consume'])
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cmdqv_lab.device.commands import Opcode


@dataclass(frozen=True)
class Event:
    """One record of the event log."""

    seq: int
    kind: str
    queue: str
    index: int | None = None
    pos: int | None = None
    opcode: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def opname(self) -> str | None:
        """The opcode's name (``CMD_SYNC``), ``0x..`` for an unknown value, or None."""
        if self.opcode is None:
            return None
        try:
            return Opcode(self.opcode).name
        except ValueError:
            return f"0x{self.opcode:02x}"

    def as_dict(self) -> dict[str, Any]:
        """A flat record (detail keys prefixed ``detail_``) for a table."""
        row: dict[str, Any] = {
            "seq": self.seq,
            "kind": self.kind,
            "queue": self.queue,
            "index": self.index,
            "pos": self.pos,
            "opcode": self.opname,
        }
        row.update({f"detail_{k}": v for k, v in self.detail.items()})
        return row


class EventLog:
    """An append-only list of :class:`Event` records, shared by the queues of one device."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    def add(
        self,
        kind: str,
        queue: str,
        *,
        index: int | None = None,
        pos: int | None = None,
        opcode: int | None = None,
        **detail: Any,
    ) -> Event:
        """Append a record and return it."""
        ev = Event(
            len(self._events), kind, queue, index, pos, None if opcode is None else int(opcode), detail
        )
        self._events.append(ev)
        return ev

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, i: int) -> Event:
        return self._events[i]

    def of(self, *kinds: str, queue: str | None = None) -> list[Event]:
        """Records of the given kinds (all kinds if none given), optionally of one queue."""
        return [
            e for e in self._events if (not kinds or e.kind in kinds) and (queue is None or e.queue == queue)
        ]

    def records(self) -> list[dict[str, Any]]:
        """Every record as a flat dict (see :meth:`Event.as_dict`)."""
        return [e.as_dict() for e in self._events]
