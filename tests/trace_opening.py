"""The first 32 commands of ``data/traces/qemu-smmuv3-linux6.1-smp2-strict.log.gz``, hand-encoded.

The trace (its first 100 lines) shows opcodes and some fields; the rest is what Linux 6.1 builds
for those calls (``arm_smmu_cmdq_build_cmd``), on QEMU's SMMUv3 (no MSI: every CMD_SYNC has
CS=SIG_SEV, MSH=ISH, MSIATTR=OIWB; RIL advertised: range TLBIs with TG set):

* CFGI_STE_RANGE sid=0 range=31: ``CMDQ_OP_CFGI_ALL`` at reset (trace: start=0x0 - end=0xffffffff)
* TLBI_NSNH_ALL at reset
* CFGI_STE sid=0x8/0x10 leaf=1: ``arm_smmu_sync_ste_for_sid`` (trace: streamid)
* PREFETCH_CONFIG sid=0x8/0x10: ``arm_smmu_write_strtab_ent`` (the sid is *inferred*: the trace does
  not print it; it is the StreamID whose STE was just synced)
* TLBI_NH_ASID asid=1/2 vmid=0 (trace: asid)
* TLBI_NH_VA vmid=0 asid=2 addr tg=1 ttl=3 leaf=1 num=0 scale=0 (trace: num_pages=0x1 = (num+1) << scale)

``GROUPS`` are the PROD values after each PROD write in the trace (``smmuv3_cmdq_consume prod=``),
so a test can submit exactly as the driver did.

This module does not use the trace parser (written separately); ``test_device_trace_opening``
checks the opcodes and printed fields against the raw trace lines.
"""

from __future__ import annotations

import numpy as np

from cmdqv_lab.device.commands import CFGI_RANGE_ALL, CS_SEV, Command, Opcode

SYNC = Command(Opcode.CMD_SYNC, cs=CS_SEV, msh=3, msiattr=0xF)


def _ste(sid: int) -> Command:
    return Command(Opcode.CMD_CFGI_STE, sid=sid, leaf=1)


def _va(addr: int) -> Command:
    return Command(Opcode.CMD_TLBI_NH_VA, vmid=0, asid=2, addr=addr, tg=1, ttl=3, leaf=1, num=0, scale=0)


COMMANDS: list[Command] = [
    Command(Opcode.CMD_CFGI_STE_RANGE, sid=0, range=CFGI_RANGE_ALL),  # 0
    SYNC,
    Command(Opcode.CMD_TLBI_NSNH_ALL),  # 2
    SYNC,
    SYNC,  # 4
    SYNC,  # 5
    _ste(0x8),  # 6
    SYNC,
    _ste(0x8),  # 8
    SYNC,
    Command(Opcode.CMD_PREFETCH_CONFIG, sid=0x8),  # 10
    Command(Opcode.CMD_TLBI_NH_ASID, asid=1, vmid=0),  # 11
    SYNC,
    SYNC,  # 13
    SYNC,  # 14
    _ste(0x10),  # 15
    SYNC,
    _ste(0x10),  # 17
    SYNC,
    Command(Opcode.CMD_PREFETCH_CONFIG, sid=0x10),  # 19
    Command(Opcode.CMD_TLBI_NH_ASID, asid=2, vmid=0),  # 20
    SYNC,
    _va(0xFFFF6000),  # 22
    SYNC,
    _va(0xFFFF9000),  # 24
    SYNC,
    _va(0xFFFF8000),  # 26
    SYNC,
    _va(0xFFFF7000),  # 28
    SYNC,
    _va(0xFFFF6000),  # 30
    SYNC,
]

#: PROD after each PROD write of the trace.
GROUPS: list[int] = [2, 4, 5, 6, 8, 10, 11, 13, 14, 15, 17, 19, 20, 22, 24, 26, 28, 30, 32]

#: Commands a guest-owned VINTF refuses (not TLBI_NH_ASID / TLBI_NH_VA / ATC_INV / CMD_SYNC).
GUEST_ILL_INDICES: list[int] = [0, 2, 6, 8, 10, 15, 17, 19]


def batch() -> np.ndarray:
    """The opening as an ``(32, 2)`` uint64 batch."""
    return np.vstack([c.encode() for c in COMMANDS])


def groups() -> list[np.ndarray]:
    """The opening split as the driver wrote it (one array per PROD write)."""
    b = batch()
    starts = [0, *GROUPS[:-1]]
    return [b[s:e] for s, e in zip(starts, GROUPS)]
