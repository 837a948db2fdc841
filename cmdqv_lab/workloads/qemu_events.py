"""The grammar of QEMU's SMMUv3 command-queue trace events (log backend), per QEMU version.

Format strings as compiled into the binaries (``strings qemu-system-aarch64``) and
``hw/arm/trace-events``; the log backend prints ``name args`` and, with ``-msg timestamp=on``,
the prefix ``%d@%zu.%06zu:`` (QEMU thread id, host wall-clock seconds and microseconds).

=============================  =========================================================  =========
event                          format                                                     QEMU
=============================  =========================================================  =========
smmuv3_cmdq_consume            ``prod=%d cons=%d prod.wrap=%d cons.wrap=%d``              7.2, 10.0
smmuv3_cmdq_opcode             ``<--- %s`` (``SMMU_CMD_*``, ``UNKNOWN``, ``INVALID``)     7.2, 10.0
smmuv3_cmdq_consume_out        ``prod:%d, cons:%d, prod_wrap:%d, cons_wrap:%d`` + space   7.2, 10.0
smmuv3_cmdq_consume_error      ``Error on %s command execution: %d``                      7.2, 10.0
smmuv3_cmdq_cfgi_ste           ``streamid= 0x%x``                                         7.2, 10.0
smmuv3_cmdq_cfgi_ste_range     ``start=0x%x - end=0x%x``                                  7.2, 10.0
smmuv3_cmdq_cfgi_cd            ``sid=0x%x``                                               7.2, 10.0
smmuv3_cmdq_tlbi_nh_asid       ``asid=%d``                                                7.2, 10.0
smmuv3_cmdq_tlbi_nh            (no arguments; NH_ALL and NSNH_ALL)                        7.2
smmuv3_cmdq_tlbi_nh            ``vmid=%d`` (NH_ALL when stage 2 is supported)             10.0
smmuv3_cmdq_tlbi_nsnh          (no arguments; NSNH_ALL, NH_ALL without stage 2)           10.0
smmuv3_cmdq_tlbi_s12_vmid      ``vmid=%d``                                                10.0
smmuv3_s1_range_inval          ``vmid=%d asid=%d addr=0x%lx tg=%d num_pages=0x%lx ttl=%d  7.2
                               leaf=%d``
smmuv3_range_inval             the same, then `` stage=%d``                               10.0
smmuv3_unhandled_cmd           ``Unhandled command type=%d``                              7.2, 10.0
=============================  =========================================================  =========

7.2 is Debian 12's ``qemu-system-arm`` (7.2.22) and the format of the shared 7.x/8.x sample; 10.0 is
Debian 13's (10.0.13). QEMU prints ``-1`` for a VMID or ASID it does not use. A TLBI_NH_VA with a
range (TG != 0) is split into power-of-two ranges, one range-invalidation event each.

>>> DETAIL_OPCODES["smmuv3_cmdq_cfgi_cd"] == {"CMD_CFGI_CD", "CMD_CFGI_CD_ALL"}
True
>>> OPCODE_NAMES["SMMU_CMD_TLBI_NH_VA"], OPCODE_NAMES["SMMU_CMD_TLBI_EL3_VA"]
(('CMD_TLBI_NH_VA', 18), ('CMD_TLBI_EL3_VA', 26))
>>> HOT.match("7@1.000002:smmuv3_cmdq_opcode <--- SMMU_CMD_SYNC").lastindex
8
"""

from __future__ import annotations

import re

from cmdqv_lab.device.commands import Opcode

#: QEMU names spec opcodes cmdqv_lab's Opcode does not model; SMMU_CMD_CFGI_ALL is QEMU's enum value
#: 7 (not architected; Linux's CFGI_ALL is CMD_CFGI_STE_RANGE with RANGE=31).
EXTRA_OPCODES = {"CMD_CFGI_ALL": 0x07, "CMD_TLBI_EL3_ALL": 0x18, "CMD_TLBI_EL3_VA": 0x1A}

#: QEMU's printed command name -> (spec name, opcode value or None).
OPCODE_NAMES: dict[str, tuple[str, int | None]] = {
    **{"SMMU_" + op.name: (op.name, int(op)) for op in Opcode},
    **{"SMMU_" + name: (name, v) for name, v in EXTRA_OPCODES.items()},
    "UNKNOWN": ("UNKNOWN", None),
    "INVALID": ("INVALID", None),
}

#: SMMU_CERROR codes in ``smmuv3_cmdq_consume_error``.
CERROR = {1: "ILL", 2: "ABT", 3: "ATC_INV_SYNC"}

_P = r"(?:([0-9]+)@([0-9]+)\.([0-9]{1,6}):)?"  # -msg timestamp=on prefix: groups 1..3
_N = r"([0-9]+)"
_SN = r"(-?[0-9]+)"
_H = r"0x([0-9a-fA-F]+)"

