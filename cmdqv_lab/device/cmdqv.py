"""NVIDIA Tegra241 (Grace) CMDQV: VINTFs, VCMDQs, CMDQ_ALLOC, guest rewriting, error maps and IRQ.

Follows Linux's ``tegra241-cmdqv.c`` and the 2021 review thread (see :mod:`cmdqv_lab.device.regs`
for which register layouts are verified and which are inferred). The VINTF and VCMDQ classes live
in :mod:`cmdqv_lab.device.vintf` and are re-exported here.

* Geometry (``CMDQV_PARAM``) is a parameter (:class:`CmdqvParams`): the Grace values are not public.
* ``CMDQ_ALLOC(q)`` maps global VCMDQ ``q`` to (VINTF, logical index LVCMDQ). Per VINTF, logical
  queues are allocated in ascending and freed in descending order (hardware requirement); anything
  else raises :class:`~cmdqv_lab.errors.DeviceStateError` naming the expected index.
* ``VINTF_CONFIG``: EN, VMID, HYP_OWN. A guest-owned VINTF (HYP_OWN=0) rewrites the VMID of every
  command with a VMID field to its own VMID, replaces the StreamID of every command with a SID
  field through its SID_MATCH/SID_REPLACE pairs, and makes ILL an unmatched SID or an opcode outside
  its accepted set (``guest_opcodes``). A host-owned VINTF (HYP_OWN=1) accepts everything unchanged.
* An error on a VCMDQ toggles its own ``VCMDQ_GERROR``, sets ``CONS.ERR``, and raises the CMDQV
  interrupt (pending flag, count, ``irq`` event). The error maps (``VINTF_ERR_MAP``,
  ``CMDQ_ERR_MAP``, each VINTF's ``LVCMDQ_ERR_MAP``) show the VCMDQs whose error is active, so
  they clear when software writes that VCMDQ's GERRORN (assumption: nothing in Linux clears them
  otherwise).
* Optional hardware-inserted SYNCs (:meth:`Cmdqv.schedule`): a round-robin scheduler over the
  enabled VCMDQs takes up to CMD_BATCH commands per turn and inserts a SYNC after each turn
  (``hw_sync`` event). It gives software no completion signal and does not move CONS.

Modelling choices: a VCMDQ consumes only when allocated, its VINTF enabled, its BASE programmed
and its CONFIG.EN set (STATUS.ENABLED shows that); freeing an enabled VCMDQ is refused; a
hardware SYNC neither reports nor completes a timed-out ATC_INV.

>>> from cmdqv_lab.device.commands import Opcode, Command
>>> cmdqv = Cmdqv(CmdqvParams(num_vintfs=4, num_vcmdqs=8))
>>> vintf = cmdqv.vintfs[1]
>>> vintf.configure(vmid=7, hyp_own=False)
>>> vintf.set_sid_pair(0, vsid=0x8, psid=0x108)
>>> vq = cmdqv.setup_lvcmdq(q=2, vintf=1, lidx=0, log2size=7)
>>> _ = vq.submit(Command(Opcode.CMD_TLBI_NH_ASID, asid=1, vmid=0).encode())
>>> _ = vq.submit(Command(Opcode.CMD_ATC_INV, sid=0x8, size=52).encode())
>>> _ = vq.submit(Command(Opcode.CMD_CFGI_STE, sid=0x8, leaf=1).encode())
>>> vq.consume_all()
2
>>> for e in vq.log.of("consume"):
...     print(Command.decode(e.detail["executed"]))
CMD_TLBI_NH_ASID vmid=7 asid=1
CMD_ATC_INV sid=264 ssid=0 ssv=0 global=0 addr=0x0 size=52
>>> vq.stopped, vq.log.of("error")[-1].detail["cerror"], cmdqv.irq_pending, hex(cmdqv.cmdq_err_map)
(True, 'ILL', True, '0x4')
"""

from __future__ import annotations

from dataclasses import dataclass

