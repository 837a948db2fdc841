"""Claims notebooks 01 (Q1), 02 (Q2/Q3) and 04 (Q5) rest on (their smoke runs: tests/test_notebooks.py).

The fast tests pin down the facts the notebooks' answers quote, so a library change that breaks
one fails here rather than silently changing a published sentence:

* Q1: the first-opcode policy's ILL rate on the registry ``mixed`` stream follows the closed forms
  the notebook states, ``(t - 1) f`` per op when mixed per command and ``f t / (t + 1)`` per batch,
  and the safe policies raise none;
* Q2: a CMD_SYNC on the main queue completes while TLBIs written earlier to a VCMDQ are pending;
  ``scan`` leaves Q2 hazards on a stream whose trapped batches are followed by lone SYNCs and
  ``scan-fanout`` removes them;
* Q5: a guest-owned VCMDQ executes the 2021 list's stage-2 invalidations with its own VMID and
  raises ILL on them under Linux's list; the real traces hold no stage-2 invalidation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cmdqv_lab.checker.check import check
from cmdqv_lab.checker.scenarios import load_source
from cmdqv_lab.device.cmdqv import CmdqvParams
from cmdqv_lab.device.commands import CS_NONE, Command, Opcode, encode_batch, sync_command
from cmdqv_lab.device.smmu import SMMU, SmmuConfig

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "01-q1-mixed-batches.py": ["Q1"],
    "02-q2-q3-sync.py": ["Q2", "Q3"],
    "04-q5-guest-opcodes.py": ["Q5"],
}
KINDS = "CFGI_STE,CFGI_CD,CFGI_CD_ALL,PREFETCH_CONFIG,TLBI_NH_ALL,TLBI_S12_VMALL"


@pytest.mark.parametrize("mix", ["command", "batch"])
def test_first_opcode_ill_rate_follows_the_closed_form(mix: str) -> None:
    ops, f, t = 3000, 0.1, 2
    src = load_source(
        "mixed",
        {"vms": 1, "threads": 2, "tlbis": t, "ops": ops, "unsupported": KINDS, "unsupported_fraction": f,
         "mix_per": mix, "split_sync_fraction": 0.0, "foreign_sid_fraction": 0.0},
        seed=3,
    )  # fmt: skip
    expected = ops * (f * (t - 1) if mix == "command" else f * t / (t + 1))
    ill = check(src, "first-opcode").counts["ill"]
    assert abs(ill - expected) < 4 * math.sqrt(expected), (ill, expected)
    for policy in ("scan", "split", "homogeneous", "scan-fanout"):
        assert check(src, policy).counts["ill"] == 0


def test_a_sync_on_the_main_queue_does_not_complete_vcmdq_tlbis() -> None:
    smmu = SMMU(SmmuConfig(), cmdqv=CmdqvParams(num_vintfs=2, num_vcmdqs=2))
    assert smmu.cmdqv is not None
    smmu.cmdqv.vintfs[1].configure(vmid=7, hyp_own=False)
    vq = smmu.cmdqv.setup_lvcmdq(q=0, vintf=1, lidx=0, log2size=8)
    a = vq.submit(encode_batch(Opcode.CMD_TLBI_NH_VA, asid=1, addr=np.array([0x1000, 0x2000], np.uint64)))
    b = smmu.cmdq.submit(sync_command(cs=CS_NONE).encode().reshape(1, 2))
    smmu.cmdq.consume_all()
    assert smmu.cmdq.consumed(b.stop - 1) and not any(vq.consumed(p) for p in a)


def test_scan_leaves_q2_hazards_that_scan_fanout_removes() -> None:
    src = load_source(
        "mixed",
        {"vms": 1, "threads": 2, "tlbis": 2, "ops": 1500, "ats": False, "unsupported_fraction": 0.1,
         "split_sync_fraction": 0.3, "foreign_sid_fraction": 0.0},
        seed=0,
    )  # fmt: skip
    assert check(src, "scan").counts["q2"] > 0
    assert check(src, "first-opcode").counts["q2"] > 0
    assert sum(check(src, "scan-fanout").counts.values()) == 0


def test_rely_hw_sync_leaves_no_observable_completion() -> None:
    src = load_source("guest-mixed", {"ops": 200}, seed=1)
    on = check(src, "rely-hw-sync", CmdqvParams(hw_sync=True)).counts
    off = check(src, "rely-hw-sync", CmdqvParams(hw_sync=False)).counts
    assert on["q3"] > 0 and on["q3"] == off["unsynced"]


@pytest.mark.parametrize("op", [Opcode.CMD_TLBI_S12_VMALL, Opcode.CMD_TLBI_S2_IPA])
def test_stage2_invalidations_on_a_guest_vcmdq(op: Opcode) -> None:
    def run(guest_opcodes: str) -> SMMU:
        smmu = SMMU(SmmuConfig(), cmdqv=CmdqvParams(num_vintfs=2, num_vcmdqs=2, guest_opcodes=guest_opcodes))
        assert smmu.cmdqv is not None
        smmu.cmdqv.vintfs[1].configure(vmid=7, hyp_own=False)
        vq = smmu.cmdqv.setup_lvcmdq(q=0, vintf=1, lidx=0, log2size=8)
        vq.submit(Command(op, vmid=3).encode().reshape(1, 2))
        smmu.cmdqv.schedule()
        return smmu

    linux, v2021 = run("linux"), run("v3-2021")
    assert [e.detail["cerror"] for e in linux.log.of("error")] == ["ILL"]
    assert not v2021.log.of("error")
    assert Command.decode(v2021.log.of("consume")[0].detail["executed"])["vmid"] == 7


def test_real_guest_traces_hold_no_stage2_invalidation() -> None:
    from cmdqv_lab.workloads.qemu_trace import parse_trace

    traces = sorted((ROOT / "data" / "traces").glob("*.log.gz"))
    assert traces
    seen = set()
    for f in traces:
        seen |= set(parse_trace(f).commands["opcode"].unique().to_list())
    assert "CMD_TLBI_NH_VA" in seen and not seen & {"CMD_TLBI_S12_VMALL", "CMD_TLBI_S2_IPA"}


def test_notebooks_have_a_smoke_parameter_and_answer_their_questions() -> None:
    for name, qids in NOTEBOOKS.items():
        text = (ROOT / "notebooks" / name).read_text()
        assert '# %% tags=["parameters"]\nsmoke = False\n' in text, name
        for q in qids:
            assert f'answer(\n    "{q}",' in text or f'answer("{q}",' in text, (name, q)
