"""Capturing real SMMUv3 command streams: Debian's arm64 Linux under QEMU with SMMUv3 tracing.

``cmdqv-lab trace capture`` (or :func:`capture_trace`) downloads ``linux-image-*-arm64`` and
``busybox-static`` for arm64 with apt-get (private lists under the cache directory; dpkg's
architecture is not changed), builds a busybox initramfs whose init loads the virtio modules from
the kernel package and reads a ``virtio-blk-pci`` disk placed behind the SMMU, boots it with
``qemu-system-aarch64 -M virt,iommu=smmuv3``, and writes the gzip-compressed trace with a provenance
JSON beside it.

Modules: :mod:`.spec` (what to run, validated), :mod:`.debian` (packages), :mod:`.initramfs` (the
guest), :mod:`.run` (QEMU, checks, provenance), :mod:`.errors`.
"""

from cmdqv_lab.workloads.capture.errors import CaptureError
from cmdqv_lab.workloads.capture.run import cache_dir, capture_trace, provenance_path
from cmdqv_lab.workloads.capture.spec import CaptureSpec, parse_size

__all__ = ["CaptureError", "CaptureSpec", "cache_dir", "capture_trace", "parse_size", "provenance_path"]
