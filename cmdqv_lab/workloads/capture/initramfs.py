"""The guest's initramfs: busybox, the virtio modules and an init that runs the workload, then powers off.

The archive is written here in the ``newc`` cpio format (no ``cpio`` program, no root needed for
``/dev/console``), with fixed timestamps so the same inputs give the same bytes. The init script
prints ``cmdqv-lab:`` marker lines on the console that the host checks: which modules loaded, the
IOMMU domain type of the disk's group (``DMA`` strict, ``DMA-FQ`` lazy) and the workload's result.

>>> blob = newc([("init", 0o100755, b"#!/bin/sh\\n")])
>>> blob[:6], blob.endswith(b"\\0" * 4) and b"TRAILER!!!" in blob
(b'070701', True)
>>> "dd if=/dev/vda of=/dev/null bs=4096 count=256 skip=0 iflag=direct" in init_script(
...     CaptureSpec(block_sizes=(4096,)), ["virtio_blk"])
True
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

from cmdqv_lab.workloads.capture.spec import CaptureSpec

__all__ = ["MARK", "build_initramfs", "init_script", "newc"]

#: Prefix of the console lines the init script prints for the host.
MARK = "cmdqv-lab:"
_DIR, _CHR = 0o040755, 0o020600


def newc(entries: Iterable[tuple[str, int, bytes | tuple[int, int]]]) -> bytes:
    """A cpio ``newc`` archive of ``(path, mode, data)``; for a device node ``data`` is ``(major, minor)``."""
    out = bytearray()

    def put(ino: int, name: str, mode: int, data: bytes, rdev: tuple[int, int]) -> None:
        nm = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nm), 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + nm)
        out.extend(b"\0" * (-len(out) % 4) + data + b"\0" * (-len(data) % 4))

    for ino, (name, mode, data) in enumerate(entries, 1):
        if isinstance(data, tuple):
            put(ino, name, mode, b"", data)
        else:
            put(ino, name, mode, data, (0, 0))
    put(0, "TRAILER!!!", 0, b"", (0, 0))
    return bytes(out)


def init_script(spec: CaptureSpec, modules: list[str]) -> str:
    """The guest's ``/init``: mount, load ``modules`` in order, run the reads, report, power off."""
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev",
        f'fail() {{ echo "{MARK} FAIL $*"; poweroff -f; sleep 10; }}',
        f'echo "{MARK} kernel $(uname -r) cpus $(grep -c ^processor /proc/cpuinfo)"',
    ]
    lines += [f"insmod /lib/modules/{m}.ko || fail insmod {m}" for m in modules]
    lines += [
        "i=0; while [ ! -b /dev/vda ]; do i=$((i+1)); [ $i -gt 400 ] && fail no /dev/vda; sleep 0.05; done",
        f'echo "{MARK} iommu_group_type $(cat /sys/block/vda/device/../iommu_group/type 2>/dev/null ||'
        ' cat /sys/kernel/iommu_groups/*/type | tr "\\n" " ")"',
        f'echo "{MARK} workload start"',
        "rc=0",
    ]
    flag = " iflag=direct" if spec.io == "direct" else ""
    for bs in spec.block_sizes:
        count = spec.bytes_per_job // bs
        if spec.io == "buffered":
            lines.append("sync; echo 3 > /proc/sys/vm/drop_caches")
        lines.append("pids=''")
        for j in range(spec.jobs):
            lines.append(
                f"dd if=/dev/vda of=/dev/null bs={bs} count={count} skip={j * count}{flag} 2>/tmp/dd.{bs}.{j} &"
                ' pids="$pids $!"'
            )
        lines.append("for p in $pids; do wait $p || rc=$?; done")
        lines.append(f"[ $rc = 0 ] || {{ cat /tmp/dd.{bs}.*; fail dd bs={bs} rc=$rc; }}")
    lines += [f'echo "{MARK} workload done rc=$rc"', "poweroff -f", "sleep 10", ""]
    return "\n".join(lines)


def build_initramfs(path: Path, busybox: bytes, modules: list[Path], spec: CaptureSpec) -> str:
    """Write the gzip-compressed initramfs to ``path``; returns the init script."""
    script = init_script(spec, [m.stem for m in modules])
    entries: list[tuple[str, int, bytes | tuple[int, int]]] = [
        (d, _DIR, b"") for d in ("bin", "dev", "lib", "lib/modules", "proc", "sys", "tmp")
    ]
    entries += [
        ("dev/console", _CHR, (5, 1)),
        ("bin/busybox", 0o100755, busybox),
        ("init", 0o100755, script.encode()),
    ]
    entries += [(f"lib/modules/{m.name}", 0o100644, m.read_bytes()) for m in modules]
    path.write_bytes(gzip.compress(newc(entries), compresslevel=6, mtime=0))
    return script
