"""The timing engine: a discrete-event model of CPUs submitting commands and SMMU command processors
consuming them, compiled with numba.

Semantics (shared, exactly, by the SimPy reference in ``tests/reference``):

* Time is integer picoseconds. Entities are the SMMU command processors (ids ``0..P-1``) and the
  issuing CPUs (ids ``P..P+C-1``); each has at most one pending step. Steps run in order of
  ``(time, entity id)``, so device actions at a time precede CPU actions at the same time.
* A contended cache line (a queue's ``llq`` word, its shared ``lock``, its valid bitmap, its
  ``owner_prod``) is a FIFO server: an access requested at ``t`` is granted at
  ``max(t, line_free)`` and holds the line for ``line_local_ns`` if the same CPU touched it last,
  else ``line_xfer_ns``. Accesses take effect in grant order; the CPU continues when its access ends.
  With ``line_arbitration=holder-first`` the holder's next access goes first within a bounded
  window, then the nearest waiting CPU, and a waiting access takes effect when served; with
  ``topology=platform`` a transfer costs by cluster / die / socket distance (:mod:`.lines`).
* MMIO writes (PROD doorbells) take effect when they land, ``mmio_write_ns`` after issue; MMIO
  reads (CONS) cost ``mmio_read_ns`` and see the register as it is at the end of the read.
* A command processor consumes in order: each command costs ``fetch_ns`` plus its service time;
  CONS advances at its completion; a CMD_SYNC completes when it is consumed, hence after every
  earlier command of its queue.

Modules: :mod:`.layout` (array layout and codes), :mod:`.core` (the compiled steps and loop),
:mod:`.vmm` (a trapped guest's exits to the VMM), :mod:`.stats` (streaming histograms),
:mod:`.runner` (the Python driver and result frames).
"""

import hashlib as _hashlib
import os as _os
from pathlib import Path as _Path


