"""Profile the compiled engine with Linux perf: a symbol map of its functions, then samples of a workload.

    .venv/bin/python scripts/perf_engine.py -s host-map-unmap --set cpus=16 --ops 400000
    perf report -i /tmp/engine.perf --no-children --sort symbol     # more than the table printed

perf cannot name code that numba generated at run time: its samples show bare addresses. This script
compiles the engine afresh in a temporary cache directory (about 40 s; a cached engine keeps no object
code in memory), reads the symbol table of the compiled event loop's object code (every engine
function that is not inlined is linked into the loop's library), looks each function's address up in
the JIT and writes ``/tmp/perf-<pid>.map``, which perf reads when it reports. Then it starts
``perf record`` on itself, runs the scenario ``--repeat`` times on pre-built inputs (the engine only,
as ``benchmarks/bench_engine.py``), stops perf and prints the engine functions' shares of the
samples. Nothing in the project changes; the cache directory is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def elf_functions(obj: bytes) -> list[tuple[str, int]]:
    """(name, size) of every defined function symbol of an ELF64 little-endian object file."""
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        raise ValueError("not an ELF64 little-endian object")
    (shoff,) = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize) for i in range(shnum)]
    out = []
    for sh in sections:
        if sh[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]  # sh_link: its string table
        str_off = strtab[4]
        for j in range(sh[5] // 24):
            name_off, info, _other, shndx, _value, size = struct.unpack_from("<IBBHQQ", obj, sh[4] + j * 24)
            if info & 0xF != 2 or shndx == 0:  # STT_FUNC, defined here
                continue
            end = obj.index(b"\0", str_off + name_off)
            out.append((obj[str_off + name_off : end].decode(), size))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-s", "--scenario", default="host-map-unmap")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--ops", type=int, default=400_000, help="the scenario's count")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="/tmp/engine.perf", help="perf's data file")
    ap.add_argument("--freq", type=int, default=1999, help="samples per second")
    a = ap.parse_args()
    if shutil.which("perf") is None:
        sys.exit("perf_engine: perf is not installed (Debian: apt-get install linux-perf)")

    cache = tempfile.mkdtemp(prefix="cmdqv-perf-")
    os.environ["NUMBA_CACHE_DIR"] = cache  # read when the engine is imported: a fresh compile
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.bench_engine import materialise
        from cmdqv_lab.engine import loop
        from cmdqv_lab.engine.runner import run_engine

        over = dict(kv.split("=", 1) for kv in a.set)
        cfg, blocks = materialise(a.scenario, over, a.ops, False)
        small, sblocks = materialise(a.scenario, over, 100, False)
        run_engine(small, [iter(b) for b in sblocks])  # compiles
        (cres,) = loop.run_loop.overloads.values()
        lib = cres.library
        obj = lib._get_compiled_object()  # numba keeps it after a compile (object caching is on)
        rows = []
        for name, size in elf_functions(obj):
            try:
                addr = lib.get_pointer_to_function(name)
            except Exception:  # not in this library's final module
                continue
            if addr:
                rows.append((addr, size, name))
        rows.sort()
        path = Path(f"/tmp/perf-{os.getpid()}.map")
        path.write_text("".join(f"{addr:x} {size:x} {name}\n" for addr, size, name in rows))
        print(f"perf map: {len(rows)} engine functions -> {path}")
        rec = subprocess.Popen(
            [
                "perf",
                "record",
                "-q",
                "-F",
                str(a.freq),
                "-e",
                "cpu-clock",
                "-p",
                str(os.getpid()),
                "-o",
                a.out,
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # perf attaches
        for _ in range(a.repeat):
            t = time.process_time()
            res = run_engine(cfg, [iter(b) for b in blocks])
            dt = time.process_time() - t
            print(f"{int(res.g[3]):,} commands in {dt:.2f} CPU s ({int(res.g[3]) / dt / 1e6:.2f} M/s)")
        rec.send_signal(signal.SIGINT)
        rec.wait()
        report = subprocess.run(
            ["perf", "report", "-i", a.out, "--no-children", "--sort", "symbol", "--stdio", "-q"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        print(f"share of the samples ({a.out}), engine functions by their Python name:")
        for line in report.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].startswith("_ZN9cmdqv_lab"):
                print(f"  {parts[0]:>7}  {demangle(parts[2])}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def demangle(sym: str) -> str:
    """``_ZN9cmdqv_lab6engine5lines11_line_grantB4v174...`` -> ``cmdqv_lab.engine.lines._line_grant``
    (numba's Itanium-style names: length-prefixed parts, then a ``B`` and the specialisation)."""
    out, i = [], 3  # after "_ZN"
    while i < len(sym) and sym[i].isdigit():
        j = i
        while sym[j].isdigit():
            j += 1
        n = int(sym[i:j])
        out.append(sym[j : j + n])
        i = j + n
    return ".".join(out)


if __name__ == "__main__":
    main()
