"""Capacity planner (Q4): limits of the CMDQV geometry, off by one both ways, and the model it programs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cmdqv_lab.cli import main
from cmdqv_lab.device.cmdq import CError
from cmdqv_lab.device.cmdqv import Cmdqv, CmdqvParams
from cmdqv_lab.device.commands import CS_NONE, Command, Opcode, sync_command
from cmdqv_lab.errors import CapacityError
from cmdqv_lab.virt.capacity import PSID_BASE, VmRequest, guest_sid, plan, uniform_vms


# ---------------------------------------------------------------- VINTFs (64 incl. the host's VINTF0)
def test_63_guests_fill_64_vintfs_with_the_hosts_vintf0() -> None:
    p = plan(uniform_vms(63, 1))
    assert p.fits and p.vintfs_used == 64
    assert [v.vintf for v in p.vms] == list(range(1, 64))
    assert [v.vmid for v in p.vms][:3] == [1, 2, 3]


def test_64_guests_do_not_fit() -> None:
    p = plan(uniform_vms(64, 1))
    assert not p.fits and p.vintfs_used == 64
    last = p.vms[-1]
    assert last.vintf is None and last.vcmdqs == () and last.unfit_sids == (8,)
    assert p.problems[0].startswith("64 VMs need 65 VINTFs")
    with pytest.raises(CapacityError, match=re.escape("at most 63 VMs fit")):
        plan(uniform_vms(64, 1), strict=True)


@pytest.mark.parametrize(
    ("vintfs", "vms", "fits"), [(4, 3, True), (4, 4, False), (1, 0, True), (1, 1, False)]
)
def test_vintf_limit_follows_the_geometry(vintfs: int, vms: int, fits: bool) -> None:
    params = CmdqvParams(num_vintfs=vintfs, num_vcmdqs=max(vintfs, 2))
    assert plan(uniform_vms(vms, 1), params).fits is fits


# ---------------------------------------------------------------- SID pairs (16 per VINTF)
@pytest.mark.parametrize(("devices", "unfit"), [(15, 0), (16, 0), (17, 1), (20, 4)])
def test_sid_pairs_per_vintf(devices: int, unfit: int) -> None:
    v = plan(uniform_vms(1, devices)).vms[0]
    assert len(v.sid_pairs) == min(devices, 16) and len(v.unfit_sids) == unfit
    assert v.unfit_sids == tuple(guest_sid(d) for d in range(16, devices))
    assert [pair.slot for pair in v.sid_pairs] == list(range(min(devices, 16)))
    assert v.fits is (unfit == 0)


def test_sid_pairs_follow_the_geometry_and_physical_sids_are_distinct() -> None:
    p = plan(uniform_vms(3, 5), CmdqvParams(sid_pairs_per_vintf=4))
    assert [len(v.sid_pairs) for v in p.vms] == [4, 4, 4] and [len(v.unfit_sids) for v in p.vms] == [1, 1, 1]
    psids = [pair.psid for v in p.vms for pair in v.sid_pairs]
    assert len(set(psids)) == len(psids) and min(psids) == PSID_BASE
    assert p.sid_pairs_used == 12
    with pytest.raises(
        CapacityError, match="VM 0 has 5 devices but a VINTF has sid_pairs_per_vintf=4: 1 needs"
    ):
        plan(uniform_vms(3, 5), CmdqvParams(sid_pairs_per_vintf=4), strict=True)


# ---------------------------------------------------------------- VCMDQs (128)
def test_linux_allocation_gives_each_vintf_its_slice() -> None:
    p = plan(uniform_vms(63, 1, vcmdqs_per_vm=2))
    assert p.fits and p.vcmdqs_used == 128 and p.host_vcmdqs == (0, 1)
    assert p.vms[0].vcmdqs == (2, 3) and p.vms[-1].vcmdqs == (126, 127) and p.vms[-1].lvcmdqs == (0, 1)
    over = plan(uniform_vms(2, 1, vcmdqs_per_vm=3))
    assert not over.fits and over.vms[0].vcmdqs == (2, 3) and over.vms[0].queue_of(5) == 3
    assert (
        "wants 3 VCMDQs but linux allocation gives each VINTF num_vcmdqs/num_vintfs = 2" in over.problems[0]
    )


@pytest.mark.parametrize(("extra", "fits"), [(-1, True), (0, True), (1, False)])
def test_pool_allocation_128_vcmdqs_off_by_one(extra: int, fits: bool) -> None:
    # host 2 + 63 VMs: 125 ones and one VM taking the rest (+ extra)
    vms = [VmRequest((8,), 2)] * 62 + [VmRequest((8,), 2 + extra)]
    p = plan(vms, allocation="pool")
    assert p.fits is fits
    assert p.vcmdqs_used == min(128, 128 + extra)
    got = [q for v in p.vms for q in v.vcmdqs]
    assert sorted(got) == got and len(set(got)) == len(got) and got[0] == 2


def test_pool_allocation_shares_out_a_small_geometry() -> None:
    params = CmdqvParams(num_vintfs=4, num_vcmdqs=8)
    p = plan(uniform_vms(2, 1, vcmdqs_per_vm=4), params, allocation="pool")
    assert [v.vcmdqs for v in p.vms] == [(2, 3, 4, 5), (6, 7)]
    assert p.problems == ("VM 1 wants 4 VCMDQs but only 2 of num_vcmdqs=8 are left (host 2)",)
    assert plan(uniform_vms(2, 1, 4), params, allocation="pool", host_vcmdqs=0).fits


@pytest.mark.parametrize(
    ("kwargs", "vms", "message"),
    [
        ({"host_vcmdqs": 3}, [], "host_vcmdqs=3 out of range: allowed 0 .. 2"),
        ({"allocation": "greedy"}, [], "allocation='greedy' is not allowed: one of linux, pool"),
        ({}, [VmRequest((8,), 0)], "VM 0: vcmdqs=0: allowed an integer >= 1"),
        ({}, [VmRequest((8, 8))], "VM 0: sid 0x8 listed twice"),
        ({}, [VmRequest((1 << 32,))], "VM 0: sid 4294967296 out of range"),
        (
            {},
            [VmRequest((8,), psids=(5,)), VmRequest((8,), psids=(5,))],
            "VM 1: physical SID 0x5 is already VM 0's",
        ),
        ({}, [VmRequest((8, 16), psids=(5,))], "VM 0: 1 psids for 2 sids"),
    ],
)
def test_malformed_requests_raise_even_when_not_strict(kwargs: dict, vms: list, message: str) -> None:
    with pytest.raises(CapacityError, match=re.escape(message)):
        plan(vms, **kwargs)


def test_frame_has_the_host_row_first() -> None:
    f = plan(uniform_vms(2, 17)).frame()
    assert f["vm"].to_list() == [-1, 0, 1] and f["vintf"].to_list() == [0, 1, 2]
    assert f["sid_pairs"].to_list() == [0, 16, 16] and f["unfit_sids"].to_list() == [[], [136], [136]]
    assert f["fits"].to_list() == [True, False, False]


# ---------------------------------------------------------------- the plan programs the functional model
def test_apply_programs_the_model_and_unfit_sids_raise_ill() -> None:
    p = plan([VmRequest((8, 16, 24), 2)], CmdqvParams(num_vintfs=4, num_vcmdqs=8, sid_pairs_per_vintf=2))
    cmdqv = Cmdqv(CmdqvParams(num_vintfs=4, num_vcmdqs=8, sid_pairs_per_vintf=2))
    p.apply(cmdqv)
    assert cmdqv.vintfs[0].hyp_own and not cmdqv.vintfs[1].hyp_own and cmdqv.vintfs[1].vmid == 1
    assert sorted(cmdqv.vintfs[1].lvcmdqs) == [0, 1] and cmdqv.vintfs[1].lvcmdqs[1].idx == 3
    vq = cmdqv.vcmdqs[p.vms[0].queue_of(0) or 0]
    vq.submit(Command(Opcode.CMD_ATC_INV, sid=16, size=52).encode())
    vq.submit(Command(Opcode.CMD_ATC_INV, sid=24, size=52).encode())  # no pair: ILL
    vq.submit(sync_command(cs=CS_NONE).encode())
    assert vq.consume_all() == 1 and vq.stopped
    done = Command.decode(vq.log.of("consume")[-1].detail["executed"])
    assert done["sid"] == p.vms[0].sid_pairs[1].psid
    assert vq.log.of("error")[-1].detail["cerror"] == CError.ILL.name
    with pytest.raises(CapacityError, match="plan made for num_vintfs=4 applied to a CMDQV with 64"):
        p.apply(Cmdqv())


# ---------------------------------------------------------------- CLI
def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(["plan", *args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_fits_exit_0_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--vms", "63", "--devices-per-vm", "16", "--vcmdqs-per-vm", "2")
    assert code == 0 and err == ""
    assert "used: VINTFs 64/64  VCMDQs 128/128  SID pairs 1008/1008" in out and "everything fits" in out


def test_cli_does_not_fit_exit_1_lists_devices(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--vms", "1", "--devices-per-vm", "17")
    assert code == 1
    assert re.search(r"^0 +vm0 +1 +1  2 +0 +16/16 +0x88$", out, re.M), out
    assert "does not fit: VM 0 has 17 devices" in out


def test_cli_summarises_alike_vms(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--vms", "100", "--devices-per-vm", "20")
    lines = out.splitlines()
    assert code == 1 and len(lines) <= 12  # not one line per VM
    assert re.search(
        r"^0-62 +vm0\.\.vm62 +1-63 +1-63  2 \.\. 126 +0 +16/16 +4 each: 0x88,0x90,0x98,0xa0$", out, re.M
    )
    assert re.search(r"^63-99 +vm63\.\.vm99 +- +- +- of 1 ", out, re.M)
    assert (
        "does not fit: VMs 0-62 (63 VMs): each has 20 devices but a VINTF has sid_pairs_per_vintf=16" in out
    )
    assert "does not fit: 100 VMs need 101 VINTFs" in out
    assert (
        "summary: 63 of 100 VMs get a VINTF (37 use only the trapped path); they get 63 of the 63 VCMDQs they want; "
        "1,008 of 2,000 devices have a SID pair (992 take the trapped path)" in out
    )
    assert lines[-1] == "does not fit: 64 problems (listed above)"
    # --detail: one row per VM and every problem, as the JSON has them
    code, detail, _ = run(capsys, "--vms", "100", "--devices-per-vm", "20", "--detail")
    assert len(re.findall(r"^\d+ +vm\d+ ", detail, re.M)) == 100
    assert len(re.findall(r"^does not fit: VM \d+ has 20 devices", detail, re.M)) == 63


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--vms", "2", "--devices-per-vm", "1", "--json", "--set", "num_vintfs=2")
    assert code == 1
    d = json.loads(out)
    assert d["geometry"]["num_vintfs"] == 2 and d["used"]["vintfs"] == 2 and not d["fits"]
    assert [v["vintf"] for v in d["vms"]] == [0, 1, None]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vms", "64", "--devices-per-vm", "1", "--strict"], "at most 63 VMs fit"),
        (["--vms", "1"], "give --vms N and --devices-per-vm K (or --spec FILE)"),
        (
            ["--vms", "1", "--devices-per-vm", "1", "--set", "num_vintfs=3"],
            "num_vintfs=3 is not a power of two",
        ),
        (["--vms", "1", "--devices-per-vm", "1", "--set", "nope=1"], "unknown parameter 'nope'"),
        (["--vms", "-1", "--devices-per-vm", "1"], "--vms=-1, --devices-per-vm=1: allowed >= 0"),
        (["--vms", "1", "--devices-per-vm", "1", "--allocation", "x"], "Invalid value for '--allocation'"),
        (["--spec", "/nonexistent.toml"], "/nonexistent.toml: cannot read"),
    ],
)
def test_cli_one_line_errors_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err


def test_cli_spec_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text(
        'allocation = "pool"\n[geometry]\nnum_vintfs = 4\nnum_vcmdqs = 8\n'
        '[[vm]]\nname = "db"\nsids = [8, 16]\nvcmdqs = 3\n[[vm]]\nsids = [8]\npsids = [0x42]\n'
    )
    code, out, _ = run(capsys, "--spec", str(toml), "--json")
    d = json.loads(out)
    assert code == 0 and d["allocation"] == "pool"
    assert [v["vcmdqs"] for v in d["vms"]] == [[0, 1], [2, 3, 4], [5]] and d["vms"][1]["name"] == "db"
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"strict": True, "vm": [{"sids": list(range(0, 17 * 8, 8))}]}))
    code, out, err = run(capsys, "--spec", str(js))
    assert code == 2 and "VM 0 has 17 devices" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[[vm]]\nsid = [8]\n")
    code, _, err = run(capsys, "--spec", str(bad))
    assert code == 2 and "vm 0: expected keys sids, vcmdqs, name, psids" in err
    code, _, err = run(capsys, "--spec", str(bad), "--vms", "1")
    assert code == 2 and "not both" in err
