"""numba's runtime functions (NRT) loaded from an on-disk cache instead of compiled in every process.

The first time a process loads or compiles a numba function, numba compiles its runtime's
reference-counting and allocation functions (``nrtdynmod.compile_nrt_functions``: LLVM IR to machine
code), even when every function it then loads comes from its cache: about 40 ms of each
``cmdqv-lab simulate`` process and of each kernel's first simulation. :func:`install` keeps that
library's object code, and the bitcode numba links other code against, in a file beside the
engine's cache, and loads it the way numba loads a cached function (``unserialize_library``).

The file name is keyed by numba's and llvmlite's versions and the host (numba's own cache key,
``codegen.magic_tuple``: target triple, CPU name and features). The file ends with a SHA-256 of
its content: a file that does not check out (truncated, corrupt) is compiled again and rewritten
atomically. Nothing is unpickled: the file holds two byte strings and their lengths.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from typing import Any

from cmdqv_lab.atomicfile import read_checked, write_bytes

MAGIC = b"cmdqv-lab nrt 1\n"
_LENGTHS = struct.Struct("<QQ")


def cache_file(directory: str, codegen: Any) -> str:
    """The cache file for this numba, llvmlite and host, in ``directory``."""
    import llvmlite
    import numba

    key = repr((numba.__version__, llvmlite.__version__, codegen.magic_tuple()))
    return os.path.join(directory, f"nrt-{hashlib.sha256(key.encode()).hexdigest()[:16]}.bin")


def pack(object_code: bytes, bitcode: bytes) -> bytes:
    """The file's content: magic, the two lengths, the two strings, then a SHA-256 of all that."""
    body = MAGIC + _LENGTHS.pack(len(object_code), len(bitcode)) + object_code + bitcode
    return body + hashlib.sha256(body).digest()


def unpack(data: bytes) -> tuple[bytes, bytes] | None:
    """``(object_code, bitcode)`` from a file's content, or None if it does not check out."""
    head = len(MAGIC) + _LENGTHS.size
    if len(data) < head + 32 or not data.startswith(MAGIC):
        return None
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        return None
    n_obj, n_bc = _LENGTHS.unpack_from(body, len(MAGIC))
    if head + n_obj + n_bc != len(body):
        return None
    return body[head : head + n_obj], body[head + n_obj :]


#: where the library is cached (set by :func:`install`), and how this process got it: "loaded" from
#: the cache, "compiled" (and saved), or None before numba asked for it
DIRECTORY: str | None = None
LAST: str | None = None


def install(directory: str) -> bool:
    """Make numba load its runtime library from ``directory`` (compiling and saving it on a miss).
    Returns False, keeping numba's own path, if numba lacks the functions this relies on."""
    global DIRECTORY
    from numba.core.runtime import nrtdynmod

    create = getattr(nrtdynmod, "create_nrt_module", None)
    if create is None or not hasattr(nrtdynmod, "compile_nrt_functions"):
        return False
    DIRECTORY = directory
    numba_compile = nrtdynmod.compile_nrt_functions
    if getattr(numba_compile, "_cmdqv_lab", False):
        return True

    def compile_nrt(ctx: Any) -> Any:
        """numba's compile_nrt_functions, with the object code kept for the cache."""
        ir_mod, library = create(ctx)
        library.enable_object_caching()
        library.add_ir_module(ir_mod)
        library.finalize()
        return library

    def compile_nrt_functions(ctx: Any) -> Any:
        global LAST
        codegen = ctx.codegen()
        assert DIRECTORY is not None
        path = cache_file(DIRECTORY, codegen)
        parts = read_checked(path, unpack)
        if parts is not None:
            try:
                library = codegen.unserialize_library(("nrt", "object", parts))
                LAST = "loaded"
                return library
            except Exception:  # not loadable after all: compile it again below
                pass
        LAST = "compiled"
        try:
            library = compile_nrt(ctx)
        except AttributeError:  # a numba without object caching for it: numba's own compile
            return numba_compile(ctx)
        # an unwritable cache costs the compile next time
        with contextlib.suppress(OSError, AttributeError):
            write_bytes(path, pack(*library.serialize_using_object_code()[2]), durable=False)
        return library

    compile_nrt_functions._cmdqv_lab = True  # type: ignore[attr-defined]
    nrtdynmod.compile_nrt_functions = compile_nrt_functions
    return True
