"""Register fields of the SMMUv3 command queues, ECMDQ and Tegra241 CMDQV, defined once.

A :class:`RegField` is Linux's ``GENMASK`` + ``FIELD_GET`` / ``FIELD_PREP`` / ``u32_replace_bits``
as one small immutable object (the Amaranth habit of declaring a layout once). A :class:`Register`
groups the fields of one register so a value can be decoded or built by field name.

>>> CMDQ_CONS_ERR.get(0x01000005)
1
>>> hex(VINTF_VMID.prep(3) | VINTF_EN.prep(1))
'0x7'
>>> VINTF_CONFIG.decode(0x20007)
{'VINTF_HYP_OWN': 1, 'VINTF_VMID': 3, 'VINTF_EN': 1}
>>> VINTF_VMID.prep(1 << 16)
Traceback (most recent call last):
...
cmdqv_lab.errors.DeviceStateError: VINTF_VMID=65536 out of range 0 .. 0xffff (bits [16:1])

Provenance (``Register.source``). The model was written without the kernel tree at hand, from the
project's domain brief and the public sources it cites; "Linux" below means the macro names and
positions of ``arm-smmu-v3.h`` / ``tegra241-cmdqv.c`` as restated in that brief.

* SMMUv3 architecture and Linux ``arm-smmu-v3.h``: ``Q_BASE`` (ADDR [51:5], LOG2SIZE [4:0]),
  ``CMDQ_CONS_ERR`` [30:24], ``GERROR_CMDQ_ERR`` bit 0, ``IDR0_SEV``/``IDR0_MSI``/``IDR0_COHACC``,
  ``IDR1_CMDQS``. The PROD/CONS pointer fields ``WR``/``RD`` [19:0] hold the index *and* the wrap
  bit (the index has LOG2SIZE bits, the wrap bit is bit LOG2SIZE; LOG2SIZE <= 19).
* ECMDQ (Zhen Lei's series, never merged): ``GERROR_CMDQP_ERR`` bit 9, ``ECMDQ_PROD_EN`` bit 31,
  ``ECMDQ_PROD_ERRACK`` bit 23, ``ECMDQ_CONS_ENACK`` bit 31, ``ECMDQ_CONS_ERR`` bit 23,
  ``ECMDQ_CONS_ERR_REASON`` [30:24]. **Unverified**: they are kept together in the "ECMDQ" block
  below so a correction touches one place.
* Tegra241 CMDQV, Linux ``tegra241-cmdqv.c``: ``CMDQV_PARAM``, ``CMDQV_CMDQ_ALLOC``,
  ``VINTF_CONFIG``, ``VINTF_STATUS``, ``VCMDQ_CONS/PROD/CONFIG/STATUS/GERROR/GERRORN``,
  ``VCMDQ_BASE`` and the error maps. ``SID_MATCH`` has no field macro in Linux: the driver writes
  ``vsid << 1 | 1``, from which ``SID_MATCH_VIRT_SID`` [31:1] and ``SID_MATCH_EN`` bit 0 are
  **inferred**; ``SID_REPLACE`` holds the physical StreamID.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cmdqv_lab.errors import DeviceStateError


@dataclass(frozen=True)
class RegField:
    """Bits ``[hi:lo]`` of a register, named as the Linux macro (``CMDQ_CONS_ERR``).

    >>> f = RegField("CMDQV_CMDQ_ALLOC_VINTF", 20, 15)
    >>> f.mask == 0x3F << 15, f.width
    (True, 6)
    >>> f.get(f.set(0xFFFFFFFF, 2)) , hex(f.set(0, 2))
    (2, '0x10000')
    """

    name: str
    hi: int
    lo: int
    #: bits in the field
    width: int = field(init=False, repr=False, compare=False)
    #: largest value the field holds
    max: int = field(init=False, repr=False, compare=False)
    #: ``GENMASK(hi, lo)``
    mask: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.hi < 128:
            raise ValueError(f"{self.name}: bad bit range [{self.hi}:{self.lo}]")
        # computed once: the functional model reads fields millions of times per checker run
        width = self.hi - self.lo + 1
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "max", (1 << width) - 1)
        object.__setattr__(self, "mask", ((1 << width) - 1) << self.lo)

    def get(self, reg: int) -> int:
        """``FIELD_GET``: the field's value in register value ``reg``."""
        return (int(reg) & self.mask) >> self.lo

    def prep(self, value: int) -> int:
        """``FIELD_PREP``: ``value`` shifted into place; refuses values that do not fit."""
        value = int(value)
        if not 0 <= value <= self.max:
            bits = f"[{self.hi}:{self.lo}]" if self.hi != self.lo else f"[{self.lo}]"
            raise DeviceStateError(f"{self.name}={value} out of range 0 .. 0x{self.max:x} (bits {bits})")
        return value << self.lo

    def set(self, reg: int, value: int) -> int:
        """``u32_replace_bits``: ``reg`` with this field replaced by ``value``."""
        return (int(reg) & ~self.mask) | self.prep(value)


