"""Trace capture: spec validation, initramfs, package unpacking (fake .deb), timeouts; one real capture (slow)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from cmdqv_lab.errors import ParamError
from cmdqv_lab.workloads.capture import CaptureError, CaptureSpec, capture_trace, parse_size, provenance_path
from cmdqv_lab.workloads.capture.debian import depends_of, extract_kernel, parse_control
from cmdqv_lab.workloads.capture.initramfs import build_initramfs, init_script, newc
from cmdqv_lab.workloads.capture.run import _run_guest, find_qemu
from cmdqv_lab.workloads.qemu_trace import parse_trace

# ----------------------------------------------------------------------------- spec


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"vcpus": 0}, "vcpus=0 out of range 1 .. 16"),
        ({"mode": "eager"}, "mode='eager' not allowed; choose one of strict, lazy"),
        ({"io": "mmap"}, "io='mmap' not allowed"),
        ({"events": "some"}, "events='some' not allowed; choose one of cmdq, all"),
        ({"block_sizes": (1000,)}, "block_sizes=1000 out of range"),
        ({"block_sizes": ()}, "must list 1 .. 8 sizes"),
        ({"bytes_per_job": 5000}, "bytes_per_job=5000 is not a multiple of block size 4096"),
        ({"timeout_s": 0.1}, "timeout_s=0.1 out of range"),
        ({"cpu": "a57; rm -rf /"}, "is not a QEMU CPU model name"),
    ],
)
def test_spec_validation(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ParamError, match=r"^capture: ") as e:
        CaptureSpec(**kwargs)
    assert fragment in str(e.value)


def test_spec_derived_values() -> None:
    s = CaptureSpec(vcpus=4, mode="lazy", jobs=4, bytes_per_job=parse_size("8M"))
    assert "iommu.strict=0" in s.kernel_cmdline and "iommu.passthrough=0" in s.kernel_cmdline
    assert "iommu.strict=1" in CaptureSpec().kernel_cmdline
    assert s.disk_bytes == 4 * (8 << 20) + (1 << 20)
    assert s.name("6.1.0-50-arm64") == "qemu-smmuv3-linux6.1-smp4-lazy"
    assert s.workload()["block_sizes"] == [4096, 65536]
    assert [parse_size(x) for x in ("512", "4k", "64K", "1M", "2MiB", "1G")] == [
        512,
        4096,
        65536,
        1 << 20,
        2 << 20,
        1 << 30,
    ]
    with pytest.raises(ParamError, match="size 'lots'"):
        parse_size("lots")


def test_provenance_path() -> None:
    assert provenance_path(Path("d/a.log.gz")) == Path("d/a.json")
    assert provenance_path(Path("d/a.log")) == Path("d/a.json")


# ----------------------------------------------------------------------------- initramfs


def read_newc(blob: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """An independent newc reader: (name, mode, data, rdev) per entry, checking 4-byte alignment."""
    out, pos = [], 0
    while True:
        assert blob[pos : pos + 6] == b"070701" and pos % 4 == 0
        f = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name = blob[pos + 110 : pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        data = blob[pos : pos + filesize]
        pos = (pos + filesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out.append((name, f[1], data, (f[9], f[10])))


def test_newc_archive_reads_back() -> None:
    entries = [
        ("dev", 0o040755, b""),
        ("dev/console", 0o020600, (5, 1)),
        ("init", 0o100755, b"#!/bin/sh\necho hi\n"),
    ]
    got = read_newc(newc(entries))
    assert [(n, m) for n, m, _, _ in got] == [
        ("dev", 0o040755),
        ("dev/console", 0o020600),
        ("init", 0o100755),
    ]
    assert got[1][3] == (5, 1) and got[2][2] == b"#!/bin/sh\necho hi\n"
    if shutil.which("cpio"):
        listing = subprocess.run(
            ["cpio", "-t", "--quiet"], input=newc(entries), capture_output=True, check=True
        )
        assert listing.stdout.decode().split() == ["dev", "dev/console", "init"]


def test_init_script_runs_the_workload(tmp_path: Path) -> None:
    spec = CaptureSpec(jobs=3, block_sizes=(4096,), bytes_per_job=8192, io="buffered")
    script = init_script(spec, ["virtio_pci_modern_dev", "virtio_pci", "virtio_blk"])
    lines = script.splitlines()
    insmods = [x.split()[1] for x in lines if x.startswith("insmod")]
    assert insmods == [f"/lib/modules/{m}.ko" for m in ("virtio_pci_modern_dev", "virtio_pci", "virtio_blk")]
    dds = [x for x in lines if x.startswith("dd ")]
    assert [d.split("skip=")[1].split()[0] for d in dds] == ["0", "2", "4"]
    assert all("iflag=direct" not in d and "bs=4096 count=2" in d for d in dds)
    assert "drop_caches" in script and script.rstrip().endswith("sleep 10")
    assert "iflag=direct" in init_script(CaptureSpec(block_sizes=(4096,)), [])
    ko = tmp_path / "virtio_blk.ko"
    ko.write_bytes(b"\x7fELF-module")
    build_initramfs(tmp_path / "i.cpio.gz", b"BUSYBOX", [ko], spec)
    import gzip

    names = {n: d for n, _, d, _ in read_newc(gzip.decompress((tmp_path / "i.cpio.gz").read_bytes()))}
    assert names["bin/busybox"] == b"BUSYBOX" and names["lib/modules/virtio_blk.ko"] == b"\x7fELF-module"
    assert names["init"].decode() == init_script(spec, ["virtio_blk"])


# ----------------------------------------------------------------------------- packages


def fake_module(name: str, depends: str) -> bytes:
    """A minimal ELF64 with a .modinfo section, as the kernel's modpost writes it."""
    modinfo = f"license=GPL\0depends={depends}\0name={name}\0".encode()
    shstr = b"\0.modinfo\0.shstrtab\0"
    off_mod, off_str = 64, 64 + len(modinfo)
    shoff = off_str + len(shstr)
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)
    sections = [bytes(64)]
    sections.append(struct.pack("<IIQQQQ", 1, 1, 0, 0, off_mod, len(modinfo)).ljust(64, b"\0"))
    sections.append(struct.pack("<IIQQQQ", 10, 3, 0, 0, off_str, len(shstr)).ljust(64, b"\0"))
    return bytes(header) + modinfo + shstr + b"".join(sections)


