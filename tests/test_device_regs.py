"""Register fields: FIELD_GET / FIELD_PREP / replace semantics and the layouts used by the model."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmdqv_lab.device import regs
from cmdqv_lab.device.regs import CMDQV_CMDQ_ALLOC, VINTF_CONFIG, RegField, Register
from cmdqv_lab.errors import DeviceStateError

ALL_FIELDS = [v for v in vars(regs).values() if isinstance(v, RegField)]
ALL_REGISTERS = [v for v in vars(regs).values() if isinstance(v, Register)]


@given(st.sampled_from(ALL_FIELDS), st.data())
def test_prep_get_set_round_trip(f: RegField, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, f.max))
    reg = data.draw(st.integers(0, 2**128 - 1))
    assert f.get(f.prep(value)) == value
    new = f.set(reg, value)
    assert f.get(new) == value
    assert new & ~f.mask == reg & ~f.mask  # other bits untouched


@pytest.mark.parametrize("f", ALL_FIELDS, ids=lambda f: f.name)
def test_prep_refuses_values_that_do_not_fit(f: RegField) -> None:
    with pytest.raises(
        DeviceStateError, match=re.escape(f"{f.name}={f.max + 1} out of range 0 .. 0x{f.max:x}")
    ):
        f.prep(f.max + 1)


@pytest.mark.parametrize("r", ALL_REGISTERS, ids=lambda r: r.name)
def test_register_fields_do_not_overlap_and_fit(r: Register) -> None:
    seen = 0
    for f in r.fields:
        assert f.hi < r.width
        assert not seen & f.mask, f"{r.name}: {f.name} overlaps"
        seen |= f.mask


def test_linux_layouts() -> None:
    assert VINTF_CONFIG.decode(1 << 17 | 0x1234 << 1 | 1) == {
        "VINTF_HYP_OWN": 1,
        "VINTF_VMID": 0x1234,
        "VINTF_EN": 1,
    }
    assert regs.CMDQV_CMDQ_ALLOC_VINTF.mask == 0x1F8000 and regs.CMDQV_CMDQ_ALLOC_LVCMDQ.mask == 0xFE
    assert regs.CMDQ_CONS_ERR.mask == 0x7F000000 and regs.GERROR_CMDQ_ERR.mask == 1
    assert regs.GERROR_CMDQP_ERR.mask == 1 << 9
    assert regs.ECMDQ_PROD_EN.mask == regs.ECMDQ_CONS_ENACK.mask == 1 << 31
    assert regs.ECMDQ_PROD_ERRACK.mask == regs.ECMDQ_CONS_ERR.mask == 1 << 23
    assert regs.VCMDQ_ADDR.mask == (1 << 48) - (1 << 5) and regs.VCMDQ_LOG2SIZE.mask == 0x1F
    assert CMDQV_CMDQ_ALLOC.encode(
        CMDQV_CMDQ_ALLOC_VINTF=3, CMDQV_CMDQ_ALLOC_LVCMDQ=2, CMDQV_CMDQ_ALLOCATED=1
    ) == (3 << 15 | 2 << 1 | 1)
    with pytest.raises(DeviceStateError, match="no field 'VMID'"):
        VINTF_CONFIG.encode(VMID=1)
