"""Size limits checked before work starts: simulated entities and the engine's memory.

The engine refuses more than ``MAX_ENTITIES`` CPUs plus command processors, but only once the
workload's streams are built, which for ``guest-wl-fio --set vms=1024 --set threads=4096`` (four
million vCPUs) took 100 s and 6.5 GB before the refusal. :func:`check_entities` counts the issuing
CPUs from the parameters alone (``vms x threads``, or ``cpus``) and refuses at once;
:func:`check_memory` estimates the engine state of a built configuration (its per-CPU input rings
dominate) and refuses what the machine cannot hold, before it is allocated.

>>> from types import SimpleNamespace as NS
>>> issuing_cpus(NS(vms=1024, threads=4096)), issuing_cpus(NS(cpus=16)), issuing_cpus(NS(vms=0, threads=8))
(4194304, 16, 8)
>>> check_entities("guest-wl-fio", NS(vms=1024, threads=4096), NS(smmu_parallel=1))
Traceback (most recent call last):
...
cmdqv_lab.errors.InputTooLargeError: guest-wl-fio: vms=1024 x threads=4096 = 4194304 issuing CPUs (+ 4194304 VMM threads, 1 host thread, 1 SMMU processor) exceed the engine's limit of 4096 entities
"""

from __future__ import annotations

import os
from typing import Any

from cmdqv_lab.errors import InputTooLargeError, OutOfMemoryError

#: Words of engine state per CPU per ring entry (cmdqv_lab.engine.mem.Memory.allocate: ops 2, batches 4,
#: commands 3) and per CPU per queue (the queue FIFOs).
_RING_WORDS = {"ring_ops": 2, "ring_batches": 4, "ring_cmds": 3}
#: Fraction of the available memory one simulation may plan to use.
MEMORY_SHARE = 0.8


def issuing_cpus(params: Any) -> int:
    """CPUs (or vCPUs) that issue commands, from the parameters alone."""
    per = getattr(params, "threads", None) or getattr(params, "cpus", None) or 1
    vms = getattr(params, "vms", None) or 1
    return int(vms) * int(per)


def check_entities(scenario: str, params: Any, platform: Any) -> None:
    """Refuse a configuration with more simulated entities than the engine can schedule."""
    from cmdqv_lab.engine.layout import MAX_ENTITIES

    cpus = issuing_cpus(params)
    procs = int(getattr(platform, "smmu_parallel", 1) or 1)
    # guests that can trap have a VMM thread per vCPU (cmdqv_lab.engine.vmm); guest-fixup never traps
    vmm = cpus if getattr(params, "vms", None) is not None and scenario != "guest-fixup" else 0
    if cpus + vmm + 1 + procs > MAX_ENTITIES:
        if getattr(params, "vms", None) and getattr(params, "threads", None):
            what = f"vms={params.vms} x threads={params.threads} = {cpus}"
        else:
            what = f"{cpus}"
        raise InputTooLargeError(
            f"{scenario}: {what} issuing CPUs (+ {f'{vmm} VMM threads, ' if vmm else ''}1 host thread, {procs} SMMU processor"
            f"{'s' if procs != 1 else ''}) exceed the engine's limit of {MAX_ENTITIES} entities"
        )


def engine_bytes(cfg: Any) -> int:
    """A lower bound of the engine state of configuration ``cfg`` in bytes (rings, FIFOs, queues)."""
    per_cpu = sum(w * int(getattr(cfg, name)) for name, w in _RING_WORDS.items()) + len(cfg.queues)
    slots = sum(1 << q.log2size for q in cfg.queues)
    return 8 * (cfg.n_cpus * per_cpu + 8 * slots)


def available_bytes() -> int | None:
    """Memory available to a new allocation (MemAvailable, else physical memory), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(scenario: str, cfg: Any) -> None:
    """Refuse a configuration whose engine state would not fit in the available memory."""
    need = engine_bytes(cfg)
    have = available_bytes()
    if have is not None and need > MEMORY_SHARE * have:
        raise OutOfMemoryError(
            f"{scenario}: {cfg.n_cpus} CPUs need about {need / 2**30:.1f} GiB of engine state, more than "
            f"the {have / 2**30:.1f} GiB available; use fewer CPUs, VMs or threads"
        )
