"""SMMUv3 commands: opcodes, fields, 16-byte encoding, vectorised batches and formatting.

A command is two little-endian 64-bit words (``dword0``, ``dword1``); the opcode is
``dword0[7:0]``. Field positions follow the SMMUv3 architecture and Linux's ``arm-smmu-v3.h``
(``CMDQ_TLBI_0_ASID``, ``CMDQ_SYNC_0_CS``, ...). Address fields (``ADDR``, ``IPA``, ``MSIADDR``)
are stored *in place*, as Linux does (``cmd[1] |= addr & CMDQ_TLBI_1_VA_MASK``): their value is the
address itself and its bits below the field must be zero.

Single commands:

>>> cmd = Command(Opcode.CMD_TLBI_NH_VA, asid=2, addr=0xFFFF2000, tg=1, ttl=3, leaf=1)
>>> print(cmd)
CMD_TLBI_NH_VA vmid=0 asid=2 addr=0xffff2000 num=0 scale=0 tg=1 ttl=3 leaf=1
>>> Command.decode(cmd.encode()) == cmd
True
>>> cmd.to_bytes().hex()
'12000000000002000127ffff00000000'

Batches are ``(n, 2)`` ``uint64`` arrays, so millions of commands cost a few vector operations:

>>> b = encode_batch(Opcode.CMD_TLBI_NH_VA, asid=[1, 2], addr=[0x1000, 0x2000], leaf=1)
>>> b.shape, b.dtype
((2, 2), dtype('uint64'))
>>> [o.name for o in opcodes_of(b)]
['CMD_TLBI_NH_VA', 'CMD_TLBI_NH_VA']
>>> field_of(b, "asid").tolist()
[1, 2]

Out-of-range values name the opcode, the field and the allowed range:

>>> Command(Opcode.CMD_TLBI_NH_ASID, asid=1 << 16)
Traceback (most recent call last):
...
cmdqv_lab.errors.CommandFieldError: CMD_TLBI_NH_ASID: field asid=65536 out of range 0 .. 0xffff (dword0[63:48])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from cmdqv_lab.errors import CommandFieldError

CMD_BYTES = 16
CMD_DWORDS = 2


class Opcode(IntEnum):
    """SMMUv3 command opcodes (``dword0[7:0]``)."""

    CMD_PREFETCH_CONFIG = 0x01
    CMD_PREFETCH_ADDR = 0x02
    CMD_CFGI_STE = 0x03
    CMD_CFGI_STE_RANGE = 0x04
    CMD_CFGI_CD = 0x05
    CMD_CFGI_CD_ALL = 0x06
    CMD_TLBI_NH_ALL = 0x10
    CMD_TLBI_NH_ASID = 0x11
    CMD_TLBI_NH_VA = 0x12
    CMD_TLBI_NH_VAA = 0x13
    CMD_TLBI_EL2_ALL = 0x20
    CMD_TLBI_EL2_ASID = 0x21
    CMD_TLBI_EL2_VA = 0x22
    CMD_TLBI_EL2_VAA = 0x23
    CMD_TLBI_S12_VMALL = 0x28
    CMD_TLBI_S2_IPA = 0x2A
    CMD_TLBI_NSNH_ALL = 0x30
    CMD_ATC_INV = 0x40
    CMD_PRI_RESP = 0x41
    CMD_RESUME = 0x44
    CMD_STALL_TERM = 0x45
    CMD_SYNC = 0x46


# CMD_SYNC completion signal (CMDQ_SYNC_0_CS)
CS_NONE = 0
CS_IRQ = 1
CS_SEV = 2

#: CMD_CFGI_STE_RANGE with RANGE=31 invalidates every STE (Linux's CMDQ_OP_CFGI_ALL).
CFGI_RANGE_ALL = 31
#: CMD_ATC_INV SIZE value meaning "the whole address space".
ATC_INV_SIZE_ALL = 52
#: Largest NUM of a range TLBI (CMDQ_TLBI_RANGE_NUM_MAX).
TLBI_RANGE_NUM_MAX = 31


@dataclass(frozen=True)
class Field:
    """One command field: ``dword[hi:lo]``; ``in_place`` fields keep their bit position."""

    name: str
    dword: int
    lo: int
    hi: int
    in_place: bool = False

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1

    @property
    def mask(self) -> int:
        """Mask of the field within its dword (``GENMASK_ULL(hi, lo)``)."""
        return ((1 << self.width) - 1) << self.lo

    @property
    def max_value(self) -> int:
        return self.mask if self.in_place else (1 << self.width) - 1

    def describe(self) -> str:
        if self.hi == self.lo:
            return f"dword{self.dword}[{self.lo}]"
        return f"dword{self.dword}[{self.hi}:{self.lo}]"


def _f(name: str, dword: int, hi: int, lo: int, in_place: bool = False) -> Field:
    return Field(name, dword, lo, hi, in_place)


# Shared field definitions (names as in the spec, lower-case for keyword use).
SID = _f("sid", 0, 63, 32)
SSID = _f("ssid", 0, 31, 12)
SSV = _f("ssv", 0, 11, 11)
LEAF = _f("leaf", 1, 0, 0)
CFGI_RANGE = _f("range", 1, 4, 0)
VMID = _f("vmid", 0, 47, 32)
ASID = _f("asid", 0, 63, 48)
NUM = _f("num", 0, 16, 12)
SCALE = _f("scale", 0, 24, 20)
TTL = _f("ttl", 1, 9, 8)
TG = _f("tg", 1, 11, 10)
VA = _f("addr", 1, 63, 12, in_place=True)
IPA = _f("ipa", 1, 51, 12, in_place=True)
PREFETCH_SIZE = _f("size", 1, 4, 0)
PREFETCH_ADDR = _f("addr", 1, 63, 12, in_place=True)
ATC_GLOBAL = _f("global_", 0, 9, 9)
ATC_SIZE = _f("size", 1, 5, 0)
ATC_ADDR = _f("addr", 1, 63, 12, in_place=True)
PRI_GRPID = _f("grpid", 1, 8, 0)
PRI_RESP = _f("resp", 1, 13, 12)
RESUME_RESP = _f("resp", 0, 13, 12)
RESUME_STAG = _f("stag", 1, 15, 0)
SYNC_CS = _f("cs", 0, 13, 12)
SYNC_MSH = _f("msh", 0, 23, 22)
SYNC_MSIATTR = _f("msiattr", 0, 27, 24)
SYNC_MSIDATA = _f("msidata", 0, 63, 32)
SYNC_MSIADDR = _f("msiaddr", 1, 51, 2, in_place=True)

_VA_FIELDS = (NUM, SCALE, TG, TTL, LEAF)

#: Fields of each opcode, in formatting order.
LAYOUT: dict[Opcode, tuple[Field, ...]] = {
    Opcode.CMD_PREFETCH_CONFIG: (SID,),
    Opcode.CMD_PREFETCH_ADDR: (SID, SSV, SSID, PREFETCH_ADDR, PREFETCH_SIZE),
    Opcode.CMD_CFGI_STE: (SID, LEAF),
    Opcode.CMD_CFGI_STE_RANGE: (SID, CFGI_RANGE),
    Opcode.CMD_CFGI_CD: (SID, SSID, LEAF),
    Opcode.CMD_CFGI_CD_ALL: (SID,),
    Opcode.CMD_TLBI_NH_ALL: (VMID,),
    Opcode.CMD_TLBI_NH_ASID: (VMID, ASID),
    Opcode.CMD_TLBI_NH_VA: (VMID, ASID, VA, *_VA_FIELDS),
    Opcode.CMD_TLBI_NH_VAA: (VMID, VA, *_VA_FIELDS),
    Opcode.CMD_TLBI_EL2_ALL: (),
    Opcode.CMD_TLBI_EL2_ASID: (ASID,),
    Opcode.CMD_TLBI_EL2_VA: (ASID, VA, *_VA_FIELDS),
    Opcode.CMD_TLBI_EL2_VAA: (VA, *_VA_FIELDS),
    Opcode.CMD_TLBI_S12_VMALL: (VMID,),
    Opcode.CMD_TLBI_S2_IPA: (VMID, IPA, *_VA_FIELDS),
    Opcode.CMD_TLBI_NSNH_ALL: (),
    Opcode.CMD_ATC_INV: (SID, SSID, SSV, ATC_GLOBAL, ATC_ADDR, ATC_SIZE),
    Opcode.CMD_PRI_RESP: (SID, SSID, SSV, PRI_GRPID, PRI_RESP),
    Opcode.CMD_RESUME: (SID, RESUME_RESP, RESUME_STAG),
    Opcode.CMD_STALL_TERM: (SID,),
    Opcode.CMD_SYNC: (SYNC_CS, SYNC_MSH, SYNC_MSIATTR, SYNC_MSIDATA, SYNC_MSIADDR),
}

_FIELD_INDEX: dict[Opcode, dict[str, Field]] = {op: {f.name: f for f in fs} for op, fs in LAYOUT.items()}

#: Opcode groups used by policies and checkers.
TLBI_OPCODES = frozenset(op for op in Opcode if op.name.startswith("CMD_TLBI_"))
CFGI_OPCODES = frozenset(op for op in Opcode if op.name.startswith("CMD_CFGI_"))
#: Opcodes whose completion a later CMD_SYNC must observe before freed resources are reused.
INVALIDATION_OPCODES = TLBI_OPCODES | CFGI_OPCODES | {Opcode.CMD_ATC_INV}

_OPCODE_BY_VALUE = {int(op): op for op in Opcode}
_OPCODE_TABLE = np.zeros(256, dtype=bool)
_OPCODE_TABLE[[int(op) for op in Opcode]] = True


def opcode_from_value(value: int) -> Opcode:
    """The :class:`Opcode` with numeric ``value``; :class:`CommandFieldError` if none."""
    try:
        return _OPCODE_BY_VALUE[int(value)]
    except KeyError:
        raise CommandFieldError(f"unknown opcode 0x{int(value):02x}") from None


def opcode_from_name(name: str) -> Opcode:
    """Accepts ``CMD_TLBI_NH_VA``, ``TLBI_NH_VA`` or QEMU's ``SMMU_CMD_TLBI_NH_VA``."""
    key = name.strip().upper()
    for prefix in ("SMMU_", ""):
        if key.startswith(prefix):
            key2 = key[len(prefix) :]
            if not key2.startswith("CMD_"):
                key2 = "CMD_" + key2
            if key2 in Opcode.__members__:
                return Opcode[key2]
    raise CommandFieldError(f"unknown opcode name {name!r}")