#: The frequent events in one match. ``lastindex``: 7 consume, 8 opcode, 12 consume_out, 21 a
#: range invalidation (groups 13..20: vmid asid addr tg num_pages ttl leaf stage).
HOT = re.compile(
    _P + r"smmuv3_(?:"
    r"cmdq_consume prod=([0-9]+) cons=([0-9]+) prod\.wrap=([01]) cons\.wrap=([01])"
    r"|cmdq_opcode <--- ([A-Z_0-9]+)"
    r"|cmdq_consume_out prod:([0-9]+), cons:([0-9]+), prod_wrap:([01]), cons_wrap:([01]) ?"
    r"|(?:s1_)?range_inval vmid=(-?[0-9]+) asid=(-?[0-9]+) addr=0x([0-9a-f]+) tg=([0-3]) "
    r"num_pages=0x([0-9a-f]+) ttl=([0-3]) leaf=([01])(?: stage=([0-9]+))?()"
    r")\Z",
    re.ASCII,
)

#: Any trace line: prefix, event name, arguments.
LINE = re.compile(_P + r"([A-Za-z_][A-Za-z0-9_.]*)(?: (.*))?\Z", re.ASCII | re.S)
PREFIX_START = re.compile(r"[0-9]+@")

#: Argument grammar of each handled event (fullmatch on the arguments, trailing spaces removed).
ARGS: dict[str, re.Pattern[str]] = {
    "smmuv3_cmdq_consume": re.compile(rf"prod={_N} cons={_N} prod\.wrap={_N} cons\.wrap={_N}"),
    "smmuv3_cmdq_consume_out": re.compile(rf"prod:{_N}, cons:{_N}, prod_wrap:{_N}, cons_wrap:{_N}"),
    "smmuv3_cmdq_opcode": re.compile(r"<--- (\S+)"),
    "smmuv3_cmdq_consume_error": re.compile(rf"Error on (\S+) command execution: {_N}"),
    "smmuv3_cmdq_cfgi_ste": re.compile(rf"streamid= ?(?:{_H}|{_N})"),
    "smmuv3_cmdq_cfgi_ste_range": re.compile(rf"start={_H} - end={_H}"),
    "smmuv3_cmdq_cfgi_cd": re.compile(rf"sid={_H}"),
    "smmuv3_cmdq_tlbi_nh_asid": re.compile(rf"asid={_SN}"),
    "smmuv3_cmdq_tlbi_nh": re.compile(rf"(?:vmid={_SN})?"),
    "smmuv3_cmdq_tlbi_nsnh": re.compile(r""),
    "smmuv3_cmdq_tlbi_s12_vmid": re.compile(rf"vmid={_SN}"),
    "smmuv3_s1_range_inval": re.compile(
        rf"vmid={_SN} asid={_SN} addr={_H} tg={_N} num_pages={_H} ttl={_N} leaf={_N}()"
    ),
    "smmuv3_range_inval": re.compile(
        rf"vmid={_SN} asid={_SN} addr={_H} tg={_N} num_pages={_H} ttl={_N} leaf={_N} stage={_N}"
    ),
    "smmuv3_unhandled_cmd": re.compile(rf"Unhandled command type={_N}"),
}

#: What a well-formed argument list looks like, for error messages.
EXPECTED = {
    "smmuv3_cmdq_consume": "prod=N cons=N prod.wrap=0|1 cons.wrap=0|1",
    "smmuv3_cmdq_consume_out": "prod:N, cons:N, prod_wrap:0|1, cons_wrap:0|1",
    "smmuv3_cmdq_opcode": "<--- SMMU_CMD_<NAME> (e.g. SMMU_CMD_TLBI_NH_VA)",
    "smmuv3_cmdq_consume_error": "Error on SMMU_CMD_<NAME> command execution: 1|2|3",
    "smmuv3_cmdq_cfgi_ste": "streamid= 0xHEX",
    "smmuv3_cmdq_cfgi_ste_range": "start=0xHEX - end=0xHEX",
    "smmuv3_cmdq_cfgi_cd": "sid=0xHEX",
    "smmuv3_cmdq_tlbi_nh_asid": "asid=N",
    "smmuv3_cmdq_tlbi_nh": "no arguments (QEMU 7/8) or vmid=N (QEMU 10)",
    "smmuv3_cmdq_tlbi_nsnh": "no arguments",
    "smmuv3_cmdq_tlbi_s12_vmid": "vmid=N",
    "smmuv3_s1_range_inval": "vmid=N asid=N addr=0xHEX tg=0..3 num_pages=0xHEX ttl=0..3 leaf=0|1",
    "smmuv3_range_inval": "vmid=N asid=N addr=0xHEX tg=0..3 num_pages=0xHEX ttl=0..3 leaf=0|1 stage=N",
    "smmuv3_unhandled_cmd": "Unhandled command type=N",
}
KNOWN = frozenset(EXPECTED)