from cmdqv_lab.device.cmdq import CError, SyncSignals
from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.device.events import EventLog
from cmdqv_lab.device.regs import (
    CMDQV_CMDQ_ALLOC,
    CMDQV_CMDQ_ALLOC_LVCMDQ,
    CMDQV_CMDQ_ALLOC_VINTF,
    CMDQV_CMDQ_ALLOCATED,
    CMDQV_NUM_SID_PER_VM_LOG2,
    CMDQV_NUM_VCMDQ_LOG2,
    CMDQV_NUM_VINTF_LOG2,
    CMDQV_VER,
    VCMDQ_EN,
    VCMDQ_LOG2SIZE,
)
from cmdqv_lab.device.vintf import Vcmdq, Vintf
from cmdqv_lab.errors import DeviceStateError, ParamError
from cmdqv_lab.params import Params, param

#: Opcodes a guest-owned VINTF accepts in current Linux (domain brief section 5): the three
#: invalidations the guest-side support check lists, plus CMD_SYNC.
GUEST_OPCODES_LINUX = frozenset(
    {Opcode.CMD_TLBI_NH_ASID, Opcode.CMD_TLBI_NH_VA, Opcode.CMD_ATC_INV, Opcode.CMD_SYNC}
)
#: The list of the 2021 v3 patch (seed thread), which also had the stage-2 invalidations.
GUEST_OPCODES_2021 = GUEST_OPCODES_LINUX | {Opcode.CMD_TLBI_S12_VMALL, Opcode.CMD_TLBI_S2_IPA}
GUEST_OPCODE_SETS = {"linux": GUEST_OPCODES_LINUX, "v3-2021": GUEST_OPCODES_2021}

__all__ = [
    "GUEST_OPCODES_2021",
    "GUEST_OPCODES_LINUX",
    "GUEST_OPCODE_SETS",
    "Cmdqv",
    "CmdqvParams",
    "Vcmdq",
    "Vintf",
]

_WIDTHS = "field widths (CMDQ_ALLOC.VINTF 6 bits, CMDQ_ERR_MAP 128 bits, 16 SID_MATCH slots)"


