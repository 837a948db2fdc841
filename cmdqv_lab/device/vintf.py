"""Tegra241 CMDQV virtual interfaces (VINTF) and virtual command queues (VCMDQ).

Split from :mod:`cmdqv_lab.device.cmdqv` (which owns them and re-exports both classes):

* :class:`Vintf`: ``VINTF_CONFIG`` (EN, VMID, HYP_OWN), ``VINTF_STATUS``, the SID_MATCH/SID_REPLACE
  pairs and the map of its logical VCMDQs; ``LVCMDQ_ERR_MAP`` shows its queues with active errors.
* :class:`Vcmdq`: a :class:`~cmdqv_lab.device.cmdq.CommandQueue` with CONFIG, STATUS, its own
  GERROR/GERRORN and BASE, whose :meth:`Vcmdq.admit` applies the owning VINTF's rules: with
  HYP_OWN=0, ILL for an opcode outside the accepted set or an unmatched SID, VMID and SID rewritten
  in the executed command (queue memory is left as the guest wrote it); with HYP_OWN=1, nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cmdqv_lab.device.cmdq import CError, CommandQueue, ErrorRegs
from cmdqv_lab.device.commands import Opcode, fields_of
from cmdqv_lab.device.queue import LINUX_MIN_LOG2SIZE, Queue
from cmdqv_lab.device.regs import (
    SID_MATCH_EN,
    SID_MATCH_VIRT_SID,
    SID_REPLACE_PHYS_SID,
    VCMDQ_ADDR,
    VCMDQ_CONS_ERR,
    VCMDQ_EN,
    VCMDQ_ENABLED,
    VCMDQ_LOG2SIZE,
    VCMDQ_LOG2SIZE_MAX,
    VINTF_CONFIG,
    VINTF_EN,
    VINTF_ENABLED,
    VINTF_HYP_OWN,
    VINTF_VMID,
)
from cmdqv_lab.errors import DeviceStateError

if TYPE_CHECKING:
    from cmdqv_lab.device.cmdqv import Cmdqv


class Vintf:
    """A virtual interface: CONFIG (EN, VMID, HYP_OWN), SID pairs, and its logical VCMDQs."""

    def __init__(self, cmdqv: Cmdqv, idx: int) -> None:
        self.cmdqv = cmdqv
        self.idx = idx
        self.config = 0
        n = cmdqv.params.sid_pairs_per_vintf
        self.sid_match = [0] * n
        self.sid_replace = [0] * n
        #: logical index -> VCMDQ
        self.lvcmdqs: dict[int, Vcmdq] = {}

    # ------------------------------------------------------------ registers
    def write_config(self, value: int) -> None:
        """``VINTF_CONFIG`` write (EN takes effect at once: STATUS.ENABLED follows)."""
        self.config = value & VINTF_CONFIG.encode(VINTF_HYP_OWN=1, VINTF_VMID=VINTF_VMID.max, VINTF_EN=1)

    def configure(self, *, en: bool = True, vmid: int = 0, hyp_own: bool = False) -> None:
        """Build and write ``VINTF_CONFIG`` from field values."""
        self.write_config(VINTF_CONFIG.encode(VINTF_HYP_OWN=int(hyp_own), VINTF_VMID=vmid, VINTF_EN=int(en)))

    @property
    def enabled(self) -> bool:
        return bool(VINTF_EN.get(self.config))

    @property
    def status(self) -> int:
        return VINTF_ENABLED.prep(int(self.enabled))

    @property
    def hyp_own(self) -> bool:
        return bool(VINTF_HYP_OWN.get(self.config))

    @property
    def vmid(self) -> int:
        return VINTF_VMID.get(self.config)

    def _slot(self, s: int) -> int:
        n = len(self.sid_match)
        if not 0 <= s < n:
            raise DeviceStateError(f"VINTF{self.idx}: SID pair {s} out of range: allowed 0 .. {n - 1}")
        return s

    def write_sid_match(self, s: int, value: int) -> None:
        self.sid_match[self._slot(s)] = value & 0xFFFF_FFFF

    def write_sid_replace(self, s: int, value: int) -> None:
        self.sid_replace[self._slot(s)] = value & 0xFFFF_FFFF

    def set_sid_pair(self, s: int, *, vsid: int, psid: int) -> None:
        """Program pair ``s`` as Linux does: ``SID_REPLACE = psid`` then ``SID_MATCH = vsid << 1 | 1``."""
        self.write_sid_replace(s, SID_REPLACE_PHYS_SID.prep(psid))
        self.write_sid_match(s, SID_MATCH_VIRT_SID.prep(vsid) | SID_MATCH_EN.prep(1))

    def match_sid(self, vsid: int) -> int | None:
        """The physical SID replacing ``vsid`` (first enabled matching pair), or None."""
        for m, r in zip(self.sid_match, self.sid_replace):
            if SID_MATCH_EN.get(m) and SID_MATCH_VIRT_SID.get(m) == vsid:
                return SID_REPLACE_PHYS_SID.get(r)
        return None

    @property
    def lvcmdq_err_map(self) -> int:
        """``LVCMDQ_ERR_MAP`` (128 bits): bit lidx set while that logical VCMDQ's error is active."""
        return sum(1 << lidx for lidx, vq in self.lvcmdqs.items() if vq.error_active())


