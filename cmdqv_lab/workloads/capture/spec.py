"""What a capture runs: guest size, invalidation mode and the block-read workload, validated in one place.

>>> s = CaptureSpec(vcpus=4, mode="lazy", jobs=4)
>>> s.kernel_cmdline
'console=ttyAMA0 rdinit=/init iommu.passthrough=0 iommu.strict=0 panic=-1 quiet'
>>> s.disk_bytes
5242880
>>> CaptureSpec(mode="fast")
Traceback (most recent call last):
...
cmdqv_lab.errors.ParamError: capture: mode='fast' not allowed; choose one of strict, lazy
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cmdqv_lab.errors import ParamError

__all__ = ["TRACE_EVENTS", "CaptureSpec", "parse_size"]

#: -trace event patterns per ``events`` choice. "cmdq" keeps files small: no per-DMA translation or
#: per-register-access events (a CONS poll is an MMIO read), only what the parser uses.
TRACE_EVENTS = {
    "cmdq": ("smmuv3_cmdq_*", "smmuv3_*range_inval", "smmuv3_unhandled_cmd"),
    "all": ("smmuv3_*",),
}

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str | int) -> int:
    """``4k`` -> 4096, ``2M`` -> 2097152 (binary units; a plain number is bytes).

    >>> parse_size("64k"), parse_size("1M"), parse_size(512)
    (65536, 1048576, 512)
    """
    if isinstance(text, int):
        return text
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        return int(t[: len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise ParamError(f"size {text!r}: expected a number with an optional k, M or G suffix") from None


@dataclass(frozen=True, kw_only=True)
class CaptureSpec:
    """A guest and its workload: reads of a virtio-blk-pci disk behind the SMMU, then power-off.

    For each block size in turn, ``jobs`` processes read ``bytes_per_job`` each from disjoint parts
    of the disk with ``dd`` (``iflag=direct`` when ``io="direct"``; buffered reads drop the page
    cache first). ``mode`` is the kernel's IOTLB invalidation policy: ``strict`` invalidates at each
    unmap (``iommu.strict=1``), ``lazy`` batches them in per-CPU flush queues (``iommu.strict=0``).
    """

    vcpus: int = 1
    mode: str = "strict"
    block_sizes: tuple[int, ...] = (4096, 65536)
    bytes_per_job: int = 1 << 20
    io: str = "direct"
    jobs: int = 1
    memory_mib: int = 512
    cpu: str = "cortex-a57"
    events: str = "cmdq"
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        def bad(name: str, value: Any, allowed: str) -> ParamError:
            return ParamError(f"capture: {name}={value!r} {allowed}")

        for name, choices in (("mode", ("strict", "lazy")), ("io", ("direct", "buffered")),
                              ("events", tuple(TRACE_EVENTS))):  # fmt: skip
            if getattr(self, name) not in choices:
                raise bad(name, getattr(self, name), f"not allowed; choose one of {', '.join(choices)}")
        for name, lo, hi in (("vcpus", 1, 16), ("jobs", 1, 64), ("memory_mib", 256, 8192)):
            v = getattr(self, name)
            if not isinstance(v, int) or not lo <= v <= hi:
                raise bad(name, v, f"out of range {lo} .. {hi}")
        if not 1 <= self.timeout_s <= 7200:
            raise bad("timeout_s", self.timeout_s, "out of range 1 .. 7200 seconds")
        if not self.block_sizes or len(self.block_sizes) > 8:
            raise bad("block_sizes", self.block_sizes, "must list 1 .. 8 sizes")
        for bs in self.block_sizes:
            if bs % 512 or not 512 <= bs <= 4 << 20:
                raise bad("block_sizes", bs, "out of range: a multiple of 512 from 512 to 4M")
            if self.bytes_per_job % bs:
                raise bad("bytes_per_job", self.bytes_per_job, f"is not a multiple of block size {bs}")
        if not 1 <= self.bytes_per_job <= 256 << 20:
            raise bad("bytes_per_job", self.bytes_per_job, "out of range 1 .. 256M")
        if not self.cpu.replace("-", "").replace(",", "").replace("=", "").isalnum():
            raise bad("cpu", self.cpu, "is not a QEMU CPU model name")

    @property
    def kernel_cmdline(self) -> str:
        strict = 1 if self.mode == "strict" else 0
        return f"console=ttyAMA0 rdinit=/init iommu.passthrough=0 iommu.strict={strict} panic=-1 quiet"

    @property
    def disk_bytes(self) -> int:
        """A sparse disk large enough for every job's disjoint range, plus 1 MiB."""
        return self.jobs * self.bytes_per_job + (1 << 20)

    def name(self, kernel_release: str) -> str:
        """File stem: ``qemu-smmuv3-linux6.1-smp4-lazy`` (a non-default workload is not in the name)."""
        major_minor = ".".join(kernel_release.split("-")[0].split(".")[:2])
        return f"qemu-smmuv3-linux{major_minor}-smp{self.vcpus}-{self.mode}"

    def workload(self) -> dict[str, Any]:
        """The workload part, for provenance."""
        d = asdict(self)
        d["block_sizes"] = list(self.block_sizes)
        d["description"] = (
            f"{self.jobs} parallel dd job(s) per block size, each reading {self.bytes_per_job} bytes "
            f"({'iflag=direct' if self.io == 'direct' else 'buffered, page cache dropped first'}) "
            f"with block sizes {', '.join(str(b) for b in self.block_sizes)} from a virtio-blk-pci disk "
            "(iommu_platform=on,disable-legacy=on) behind the SMMUv3"
        )
        return d