def _bit(name: str, n: int) -> RegField:
    return RegField(name, n, n)


@dataclass(frozen=True)
class Register:
    """A named register: its width in bits, its fields, and where the layout comes from."""

    name: str
    width: int
    fields: tuple[RegField, ...]
    source: str

    def decode(self, value: int) -> dict[str, int]:
        """``{field name: value}`` of a register value."""
        return {f.name: f.get(value) for f in self.fields}

    def encode(self, **values: int) -> int:
        """Build a register value from field values by name (missing fields are zero)."""
        by_name = {f.name: f for f in self.fields}
        out = 0
        for name, v in values.items():
            if name not in by_name:
                allowed = ", ".join(by_name) or "none"
                raise DeviceStateError(f"{self.name}: no field {name!r} (fields: {allowed})")
            out |= by_name[name].prep(v)
        return out


_ARCH = "SMMUv3 architecture / Linux arm-smmu-v3.h"
_ECMDQ = "Zhen Lei's ECMDQ series (not upstream; unverified)"
_TEGRA = "Linux tegra241-cmdqv.c"

# ---------------------------------------------------------------- SMMUv3 main command queue
#: ``SMMU_IDR0`` features used by the model.
IDR0_SEV = _bit("IDR0_SEV", 14)
IDR0_MSI = _bit("IDR0_MSI", 13)
IDR0_COHACC = _bit("IDR0_COHACC", 4)
IDR0 = Register("SMMU_IDR0", 32, (IDR0_SEV, IDR0_MSI, IDR0_COHACC), _ARCH)
#: ``SMMU_IDR1.CMDQS``: largest LOG2SIZE of the command queue (architectural maximum 19).
IDR1_CMDQS = RegField("IDR1_CMDQS", 25, 21)
IDR1 = Register("SMMU_IDR1", 32, (IDR1_CMDQS,), _ARCH)
#: Architectural maximum of CMDQS / LOG2SIZE.
CMDQ_MAX_LOG2SIZE = 19

Q_BASE_ADDR = RegField("Q_BASE_ADDR_MASK", 51, 5)
Q_BASE_LOG2SIZE = RegField("Q_BASE_LOG2SIZE", 4, 0)
CMDQ_BASE = Register("SMMU_CMDQ_BASE", 64, (Q_BASE_ADDR, Q_BASE_LOG2SIZE), _ARCH)

CMDQ_PROD_WR = RegField("CMDQ_PROD_WR", 19, 0)
CMDQ_PROD = Register("SMMU_CMDQ_PROD", 32, (CMDQ_PROD_WR,), _ARCH)
CMDQ_CONS_RD = RegField("CMDQ_CONS_RD", 19, 0)
CMDQ_CONS_ERR = RegField("CMDQ_CONS_ERR", 30, 24)
CMDQ_CONS = Register("SMMU_CMDQ_CONS", 32, (CMDQ_CONS_ERR, CMDQ_CONS_RD), _ARCH)

