"""The engine's cached libraries loaded without parsing their LLVM bitcode until something links to them.

numba caches a function as its machine code plus its LLVM bitcode, kept so that later compiles can
link against it. Every load parses that bitcode (``CPUCodeLibrary._unserialize``) only to list the
symbols the library defines (which tells the JIT which names it can look up): 17-21 ms of each
process's first simulation for 293 KB of bitcode (``run_loop``'s library alone is 249 KB), in a
process that then runs the engine and links nothing to it.

While a ``cmdqv_lab`` function is loaded from the engine's cache (:func:`loading`), its libraries
are set up from the machine code alone, the list of defined symbols read from a small file beside
the cache (``syms-<SHA-256 of the bitcode>.txt``), and the bitcode parsed only when something asks
to link against the library (``_get_module_for_linking``). The first load of a library parses the
bitcode the usual way and writes that file (atomically); a file that does not check out (its last
line is a SHA-256 of the rest) is ignored and rewritten. Any other library takes numba's own path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

from cmdqv_lab.atomicfile import read_checked, write_bytes

MAGIC = "cmdqv-lab symbols 1"

#: where the symbol files go (set by :func:`install`); counts of libraries loaded each way
DIRECTORY: str | None = None
COUNTS = {"lazy": 0, "parsed": 0}

_state = threading.local()


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Libraries unserialized in this block (this thread) take the lazy path."""
    prev = getattr(_state, "on", False)
    _state.on = True
    try:
        yield
    finally:
        _state.on = prev


def symbols_file(directory: str, bitcode: bytes) -> str:
    return os.path.join(directory, f"syms-{hashlib.sha256(bitcode).hexdigest()[:32]}.txt")


def pack(names: list[str]) -> bytes:
    """A symbol file: the magic line, the names as one JSON list (a name may hold any character),
    then a SHA-256 of those two lines."""
    body = MAGIC + "\n" + json.dumps(sorted(names)) + "\n"
    return (body + hashlib.sha256(body.encode()).hexdigest() + "\n").encode()


def unpack(data: bytes) -> list[str] | None:
    """The names of a symbol file, or None if it does not check out."""
    try:
        magic, listed, digest, end = data.decode().split("\n")
        names = json.loads(listed)
    except ValueError:  # not UTF-8, not three lines, not JSON
        return None
    body = magic + "\n" + listed + "\n"
    if magic != MAGIC or end or hashlib.sha256(body.encode()).hexdigest() != digest:
        return None
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        return None
    return names


def _defined(module: Any) -> list[str]:
    """The names numba's ``JitEngine._load_defined_symbols`` takes from a parsed module."""
    return [
        gv.name for gs in (module.functions, module.global_variables) for gv in gs if not gv.is_declaration
    ]


def install(directory: str) -> bool:
    """Load the engine's libraries lazily (see the module docstring), with symbol files in
    ``directory``. Returns False, keeping numba's own path, if numba lacks what this relies on."""
    global DIRECTORY
    from llvmlite import binding as ll
    from numba.core import codegen

    cls = codegen.CPUCodeLibrary
    needed = ("_unserialize", "_get_module_for_linking", "_set_compiled_object", "enable_object_caching",
              "_finalize_final_module")  # fmt: skip
    if not all(hasattr(cls, a) for a in needed):
        return False
    DIRECTORY = directory
    if getattr(cls._get_module_for_linking, "_cmdqv_lab", False):
        return True
    numba_unserialize = cls._unserialize.__func__  # type: ignore[attr-defined]
    numba_for_linking = cls._get_module_for_linking

    def _unserialize(klass: Any, cg: Any, state: Any) -> Any:
        name, kind, data = state
        if kind != "object" or not getattr(_state, "on", False) or DIRECTORY is None:
            return numba_unserialize(klass, cg, state)
        object_code, bitcode = data
        path = symbols_file(DIRECTORY, bitcode)
        names = read_checked(path, unpack)
        engine: Any = getattr(cg, "_engine", None)
        if names is None or not hasattr(engine, "_defined_symbols"):
            library = numba_unserialize(klass, cg, state)
            COUNTS["parsed"] += 1
            with contextlib.suppress(OSError, AttributeError):  # no file: the parse again next time
                write_bytes(path, pack(_defined(library._shared_module)), durable=False)
            return library
        library = cg.create_library(name)
        library.enable_object_caching()
        library._set_compiled_object(object_code)
        library._cmdqv_bitcode = bitcode
        library._finalize_final_module()
        engine._defined_symbols.update(names)
        COUNTS["lazy"] += 1
        return library

    def _get_module_for_linking(self: Any) -> Any:
        bitcode = self.__dict__.pop("_cmdqv_bitcode", None)
        if bitcode is not None and self._shared_module is None:
            self._shared_module = ll.parse_bitcode(bitcode)
        return numba_for_linking(self)

    _get_module_for_linking._cmdqv_lab = True  # type: ignore[attr-defined]
    cls._unserialize = classmethod(_unserialize)  # type: ignore[method-assign,assignment]
    cls._get_module_for_linking = _get_module_for_linking  # type: ignore[method-assign]
    return True
