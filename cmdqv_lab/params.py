"""Parameters as frozen, keyword-only dataclasses with units, ranges and provenance.

Every model cost or size is a field declared with :func:`param`, which records its unit, allowed
range (or choices), and where its default comes from:

``measured``    a public measurement (calibration.md C1-C4), cited in ``source``
``derived``     computed from measurements (e.g. the 320 ns TLBI upper bound from C1)
``fitted``      fitted to calibration rows by :mod:`cmdqv_lab.analysis.calibrate`
``assumption``  no public number; a range is given and notebooks show sensitivity to it
``choice``      a modelling or workload choice (algorithm, topology, counts)

Validation happens in one place (:meth:`Params.__post_init__`) and raises
:class:`~cmdqv_lab.errors.ParamError` naming the field, the value and what is allowed.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True, kw_only=True)
... class Demo(Params):
...     cpus: int = param(4, unit="CPUs", lo=1, hi=4096, provenance="choice", doc="issuing CPUs")
...     think_ns: float = param(100.0, unit="ns", lo=0, hi=1e9, provenance="assumption")
>>> Demo.from_overrides({"cpus": "16"}).cpus
16
>>> Demo(cpus=0)
Traceback (most recent call last):
...
cmdqv_lab.errors.ParamError: cpus=0 is out of range: allowed 1 .. 4096 CPUs
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from cmdqv_lab.errors import ParamError, suggest

PROVENANCES = ("measured", "derived", "fitted", "assumption", "choice")


@dataclass(frozen=True)
class ParamInfo:
    """Metadata of one parameter field."""

    unit: str
    lo: float | None
    hi: float | None
    provenance: str
    source: str
    doc: str
    choices: tuple[Any, ...] | None
    engine: str | None = None  # the timing engine's cost slot this value feeds (cmdqv_lab.engine.costs)

    def allowed(self, kind: type | None = None) -> str:
        """Human description of the allowed values (``kind``: the field's type, if known)."""
        if kind is bool:
            return "true/false"
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        lo = "-inf" if self.lo is None else _fmt(self.lo)
        hi = "inf" if self.hi is None else _fmt(self.hi)
        unit = f" {self.unit}" if self.unit else ""
        return f"{lo} .. {hi}{unit}"


def _fmt(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:g}"


def param(
    default: Any,
    *,
    unit: str = "",
    lo: float | None = None,
    hi: float | None = None,
    provenance: str = "assumption",
    source: str = "",
    doc: str = "",
    choices: Iterable[Any] | None = None,
    engine: str | None = None,
) -> Any:
    """Declare a parameter field (see module docstring); ``engine`` names the engine cost slot it feeds."""
    if provenance not in PROVENANCES:
        raise ValueError(f"provenance must be one of {PROVENANCES}, got {provenance!r}")
    info = ParamInfo(
        unit, lo, hi, provenance, source, doc, tuple(choices) if choices is not None else None, engine
    )
    return field(default=default, metadata={"cmdqv": info})


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


#: Integers on the command line and in strings: plain ASCII decimal (no ``0x10``, ``1_6``, ``4.0``,
#: full-width ``４``), at most 40 digits (a longer one is out of every range).
_INT = re.compile(r"[+-]?[0-9]{1,40}", re.ASCII)
#: Numbers: ASCII decimal with an optional fraction and exponent (no underscores, no ``inf``/``nan``).
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)


def _parse(name: str, text: str, kind: type, info: ParamInfo) -> Any:
    """Parse the string form of a parameter (``--set name=text``) to the field's type.

    >>> info = ParamInfo("CPUs", 1, 4096, "choice", "", "", None)
    >>> _parse("cpus", " 16 ", int, info)
    16
    >>> for bad in ("４", "0x10", "1_6", "4.0", "1e3"):
    ...     try:
    ...         _parse("cpus", bad, int, info)
    ...     except ParamError as e:
    ...         print(e)
    cpus='４' is not an integer: allowed 1 .. 4096 CPUs (plain decimal digits 0-9)
    cpus='0x10' is not an integer: allowed 1 .. 4096 CPUs (plain decimal digits 0-9; write 16)
    cpus='1_6' is not an integer: allowed 1 .. 4096 CPUs (plain decimal digits 0-9; write 16)
    cpus='4.0' is not an integer: allowed 1 .. 4096 CPUs (plain decimal digits 0-9; write 4)
    cpus='1e3' is not an integer: allowed 1 .. 4096 CPUs (plain decimal digits 0-9; write 1000)
    """
    text = text.strip()
    shown = text if len(text) <= 40 else text[:37] + "..."
    if kind is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    elif kind is int:
        if _INT.fullmatch(text):
            return int(text)
        hint_value = _lenient_int(text)
        hint = f"; write {hint_value}" if hint_value is not None else ""
        digits = " (plain decimal digits 0-9" + hint + ")" if hint or any(c.isdigit() for c in text) else ""
        raise ParamError(f"{name}={shown!r} is not an integer: allowed {info.allowed()}{digits}")
    elif kind is float:
        if _FLOAT.fullmatch(text):
            return float(text)
    else:
        return text
    what = {bool: "true/false", float: "a number"}[kind]
    raise ParamError(f"{name}={shown!r} is not {what}: allowed {info.allowed()}")


