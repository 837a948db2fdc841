"""Linux's command-queue error recovery: ``arm_smmu_cmdq_skip_err``, the GERROR handler, the ECMDQ
ERRACK variant and the Tegra241 CMDQV interrupt handler, transcribed onto the functional model.

``__arm_smmu_cmdq_skip_err`` reads CONS.ERR and

* ABT (command fetch abort): returns; the fetch is retried after GERRORN is written;
* ATC_INV_SYNC (ATC invalidation timeout): returns; CONS still points at the CMD_SYNC, which is
  retried (and may fail again while the ATC invalidation is pending);
* NONE: returns;
* ILL (or anything else): overwrites the slot at CONS with a CMD_SYNC built as
  ``arm_smmu_cmdq_build_cmd`` builds one with no MSI address (CS=SIG_SEV, MSH=ISH, MSIATTR=OIWB),
  or with CS=SIG_NONE when the queue needs busy polling (Tegra241 VCMDQs).

The caller then writes GERRORN = GERROR (or ERRACK = CONS.ERR on an ECMDQ) and the SMMU resumes at
CONS: the bad command has become a harmless SYNC and waiters behind it still complete.

>>> from cmdqv_lab.device.smmu import SMMU
>>> from cmdqv_lab.device.commands import Opcode, encode_batch, Command
>>> smmu = SMMU()
>>> bad = encode_batch(Opcode.CMD_TLBI_NH_ASID, asid=1); bad[0, 0] = 0x7F    # unknown opcode
>>> _ = smmu.cmdq.submit(bad); smmu.cmdq.consume_all()
0
>>> smmu.cmdq.stopped, hex(smmu.cmdq.cons_reg)
(True, '0x1000000')
>>> arm_smmu_gerror_handler(smmu)
True
>>> smmu.cmdq.consume_all(), print(Command.decode(smmu.cmdq.queue.read_entry(0)))
CMD_SYNC cs=2 msh=3 msiattr=15 msidata=0x0 msiaddr=0x0
(1, None)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cmdqv_lab.device.cmdq import CError, CommandQueue
from cmdqv_lab.device.cmdqv import Cmdqv, Vcmdq, Vintf
from cmdqv_lab.device.commands import CS_IRQ, CS_NONE, CS_SEV, SYNC_CS, Command, Opcode
from cmdqv_lab.device.ecmdq import EcmdqSet
from cmdqv_lab.device.regs import (
    CMDQ_CONS_ERR,
    ECMDQ_CONS_ERR,
    ECMDQ_PROD_ERRACK,
    GERROR_CMDQ_ERR,
    GERROR_CMDQP_ERR,
)
from cmdqv_lab.device.smmu import SMMU
from cmdqv_lab.errors import DeviceStateError

#: ``ARM_SMMU_SH_ISH`` and ``ARM_SMMU_MEMATTR_OIWB``: MSH and MSIATTR of every Linux CMD_SYNC.
ARM_SMMU_SH_ISH = 3
ARM_SMMU_MEMATTR_OIWB = 0xF
#: ``GERROR_ERR_MASK`` (0x1fd upstream; the ECMDQ series adds CMDQP_ERR, bit 9).
GERROR_ERR_MASK = 0x1FD | GERROR_CMDQP_ERR.mask


def arm_smmu_cmdq_build_sync(msiaddr: int = 0) -> np.ndarray:
    """``arm_smmu_cmdq_build_cmd`` for CMDQ_OP_CMD_SYNC: CS=SIG_IRQ with an MSI address, else SIG_SEV.

    >>> print(Command.decode(arm_smmu_cmdq_build_sync()))
    CMD_SYNC cs=2 msh=3 msiattr=15 msidata=0x0 msiaddr=0x0
    """
    cs = CS_IRQ if msiaddr else CS_SEV
    return Command(
        Opcode.CMD_SYNC, cs=cs, msiaddr=msiaddr, msh=ARM_SMMU_SH_ISH, msiattr=ARM_SMMU_MEMATTR_OIWB
    ).encode()


def _with_cs(cmd: np.ndarray, cs: int) -> np.ndarray:
    """``u64p_replace_bits(cmd, cs, CMDQ_SYNC_0_CS)``."""
    out = cmd.copy()
    out[0] = (int(out[0]) & ~SYNC_CS.mask) | (cs << SYNC_CS.lo)
    return out


def arm_smmu_cmdq_build_sync_cmd(
    cq: CommandQueue, prod: int, *, msipoll: bool, busy_polling: bool = False
) -> np.ndarray:
    """``arm_smmu_cmdq_build_sync_cmd``: the CMD_SYNC Linux writes at ``prod``.

    With MSI polling, MSIADDR is the SYNC's own slot (MSIDATA 0, so the MSI write clears the slot's
    first word, which the waiter polls); on queues that need busy polling CS is SIG_NONE.
    """
    msiaddr = cq.queue.entry_addr(prod) if msipoll else 0
    cmd = arm_smmu_cmdq_build_sync(msiaddr)
    return _with_cs(cmd, CS_NONE) if busy_polling else cmd


def sync_msi_done(cq: CommandQueue, prod: int) -> bool:
    """``__arm_smmu_cmdq_poll_until_msi``'s condition: the first 32-bit word of the SYNC slot is 0."""
    return cq.signals.dma.read32(cq.queue.entry_addr(prod)) == 0


