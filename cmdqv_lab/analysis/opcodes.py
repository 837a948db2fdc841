"""Q5 findings: what a guest-owned VCMDQ does with every opcode under each accepted set.

Each opcode is written once, as a malicious or confused guest could write it (VMID 3 of another
VM, SID 0x8, ASID 1), into a VCMDQ of a guest-owned VINTF (VMID 7, one SID pair 0x8 -> 0x108) and
of the host's VINTF; the functional model says whether it raised ILL or what it executed after
the VINTF's rewriting.

>>> from cmdqv_lab.device.commands import Opcode
>>> run_one(Opcode.CMD_TLBI_S12_VMALL, "v3-2021", hyp_own=False)["executed_vmid"]
7
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

#: Field values of the command the guest writes (where the opcode has the field).
VALUES: dict[str, int] = {
    "vmid": 3,
    "asid": 1,
    "sid": 0x8,
    "addr": 0x4000_0000,
    "ipa": 0x4000_0000,
    "tg": 1,
    "ttl": 3,
    "leaf": 1,
}


def run_one(op: Any, guest_opcodes: str, hyp_own: bool) -> dict[str, Any]:
    """One command on a fresh VCMDQ: ``outcome`` (executed or the CONS.ERR) and the executed VMID/SID."""
    from cmdqv_lab.device.cmdqv import CmdqvParams
    from cmdqv_lab.device.commands import Command, Opcode, fields_of
    from cmdqv_lab.device.smmu import SMMU, SmmuConfig

    smmu = SMMU(SmmuConfig(), cmdqv=CmdqvParams(num_vintfs=2, num_vcmdqs=2, guest_opcodes=guest_opcodes))
    cmdqv = smmu.cmdqv
    assert cmdqv is not None
    vintf = cmdqv.vintfs[0 if hyp_own else 1]
    vintf.configure(vmid=0 if hyp_own else 7, hyp_own=hyp_own)
    vintf.set_sid_pair(0, vsid=0x8, psid=0x108)
    vq = cmdqv.setup_lvcmdq(q=0, vintf=vintf.idx, lidx=0, log2size=8)
    names = {f.name for f in fields_of(op)}
    values = {**VALUES, "size": 52 if op == Opcode.CMD_ATC_INV else 0}  # ATC_INV SIZE 52: everything
    fields: dict[str, Any] = {k: v for k, v in values.items() if k in names}
    cmd = Command(op, **fields)
    vq.submit(cmd.encode().reshape(1, 2))
    cmdqv.schedule()
    err = smmu.log.of("error")
    if err:
        return {"outcome": err[0].detail["cerror"], "executed_vmid": None, "executed_sid": None}
    ex = Command.decode(smmu.log.of("consume")[0].detail["executed"])
    return {"outcome": "executed", "executed_vmid": ex.get("vmid"), "executed_sid": ex.get("sid")}


def opcode_table(sets: Iterable[str]) -> pl.DataFrame:
    """Every opcode but CMD_SYNC: outcome on a guest VCMDQ per accepted set and on a host VCMDQ."""
    from cmdqv_lab.device.commands import Opcode, fields_of

    keys = list(sets)
    rows = []
    for op in Opcode:
        if op == Opcode.CMD_SYNC:
            continue
        row: dict[str, Any] = {
            "opcode": op.name,
            "written_vmid": 3 if "vmid" in {f.name for f in fields_of(op)} else None,
        }
        for key in keys:
            r = run_one(op, key, hyp_own=False)
            row[f"guest VCMDQ, {key}"] = r["outcome"]
            if r["outcome"] == "executed":
                row["executed_vmid"], row["executed_sid"] = r["executed_vmid"], r["executed_sid"]
        row["host VCMDQ"] = run_one(op, "linux", hyp_own=True)["outcome"]
        rows.append(row)
    return pl.DataFrame(rows)
