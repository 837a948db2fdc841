"""The opening of the sample QEMU trace fed to a main CMDQ, a host-owned VCMDQ and a guest-owned VCMDQ."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import trace_opening as opening

from cmdqv_lab.device.cmdq import CError
from cmdqv_lab.device.cmdqv import Cmdqv, CmdqvParams
from cmdqv_lab.device.commands import CS_NONE, Command, Opcode
from cmdqv_lab.device.smmu import SMMU, SmmuConfig
from cmdqv_lab.driver.recovery import guest_handle_vevent, tegra241_cmdqv_isr

N = len(opening.COMMANDS)
SYNC_POSITIONS = [i for i, c in enumerate(opening.COMMANDS) if c.opcode is Opcode.CMD_SYNC]


def _raw_trace_opening(path: Path) -> tuple[list[str], list[str], list[int]]:
    """Opcode names, printed field lines and PROD values of the first 100 trace lines (no parser)."""
    with gzip.open(path, "rt") as f:
        lines = [next(f) for _ in range(100)]
    ops = [m.group(1) for ln in lines if (m := re.search(r"smmuv3_cmdq_opcode <--- SMMU_(\w+)", ln))]
    fields = [
        ln.split(":", 1)[1].strip()
        for ln in lines
        if re.search(r"smmuv3_(cmdq_cfgi_ste |cmdq_tlbi_nh_asid|s1_range_inval|cmdq_cfgi_ste_range)", ln)
    ]
    prods = sorted({int(m.group(1)) for ln in lines if (m := re.search(r"consume prod=(\d+) cons=\d+", ln))})
    return ops, fields, prods


def test_fixture_matches_raw_trace(sample_trace: Path) -> None:
    if not sample_trace.exists():
        pytest.skip(f"sample trace missing: {sample_trace}")
    ops, fields, prods = _raw_trace_opening(sample_trace)
    assert ops == [c.opcode.name for c in opening.COMMANDS]
    assert [p for p in prods if p <= len(ops)] == opening.GROUPS
    expected = ["smmuv3_cmdq_cfgi_ste_range start=0x0 - end=0xffffffff"]
    for c in opening.COMMANDS:
        if c.opcode is Opcode.CMD_CFGI_STE:
            expected.append(f"smmuv3_cmdq_cfgi_ste streamid= 0x{c['sid']:x}")
        elif c.opcode is Opcode.CMD_TLBI_NH_ASID:
            expected.append(f"smmuv3_cmdq_tlbi_nh_asid asid={c['asid']}")
        elif c.opcode is Opcode.CMD_TLBI_NH_VA:
            pages = (c["num"] + 1) << c["scale"]
            expected.append(
                f"smmuv3_s1_range_inval vmid={c['vmid']} asid={c['asid']} addr=0x{c['addr']:x} tg={c['tg']} "
                f"num_pages=0x{pages:x} ttl={c['ttl']} leaf={c['leaf']}"
            )
    assert fields == expected


def test_main_cmdq_qemu_consumes_opening_without_error() -> None:
    smmu = SMMU(SmmuConfig.qemu())
    for g in opening.groups():
        smmu.cmdq.submit(g)  # QEMU consumes inside the PROD write
    assert smmu.cmdq.queue.cons == N and smmu.cmdq.queue.prod == N
    assert smmu.log.of("error") == [] and smmu.gerror == smmu.gerrorn == 0
    consumed = smmu.log.of("consume")
    assert [e.opcode for e in consumed] == [c.opcode for c in opening.COMMANDS]
    assert [e.pos for e in smmu.log.of("complete")] == list(range(N))
    assert smmu.sev_events == 0  # QEMU has no SEV


def test_main_cmdq_with_sev_signals_every_sync() -> None:
    smmu = SMMU(sev=True, msi=False)
    smmu.cmdq.submit(opening.batch())
    assert smmu.cmdq.consume_all() == N
    assert smmu.sev_events == len(SYNC_POSITIONS)
    assert [e.pos for e in smmu.log.of("sev")] == SYNC_POSITIONS


def _cmdqv_with_queue(hyp_own: bool) -> tuple[Cmdqv, int]:
    smmu = SMMU(cmdqv=CmdqvParams(num_vintfs=4, num_vcmdqs=8))
    cmdqv = smmu.cmdqv
    assert cmdqv is not None
    v = 0 if hyp_own else 1
    vintf = cmdqv.vintfs[v]
    vintf.configure(en=True, vmid=0 if hyp_own else 5, hyp_own=hyp_own)
    if not hyp_own:
        vintf.set_sid_pair(0, vsid=0x8, psid=0x108)
        vintf.set_sid_pair(1, vsid=0x10, psid=0x110)
    cmdqv.setup_lvcmdq(q=v * 2, vintf=v, lidx=0, log2size=7)
    return cmdqv, v * 2


def test_host_owned_vcmdq_consumes_opening_unchanged() -> None:
    cmdqv, q = _cmdqv_with_queue(hyp_own=True)
    vq = cmdqv.vcmdqs[q]
    for g in opening.groups():
        vq.submit(g)
        cmdqv.schedule()
    assert vq.queue.cons_pos == N and not vq.stopped
    assert cmdqv.log.of("error") == [] and not cmdqv.irq_pending
    executed = np.array([e.detail["executed"] for e in cmdqv.log.of("consume")], dtype=np.uint64)
    assert np.array_equal(executed, opening.batch())  # HYP_OWN=1: no rewriting


def test_guest_owned_vcmdq_ill_on_config_commands_and_recovery_completes_the_rest() -> None:
    cmdqv, q = _cmdqv_with_queue(hyp_own=False)
    vq = cmdqv.vcmdqs[q]
    vevents: list[dict] = []
    vq.submit(opening.batch())
    rounds = 0
    while True:
        cmdqv.schedule()
        if not vq.stopped:
            break
        assert cmdqv.irq_pending
        new = tegra241_cmdqv_isr(cmdqv, vevents)  # guest VINTF: forwarded, not fixed by the host
        assert vq.stopped and new == [{"vintf": 1, "lvcmdq_err_map": [1, 0]}]
        assert guest_handle_vevent(cmdqv, new[0]) == [0]
        rounds += 1
    errors = cmdqv.log.of("error")
    assert [e.pos for e in errors] == opening.GUEST_ILL_INDICES
    assert {e.detail["cerror"] for e in errors} == {CError.ILL.name}
    assert [e.opcode for e in errors] == [opening.COMMANDS[i].opcode for i in opening.GUEST_ILL_INDICES]
    assert rounds == len(opening.GUEST_ILL_INDICES) == len(vevents) == cmdqv.irq_count
    # every position completed exactly once; every SYNC (original or rewritten) completed
    completes = cmdqv.log.of("complete")
    assert [e.pos for e in completes] == list(range(N))
    sync_done = sorted(e.pos for e in completes if e.opcode == Opcode.CMD_SYNC)
    assert sync_done == sorted(SYNC_POSITIONS + opening.GUEST_ILL_INDICES)
    # rewritten slots hold CMD_SYNC with CS=SIG_NONE (VCMDQs need busy polling)
    for i in opening.GUEST_ILL_INDICES:
        cmd = Command.decode(vq.queue.mem[i])
        assert cmd.opcode is Opcode.CMD_SYNC and cmd["cs"] == CS_NONE
    # VMIDs rewritten to the VINTF's VMID on the accepted TLBIs
    for e in cmdqv.log.of("consume"):
        cmd = Command.decode(e.detail["executed"])
        if cmd.opcode in (Opcode.CMD_TLBI_NH_ASID, Opcode.CMD_TLBI_NH_VA):
            assert cmd["vmid"] == 5
    assert cmdqv.vintf_err_map == 0 and cmdqv.cmdq_err_map == 0