class Vcmdq(CommandQueue):
    """A VCMDQ: a command queue with CONFIG/STATUS/GERROR/GERRORN/BASE and its VINTF's rules."""

    def __init__(self, cmdqv: Cmdqv, idx: int) -> None:
        reset = Queue(0, min_log2size=0, name=f"vcmdq{idx}")  # BASE at its reset value
        super().__init__(
            reset,
            log=cmdqv.log,
            signals=cmdqv.signals,
            errors=ErrorRegs(),
            name=f"vcmdq{idx}",
            map_memory=False,
        )
        self.base_programmed = False
        self.cmdqv = cmdqv
        self.idx = idx
        self.config = 0
        self.vintf: Vintf | None = None
        self.lidx: int | None = None

    # ------------------------------------------------------------ registers
    def write_base(self, value: int, *, min_log2size: int = LINUX_MIN_LOG2SIZE) -> None:
        """``VCMDQ_BASE`` write (ADDR [47:5] | LOG2SIZE [4:0]); refused while enabled."""
        if VCMDQ_EN.get(self.config):
            raise DeviceStateError(f"{self.name}: BASE written while CONFIG.EN=1: disable the queue first")
        log2size = VCMDQ_LOG2SIZE.get(value)
        q = Queue(
            log2size,
            cmdqs=VCMDQ_LOG2SIZE_MAX,
            min_log2size=min_log2size,
            base=value & VCMDQ_ADDR.mask,
            name=self.name,
        )
        self.attach(q)
        self.base_programmed = True

    def write_config(self, value: int) -> None:
        """``VCMDQ_CONFIG`` write (EN)."""
        self.config = value & VCMDQ_EN.mask

    @property
    def status(self) -> int:
        """``VCMDQ_STATUS``: ENABLED once EN is set on an allocated queue of an enabled VINTF."""
        return VCMDQ_ENABLED.prep(int(self.is_enabled()))

    def is_enabled(self) -> bool:
        return (
            bool(VCMDQ_EN.get(self.config))
            and self.vintf is not None
            and self.vintf.enabled
            and self.base_programmed
        )

    @property
    def cons_reg(self) -> int:
        """``VCMDQ_CONS``: RD [19:0] | ERR [30:24]."""
        q = self.queue
        return VCMDQ_CONS_ERR.prep(q.err) | (q.cons & ((2 << q.max_n_shift) - 1))

    @property
    def gerror(self) -> int:
        return self.errors.gerror

    @property
    def gerrorn(self) -> int:
        return self.errors.gerrorn

    def _signal_error(self, code: CError) -> None:
        super()._signal_error(code)
        self.cmdqv.raise_irq(self, code)

    # ------------------------------------------------------------ VINTF rules
    def admit(self, row: np.ndarray) -> tuple[CError, np.ndarray]:
        code, row = super().admit(row)
        vintf = self.vintf
        if code is not CError.NONE or vintf is None or vintf.hyp_own:
            return code, row
        op = Opcode(int(row[0]) & 0xFF)
        if op not in self.cmdqv.params.accepted_opcodes:
            return CError.ILL, row
        out = row.copy()
        for f in fields_of(op):
            if f.name == "vmid":
                out[f.dword] = (int(out[f.dword]) & ~f.mask) | (vintf.vmid << f.lo)
            elif f.name == "sid":
                psid = vintf.match_sid((int(out[f.dword]) & f.mask) >> f.lo)
                if psid is None:
                    return CError.ILL, row
                out[f.dword] = (int(out[f.dword]) & ~f.mask) | (psid << f.lo)
        return CError.NONE, out
