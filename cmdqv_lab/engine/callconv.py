"""How the engine's compiled functions call each other: numba's calling convention, with the two
scratch slots of a call zeroed where the call is made instead of on entry to the caller.

numba calls a compiled function through two stack slots of the caller, one for the returned value
and one for the exception info (``CPUCallConv.call_function``). It allocates both with
``cgutils.alloca_once``, which always writes a zero into a new slot in the caller's *entry block*.
The slots are passed to the callee, so LLVM cannot remove those stores: every call of a function
zeroes two slots for each call site it contains, whichever branch it takes. The engine's step
functions are dispatchers over many program counters with dozens of call sites each; a perf
profile of ``_step_lockfree`` (host-map-unmap, d06, 1 CPU) put about 40 % of its samples in that
entry-block zeroing (70-odd ``movq $0`` before its first branch).

Here the slots of a call made by an engine function are allocated in the entry block without a
store, and zeroed just before the call (the value numba reads back if the callee does not write
it is the same zero). What the code computes is unchanged; only where the zeroing happens moves.
Other numba functions in the process keep numba's own code path. The numba internals this relies
on (``CPUCallConv.call_function`` allocating through ``cgutils.alloca_once``, 0.62-0.68) are
checked, and without them numba's path is kept.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_ENGINE_SYMBOL = "cmdqv_lab6engine"  # in the mangled name of every function of this package
_PATCHED = False
_LOCAL = threading.local()


def alloca_zeroed_at_use(builder: Any, ty: Any, name: str = "") -> Any:
    """A stack slot of type ``ty`` allocated in the entry block of ``builder``'s function, as
    ``cgutils.alloca_once`` does, but zeroed here (where the builder is) instead of there."""
    from numba.core import debuginfo

    with debuginfo.suspend_emission(builder):
        with builder.goto_entry_block():
            ptr = builder.alloca(ty, name=name)
        builder.store(ty(None), ptr)
    return ptr


def install() -> None:
    """Make calls made by engine functions zero their slots at the call site (once per process)."""
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    from numba.core import callconv, cgutils

    conv = getattr(callconv, "CPUCallConv", None)
    numba_call = getattr(conv, "call_function", None)
    numba_alloca = getattr(cgutils, "alloca_once", None)
    if conv is None or numba_call is None or numba_alloca is None:
        return

    @functools.wraps(numba_alloca)
    def alloca_once(builder: Any, ty: Any, size: Any = None, name: str = "", zfill: bool = False) -> Any:
        if getattr(_LOCAL, "active", False) and size is None:
            return alloca_zeroed_at_use(builder, ty, name)
        return numba_alloca(builder, ty, size=size, name=name, zfill=zfill)

    @functools.wraps(numba_call)
    def call_function(self: Any, builder: Any, *args: Any, **kwargs: Any) -> Any:
        if _ENGINE_SYMBOL not in getattr(builder.function, "name", "") or getattr(_LOCAL, "active", False):
            return numba_call(self, builder, *args, **kwargs)
        _LOCAL.active = True
        try:
            return numba_call(self, builder, *args, **kwargs)
        finally:
            _LOCAL.active = False

    cgutils.alloca_once = alloca_once
    conv.call_function = call_function