#: ``SMMU_GERROR`` / ``SMMU_GERRORN``: an error is active while the two bits differ.
GERROR_CMDQ_ERR = _bit("GERROR_CMDQ_ERR", 0)

# ---------------------------------------------------------------- ECMDQ (unverified positions, one place)
GERROR_CMDQP_ERR = _bit("GERROR_CMDQP_ERR", 9)
ECMDQ_PROD_EN = _bit("ECMDQ_PROD_EN", 31)
ECMDQ_PROD_ERRACK = _bit("ECMDQ_PROD_ERRACK", 23)
ECMDQ_PROD_WR = RegField("ECMDQ_PROD_WR", 19, 0)
ECMDQ_CONS_ENACK = _bit("ECMDQ_CONS_ENACK", 31)
ECMDQ_CONS_ERR_REASON = RegField("ECMDQ_CONS_ERR_REASON", 30, 24)
ECMDQ_CONS_ERR = _bit("ECMDQ_CONS_ERR", 23)
ECMDQ_CONS_RD = RegField("ECMDQ_CONS_RD", 19, 0)
ECMDQ_PROD = Register("SMMU_ECMDQ_PROD", 32, (ECMDQ_PROD_EN, ECMDQ_PROD_ERRACK, ECMDQ_PROD_WR), _ECMDQ)
ECMDQ_CONS = Register(
    "SMMU_ECMDQ_CONS", 32, (ECMDQ_CONS_ENACK, ECMDQ_CONS_ERR_REASON, ECMDQ_CONS_ERR, ECMDQ_CONS_RD), _ECMDQ
)

GERROR = Register("SMMU_GERROR", 32, (GERROR_CMDQP_ERR, GERROR_CMDQ_ERR), _ARCH + "; CMDQP_ERR: " + _ECMDQ)

# ---------------------------------------------------------------- Tegra241 CMDQV global page
CMDQV_NUM_SID_PER_VM_LOG2 = RegField("CMDQV_NUM_SID_PER_VM_LOG2", 15, 12)
CMDQV_NUM_VINTF_LOG2 = RegField("CMDQV_NUM_VINTF_LOG2", 11, 8)
CMDQV_NUM_VCMDQ_LOG2 = RegField("CMDQV_NUM_VCMDQ_LOG2", 7, 4)
CMDQV_VER = RegField("CMDQV_VER", 3, 0)
CMDQV_PARAM = Register(
    "CMDQV_PARAM",
    32,
    (CMDQV_NUM_SID_PER_VM_LOG2, CMDQV_NUM_VINTF_LOG2, CMDQV_NUM_VCMDQ_LOG2, CMDQV_VER),
    _TEGRA,
)

CMDQV_CMDQ_ALLOC_VINTF = RegField("CMDQV_CMDQ_ALLOC_VINTF", 20, 15)
CMDQV_CMDQ_ALLOC_LVCMDQ = RegField("CMDQV_CMDQ_ALLOC_LVCMDQ", 7, 1)
CMDQV_CMDQ_ALLOCATED = _bit("CMDQV_CMDQ_ALLOCATED", 0)
CMDQV_CMDQ_ALLOC = Register(
    "CMDQV_CMDQ_ALLOC", 32, (CMDQV_CMDQ_ALLOC_VINTF, CMDQV_CMDQ_ALLOC_LVCMDQ, CMDQV_CMDQ_ALLOCATED), _TEGRA
)

#: Error bitmaps: bit v of VINTF_ERR_MAP per VINTF, bit q of CMDQ_ERR_MAP per global VCMDQ,
#: bit lidx of a VINTF's LVCMDQ_ERR_MAP per logical VCMDQ.
CMDQV_VINTF_ERR_MAP = Register("CMDQV_VINTF_ERR_MAP", 64, (), _TEGRA)
CMDQV_CMDQ_ERR_MAP = Register("CMDQV_CMDQ_ERR_MAP", 128, (), _TEGRA)