def fake_deb(path: Path, files: dict[str, bytes]) -> Path:
    """An ar archive with a data.tar.xz, like dpkg-deb builds."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", b""), ("data.tar.xz", buf.getvalue())]
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    path.write_bytes(bytes(out))
    return path


def test_extract_kernel_resolves_module_dependencies(tmp_path: Path) -> None:
    mods = "lib/modules/6.1.0-9-arm64/kernel/drivers"
    deb = fake_deb(tmp_path / "linux-image-6.1.0-9-arm64_6.1.1-1_arm64.deb", {
        "boot/vmlinuz-6.1.0-9-arm64": b"IMAGE", "boot/config-6.1.0-9-arm64": b"CONFIG_ARM_SMMU_V3=y\n",
        f"{mods}/virtio/virtio_pci.ko": fake_module("virtio_pci", "virtio_pci_modern_dev,virtio_pci_legacy_dev"),
        f"{mods}/virtio/virtio_pci_modern_dev.ko": fake_module("virtio_pci_modern_dev", ""),
        f"{mods}/virtio/virtio_pci_legacy_dev.ko": fake_module("virtio_pci_legacy_dev", ""),
        f"{mods}/block/virtio_blk.ko": fake_module("virtio_blk", "virtio_ring"),
        f"{mods}/net/virtio_net.ko": fake_module("virtio_net", ""),
        "lib/modules/6.1.0-9-arm64/modules.builtin": b"kernel/drivers/virtio/virtio_ring.ko\n",
    })  # fmt: skip
    k = extract_kernel(deb, tmp_path / "k", ("virtio_pci", "virtio_blk"))
    names = [p.stem for p in k.modules]
    assert sorted(names) == ["virtio_blk", "virtio_pci", "virtio_pci_legacy_dev", "virtio_pci_modern_dev"]
    assert names.index("virtio_pci") > max(
        names.index("virtio_pci_modern_dev"), names.index("virtio_pci_legacy_dev")
    )
    assert (
        k.release == "6.1.0-9-arm64" and k.vmlinuz.read_bytes() == b"IMAGE" and k.builtin == ("virtio_ring",)
    )
    assert extract_kernel(deb, tmp_path / "k", ("virtio_pci", "virtio_blk")) == k  # cached
    with pytest.raises(CaptureError, match="modules virtio_scsi not found in the package"):
        extract_kernel(deb, tmp_path / "k2", ("virtio_scsi",))
    with pytest.raises(CaptureError, match="not a Debian package"):
        extract_kernel(tmp_path / "k" / "vmlinuz", tmp_path / "k3", ("virtio_blk",))


def test_control_parsing() -> None:
    info = parse_control(
        "Package: linux-image-arm64\nVersion: 6.1.176-1\nDepends: linux-image-6.1.0-50-arm64 (= 6.1.176-1)\n"
    )
    assert depends_of(info["Depends"]) == {"linux-image-6.1.0-50-arm64"}


# ----------------------------------------------------------------------------- running


def test_missing_qemu_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        CaptureError, match=r"no-qemu-here not found on PATH: install Debian package qemu-system-arm"
    ):
        find_qemu("no-qemu-here", install=False, log=print)


def test_a_hung_guest_is_killed(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import time; print('booting', flush=True); time.sleep(60)"]
    with pytest.raises(CaptureError, match=r"did not power off within 1 s .*booting"):
        _run_guest(cmd, tmp_path, 1.0)
    with pytest.raises(CaptureError, match=r"QEMU exited with status 3"):
        _run_guest([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, 30.0)


@pytest.mark.slow
@pytest.mark.capture
def test_capture_end_to_end(tmp_path: Path) -> None:
    """Boot Debian's arm64 kernel under QEMU and check the trace it writes (needs network once, then cached)."""
    spec = CaptureSpec(vcpus=2, jobs=2, block_sizes=(4096,), bytes_per_job=256 << 10, timeout_s=240)
    prov = capture_trace(spec, tmp_path, log=print)
    trace = tmp_path / prov["trace"]
    assert trace.name.startswith("qemu-smmuv3-linux") and trace.name.endswith("-smp2-strict.log.gz")
    s = parse_trace(trace).summary()
    tlbi = sum(v for k, v in s["opcodes"].items() if k.startswith("CMD_TLBI_"))
    assert tlbi > 0 and s["opcodes"].get("CMD_SYNC", 0) > 0
    assert s["threads"] >= 1 and s["malformed"] == {}
    saved = json.loads(provenance_path(trace).read_text())
    assert saved == prov
    assert saved["sha256"] == hashlib.sha256(trace.read_bytes()).hexdigest()
    assert saved["iommu_domain_type"] == "DMA" and saved["vcpus"] == 2
    assert "iommu.strict=1" in saved["kernel_command_line"] and "-smp" in saved["qemu_command"]
    assert saved["summary"]["commands"] == s["commands"]