#: Detail event -> the opcodes it may follow (None: any opcode).
DETAIL_OPCODES: dict[str, frozenset[str] | None] = {
    "smmuv3_cmdq_cfgi_ste": frozenset({"CMD_CFGI_STE"}),
    "smmuv3_cmdq_cfgi_ste_range": frozenset({"CMD_CFGI_STE_RANGE"}),
    "smmuv3_cmdq_cfgi_cd": frozenset({"CMD_CFGI_CD", "CMD_CFGI_CD_ALL"}),
    "smmuv3_cmdq_tlbi_nh_asid": frozenset({"CMD_TLBI_NH_ASID"}),
    "smmuv3_cmdq_tlbi_nh": frozenset({"CMD_TLBI_NH_ALL", "CMD_TLBI_NSNH_ALL"}),
    "smmuv3_cmdq_tlbi_nsnh": frozenset({"CMD_TLBI_NH_ALL", "CMD_TLBI_NSNH_ALL"}),
    "smmuv3_cmdq_tlbi_s12_vmid": frozenset({"CMD_TLBI_S12_VMALL"}),
    "smmuv3_s1_range_inval": frozenset({"CMD_TLBI_NH_VA", "CMD_TLBI_NH_VAA"}),
    "smmuv3_range_inval": frozenset({"CMD_TLBI_NH_VA", "CMD_TLBI_NH_VAA", "CMD_TLBI_S2_IPA"}),
    "smmuv3_unhandled_cmd": None,
}

#: Opcode -> the detail events one of which QEMU (7.2 and 10.0) always prints after it, unless the
#: command fails (then ``smmuv3_cmdq_consume_error`` follows instead): a record without one has lost
#: a line. CMD_CFGI_STE and CMD_CFGI_CD are not here: QEMU prints their event only if a device has the
#: SID (``smmu_iommu_mr``); unhandled commands differ between versions.
_NH_ALL = frozenset({"smmuv3_cmdq_tlbi_nh", "smmuv3_cmdq_tlbi_nsnh"})
_VA = frozenset({"smmuv3_s1_range_inval", "smmuv3_range_inval"})
_STE_RANGE = frozenset({"smmuv3_cmdq_cfgi_ste_range"})
REQUIRED_DETAILS: dict[str, frozenset[str]] = {
    "CMD_TLBI_NH_ASID": frozenset({"smmuv3_cmdq_tlbi_nh_asid"}),
    "CMD_TLBI_NH_ALL": _NH_ALL,
    "CMD_TLBI_NSNH_ALL": _NH_ALL,
    "CMD_TLBI_NH_VA": _VA,
    "CMD_TLBI_NH_VAA": _VA,
    "CMD_CFGI_STE_RANGE": _STE_RANGE,
    "CMD_CFGI_ALL": _STE_RANGE,
}

#: Events that only one QEMU generation prints (``smmuv3_cmdq_tlbi_nh`` is decided by its arguments).
VARIANT = {
    "smmuv3_s1_range_inval": "qemu-7/8",
    "smmuv3_range_inval": "qemu-10",
    "smmuv3_cmdq_tlbi_nsnh": "qemu-10",
    "smmuv3_cmdq_tlbi_s12_vmid": "qemu-10",
}

#: QEMU's command queue holds at most 2^19 entries (IDR1.CMDQS = 19); indices above this are garbage.
MAX_INDEX = (1 << 20) - 1


def classify_other(line: str, name: str | None, has_args: bool, last: bool) -> tuple[str, str]:
    """Classify a line that is not a handled event: ``("skip", key)`` or ``(kind, message)``.

    ``name`` is the event name :data:`LINE` found (None if the line does not match it). Skipped
    lines are counted under ``key``: an event name, ``<text>`` or ``<blank>``; anything else is
    malformed (``garbage``, ``truncated``) and the message says what was expected.

    >>> classify_other("smmuv3_translate_success ...", "smmuv3_translate_success", True, False)
    ('skip', 'smmuv3_translate_success')
    >>> classify_other("smmuv3_cmdq_cons", "smmuv3_cmdq_cons", False, True)
    ('truncated', "truncated event name 'smmuv3_cmdq_cons' (line cut short?)")
    >>> classify_other("%%", None, False, False)[0]
    'garbage'
    """
    stripped = line.strip()
    if not stripped:
        return "skip", "<blank>"
    shown = repr(line if len(line) <= 100 else line[:100] + "...")
    printable = line.isprintable() and "\ufffd" not in line
    if name is not None:
        if not printable:
            return "garbage", f"non-printable characters in {shown}"
        if not has_args and name.startswith("smmuv3_") and any(k.startswith(name) for k in KNOWN):
            return "truncated", f"truncated event name {name!r} (line cut short?)"
        return "skip", name if "_" in name and name.islower() else "<text>"
    m = LINE.match(stripped)
    if (
        (m is not None and m.group(4) in KNOWN)
        or not printable
        or PREFIX_START.match(line)
        or not stripped[0].isalpha()
    ):
        cut = "; last line: file cut short?" if last and printable else ""
        return (
            "garbage",
            f"not a QEMU trace event line: {shown} (expected [pid@seconds.micros:]event_name args{cut})",
        )
    return "skip", "<text>"
