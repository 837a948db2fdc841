"""How a CPU step ends in the compiled engine: continue now, or schedule/block the CPU.

Shared by the CPU algorithms (:mod:`.cpu`) and the VMM exits (:mod:`.vmm`); inlined in numba's IR
(like the accessors of :mod:`.mem`), or each constant program counter compiled a copy of its own.
"""

from __future__ import annotations

from numba import njit

from cmdqv_lab.engine.layout import C_PC, H_NPROC, TIME_NEVER
from cmdqv_lab.engine.mem import cset, hget
from cmdqv_lab.engine.sched import sched

CONTINUE = 0  # keep stepping this CPU at the same time
NEED_INPUT = 1  # the CPU's input ring is empty: return to the driver
YIELD = 2  # the CPU scheduled its next step (or blocked)


@njit(cache=True, inline="always")
def go(M, c, t, pc):
    """Continue CPU ``c`` at time ``t`` with program counter ``pc``."""
    cset(M, c, C_PC, pc)
    sched(M, hget(M, H_NPROC) + c, t)
    return YIELD


@njit(cache=True, inline="always")
def block(M, c, pc):
    """Block CPU ``c`` (something else will schedule it); it resumes at ``pc``."""
    cset(M, c, C_PC, pc)
    sched(M, hget(M, H_NPROC) + c, TIME_NEVER)
    return YIELD