def fields_of(opcode: Opcode) -> tuple[Field, ...]:
    """The fields of ``opcode`` in formatting order."""
    return LAYOUT[Opcode(opcode)]


def _field(opcode: Opcode, name: str) -> Field:
    try:
        return _FIELD_INDEX[opcode][name]
    except KeyError:
        allowed = ", ".join(f.name for f in LAYOUT[opcode]) or "none"
        raise CommandFieldError(f"{opcode.name}: no field {name!r} (fields: {allowed})") from None


def _check_scalar(opcode: Opcode, f: Field, value: int) -> None:
    if value < 0 or value > f.max_value or (f.in_place and value & ~f.mask):
        if f.in_place and 0 <= value <= f.max_value | ((1 << f.lo) - 1):
            raise CommandFieldError(
                f"{opcode.name}: field {f.name}=0x{value:x} not aligned: bits below {f.lo} must be zero"
                f" ({f.describe()})"
            )
        raise CommandFieldError(
            f"{opcode.name}: field {f.name}={value} out of range 0 .. 0x{f.max_value:x} ({f.describe()})"
        )


@dataclass(frozen=True)
class Command:
    """One decoded command: an opcode and its field values (missing fields are zero)."""

    opcode: Opcode
    values: tuple[tuple[str, int], ...]

    def __init__(self, opcode: Opcode | int | str, _values: Mapping[str, int] | None = None, **fields: int):
        if isinstance(opcode, str):
            op = opcode_from_name(opcode)
        else:
            op = opcode_from_value(int(opcode))
        given = {**(_values or {}), **fields}
        known = _FIELD_INDEX[op]
        for name in given:
            _field(op, name)
        vals = []
        for f in LAYOUT[op]:
            v = int(given.get(f.name, 0))
            _check_scalar(op, f, v)
            vals.append((f.name, v))
        object.__setattr__(self, "opcode", op)
        object.__setattr__(self, "values", tuple(vals))
        del known

    def __getitem__(self, name: str) -> int:
        for k, v in self.values:
            if k == name:
                return v
        _field(self.opcode, name)
        raise KeyError(name)  # pragma: no cover - _field raised already

    def get(self, name: str, default: int | None = None) -> int | None:
        return dict(self.values).get(name, default)

    @property
    def fields(self) -> dict[str, int]:
        return dict(self.values)

    def encode(self) -> np.ndarray:
        """The two dwords as a ``(2,)`` uint64 array."""
        dw = [int(self.opcode), 0]
        for name, v in self.values:
            f = _FIELD_INDEX[self.opcode][name]
            dw[f.dword] |= v if f.in_place else (v << f.lo)
        return np.array(dw, dtype=np.uint64)

    def to_bytes(self) -> bytes:
        """The 16-byte little-endian entry as written into queue memory."""
        return self.encode().astype("<u8").tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Command:
        if len(raw) != CMD_BYTES:
            raise CommandFieldError(f"a command is {CMD_BYTES} bytes, got {len(raw)}")
        return cls.decode(np.frombuffer(raw, dtype="<u8").astype(np.uint64))

    @classmethod
    def decode(cls, dwords: Iterable[int] | np.ndarray) -> Command:
        """Decode two dwords; bits outside the opcode's fields are ignored (as RES0)."""
        d0, d1 = (int(x) for x in dwords)
        op = opcode_from_value(d0 & 0xFF)
        vals = {}
        for f in LAYOUT[op]:
            word = d0 if f.dword == 0 else d1
            vals[f.name] = (word & f.mask) if f.in_place else (word & f.mask) >> f.lo
        return cls(op, vals)

    def __str__(self) -> str:
        parts = [self.opcode.name]
        for name, v in self.values:
            f = _FIELD_INDEX[self.opcode][name]
            shown = f"0x{v:x}" if f.in_place or name in ("msidata",) else str(v)
            parts.append(f"{name.rstrip('_')}={shown}")
        return " ".join(parts)


