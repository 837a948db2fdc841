"""The SMMU: its main command queue, optional ECMDQs, ID register features, GERROR/GERRORN,
the DMA memory MSI writes land in, and the event log shared by all its queues.

Features that change what the Linux driver does are parameters (:class:`SmmuConfig`):
``IDR1.CMDQS`` (largest queue), ``IDR0.SEV``, ``IDR0.MSI`` and ``IDR0.COHACC``. Linux uses MSI
polling of CMD_SYNC (``ARM_SMMU_OPT_MSIPOLL``) only when the SMMU is coherent and has MSIs
(:attr:`SMMU.msipoll`); otherwise CS=SIG_SEV and CONS polling.

>>> from cmdqv_lab.device.commands import Opcode, encode_batch
>>> smmu = SMMU(SmmuConfig.qemu())
>>> smmu.msipoll, smmu.cmdq.autoconsume
(False, True)
>>> _ = smmu.cmdq.submit(encode_batch(Opcode.CMD_TLBI_NSNH_ALL))   # QEMU consumes inside the PROD write
>>> hex(smmu.cmdq.queue.cons_reg), smmu.gerror
('0x1', 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from cmdqv_lab.device.cmdq import CommandQueue, ErrorRegs, SyncSignals
from cmdqv_lab.device.cmdqv import Cmdqv, CmdqvParams
from cmdqv_lab.device.ecmdq import EcmdqSet
from cmdqv_lab.device.events import EventLog
from cmdqv_lab.device.memory import DmaMemory
from cmdqv_lab.device.queue import Queue
from cmdqv_lab.device.regs import (
    CMDQ_MAX_LOG2SIZE,
    GERROR_CMDQ_ERR,
    GERROR_CMDQP_ERR,
    IDR0_COHACC,
    IDR0_MSI,
    IDR0_SEV,
    IDR1_CMDQS,
)
from cmdqv_lab.params import Params, param

_QEMU = "QEMU hw/arm/smmuv3.c (smmuv3_init_regs)"


@dataclass(frozen=True, kw_only=True)
class SmmuConfig(Params):
    """SMMU features and queue geometry of the functional model."""

    cmdqs: int = param(
        19,
        unit="log2 entries",
        lo=0,
        hi=CMDQ_MAX_LOG2SIZE,
        provenance="measured",
        source=_QEMU,
        doc="SMMU_IDR1.CMDQS: largest command queue LOG2SIZE",
    )
    sev: bool = param(
        True,
        provenance="assumption",
        source="QEMU advertises no SEV",
        doc="SMMU_IDR0.SEV: CMD_SYNC with CS=SIG_SEV generates a WFE wake-up event",
    )
    msi: bool = param(
        True,
        provenance="assumption",
        source="QEMU advertises no MSI",
        doc="SMMU_IDR0.MSI: CMD_SYNC with CS=SIG_IRQ writes MSIDATA to MSIADDR",
    )
    cohacc: bool = param(
        True,
        provenance="assumption",
        doc="SMMU_IDR0.COHACC: coherent access (with MSI, Linux polls CMD_SYNC by MSI)",
    )
    cmdq_log2size: int = param(
        8,
        unit="log2 entries",
        lo=7,
        hi=CMDQ_MAX_LOG2SIZE,
        provenance="choice",
        doc="main command queue LOG2SIZE (Linux takes IDR1.CMDQS capped by its allocation limit)",
    )
    num_ecmdqs: int = param(
        0, unit="queues", lo=0, hi=256, provenance="choice", doc="ECMDQs (0: none; Linux needs one per CPU)"
    )
    ecmdq_log2size: int = param(8, unit="log2 entries", lo=7, hi=CMDQ_MAX_LOG2SIZE, provenance="choice")
    autoconsume: bool = param(
        False, provenance="choice", doc="consume inside each PROD write, as QEMU does (else on request)"
    )

    @classmethod
    def qemu(cls, **changes: Any) -> Self:
        """QEMU's virt SMMUv3: no MSI, no SEV, coherent, consumes synchronously in the PROD write."""
        return cls(sev=False, msi=False, cohacc=True, autoconsume=True).replace(**changes)