def arm_smmu_cmdq_skip_err(cq: CommandQueue, *, busy_polling: bool = False) -> CError:
    """``__arm_smmu_cmdq_skip_err``: rewrite an ILL command at CONS into a CMD_SYNC; returns CONS.ERR."""
    cons = cq.cons_reg
    err = CMDQ_CONS_ERR.get(cons)
    code = CError(err) if err in CError._value2member_map_ else CError.ILL  # "Unknown": treated as ILL
    if code in (CError.ABT, CError.NONE, CError.ATC_INV_SYNC):
        return code
    bad = cq.queue.read_entry(cons)
    cmd = arm_smmu_cmdq_build_sync()
    if busy_polling:
        cmd = _with_cs(cmd, CS_NONE)
    cq.queue.write_entry(cons, cmd)
    q = cq.queue
    cq.log.add(
        "skip_err",
        cq.name,
        index=q.idx(cons),
        pos=q.cons_pos,
        opcode=int(bad[0]) & 0xFF,
        replaced=(int(bad[0]), int(bad[1])),
    )
    return code


def arm_smmu_ecmdq_skip_err(ecmdqs: EcmdqSet) -> list[int]:
    """``arm_smmu_ecmdq_skip_err``: fix every ECMDQ whose CONS.ERR != PROD.ERRACK, then ack it.

    Linux does the PROD write on the owning CPU (IPI) or under the queue's lock; here it is direct.
    Returns the indices of the queues handled.
    """
    handled = []
    for k, q in enumerate(ecmdqs.queues):
        cons, prod = q.cons_reg, q.prod_reg
        if not (prod ^ cons) & ECMDQ_CONS_ERR.mask:
            continue
        arm_smmu_cmdq_skip_err(q)
        prod = ECMDQ_PROD_ERRACK.set(q.prod_reg, ECMDQ_CONS_ERR.get(cons))
        q.write_prod(prod)
        handled.append(k)
    return handled


def arm_smmu_gerror_handler(smmu: SMMU) -> bool:
    """``arm_smmu_gerror_handler`` (the CMDQ parts): returns False (IRQ_NONE) if no error is active."""
    gerror, gerrorn = smmu.gerror, smmu.gerrorn
    active = gerror ^ gerrorn
    if not active & GERROR_ERR_MASK:
        return False
    if active & GERROR_CMDQ_ERR.mask:
        arm_smmu_cmdq_skip_err(smmu.cmdq)
    if active & GERROR_CMDQP_ERR.mask and smmu.ecmdqs is not None:
        arm_smmu_ecmdq_skip_err(smmu.ecmdqs)
    smmu.write_gerrorn(gerror)
    return True


