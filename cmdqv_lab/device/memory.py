"""A small DMA memory: what the SMMU can write by DMA (MSI writes of CMD_SYNC completion).

Queue memories are *mapped* at their base address, so an MSI write aimed at a queue slot lands in
that queue's ``(2^LOG2SIZE, 2)`` uint64 array. This is how Linux's MSI polling works
(``arm_smmu_cmdq_build_sync_cmd``): MSIADDR points at the CMD_SYNC's own slot, MSIDATA is 0, and
the waiter spins until the slot's first 32-bit word reads 0. Other addresses are plain RAM kept
as ``{address: word}``. Memory is little-endian, accessed in aligned 32-bit words.

>>> import numpy as np
>>> dma = DmaMemory()
>>> mem = np.zeros((4, 2), dtype=np.uint64); mem[1, 0] = 0x46
>>> base = dma.alloc(mem.nbytes)
>>> dma.map(base, mem)
>>> dma.read32(base + 16)
70
>>> dma.write32(base + 16, 0)
>>> int(mem[1, 0]), dma.read32(0x100)
(0, 0)
"""

from __future__ import annotations

import numpy as np

from cmdqv_lab.errors import DeviceStateError

_MASK32 = 0xFFFF_FFFF


class DmaMemory:
    """Word-addressed memory with mapped queue arrays and a bump allocator for their bases."""

    #: First address handed out by :meth:`alloc` (a recognisable, non-zero base).
    ALLOC_BASE = 0x8000_0000

    def __init__(self) -> None:
        self._ram: dict[int, int] = {}
        self._maps: list[tuple[int, np.ndarray]] = []
        self._next = self.ALLOC_BASE

    def alloc(self, nbytes: int) -> int:
        """A fresh base address naturally aligned to ``nbytes`` (rounded up to a power of two >= 32)."""
        size = max(32, 1 << max(0, int(nbytes) - 1).bit_length())
        base = (self._next + size - 1) & ~(size - 1)
        self._next = base + size
        return base

    def map(self, base: int, array: np.ndarray) -> None:
        """Make ``array`` (uint64, C-contiguous) the memory at ``base`` (replacing an earlier map there)."""
        if array.dtype != np.uint64 or not array.flags.c_contiguous:
            raise TypeError("mapped memory must be a C-contiguous uint64 array")
        self._maps = [(b, a) for b, a in self._maps if b != base]
        self._maps.append((int(base), array))

    def _locate(self, addr: int) -> tuple[np.ndarray, int, int] | None:
        for base, arr in self._maps:
            off = addr - base
            if 0 <= off < arr.nbytes:
                flat = arr.reshape(-1)
                return flat, off // 8, (off % 8) * 8
        return None

    def _check(self, addr: int) -> int:
        addr = int(addr)
        if addr < 0 or addr % 4:
            raise DeviceStateError(f"DMA address 0x{addr:x} is not a 4-byte aligned address")
        return addr

    def write32(self, addr: int, value: int) -> None:
        """Write one 32-bit little-endian word."""
        addr = self._check(addr)
        value = int(value) & _MASK32
        hit = self._locate(addr)
        if hit is None:
            self._ram[addr] = value
            return
        flat, i, shift = hit
        word = int(flat[i])
        flat[i] = np.uint64((word & ~(_MASK32 << shift)) | (value << shift))

    def read32(self, addr: int) -> int:
        """Read one 32-bit little-endian word (unwritten RAM reads 0)."""
        addr = self._check(addr)
        hit = self._locate(addr)
        if hit is None:
            return self._ram.get(addr, 0)
        flat, i, shift = hit
        return (int(flat[i]) >> shift) & _MASK32