# ---------------------------------------------------------------------------- batches


def encode_batch(opcode: Opcode | int | Iterable[int] | np.ndarray, **fields: Any) -> np.ndarray:
    """Encode ``n`` commands into an ``(n, 2)`` uint64 array.

    ``opcode`` is one opcode (all commands the same) or an array of opcodes. Field values are
    scalars or arrays broadcast to ``n``. With mixed opcodes, a field is applied only to the commands
    whose opcode has it, and must fit each of those opcodes' layouts.
    """
    ops = np.atleast_1d(np.asarray(opcode if not isinstance(opcode, Opcode) else int(opcode), dtype=np.int64))
    lengths = [np.size(v) for v in fields.values() if np.ndim(v) > 0]
    n = max([ops.size, *lengths]) if (ops.size > 1 or lengths) else ops.size
    ops = np.broadcast_to(ops, (n,)) if ops.size == 1 else ops
    if ops.size != n:
        raise CommandFieldError(f"opcode array has {ops.size} entries but fields have {n}")
    bad = (ops < 0) | (ops > 255)
    if bad.any() or not _OPCODE_TABLE[ops[~bad]].all():
        first = int(ops[np.flatnonzero(bad | ~_OPCODE_TABLE[np.clip(ops, 0, 255)])[0]])
        raise CommandFieldError(f"unknown opcode 0x{first:x}")
    out = np.zeros((n, 2), dtype=np.uint64)
    out[:, 0] = ops.astype(np.uint64)
    present = np.unique(ops)
    for name, raw in fields.items():
        arr = np.asarray(raw)
        if arr.dtype.kind == "b":
            arr = arr.astype(np.uint64)
        if arr.dtype.kind not in "iu":
            raise CommandFieldError(f"field {name}: values must be integers, got {arr.dtype}")
        if arr.ndim > 1 or (arr.ndim == 1 and arr.size not in (1, n)):
            raise CommandFieldError(f"field {name}: expected a scalar or {n} values, got shape {arr.shape}")
        if arr.dtype.kind == "i" and (arr < 0).any():
            neg = int(np.atleast_1d(arr)[np.flatnonzero(np.atleast_1d(arr) < 0)[0]])
            op = opcode_from_value(int(present[0]))
            raise CommandFieldError(f"{op.name}: field {name}={neg} out of range (negative)")
        vals = np.broadcast_to(arr.astype(np.uint64), (n,))
        used = False
        for opv in present:
            op = opcode_from_value(int(opv))
            f = _FIELD_INDEX[op].get(name)
            if f is None:
                continue
            used = True
            sel: Any = ops == opv if present.size > 1 else slice(None)
            v = vals[sel]
            over = (v & ~np.uint64(f.mask)) != 0 if f.in_place else v > np.uint64(f.max_value)
            if over.any():
                _check_scalar(op, f, int(v[np.flatnonzero(over)[0]]))
            shifted = v if f.in_place else (v << np.uint64(f.lo))
            out[sel, f.dword] |= shifted
        if not used:
            op = opcode_from_value(int(present[0]))
            _field(op, name)
    return out