# ---------------------------------------------------------------- Tegra241 VINTF page
VINTF_HYP_OWN = _bit("VINTF_HYP_OWN", 17)
VINTF_VMID = RegField("VINTF_VMID", 16, 1)
VINTF_EN = _bit("VINTF_EN", 0)
VINTF_CONFIG = Register("VINTF_CONFIG", 32, (VINTF_HYP_OWN, VINTF_VMID, VINTF_EN), _TEGRA)
VINTF_STATUS_ERR = RegField("VINTF_STATUS", 3, 1)
VINTF_ENABLED = _bit("VINTF_ENABLED", 0)
VINTF_STATUS = Register("VINTF_STATUS", 32, (VINTF_STATUS_ERR, VINTF_ENABLED), _TEGRA)
SID_MATCH_VIRT_SID = RegField("SID_MATCH_VIRT_SID", 31, 1)
SID_MATCH_EN = _bit("SID_MATCH_EN", 0)
VINTF_SID_MATCH = Register(
    "VINTF_SID_MATCH", 32, (SID_MATCH_VIRT_SID, SID_MATCH_EN), _TEGRA + " (inferred from vsid << 1 | 1)"
)
SID_REPLACE_PHYS_SID = RegField("SID_REPLACE_PHYS_SID", 31, 0)
VINTF_SID_REPLACE = Register("VINTF_SID_REPLACE", 32, (SID_REPLACE_PHYS_SID,), _TEGRA)
VINTF_LVCMDQ_ERR_MAP = Register("VINTF_LVCMDQ_ERR_MAP", 128, (), _TEGRA)

# ---------------------------------------------------------------- Tegra241 VCMDQ pages
VCMDQ_CONS_RD = RegField("VCMDQ_CONS_RD", 19, 0)
VCMDQ_CONS_ERR = RegField("VCMDQ_CONS_ERR", 30, 24)
VCMDQ_CONS = Register("VCMDQ_CONS", 32, (VCMDQ_CONS_ERR, VCMDQ_CONS_RD), _TEGRA)
VCMDQ_PROD_WR = RegField("VCMDQ_PROD_WR", 19, 0)
VCMDQ_PROD = Register("VCMDQ_PROD", 32, (VCMDQ_PROD_WR,), _TEGRA)
VCMDQ_EN = _bit("VCMDQ_EN", 0)
VCMDQ_CONFIG = Register("VCMDQ_CONFIG", 32, (VCMDQ_EN,), _TEGRA)
VCMDQ_ENABLED = _bit("VCMDQ_ENABLED", 0)
VCMDQ_STATUS = Register("VCMDQ_STATUS", 32, (VCMDQ_ENABLED,), _TEGRA)
#: VCMDQ_GERROR / VCMDQ_GERRORN use the CMDQ_ERR bit of SMMU_GERROR.
VCMDQ_GERROR = Register("VCMDQ_GERROR", 32, (GERROR_CMDQ_ERR,), _TEGRA)
VCMDQ_GERRORN = Register("VCMDQ_GERRORN", 32, (GERROR_CMDQ_ERR,), _TEGRA)
VCMDQ_ADDR = RegField("VCMDQ_ADDR", 47, 5)
VCMDQ_LOG2SIZE = RegField("VCMDQ_LOG2SIZE", 4, 0)
VCMDQ_BASE = Register("VCMDQ_BASE", 64, (VCMDQ_ADDR, VCMDQ_LOG2SIZE), _TEGRA)
#: Largest VCMDQ LOG2SIZE (Linux ``VCMDQ_LOG2SIZE_MAX``).
VCMDQ_LOG2SIZE_MAX = 19