def _lenient_int(text: str) -> int | None:
    """What a sloppier parser would have made of ``text`` (for the hint in the message), if ASCII."""
    if not text.isascii() or len(text) > 40:
        return None
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        return None
    return int(f) if f.is_integer() else None


class Params:
    """Mixin for frozen, keyword-only parameter dataclasses (see module docstring)."""

    #: Keys accepted by :meth:`from_overrides` that are not fields (handled by subclasses).
    EXTRA_KEYS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            info = f.metadata.get("cmdqv")
            if info is None:
                continue
            value = getattr(self, f.name)
            kind = type(f.default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
                value = float(value)
            if kind is bool and not isinstance(value, bool):
                raise ParamError(f"{f.name}={value!r} is not true/false")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ParamError(f"{f.name}={value!r} is not an integer: allowed {info.allowed()}")
            if kind is float and not isinstance(value, float):
                raise ParamError(f"{f.name}={value!r} is not a number: allowed {info.allowed()}")
            if kind is str and not isinstance(value, str):
                raise ParamError(f"{f.name}={value!r} is not a string: allowed {info.allowed()}")
            if info.choices is not None:
                if value not in info.choices:
                    hint = suggest(str(value), map(str, info.choices), limit=len(info.choices))
                    raise ParamError(f"{f.name}={value!r} is not allowed: {hint}")
                continue
            if isinstance(value, float) and math.isnan(value):
                raise ParamError(f"{f.name}=nan is not a number: allowed {info.allowed()}")
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and (
                (info.lo is not None and value < info.lo) or (info.hi is not None and value > info.hi)
            ):
                raise ParamError(f"{f.name}={_fmt(value)} is out of range: allowed {info.allowed()}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_infos(cls) -> dict[str, tuple[Any, ParamInfo]]:
        """``{name: (default, ParamInfo)}`` for every parameter field, in declaration order."""
        out: dict[str, tuple[Any, ParamInfo]] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            info = f.metadata.get("cmdqv")
            if info is not None:
                out[f.name] = (f.default, info)
        return out

    @classmethod
    def parse_overrides(cls, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Check keys and parse string values to the field types (no range check yet)."""
        infos = cls.field_infos()
        out: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in infos:
                if key in cls.EXTRA_KEYS:
                    out[key] = raw
                    continue
                hint = suggest(key, [*infos, *cls.EXTRA_KEYS])
                raise ParamError(f"unknown parameter {key!r}: {hint}")
            default, info = infos[key]
            out[key] = _parse(key, raw, type(default), info) if isinstance(raw, str) else raw
        return out

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None = None, **base: Any) -> Self:
        """Build from defaults, then ``base`` values, then ``overrides`` (strings are parsed)."""
        values = {**base, **cls.parse_overrides(overrides or {})}
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    # ------------------------------------------------------------------ reporting
    def to_dict(self) -> dict[str, Any]:
        """Every parameter value, by name."""
        return {name: getattr(self, name) for name in self.field_infos()}

    def table(self) -> Any:
        """A polars frame: name, value, unit, allowed, provenance, source, doc."""
        import polars as pl

        rows = []
        for name, (default, info) in self.field_infos().items():
            value = getattr(self, name)
            rows.append(
                {
                    "name": name,
                    "value": str(value),
                    "default": str(default),
                    "unit": info.unit,
                    "allowed": info.allowed(type(default)),
                    "provenance": info.provenance,
                    "source": info.source,
                    "doc": info.doc,
                }
            )
        return pl.DataFrame(rows)
