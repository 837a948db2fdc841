"""Debian arm64 packages for a capture: apt-get without changing dpkg's architecture, .deb unpacking.

:class:`AptArm64` keeps its own package lists under the cache directory and runs ``apt-get
-oAPT::Architecture=arm64 -oAPT::Architectures=arm64 -oDir::State::Lists=DIR ...`` (with its own
sources list, so the host's configuration is not touched), then ``apt-get download``; the .debs
stay in the cache. :func:`extract_kernel` unpacks what a boot needs from ``linux-image-*-arm64``
(vmlinuz, config, and the modules named, with their dependencies read from each module's
``.modinfo``, since the package ships no ``modules.dep``). Unpacking is done here (``ar`` + tar),
so neither ``dpkg-deb`` nor ``cpio`` is needed.

>>> parse_control("Package: busybox-static\\nVersion: 1:1.35.0-4\\nDepends: a (>= 1), b | c\\n")["Version"]
'1:1.35.0-4'
>>> sorted(depends_of("Depends: linux-image-6.1.0-50-arm64 (= 6.1.176-1), kmod | x"))
['kmod', 'linux-image-6.1.0-50-arm64']
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cmdqv_lab.workloads.capture.errors import CaptureError

__all__ = ["AptArm64", "Deb", "KernelFiles", "deb_members", "depends_of", "extract_kernel", "parse_control"]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
#: Lists older than this are refreshed (a point release may have replaced the kernel).
LISTS_MAX_AGE_S = 24 * 3600


def parse_control(text: str) -> dict[str, str]:
    """The first stanza of a Debian control text as a dict (continuation lines joined)."""
    out: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if out:
                break
            continue
        if line[0] in " \t" and key:
            out[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def depends_of(field: str) -> set[str]:
    """Package names in a Depends field (first alternative of each, versions dropped)."""
    field = field.split(":", 1)[1] if field.startswith("Depends:") else field
    return {alt.split("|")[0].split("(")[0].strip() for alt in field.split(",") if alt.strip()}


@dataclass(frozen=True)
class Deb:
    """A downloaded package: name, version, path in the cache, sha256 from the archive index."""

    package: str
    version: str
    path: Path
    sha256: str


class AptArm64:
    """apt-get for arm64 packages with private lists under ``root`` (no dpkg architecture change)."""

    def __init__(self, root: Path, *, suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR) -> None:
        self.suite, self.mirror = suite, mirror
        self.root = root / "apt" / f"{suite}-arm64"
        self.debs = root / "debs"
        self.apt_get = shutil.which("apt-get")
        self.apt_cache = shutil.which("apt-cache")

    def _options(self) -> list[str]:
        r = self.root
        opts = [
            "-oAPT::Architecture=arm64",
            "-oAPT::Architectures=arm64",
            f"-oDir::State::Lists={r / 'lists'}",
            f"-oDir::Etc::SourceList={r / 'sources.list'}",
            "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::Cache={r / 'cache'}",
            "-oDir::State::status=/dev/null",
            "-oAcquire::Languages=none",
            "-oAPT::Get::List-Cleanup=false",
        ]
        if os.geteuid() == 0:
            opts.append("-oAPT::Sandbox::User=root")  # the cache is not readable by _apt
        return opts

    def _run(self, tool: str | None, args: list[str], cwd: Path | None = None) -> str:
        if tool is None:
            raise CaptureError(
                "apt-get not found: capture fetches Debian's arm64 kernel and busybox-static with apt-get"
                " (run on Debian/Ubuntu, or pass --kernel-deb and --busybox-deb)"
            )
        cmd = [tool, *self._options(), *args]
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            err = " ".join((p.stderr or p.stdout).strip().splitlines()[-2:])
            raise CaptureError(f"{Path(tool).name} {' '.join(args)} failed: {err}")
        return p.stdout

    def update(self, *, refresh: bool = False) -> None:
        """Fetch the arm64 package lists unless fresh ones are cached."""
        lists = self.root / "lists"
        stamp = self.root / "updated"
        if not refresh and stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S:
            return
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (self.root / "sources.list").write_text(f"deb {self.mirror} {self.suite} main\n")
        try:
            self._run(self.apt_get, ["-q", "update"])
        except CaptureError:
            if stamp.exists():  # offline: keep using the cached lists
                return
            raise
        stamp.touch()

    def show(self, package: str) -> dict[str, str]:
        """The candidate version's control stanza (Version, Depends, SHA256, ...)."""
        out = self._run(self.apt_cache, ["show", "--no-all-versions", package])
        info = parse_control(out)
        if "Version" not in info:
            raise CaptureError(f"apt-cache show {package}: no arm64 package in {self.suite}")
        return info

    def kernel_package(self) -> str:
        """The versioned kernel package ``linux-image-arm64`` depends on (e.g. linux-image-6.1.0-50-arm64)."""
        deps = depends_of(self.show("linux-image-arm64").get("Depends", ""))
        names = sorted(d for d in deps if re.fullmatch(r"linux-image-[0-9].*-arm64(-unsigned)?", d))
        if not names:
            raise CaptureError(f"linux-image-arm64 in {self.suite} depends on no linux-image-*-arm64 package")
        return names[0]

    def download(self, package: str) -> Deb:
        """Download the candidate version of ``package`` into the cache (reused if already there)."""
        info = self.show(package)
        version = info["Version"]
        self.debs.mkdir(parents=True, exist_ok=True)
        name = f"{package}_{version.split(':')[-1]}_arm64.deb"
        path = self.debs / name
        if not path.exists():
            tmp = self.debs / f".download-{os.getpid()}"
            tmp.mkdir(exist_ok=True)
            try:
                self._run(self.apt_get, ["-q", "download", f"{package}={version}"], cwd=tmp)
                got = list(tmp.glob("*.deb"))
                if len(got) != 1:
                    raise CaptureError(f"apt-get download {package}={version} produced {len(got)} files")
                got[0].replace(path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return Deb(package, version, path, info.get("SHA256", ""))


def deb_members(path: Path) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Yield ``(tar, member)`` for each member of a .deb's data archive (ar + tar.{xz,gz,zst})."""
    raw = path.read_bytes()
    if raw[:8] != b"!<arch>\n":
        raise CaptureError(f"{path}: not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(raw):
        name = raw[pos : pos + 16].decode().strip().rstrip("/")
        size = int(raw[pos + 48 : pos + 58].decode().strip())
        data = raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size & 1)
        if not name.startswith("data.tar"):
            continue
        if name.endswith(".zst"):
            zstd = shutil.which("zstd")
            if zstd is None:
                raise CaptureError(f"{path}: data.tar.zst needs the zstd program (apt-get install zstd)")
            data = subprocess.run([zstd, "-dc"], input=data, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                yield tar, member
        return
    raise CaptureError(f"{path}: no data.tar member")


def _modinfo(elf: bytes) -> dict[str, str]:
    """``name`` and ``depends`` from a kernel module's ``.modinfo`` section (ELF64 little-endian)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise CaptureError("kernel module is not a little-endian ELF64 file")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab = sections[shstrndx]
    for sh_name, _, _, _, off, size in sections:
        start = strtab[4] + sh_name
        if elf[start : elf.index(b"\0", start)] == b".modinfo":
            pairs = (kv.split(b"=", 1) for kv in elf[off : off + size].split(b"\0") if b"=" in kv)
            return {k.decode(): v.decode(errors="replace") for k, v in pairs if k in (b"name", b"depends")}
    return {}


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise CaptureError(f"{member.name}: not a regular file in the package")
    return f.read()


def _decompress(name: str, data: bytes) -> bytes:
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise CaptureError(
                f"{name}: zstd-compressed module needs the zstd program (apt-get install zstd)"
            )
        return subprocess.run([zstd, "-dc"], input=data, capture_output=True, check=True).stdout
    return data


@dataclass(frozen=True)
class KernelFiles:
    """What a boot needs from a kernel package: image, config, modules in load order."""

    release: str  # e.g. 6.1.0-50-arm64
    vmlinuz: Path
    config: Path
    modules: tuple[Path, ...]  # decompressed .ko files, dependencies first
    builtin: tuple[str, ...]  # requested modules built into the kernel (nothing to load)


def _module_name(member: str) -> str:
    return re.sub(r"\.ko(\.(xz|gz|zst))?$", "", member.rsplit("/", 1)[-1]).replace("-", "_")


def extract_kernel(deb: Path, dest: Path, wanted: tuple[str, ...]) -> KernelFiles:
    """Unpack vmlinuz, config and the ``wanted`` modules with their dependencies into ``dest``.

    The result is cached: ``dest/kernel.json`` records it and a second call reads that back.
    """
    index = dest / "kernel.json"
    if index.exists():
        info = json.loads(index.read_text())
        return KernelFiles(
            info["release"], dest / info["vmlinuz"], dest / info["config"],
            tuple(dest / m for m in info["modules"]), tuple(info["builtin"]),
        )  # fmt: skip
    dest.mkdir(parents=True, exist_ok=True)
    need = {w.replace("-", "_") for w in wanted}
    found: dict[str, tuple[bytes, str]] = {}  # name -> (module bytes, depends)
    builtin: set[str] = set()
    vmlinuz = config = None
    release = ""
    for _ in range(8):  # each pass over the package picks up one more level of dependencies
        todo = need - set(found) - builtin
        if not todo:
            break
        for tar, m in deb_members(deb):
            name = m.name.lstrip("./")
            if vmlinuz is None and re.fullmatch(r"boot/vmlinu[xz]-.*", name):
                release = name.split("-", 1)[1]
                vmlinuz = dest / "vmlinuz"
                vmlinuz.write_bytes(_read(tar, m))
            elif config is None and name.startswith("boot/config-"):
                config = dest / "config"
                config.write_bytes(_read(tar, m))
            elif name.endswith("/modules.builtin"):
                builtin |= {_module_name(x) for x in _read(tar, m).decode().split()} & todo
            elif m.isfile() and re.search(r"\.ko(\.(xz|gz|zst))?$", name) and _module_name(name) in todo:
                ko = _decompress(name, _read(tar, m))
                found[_module_name(name)] = (ko, _modinfo(ko).get("depends", ""))
        for _, deps in list(found.values()):
            need |= {d.replace("-", "_") for d in deps.split(",") if d}
        if need - set(found) - builtin == todo:
            break
    missing = need - set(found) - builtin
    if vmlinuz is None or config is None or missing:
        what = f"modules {', '.join(sorted(missing))}" if missing else "boot/vmlinuz or boot/config"
        raise CaptureError(f"{deb.name}: {what} not found in the package")
    order: list[str] = []

    def visit(name: str, stack: tuple[str, ...] = ()) -> None:
        if name in order or name in builtin:
            return
        if name in stack:
            raise CaptureError(f"{deb.name}: module dependency cycle through {name}")
        for d in found[name][1].split(","):
            if d:
                visit(d.replace("-", "_"), (*stack, name))
        order.append(name)

    for name in sorted(found):
        visit(name)
    (dest / "modules").mkdir(exist_ok=True)
    paths = []
    for name in order:
        p = dest / "modules" / f"{name}.ko"
        p.write_bytes(found[name][0])
        paths.append(p)
    info = {"release": release, "vmlinuz": "vmlinuz", "config": "config",
            "modules": [str(p.relative_to(dest)) for p in paths], "builtin": sorted(builtin)}  # fmt: skip
    index.write_text(json.dumps(info, indent=1) + "\n")
    return KernelFiles(release, vmlinuz, config, tuple(paths), tuple(sorted(builtin)))
