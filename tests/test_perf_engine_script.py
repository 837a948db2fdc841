"""``scripts/perf_engine.py``'s two parsers: the function symbols of an object file, and numba's
mangled names (the profile itself needs perf and a 40 s compile: run by hand)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("perf_engine", ROOT / "scripts" / "perf_engine.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_function_symbols_of_an_object_file_with_their_sizes() -> None:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    ir = """
    define i64 @small(i64 %a) { ret i64 %a }
    define i64 @larger(i64 %a, i64 %b) {
      %c = mul i64 %a, %b
      %d = add i64 %c, %a
      %e = sdiv i64 %d, %b
      ret i64 %e
    }
    declare i64 @elsewhere(i64)
    @data = global i64 7
    """
    mod = llvm.parse_assembly(ir)
    tm = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(codemodel="small")
    obj = tm.emit_object(mod)
    if obj[:4] != b"\x7fELF":
        pytest.skip("not an ELF platform")
    got = dict(script().elf_functions(obj))
    assert set(got) == {"small", "larger"}  # not the declaration, not the data
    assert 0 < got["small"] < got["larger"]
    with pytest.raises(ValueError, match="ELF64"):
        script().elf_functions(b"MZ" + obj[2:])


def test_numba_names_read_as_python_names() -> None:
    demangle = script().demangle
    sym = "_ZN9cmdqv_lab6engine5lines11_line_grantB4v174B40c8tJTIeFIjxB2IKSgI4CrvSCKg1MMfAwK4LIaQIAE8int64_2axxxx"
    assert demangle(sym) == "cmdqv_lab.engine.lines._line_grant"
    assert demangle("_ZN9cmdqv_lab6engine4loop8run_loopB2v1B40c8tJTI") == "cmdqv_lab.engine.loop.run_loop"