# ---------------------------------------------------------------- Tegra241 CMDQV
def tegra241_vcmdq_handle_error(vq: Vcmdq) -> None:
    """One LVCMDQ of ``tegra241_vintf0_handle_error``: skip_err with CS=NONE, then GERRORN = GERROR."""
    gerror = vq.gerror
    arm_smmu_cmdq_skip_err(vq, busy_polling=True)
    vq.write_gerrorn(gerror)


def _bits(value: int) -> list[int]:
    return [i for i in range(value.bit_length()) if (value >> i) & 1]


def tegra241_vintf0_handle_error(vintf: Vintf) -> list[int]:
    """Handle every logical VCMDQ set in the VINTF's LVCMDQ_ERR_MAP; returns their logical indices."""
    lidxs = _bits(vintf.lvcmdq_err_map)
    for lidx in lidxs:
        tegra241_vcmdq_handle_error(vintf.lvcmdqs[lidx])
    return lidxs


def tegra241_vintf_user_handle_error(vintf: Vintf) -> dict[str, Any]:
    """The vEVENT forwarded to user space (``iommu_vevent_tegra241_cmdqv``): the LVCMDQ_ERR_MAP."""
    m = vintf.lvcmdq_err_map
    return {"vintf": vintf.idx, "lvcmdq_err_map": [m & (2**64 - 1), m >> 64]}


def tegra241_cmdqv_isr(cmdqv: Cmdqv, vevents: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``tegra241_cmdqv_isr``: VINTF0 recovered in the host, other VINTFs' errors forwarded.

    Clears the interrupt's pending flag (threaded, ONESHOT: one handler run per pending IRQ).
    Returns the vEVENTs produced (also appended to ``vevents`` if given).
    """
    cmdqv.irq_pending = False
    vintf_map = cmdqv.vintf_err_map
    out: list[dict[str, Any]] = []
    if vintf_map & 1:
        tegra241_vintf0_handle_error(cmdqv.vintfs[0])
        cmdqv.log.add("isr", "cmdqv", vintf=0, action="recovered")
        vintf_map &= ~1
    for v in _bits(vintf_map):
        event = tegra241_vintf_user_handle_error(cmdqv.vintfs[v])
        cmdqv.log.add("isr", "cmdqv", action="forwarded", **event)
        out.append(event)
    if vevents is not None:
        vevents.extend(out)
    return out


def guest_handle_vevent(cmdqv: Cmdqv, vevent: dict[str, Any]) -> list[int]:
    """What the guest's own driver does with a forwarded error (through its mapped VCMDQ pages):
    the same per-queue recovery (skip_err with CS=NONE, then GERRORN). Returns the logical indices."""
    vintf = cmdqv.vintfs[vevent["vintf"]]
    lo, hi = vevent["lvcmdq_err_map"]
    lidxs = _bits(lo | (hi << 64))
    for lidx in lidxs:
        tegra241_vcmdq_handle_error(vintf.lvcmdqs[lidx])
    return lidxs


def drain(
    consume: Callable[[], int],
    stopped: Callable[[], bool],
    handle: Callable[[], Any],
    *,
    max_errors: int = 10_000,
) -> int:
    """Consume, and run ``handle`` each time the queue stops on an error, until nothing is left.

    Returns the number of errors handled; raises :class:`DeviceStateError` after ``max_errors``.

    >>> from cmdqv_lab.device.commands import encode_batch
    >>> smmu = SMMU()
    >>> _ = smmu.cmdq.submit(encode_batch(Opcode.CMD_TLBI_NH_ASID, asid=[1, 2]))
    >>> smmu.cmdq.inject_fault(1, CError.ABT)
    >>> drain(smmu.cmdq.consume_all, lambda: smmu.cmdq.stopped, lambda: arm_smmu_gerror_handler(smmu))
    1
    """
    errors = 0
    consume()
    while stopped():
        if errors >= max_errors:
            raise DeviceStateError(
                f"queue still in error after {max_errors} recoveries: allowed max_errors={max_errors}"
            )
        handle()
        errors += 1
        consume()
    return errors