class SMMU:
    """An SMMUv3 with a main command queue (and ``num_ecmdqs`` ECMDQs).

    Attributes
    ----------
    cmdq : CommandQueue
        The main command queue (reports to ``GERROR.CMDQ_ERR``).
    ecmdqs : EcmdqSet or None
        The ECMDQs (report to ``GERROR.CMDQP_ERR``).
    cmdqv : Cmdqv or None
        The Tegra241 CMDQV, when built with ``cmdqv=CmdqvParams(...)`` (its own error interrupt).
    log : EventLog
        Everything consumed, completed, errored and acknowledged, on every queue.
    dma : DmaMemory
        Memory written by MSIs; every queue's memory is mapped in it.
    errors : ErrorRegs
        ``SMMU_GERROR`` / ``SMMU_GERRORN``.
    """

    def __init__(
        self, config: SmmuConfig | None = None, *, cmdqv: CmdqvParams | None = None, **overrides: Any
    ) -> None:
        cfg = (config or SmmuConfig()).replace(**overrides)
        self.config = cfg
        self.log = EventLog()
        self.dma = DmaMemory()
        self.signals = SyncSignals(self.dma, msi=cfg.msi, sev=cfg.sev)
        self.errors = ErrorRegs()
        base = self.dma.alloc(16 << cfg.cmdq_log2size)
        queue = Queue(cfg.cmdq_log2size, cmdqs=cfg.cmdqs, base=base, name="cmdq")
        self.cmdq = CommandQueue(
            queue,
            log=self.log,
            signals=self.signals,
            errors=self.errors,
            err_mask=GERROR_CMDQ_ERR.mask,
            autoconsume=cfg.autoconsume,
        )
        self.ecmdqs: EcmdqSet | None = None
        if cfg.num_ecmdqs:
            self.ecmdqs = EcmdqSet(
                cfg.num_ecmdqs,
                cfg.ecmdq_log2size,
                errors=self.errors,
                log=self.log,
                signals=self.signals,
                cmdqs=cfg.cmdqs,
                autoconsume=cfg.autoconsume,
            )
        self.cmdqv: Cmdqv | None = None
        if cmdqv is not None:
            self.cmdqv = Cmdqv(cmdqv, log=self.log, signals=self.signals)

    # ------------------------------------------------------------ ID registers
    @property
    def idr0(self) -> int:
        c = self.config
        return IDR0_SEV.prep(int(c.sev)) | IDR0_MSI.prep(int(c.msi)) | IDR0_COHACC.prep(int(c.cohacc))

    @property
    def idr1(self) -> int:
        return IDR1_CMDQS.prep(self.config.cmdqs)

    @property
    def msipoll(self) -> bool:
        """Linux's ``ARM_SMMU_OPT_MSIPOLL``: coherent and MSI-capable, so CMD_SYNC is MSI-polled."""
        return self.config.cohacc and self.config.msi

    @property
    def sev_events(self) -> int:
        """SEV events generated by CMD_SYNCs so far."""
        return self.signals.sev_events

    # ------------------------------------------------------------ GERROR
    @property
    def gerror(self) -> int:
        """``SMMU_GERROR`` (read-only to software)."""
        return self.errors.gerror

    @property
    def gerrorn(self) -> int:
        return self.errors.gerrorn

    def write_gerrorn(self, value: int) -> None:
        """Software writes ``SMMU_GERRORN``: acknowledges the errors whose bits now match GERROR."""
        acked = self.errors.write_gerrorn(value)
        if acked & GERROR_CMDQP_ERR.mask:
            self.log.add("ack", "gerror", cerror="CMDQP_ERR")
        if acked & GERROR_CMDQ_ERR.mask:
            self.cmdq.on_ack()