def _engine_cache_dir() -> str:
    """Numba's on-disk cache directory for this exact engine source.

    Numba invalidates a cached function only when its own file changes, not when a function it
    calls (and inlines) changes in another file. Keying the directory by a hash of every engine
    source file makes any edit start a fresh cache, so stale machine code is never loaded.
    """
    h = _hashlib.sha256()
    for f in sorted(_Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    base = _os.environ.get("NUMBA_CACHE_DIR") or _os.path.join(
        _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache"),
        "cmdqv-lab",
        "numba",
    )
    return _os.path.join(base, "engine-" + h.hexdigest()[:16])


_ANNOUNCED = False


def announce_compile() -> bool:
    """Say once per process, on stderr, that the engine is compiling when its on-disk cache is cold.

    Called before the first run of the compiled loop; a fresh environment otherwise goes silent
    for half a minute. Returns whether it said so.
    """
    global _ANNOUNCED
    if _ANNOUNCED:
        return False
    _ANNOUNCED = True
    d = _Path(_engine_cache_dir())
    if any(d.glob("loop.run_loop-*.nbi")):  # the cache is flat: one index per function
        return False
    import sys

    print(
        f"cmdqv-lab: compiling the timing engine for this version (once; about half a minute), cached in {d}",
        file=sys.stderr,
        flush=True,
    )
    return True


_REGISTRIES = False


def load_numba_registries() -> None:
    """Let cached ``cmdqv_lab`` code load without numba's registries; load those (for a compile)
    without importing SciPy.

    numba refreshes its typing and lowering registries before every load from its on-disk cache
    (``Cache.load_overload``): it imports every implementation module of numba (arrays, random,
    typed containers, ...), 0.15-0.2 s of every CLI run. Rebuilding cached machine code needs only
    numba's runtime (``rtsys.initialize``, the reference-counting and allocation functions it
    links to), and a compile refreshes the registries itself (``compiler.compile_extra``). So a
    cache hit of a ``cmdqv_lab`` function initialises the runtime and loads; a miss takes numba's
    own path.

    One of those registries (``numba.np.arraymath``) imports ``scipy.linalg`` only to learn whether
    BLAS is there; in a fresh process that import took 0.2-0.3 s of a CLI run (numpy.f2py, scipy's
    array-API shims), more than simulating 10^5 ops. The engine uses no BLAS, so the check is
    answered "no" while the registries load, then set to whether SciPy is installed: BLAS-backed
    functions (``np.dot``, ``np.linalg``) look SciPy up again when they are compiled. The first
    refresh does this unless SciPy's linear algebra is already imported (nothing to save).
    """
    global _REGISTRIES
    if _REGISTRIES:
        return
    _REGISTRIES = True
    import functools
    import importlib.util
    import sys

    from numba.core import caching
    from numba.core.registry import cpu_target
    from numba.core.runtime import rtsys

    numba_load = caching.Cache.load_overload
    # numba internals this relies on (0.62-0.68): without them, numba's own load path is kept
    patchable = hasattr(caching.Cache, "_load_overload") and hasattr(rtsys, "initialize")

    @functools.wraps(numba_load)
    def load_overload(self, sig, target_context):
        if getattr(self._py_func, "__module__", "").startswith("cmdqv_lab."):
            rtsys.initialize(target_context)
            with _lazylink.loading():
                data = self._load_overload(sig, target_context)
            if data is not None:
                return data
        return numba_load(self, sig, target_context)

    if patchable:
        caching.Cache.load_overload = load_overload  # type: ignore[method-assign]
    _first_call_shortcuts()

    ctx = cpu_target.target_context
    numba_refresh = ctx.refresh
    first = [True]

    def refresh() -> None:
        if not first[0] or "scipy.linalg" in sys.modules:
            numba_refresh()
            return
        first[0] = False
        key = "scipy.linalg.cython_blas"
        sys.modules[key] = None  # type: ignore[assignment]
        try:
            numba_refresh()
        finally:
            if key in sys.modules and sys.modules[key] is None:
                del sys.modules[key]
        import numba.np.arraymath as arraymath

        arraymath._HAVE_BLAS = importlib.util.find_spec("scipy") is not None

    ctx.refresh = refresh


def _first_call_shortcuts() -> None:
    """Two costs of the first call of each compiled ``cmdqv_lab`` function that it does not need.

    * numba runs its extensions' entry points (``entrypoints.init_all``: ``importlib.metadata``
      reads every installed distribution's entry points, 14 ms) before it types a call's arguments.
      The engine uses no numba extension: for ``cmdqv_lab`` functions the hook does nothing (any
      other function still runs it, and the extensions load then).
    * typing an ``ndarray`` argument asks whether it is a ``numpy.ma.MaskedArray``, which imports
      ``numpy.ma`` (9-17 ms) in a process that has no other use for it. An argument whose type is
      exactly ``numpy.ndarray`` cannot be one; for those numba's type is built directly, the same
      ``Array(dtype, ndim, layout, readonly)``. Anything else (or a dtype numba refuses) takes
      numba's own path.
    """
    from typing import Any

    import numpy as np
    from numba.core import types
    from numba.core.dispatcher import Dispatcher
    from numba.np import numpy_support

    if not (hasattr(Dispatcher, "_compilation_chain_init_hook") and hasattr(Dispatcher, "typeof_pyval")):
        return  # numba internals this relies on (0.62-0.68); without them, numba's own path
    numba_hook = Dispatcher._compilation_chain_init_hook
    numba_typeof = Dispatcher.typeof_pyval

    def ours(disp: object) -> bool:
        return getattr(getattr(disp, "py_func", None), "__module__", "").startswith("cmdqv_lab.")

    def hook(self: Any) -> None:
        if not ours(self):
            numba_hook(self)

    def typeof_pyval(self: Any, val: Any) -> Any:
        if type(val) is np.ndarray and ours(self) and hasattr(self, "_types_active_call"):
            try:
                dtype = numpy_support.from_dtype(val.dtype)
            except Exception:  # numba's own path says what is wrong
                return numba_typeof(self, val)
            tp = types.Array(dtype, val.ndim, numpy_support.map_layout(val), readonly=not val.flags.writeable)
            self._types_active_call.add(tp)
            return tp
        return numba_typeof(self, val)

    Dispatcher._compilation_chain_init_hook = hook
    Dispatcher.typeof_pyval = typeof_pyval  # type: ignore[method-assign]


def _configure_numba_cache() -> None:
    """Point numba's cache at :func:`_engine_cache_dir` and put the engine's own functions directly
    in it (:class:`_EngineCacheLocator`)."""
    import numba
    from numba.core import caching

    numba.config.CACHE_DIR = _engine_cache_dir()  # type: ignore[attr-defined]

    class _EngineCacheLocator(caching.UserProvidedCacheLocator):
        """Numba's user-directory locator files a function under a subdirectory named after the
        absolute path of its source directory, so a fresh clone or a worktree of the same engine
        compiled it again (about a minute, twice when two notebooks start together). The engine's
        functions go straight into the directory already keyed by the hash of every engine source;
        numba's index still checks each file's content hash (its source stamp), so a checkout
        anywhere reuses the compiled engine only when the source is the same. Other cached numba
        functions in the process fall through to numba's own locators."""

        def __init__(self, py_func: object, py_file: str) -> None:
            super().__init__(py_func, py_file)
            self._cache_path = numba.config.CACHE_DIR  # type: ignore[attr-defined]

        @classmethod
        def from_function(cls, py_func: object, py_file: str) -> object:
            if _Path(py_file).resolve().parent != _Path(__file__).resolve().parent:
                return None
            return super().from_function(py_func, py_file)

    # the locators numba tries, in order (a class attribute; ``_CacheImpl`` before numba 0.63)
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")  # noqa: B009
    if not any(c.__name__ == "_EngineCacheLocator" for c in impl._locator_classes):
        impl._locator_classes = [_EngineCacheLocator, *impl._locator_classes]


_configure_numba_cache()

from cmdqv_lab.engine import callconv as _callconv  # noqa: E402
from cmdqv_lab.engine import lazylink as _lazylink  # noqa: E402
from cmdqv_lab.engine import nrtcache as _nrtcache  # noqa: E402

_callconv.install()
_nrtcache.install(_os.path.dirname(_engine_cache_dir()))
_lazylink.install(_engine_cache_dir())