def opcodes_of(batch: np.ndarray) -> list[Opcode]:
    """Opcodes of a batch as :class:`Opcode` members (for small batches; see :func:`opcode_values`)."""
    return [opcode_from_value(int(v)) for v in opcode_values(batch)]


def opcode_values(batch: np.ndarray) -> np.ndarray:
    """Opcode of each row of an ``(n, 2)`` batch as a uint8 array."""
    return (np.asarray(batch, dtype=np.uint64)[:, 0] & np.uint64(0xFF)).astype(np.uint8)


def field_of(batch: np.ndarray, name: str, opcode: Opcode | None = None) -> np.ndarray:
    """Extract field ``name`` of every row (as uint64). Rows whose opcode lacks it give 0.

    The layout of ``name`` is taken from ``opcode`` if given, otherwise from each row's opcode.
    """
    b = np.asarray(batch, dtype=np.uint64)
    ops = opcode_values(b)
    out = np.zeros(b.shape[0], dtype=np.uint64)
    present = [opcode] if opcode is not None else [opcode_from_value(int(v)) for v in np.unique(ops)]
    found = False
    for op in present:
        f = _FIELD_INDEX[op].get(name)
        if f is None:
            continue
        found = True
        sel = slice(None) if opcode is not None else ops == int(op)
        word = b[sel, f.dword] & np.uint64(f.mask)
        out[sel] = word if f.in_place else word >> np.uint64(f.lo)
    if not found and present:
        _field(present[0], name)
    return out


