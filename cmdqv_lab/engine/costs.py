"""The engine's cost vector: one integer (picoseconds, or a count) per ``K_*`` slot of :mod:`.layout`.

A cost is *declared* once, as a field of :class:`cmdqv_lab.platform.Platform` (name, unit, range,
provenance) whose ``engine=`` names the slot it feeds; :meth:`Platform.costs` converts every such
field by its unit (``ns`` and ``us`` to ps, counts and flags as integers) without a hand-written
table. The slot names are the layout constants in lower case (``K_LINE_XFER`` is ``line_xfer``), so
tests can also build a vector directly, in ps:

>>> c = Costs(line_xfer=35_000, fetch=0)
>>> c["line_xfer"], c["msi"], int(c.vector(record=False)[K_FETCH_LINE])
(35000, 0, 1)
>>> Costs(line_xfr=1)
Traceback (most recent call last):
...
cmdqv_lab.errors.ParamError: unknown engine cost 'line_xfr' (did you mean line_xfer?)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping

import numpy as np

from cmdqv_lab.engine import layout as L
from cmdqv_lab.engine.layout import K_FETCH_LINE, K_LINE_HOLD_PPM, K_NF, K_POLL_SPINS
from cmdqv_lab.errors import ParamError
from cmdqv_lab.units import ns, us

#: Slots set by the run configuration (build_memory), not by a cost.
RUN_SLOTS = frozenset({"record", "host_queue", "irq_cpu"})
#: Every cost slot: lower-case name -> index in the vector.
SLOTS: dict[str, int] = {
    name[2:].lower(): value
    for name, value in vars(L).items()
    if name.startswith("K_")
    and name != "K_NF"
    and isinstance(value, int)
    and name[2:].lower() not in RUN_SLOTS
}
#: Slots whose default is not 0: counts of at least one; the holder's chance is 1 (holder-first as before).
_DEFAULTS = {K_FETCH_LINE: 1, K_POLL_SPINS: 1, K_LINE_HOLD_PPM: 1_000_000}


class Costs(Mapping[str, int]):
    """Integer engine costs by slot name (unset slots are 0, except those in ``_DEFAULTS``)."""

    def __init__(self, **values: int) -> None:
        for k, v in values.items():
            if k not in SLOTS:
                close = difflib.get_close_matches(k, SLOTS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ParamError(f"unknown engine cost {k!r}{hint}")
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ParamError(f"engine cost {k}={v!r} must be a non-negative integer")
        self._values = {k: int(v) for k, v in values.items()}

    def __getitem__(self, key: str) -> int:
        if key not in SLOTS:
            raise KeyError(key)
        return self._values.get(key, _DEFAULTS.get(SLOTS[key], 0))

    def __getattr__(self, name: str) -> int:
        """``costs.line_xfer`` reads slot ``line_xfer`` (the SimPy reference reads costs this way)."""
        if name.startswith("_") or name not in SLOTS:
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(SLOTS)

    def __len__(self) -> int:
        return len(SLOTS)

    def __repr__(self) -> str:
        return "Costs(" + ", ".join(f"{k}={v}" for k, v in self._values.items()) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Costs) and dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash(tuple(self.items()))

    def vector(self, record: bool) -> np.ndarray:
        """The ``K_NF`` vector the compiled engine reads (run-configuration slots filled later)."""
        k = np.zeros(K_NF, dtype=np.int64)
        for name, i in SLOTS.items():
            k[i] = self[name]
        if k[K_FETCH_LINE] < 1:
            raise ParamError("fetch_line must be >= 1")
        k[L.K_RECORD] = int(record)
        k[L.K_IRQ_CPU] = -1  # set by build_memory when the run has an IRQ thread
        return k


def to_engine(value: float | int | bool, unit: str) -> int:
    """A parameter value in engine units: ``ns``/``us`` to integer ps, a ``fraction`` to parts per million,
    flags and counts as integers."""
    if unit == "ns":
        return ns(value)
    if unit == "us":
        return us(value)
    if unit == "fraction":  # parts per million
        return round(float(value) * 1_000_000)
    return int(value)
