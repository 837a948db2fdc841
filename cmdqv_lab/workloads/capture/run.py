"""One capture end to end: packages, initramfs, QEMU with SMMUv3 tracing, compressed trace and provenance.

The guest is ``qemu-system-aarch64 -M virt,iommu=smmuv3`` (TCG) booting Debian's arm64 kernel
straight into a busybox initramfs, with one ``virtio-blk-pci`` disk (``iommu_platform=on,
disable-legacy=on``) so its DMA goes through the SMMU. QEMU writes the ``smmuv3_*`` trace events
(log backend, ``-msg timestamp=on`` prefixes) to a file; the guest runs the workload and powers off;
the host checks the guest's ``cmdqv-lab:`` console markers, parses the trace (strictly) and writes
``NAME.log.gz`` with ``NAME.json`` beside it (provenance: packages, QEMU version and command line,
kernel command line, workload, date, sha256).

>>> provenance_path(Path("data/traces/qemu-smmuv3-linux6.1-smp1-strict.log.gz")).name
'qemu-smmuv3-linux6.1-smp1-strict.json'
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cmdqv_lab import __version__
from cmdqv_lab.errors import TraceFormatError
from cmdqv_lab.workloads.capture.debian import (
    DEFAULT_MIRROR,
    DEFAULT_SUITE,
    AptArm64,
    Deb,
    deb_members,
    extract_kernel,
)
from cmdqv_lab.workloads.capture.errors import CaptureError
from cmdqv_lab.workloads.capture.initramfs import MARK, build_initramfs
from cmdqv_lab.workloads.capture.spec import TRACE_EVENTS, CaptureSpec
from cmdqv_lab.workloads.qemu_trace import parse_trace

__all__ = ["NOTE", "cache_dir", "capture_trace", "find_qemu", "provenance_path"]

#: Modules the guest loads (with their dependencies); virtio itself and the PCI host are built in.
MODULES = ("virtio_pci", "virtio_blk")
NOTE = (
    "Timestamps are host wall-clock time of QEMU's TCG emulation: the order of commands and their"
    " batching into doorbells are the real driver's; the gaps between them are not hardware timing."
)


def cache_dir() -> Path:
    """``$CMDQV_LAB_CACHE``, else ``$XDG_CACHE_HOME/cmdqv-lab``, else ``~/.cache/cmdqv-lab``."""
    if os.environ.get("CMDQV_LAB_CACHE"):
        return Path(os.environ["CMDQV_LAB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cmdqv-lab"


def provenance_path(trace: Path) -> Path:
    name = trace.name
    for suffix in (".log.gz", ".gz", ".log"):
        if name.endswith(suffix):
            return trace.with_name(name[: -len(suffix)] + ".json")
    return trace.with_name(name + ".json")


def find_qemu(qemu: str, *, install: bool, log: Callable[[str], None]) -> str:
    """Path of the QEMU binary; installs Debian's qemu-system-arm when missing, allowed and root."""
    found = shutil.which(qemu)
    if found:
        return found
    if qemu == "qemu-system-aarch64" and install and os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing qemu-system-arm (apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        get = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "qemu-system-arm"]
        for cmd in (get, ["apt-get", "update", "-q"], get):  # retry after refreshing stale lists
            subprocess.run(cmd, env=env, capture_output=True, check=False)
            if shutil.which(qemu):
                return str(shutil.which(qemu))
    hint = "apt-get install qemu-system-arm (as root)" if qemu == "qemu-system-aarch64" else "check --qemu"
    raise CaptureError(f"{qemu} not found on PATH: install Debian package qemu-system-arm ({hint})")


def _deb(apt: AptArm64, given: Path | None, package: str) -> Deb:
    if given is None:
        return apt.download(package)
    if not given.is_file():
        raise CaptureError(f"{given}: no such .deb file")
    return Deb(given.name.split("_")[0], given.name.split("_")[1] if "_" in given.name else "?", given, "")


def _busybox(deb: Path) -> bytes:
    for tar, m in deb_members(deb):
        if m.name.lstrip("./") in ("bin/busybox", "usr/bin/busybox") and m.isfile():
            f = tar.extractfile(m)
            assert f is not None
            return f.read()
    raise CaptureError(f"{deb.name}: no bin/busybox in the package")


def qemu_command(qemu: str, spec: CaptureSpec, work: Path, vmlinuz: Path) -> list[str]:
    """The full QEMU command line of a capture (paths under ``work``)."""
    accel = "tcg,thread=multi" if spec.vcpus > 1 else "tcg"
    return [
        qemu, "-M", "virt,iommu=smmuv3", "-accel", accel, "-cpu", spec.cpu, "-smp", str(spec.vcpus),
        "-m", f"{spec.memory_mib}M", "-nodefaults", "-no-user-config", "-display", "none",
        "-serial", "stdio", "-no-reboot", "-kernel", str(vmlinuz), "-initrd", str(work / "initramfs.cpio.gz"),
        "-append", spec.kernel_cmdline,
        "-drive", f"file={work / 'disk.img'},format=raw,if=none,id=disk0,readonly=on",
        "-device", "virtio-blk-pci,drive=disk0,iommu_platform=on,disable-legacy=on",
        "-msg", "timestamp=on", "-trace", f"events={work / 'events'},file={work / 'trace.log'}",
    ]  # fmt: skip


def _run_guest(cmd: list[str], work: Path, timeout_s: float) -> tuple[list[str], float]:
    console = work / "console.log"
    t = time.monotonic()
    with console.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            tail = console.read_text(errors="replace").strip().splitlines()[-3:]
            raise CaptureError(
                f"guest did not power off within {timeout_s:g} s (hung? killed QEMU); last console lines: "
                + " | ".join(tail)
            ) from None
    lines = console.read_text(errors="replace").splitlines()
    if rc != 0:
        raise CaptureError(f"QEMU exited with status {rc}: " + " | ".join(lines[-3:]))
    return lines, time.monotonic() - t