def decode_batch(batch: np.ndarray) -> list[Command]:
    """Decode every row of a batch (for inspection and tests; slow for millions)."""
    return [Command.decode(row) for row in np.asarray(batch, dtype=np.uint64)]


def batch_to_bytes(batch: np.ndarray) -> bytes:
    """The queue-memory image of a batch (16 bytes per command, little-endian)."""
    return np.ascontiguousarray(np.asarray(batch, dtype=np.uint64).astype("<u8")).tobytes()


def batch_from_bytes(raw: bytes) -> np.ndarray:
    if len(raw) % CMD_BYTES:
        raise CommandFieldError(f"queue image of {len(raw)} bytes is not a multiple of {CMD_BYTES}")
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(-1, 2)


def format_batch(batch: np.ndarray) -> str:
    """One formatted command per line."""
    return "\n".join(str(c) for c in decode_batch(batch))


def sync_command(
    cs: int = CS_IRQ, msiaddr: int = 0, msidata: int = 0, msh: int = 0, msiattr: int = 0
) -> Command:
    """A CMD_SYNC as Linux builds it (``arm_smmu_cmdq_build_sync_cmd``)."""
    return Command(Opcode.CMD_SYNC, cs=cs, msiaddr=msiaddr, msidata=msidata, msh=msh, msiattr=msiattr)
