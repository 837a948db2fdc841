"""The machine line every benchmark prints first: numbers from different sessions are comparable only
on the same processor (the same 2-core VM kind has been an AMD EPYC in one session and a faster
part in another), so the line names it.

>>> line = describe()
>>> line.startswith("machine: ") and "cpus=" in line and "load=" in line
True
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (else what :mod:`platform` says), and the
    microarchitecture LLVM compiles the engine for."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = name or platform.processor() or "unknown processor"
    try:
        import llvmlite.binding as llvm

        return f"{name} ({llvm.get_host_cpu_name()})"
    except Exception:  # llvmlite missing or too old: the name alone
        return name


def describe() -> str:
    """``machine: <arch> <model> cpus=N load=L python=V``."""
    return (
        f"machine: {platform.machine()} {cpu_model()} cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} "
        f"python={platform.python_version()}"
    )