def capture_trace(
    spec: CaptureSpec,
    out: Path,
    *,
    cache: Path | None = None,
    suite: str = DEFAULT_SUITE,
    mirror: str = DEFAULT_MIRROR,
    qemu: str = "qemu-system-aarch64",
    install: bool = True,
    kernel_deb: Path | None = None,
    busybox_deb: Path | None = None,
    refresh: bool = False,
    keep_workdir: bool = False,
    invocation: str | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Capture one trace; ``out`` is the ``.log.gz`` path or a directory (then the name says the spec).

    ``invocation`` (the command line that asked for it) is recorded in the provenance record,
    which is written beside the trace and returned.
    """
    started = time.monotonic()
    cache = cache or cache_dir()
    binary = find_qemu(qemu, install=install, log=log)
    qemu_version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.splitlines()[
        0
    ]
    apt = AptArm64(cache, suite=suite, mirror=mirror)
    if kernel_deb is None or busybox_deb is None:
        log(f"arm64 package lists for {suite} ({apt.root})")
        apt.update(refresh=refresh)
    kdeb = _deb(apt, kernel_deb, apt.kernel_package() if kernel_deb is None else "")
    bdeb = _deb(apt, busybox_deb, "busybox-static")
    log(f"kernel {kdeb.package} {kdeb.version}, {bdeb.package} {bdeb.version}")
    kernel = extract_kernel(kdeb.path, cache / "kernels" / kdeb.path.stem, MODULES)
    busybox = _busybox(bdeb.path)
    if out.is_dir() or not out.name.endswith(".gz"):
        out = out / f"{spec.name(kernel.release)}.log.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cmdqv-capture-") as tmp:
        work = Path(tmp)
        script = build_initramfs(work / "initramfs.cpio.gz", busybox, list(kernel.modules), spec)
        with (work / "disk.img").open("wb") as f:
            f.truncate(spec.disk_bytes)
        (work / "events").write_text("\n".join(TRACE_EVENTS[spec.events]) + "\n")
        cmd = qemu_command(binary, spec, work, kernel.vmlinuz)
        log(f"booting {spec.vcpus} vCPU(s), {spec.mode}: {shlex.join(cmd)}")
        console, guest_s = _run_guest(cmd, work, spec.timeout_s)
        marks = [line.split(MARK, 1)[1].strip() for line in console if MARK in line]
        failed = [m for m in marks if m.startswith("FAIL")]
        if failed or not any(m.startswith("workload done rc=0") for m in marks):
            raise CaptureError(f"guest workload failed: {failed[0] if failed else 'no completion marker'};"
                               f" console: {' | '.join(console[-3:])}")  # fmt: skip
        group = next((m.split(None, 1)[1] for m in marks if m.startswith("iommu_group_type ")), "?").strip()
        expect = "DMA" if spec.mode == "strict" else "DMA-FQ"
        if expect not in group.split():
            raise CaptureError(
                f"guest IOMMU domain type is {group!r}, expected {expect} for {spec.mode} mode"
            )
        raw = (work / "trace.log").read_bytes()
        blob = gzip.compress(raw, compresslevel=9, mtime=0)
        part = out.with_name(out.name + ".part")
        part.write_bytes(blob)
        try:
            summary = parse_trace(part).summary()
        except TraceFormatError as e:
            raise CaptureError(f"captured trace does not parse: {e}") from None
        part.replace(out)
        if keep_workdir:
            shutil.copytree(work, out.with_name(out.name + ".work"), dirs_exist_ok=True)
    ops = summary["opcodes"]
    if not any(k.startswith("CMD_TLBI_") for k in ops) or "CMD_SYNC" not in ops:
        raise CaptureError(
            f"{out}: trace has no TLBI or no CMD_SYNC commands ({ops}); is the disk behind the SMMU?"
        )
    prov = {
        "trace": out.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "sha256_uncompressed": hashlib.sha256(raw).hexdigest(),
        "bytes": len(blob),
        "lines": summary["lines"],
        "captured_utc": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "captured_by": f"cmdqv-lab {__version__} trace capture",
        "invocation": invocation,
        "kernel": {"package": kdeb.package, "version": kdeb.version, "release": kernel.release,
                   "deb_sha256": kdeb.sha256, "suite": suite, "mirror": mirror, "modules": list(MODULES)},
        "busybox": {"package": bdeb.package, "version": bdeb.version, "deb_sha256": bdeb.sha256},
        "qemu": {"binary": binary, "version": qemu_version},
        "qemu_command": [a.replace(str(work), "$WORK").replace(str(cache), "$CACHE") for a in cmd],
        "kernel_command_line": spec.kernel_cmdline,
        "trace_events": list(TRACE_EVENTS[spec.events]),
        "workload": spec.workload(),
        "vcpus": spec.vcpus,
        "invalidation": spec.mode,
        "iommu_domain_type": group,
        "init_script": script.splitlines(),
        "guest_seconds": round(guest_s, 2),
        "capture_seconds": round(time.monotonic() - started, 2),
        "host": {"machine": platform.machine(), "system": platform.platform(), "cpus": os.cpu_count()},
        "summary": {k: summary[k] for k in ("commands", "doorbells", "opcodes", "batch_sizes", "threads")},
        "note": NOTE,
    }  # fmt: skip
    text = json.dumps(prov, indent=2) + "\n"
    provenance_path(out).write_text(text)
    return dict(json.loads(text))  # as saved (JSON object keys are strings)