@dataclass(frozen=True, kw_only=True)
class CmdqvParams(Params):
    """CMDQV geometry and behaviour. Sizes are powers of two (``CMDQV_PARAM`` holds their log2)."""

    num_vintfs: int = param(
        64,
        unit="VINTFs",
        lo=1,
        hi=64,
        provenance="assumption",
        source=_WIDTHS,
        doc="NUM_VINTF_LOG2; Grace value not public",
    )
    num_vcmdqs: int = param(
        128,
        unit="VCMDQs",
        lo=1,
        hi=128,
        provenance="assumption",
        source=_WIDTHS,
        doc="NUM_VCMDQ_LOG2; Grace value not public",
    )
    sid_pairs_per_vintf: int = param(
        16,
        unit="pairs",
        lo=1,
        hi=16,
        provenance="measured",
        source="stated by NVIDIA in the 2021 review thread: 16 MATCH+REPLACE pairs per VINTF",
        doc="NUM_SID_PER_VM_LOG2: SID_MATCH/SID_REPLACE pairs per VINTF",
    )
    version: int = param(1, lo=0, hi=15, provenance="assumption", doc="CMDQV_PARAM.VER")
    guest_opcodes: str = param(
        "linux",
        choices=tuple(GUEST_OPCODE_SETS),
        provenance="choice",
        doc="opcodes a guest-owned VINTF accepts: Linux's 4, or the 2021 list (+ S12_VMALL, S2_IPA)",
    )
    cmd_batch: int = param(
        32,
        unit="commands",
        lo=1,
        hi=1 << 16,
        provenance="assumption",
        source="QEMU's tegra241-cmdqv model: CONFIG reset value decodes as CMD_BATCH=32 (Grace: not public)",
        doc="commands one VCMDQ may issue per scheduler turn before a hardware SYNC",
    )
    hw_sync: bool = param(
        True,
        provenance="assumption",
        source="2021 review thread",
        doc="hardware inserts a SYNC when leaving a queue",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_vintfs", "num_vcmdqs", "sid_pairs_per_vintf"):
            v = getattr(self, name)
            if v & (v - 1):
                hi = self.field_infos()[name][1].hi
                raise ParamError(f"{name}={v} is not a power of two: allowed 1, 2, 4 .. {hi:g}")

    @property
    def accepted_opcodes(self) -> frozenset[Opcode]:
        return GUEST_OPCODE_SETS[self.guest_opcodes]

    @property
    def param_reg(self) -> int:
        """The ``CMDQV_PARAM`` register image."""
        return (
            CMDQV_NUM_SID_PER_VM_LOG2.prep(self.sid_pairs_per_vintf.bit_length() - 1)
            | CMDQV_NUM_VINTF_LOG2.prep(self.num_vintfs.bit_length() - 1)
            | CMDQV_NUM_VCMDQ_LOG2.prep(self.num_vcmdqs.bit_length() - 1)
            | CMDQV_VER.prep(self.version)
        )


class Cmdqv:
    """The CMDQV block: VINTFs, VCMDQs, CMDQ_ALLOC, error maps, the error interrupt, the scheduler.

    Parameters
    ----------
    params
        Geometry and behaviour (defaults: 64 VINTFs, 128 VCMDQs, 16 SID pairs, Linux's guest set).
    log, signals
        Share the SMMU's event log and MSI/SEV sink (``Cmdqv(p, log=smmu.log, signals=smmu.signals)``).
    """

    def __init__(
        self,
        params: CmdqvParams | None = None,
        *,
        log: EventLog | None = None,
        signals: SyncSignals | None = None,
    ) -> None:
        self.params = params if params is not None else CmdqvParams()
        self.log = log if log is not None else EventLog()
        self.signals = signals if signals is not None else SyncSignals()
        self.vintfs = [Vintf(self, i) for i in range(self.params.num_vintfs)]
        self.vcmdqs = [Vcmdq(self, q) for q in range(self.params.num_vcmdqs)]
        self.cmdq_alloc = [0] * self.params.num_vcmdqs
        self.irq_pending = False
        self.irq_count = 0
        self._rr_next = 0

    # ------------------------------------------------------------ CMDQ_ALLOC
    def _check_index(self, what: str, value: int, n: int) -> None:
        if not 0 <= value < n:
            raise DeviceStateError(f"{what} {value} out of range: allowed 0 .. {n - 1}")

    def write_cmdq_alloc(self, q: int, value: int) -> None:
        """``CMDQ_ALLOC(q)`` write: ALLOCATED=1 maps VCMDQ q to (VINTF, LVCMDQ); 0 frees it."""
        self._check_index("VCMDQ", q, len(self.vcmdqs))
        vq = self.vcmdqs[q]
        if CMDQV_CMDQ_ALLOCATED.get(value):
            v, lidx = CMDQV_CMDQ_ALLOC_VINTF.get(value), CMDQV_CMDQ_ALLOC_LVCMDQ.get(value)
            self._check_index("VINTF", v, len(self.vintfs))
            self._check_index("LVCMDQ", lidx, len(self.vcmdqs))
            if vq.vintf is not None:
                raise DeviceStateError(
                    f"CMDQ_ALLOC({q}): already VINTF{vq.vintf.idx} LVCMDQ{vq.lidx}: free it first"
                )
            vintf = self.vintfs[v]
            expected = len(vintf.lvcmdqs)
            if lidx != expected:
                raise DeviceStateError(
                    f"CMDQ_ALLOC({q}): VINTF{v} allocates LVCMDQs in ascending order: "
                    f"expected LVCMDQ{expected}, got LVCMDQ{lidx}"
                )
            vintf.lvcmdqs[lidx] = vq
            vq.vintf, vq.lidx = vintf, lidx
        else:
            if vq.vintf is None or vq.lidx is None:
                raise DeviceStateError(f"CMDQ_ALLOC({q}): VCMDQ {q} is not allocated: nothing to free")
            vintf, lidx = vq.vintf, vq.lidx
            highest = len(vintf.lvcmdqs) - 1
            if lidx != highest:
                raise DeviceStateError(
                    f"CMDQ_ALLOC({q}): VINTF{vintf.idx} frees LVCMDQs in descending order: "
                    f"expected LVCMDQ{highest} (VCMDQ {vintf.lvcmdqs[highest].idx}), got LVCMDQ{lidx}"
                )
            if VCMDQ_EN.get(vq.config):
                raise DeviceStateError(
                    f"CMDQ_ALLOC({q}): VCMDQ {q} is enabled: clear CONFIG.EN before freeing"
                )
            del vintf.lvcmdqs[lidx]
            vq.vintf, vq.lidx = None, None
        self.cmdq_alloc[q] = value & CMDQV_CMDQ_ALLOC.encode(
            CMDQV_CMDQ_ALLOC_VINTF=CMDQV_CMDQ_ALLOC_VINTF.max,
            CMDQV_CMDQ_ALLOC_LVCMDQ=CMDQV_CMDQ_ALLOC_LVCMDQ.max,
            CMDQV_CMDQ_ALLOCATED=1,
        )

    def alloc_lvcmdq(self, q: int, *, vintf: int, lidx: int) -> Vcmdq:
        """Map VCMDQ ``q`` to ``(vintf, lidx)`` as Linux writes it."""
        self.write_cmdq_alloc(
            q,
            CMDQV_CMDQ_ALLOC.encode(
                CMDQV_CMDQ_ALLOC_VINTF=vintf, CMDQV_CMDQ_ALLOC_LVCMDQ=lidx, CMDQV_CMDQ_ALLOCATED=1
            ),
        )
        return self.vcmdqs[q]

    def free_lvcmdq(self, q: int) -> None:
        """Unmap VCMDQ ``q`` (write CMDQ_ALLOC(q) = 0)."""
        self.write_cmdq_alloc(q, 0)

    def setup_lvcmdq(self, *, q: int, vintf: int, lidx: int, log2size: int, base: int | None = None) -> Vcmdq:
        """Allocate, program BASE (a fresh DMA buffer unless ``base``) and enable a VCMDQ."""
        vq = self.alloc_lvcmdq(q, vintf=vintf, lidx=lidx)
        addr = base if base is not None else self.signals.dma.alloc(16 << log2size)
        vq.write_base(addr | VCMDQ_LOG2SIZE.prep(log2size))
        vq.write_config(VCMDQ_EN.prep(1))
        return vq

    # ------------------------------------------------------------ errors and interrupt
    @property
    def cmdq_err_map(self) -> int:
        """``CMDQ_ERR_MAP`` (128 bits): bit q set while global VCMDQ q has an active error."""
        return sum(1 << vq.idx for vq in self.vcmdqs if vq.error_active())

    @property
    def vintf_err_map(self) -> int:
        """``VINTF_ERR_MAP`` (64 bits): bit v set while a VCMDQ of VINTF v has an active error."""
        return sum(1 << vi.idx for vi in self.vintfs if vi.lvcmdq_err_map)

    def raise_irq(self, vq: Vcmdq, code: CError) -> None:
        """A VCMDQ error raises the (one, wired) CMDQV interrupt."""
        self.irq_pending = True
        self.irq_count += 1
        vintf = vq.vintf.idx if vq.vintf is not None else None
        self.log.add(
            "irq", "cmdqv", pos=vq.queue.cons_pos, vcmdq=vq.idx, vintf=vintf, lidx=vq.lidx, cerror=code.name
        )

    # ------------------------------------------------------------ hardware scheduler
    def schedule(self, max_commands: int | None = None) -> int:
        """Round robin over enabled VCMDQs, up to ``cmd_batch`` commands per turn; returns the count.

        With ``hw_sync`` a hardware SYNC is logged after every turn that consumed commands (the
        batch limit was reached, or the scheduler leaves the queue because it emptied or stopped).
        """
        p = self.params
        n = len(self.vcmdqs)
        en = VCMDQ_EN.mask
        total = 0
        progress = True
        while progress and (max_commands is None or total < max_commands):
            progress = False
            start = self._rr_next
            for k in range(n):
                vq = self.vcmdqs[(start + k) % n]
                # CONFIG.EN clear: not enabled (is_enabled's first test), skipped without the calls
                if not vq.config & en or not vq.can_consume():
                    continue
                budget = p.cmd_batch if max_commands is None else min(p.cmd_batch, max_commands - total)
                got = vq.consume_all(limit=budget)
                self._rr_next = (vq.idx + 1) % n
                if got:
                    total += got
                    progress = True
                    if p.hw_sync:
                        self._hw_sync(vq, got)
                if max_commands is not None and total >= max_commands:
                    break
        return total

    def _hw_sync(self, vq: Vcmdq, got: int) -> None:
        q = vq.queue
        reason = "cmd_batch" if got >= self.params.cmd_batch else "leave"
        self.log.add("hw_sync", vq.name, index=q.idx(q.cons), pos=q.cons_pos, commands=got, reason=reason)
