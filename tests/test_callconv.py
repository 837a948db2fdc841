"""The engine's calls zero their scratch slots at the call site, not in the caller's entry block
(:mod:`cmdqv_lab.engine.callconv`); other numba functions keep numba's code."""

from __future__ import annotations

import llvmlite.ir as ir
import pytest
from numba import types as nt
from numba.core.registry import cpu_target

import cmdqv_lab.engine  # noqa: F401  (installs the calling-convention change)
from cmdqv_lab.engine.callconv import alloca_zeroed_at_use


def test_slot_is_allocated_in_entry_and_zeroed_where_used() -> None:
    mod = ir.Module()
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), []), name="f")
    entry, body = fn.append_basic_block("entry"), fn.append_basic_block("body")
    b = ir.IRBuilder(entry)
    b.branch(body)
    b.position_at_end(body)
    alloca_zeroed_at_use(b, ir.IntType(64), name="slot")
    b.ret_void()
    assert [i.opname for i in entry.instructions] == ["alloca", "br"]
    assert [i.opname for i in body.instructions] == ["store", "ret void"]


def _lower_a_call(caller: str) -> tuple[list[str], list[str]]:
    """Lower one compiled call (numba's calling convention) in the second block of a function named
    ``caller``; the opcodes of its entry block and of the block holding the call."""
    ctx = cpu_target.target_context
    mod = ir.Module()
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), []), name=caller)
    callee = ir.Function(mod, ctx.call_conv.get_function_type(nt.int64, [nt.int64]), name="callee")
    entry, body = fn.append_basic_block("entry"), fn.append_basic_block("body")
    b = ir.IRBuilder(entry)
    b.branch(body)
    b.position_at_end(body)
    ctx.call_conv.call_function(b, callee, nt.int64, [nt.int64], [ir.Constant(ir.IntType(64), 1)])
    b.ret_void()
    return [i.opname for i in entry.instructions], [i.opname for i in body.instructions]


@pytest.mark.parametrize(
    ("caller", "engine"),
    [
        ("_ZN9cmdqv_lab6engine3cpu9_step_oneB2v1E", True),  # a function of cmdqv_lab.engine
        ("_ZN5other3cpu9_step_oneB2v1E", False),  # anything else: numba's own lowering
    ],
)
def test_engine_calls_zero_their_slots_at_the_call(caller: str, engine: bool) -> None:
    entry, body = _lower_a_call(caller)
    assert entry.count("alloca") == 2  # the return-value slot and the excinfo slot
    assert "call" in body
    stores_before_call = body[: body.index("call")].count("store")
    if engine:
        assert "store" not in entry
        assert stores_before_call >= 2  # both slots zeroed at the call
    else:
        assert entry.count("store") == 2  # numba zeroes both in the entry block
