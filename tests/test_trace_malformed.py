"""Handwritten logs: tricky valid cases, and every malformed case (file:line in the message; lenient counts)."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from cmdqv_lab.errors import TraceFormatError
from cmdqv_lab.workloads.qemu_trace import parse_bytes, parse_text, parse_trace


def consume(prod: int, cons: int, pw: int = 0, cw: int = 0) -> str:
    return f"smmuv3_cmdq_consume prod={prod} cons={cons} prod.wrap={pw} cons.wrap={cw}"


def out(prod: int, cons: int, pw: int = 0, cw: int = 0) -> str:
    return f"smmuv3_cmdq_consume_out prod:{prod}, cons:{cons}, prod_wrap:{pw}, cons_wrap:{cw} "


def op(name: str) -> str:
    return f"smmuv3_cmdq_opcode <--- SMMU_CMD_{name}"


def va(asid: int = 1, addr: int = 0x1000, pages: int = 1, tg: int = 1) -> str:
    return (
        f"smmuv3_s1_range_inval vmid=0 asid={asid} addr=0x{addr:x} tg={tg} num_pages=0x{pages:x} ttl=3 leaf=1"
    )


#: A valid two-command pass, used as the context of most malformed cases.
GOOD = [consume(2, 0), op("TLBI_NH_VA"), va(), consume(2, 1), op("SYNC"), out(2, 2)]


# ----------------------------------------------------------------------------- valid corner cases


def test_error_stops_the_pass_and_the_gerrorn_pass_resumes() -> None:
    log = [
        consume(3, 0), op("TLBI_NH_ASID"), "smmuv3_cmdq_tlbi_nh_asid asid=5",
        consume(3, 1), "smmuv3_cmdq_opcode <--- UNKNOWN", "smmuv3_cmdq_consume_error Error on UNKNOWN command execution: 1",
        out(3, 1),
        consume(3, 1), out(3, 1),  # a PROD write while the error is pending: reads nothing
        consume(3, 1), op("SYNC"), consume(3, 2), op("SYNC"), out(3, 3),  # after GERRORN: the slot is a SYNC now
    ]  # fmt: skip
    t = parse_text(log)
    c, d = t.commands, t.doorbells
    assert c["opcode"].to_list() == ["CMD_TLBI_NH_ASID", "UNKNOWN", "CMD_SYNC", "CMD_SYNC"]
    assert c["opcode_value"].to_list() == [0x11, None, 0x46, 0x46]
    assert c["error"].to_list() == [None, "ILL", None, None]
    assert c["cons"].to_list() == [0, 1, 1, 2]
    assert d.select("n_commands", "error", "resumed", "cons_before", "cons_after").rows() == [
        (2, "ILL", False, 0, 1),
        (2, None, True, 1, 3),
    ]
    assert t.meta.stalled_passes == 1 and t.meta.passes == 3
    assert t.summary()["errors"] == {"ILL": 1}


def test_cons_wrap_is_followed_and_gives_the_queue_size() -> None:
    log = [consume(1, 6, pw=1), op("TLBI_NH_VA"), va(), consume(1, 7, pw=1), op("SYNC"),
           consume(1, 0, pw=1, cw=1), op("SYNC"), out(1, 1, 1, 1)]  # fmt: skip
    t = parse_text(log)
    assert t.commands.select("cons", "cons_wrap").rows() == [(6, 0), (7, 0), (0, 1)]
    assert t.meta.queue_log2size == 3
    with pytest.raises(TraceFormatError, match=r"<text>:5: cons=0 cons.wrap=1 does not follow"):
        parse_text([consume(1, 5, pw=1), op("SYNC"), consume(1, 6, pw=1), op("SYNC"), consume(1, 0, 1, 1)])


def test_qemu10_events_and_minus_one_as_null() -> None:
    log = [
        consume(5, 0), op("TLBI_NH_VA"),
        "smmuv3_range_inval vmid=-1 asid=3 addr=0x40000 tg=1 num_pages=0x2 ttl=0 leaf=0 stage=1",
        consume(5, 1), op("TLBI_NH_ALL"), "smmuv3_cmdq_tlbi_nh vmid=7",
        consume(5, 2), op("TLBI_NSNH_ALL"), "smmuv3_cmdq_tlbi_nsnh ",
        consume(5, 3), op("TLBI_S12_VMALL"), "smmuv3_cmdq_tlbi_s12_vmid vmid=7",
        consume(5, 4), op("ATC_INV"), "smmuv3_unhandled_cmd Unhandled command type=64",
        out(5, 5),
    ]  # fmt: skip
    t = parse_text(log)
    c = t.commands
    assert t.meta.format == "qemu-10"
    assert c.select("vmid", "asid", "stage", "num_pages").row(0) == (None, 3, 1, 2)
    assert c["vmid"].to_list()[1:4] == [7, None, 7]
    assert c["opcode_value"].to_list() == [0x12, 0x10, 0x30, 0x28, 0x40]


def test_range_split_events_add_up() -> None:
    log = [consume(2, 0), op("TLBI_NH_VA"), va(addr=0x3000), va(addr=0x4000, pages=4), va(addr=0x8000, pages=2),
           consume(2, 1), op("SYNC"), out(2, 2)]  # fmt: skip
    row = parse_text(log).commands.row(0, named=True)
    assert (row["addr"], row["num_pages"], row["n_ranges"]) == (0x3000, 7, 3)


def test_other_events_and_text_are_skipped_and_counted() -> None:
    log = [
        "9@1.000001:smmuv3_translate_success 0000:00:01.0 sid=0x8 iova=0x1000 translated=0x4000 perm=0x1",
        "virtio_blk_req_complete req 0x1 status 0", "", "   ", "Illegal command type: 47",
        *(f"9@1.00000{i + 2}:{line}" for i, line in enumerate(GOOD)),
        "9@2.000000:smmuv3_translate_success 0000:00:01.0 sid=0x8 iova=0x1000 translated=0x4000 perm=0x1",
    ]  # fmt: skip
    t = parse_text(log)
    assert t.commands.height == 2
    assert t.meta.skipped == {
        "smmuv3_translate_success": 2,
        "virtio_blk_req_complete": 1,
        "<blank>": 2,
        "<text>": 1,
    }
    assert t.meta.duration_s == pytest.approx(0.999999)  # skipped events' timestamps count


@pytest.mark.parametrize("lenient", [False, True])
def test_a_trace_without_commands_is_an_error(tmp_path: Path, lenient: bool) -> None:
    """An empty file is not a clean trace (issue 17): nothing to check is an error, in both modes."""
    p = tmp_path / "empty.log"
    p.write_text("")
    with pytest.raises(TraceFormatError, match=r"empty.log: empty trace \(no lines\)"):
        parse_trace(p, lenient=lenient)
    with pytest.raises(TraceFormatError, match=r"^/dev/null: empty trace"):
        parse_trace("/dev/null", lenient=lenient)
    p.write_text(
        "\n  \nsmmuv3_translate_success 0000:00:01.0 sid=0x8 iova=0x1000 translated=0x2000 perm=0x1\n"
    )
    with pytest.raises(TraceFormatError, match=r"empty.log: no SMMUv3 commands in 3 lines"):
        parse_trace(p, lenient=lenient)
    p.write_text(out(0, 0) + "\n")  # a pass that read nothing (a CR0 write): still no command
    with pytest.raises(TraceFormatError, match=r"no SMMUv3 commands in 1 lines"):
        parse_trace(p, lenient=lenient)


# ----------------------------------------------------------------------------- malformed lines

#: (name, lines, line number in the message, message fragment, lenient kind)
CASES = [
    ("bad consume args", [consume(2, 0).replace("prod=2", "prod=x"), *GOOD], 1, "expected prod=N cons=N",
     "bad_arguments"),
    ("wrap out of range", [consume(2, 0).replace("prod.wrap=0", "prod.wrap=2"), *GOOD], 1,
     "prod.wrap=2 out of range 0 .. 1", "bad_arguments"),
    ("index out of range", [consume(99999999, 0), *GOOD], 1, "prod=99999999 out of range", "bad_arguments"),
    ("huge number", [consume(2, 0).replace("prod=2", "prod=" + "9" * 4000), *GOOD], 1,
     "prod=99999999...(4000 digits) out of range 0 .. 1048575",
     "bad_arguments"),
    ("bad consume_out", [*GOOD[:-1], "smmuv3_cmdq_consume_out prod:2 cons:2"], 6, "expected prod:N, cons:N",
     "bad_arguments"),
    ("unknown command name", [consume(1, 0), op("FOO"), out(1, 1), *GOOD], 2, "unknown command name 'SMMU_CMD_FOO'",
     "bad_arguments"),
    ("lost detail line", [consume(2, 0), op("TLBI_NH_VA"), consume(2, 1), op("SYNC"), out(2, 2)], 2,
     "CMD_TLBI_NH_VA is not followed by its smmuv3_range_inval or smmuv3_s1_range_inval line", "missing_detail"),
    ("lost detail line before consume_out", [*GOOD, consume(3, 2), op("TLBI_NH_ASID"), out(3, 3)], 8,
     "CMD_TLBI_NH_ASID is not followed by its smmuv3_cmdq_tlbi_nh_asid line", "missing_detail"),
    ("lost detail line at the end", [*GOOD, consume(3, 2), op("CFGI_STE_RANGE")], 8,
     "CMD_CFGI_STE_RANGE is not followed by its smmuv3_cmdq_cfgi_ste_range line", "missing_detail"),
    ("opcode first", [op("SYNC"), *GOOD], 1, "no preceding smmuv3_cmdq_consume", "sequence"),
    ("two opcodes, one consume", [consume(1, 0), op("SYNC"), op("SYNC"), out(1, 1)], 3,
     "no preceding smmuv3_cmdq_consume", "sequence"),
    ("detail before opcode", [consume(2, 0), va(), *GOOD[1:]], 2, "does not follow a smmuv3_cmdq_opcode", "sequence"),
    ("detail after wrong opcode", [*GOOD[:3], "smmuv3_cmdq_cfgi_ste streamid= 0x8", *GOOD[3:]], 4,
     "follows CMD_TLBI_NH_VA (line 2); expected it after CMD_CFGI_STE", "sequence"),
    ("duplicate detail", [consume(1, 0), op("TLBI_NH_ASID"), "smmuv3_cmdq_tlbi_nh_asid asid=1",
                          "smmuv3_cmdq_tlbi_nh_asid asid=1", out(1, 1)], 4, "second smmuv3_cmdq_tlbi_nh_asid",
     "sequence"),
    ("bad hex address", [*GOOD[:2], va().replace("addr=0x1000", "addr=0xZZ"), *GOOD[3:]], 3,
     "smmuv3_s1_range_inval: cannot parse", "bad_arguments"),
    ("zero pages", [*GOOD[:2], va(pages=0), *GOOD[3:]], 3, "num_pages=0 out of range 1 ..", "bad_arguments"),
    ("asid too large", [consume(1, 0), op("TLBI_NH_ASID"), "smmuv3_cmdq_tlbi_nh_asid asid=70000", out(1, 1)], 3,
     "asid=70000 out of range -1 .. 65535", "bad_arguments"),
    ("sid range reversed", [consume(1, 0), op("CFGI_STE_RANGE"), "smmuv3_cmdq_cfgi_ste_range start=0x10 - end=0x8",
                            out(1, 1)], 3, "end=8 out of range 16 ..", "bad_arguments"),
    ("error code", [consume(1, 0), op("SYNC"), "smmuv3_cmdq_consume_error Error on SMMU_CMD_SYNC command execution: 9",
                    out(1, 0)], 3, "error code 9, allowed 1 (ILL)", "bad_arguments"),
    ("error outside a pass", ["smmuv3_cmdq_consume_error Error on SMMU_CMD_SYNC command execution: 1", *GOOD], 1,
     "outside a consume pass", "sequence"),
    ("consume after a consume that read nothing", [consume(2, 0), consume(2, 0), *GOOD[1:]], 2,
     "which read no command", "sequence"),
    ("prod changes inside a pass", [*GOOD[:3], consume(3, 1), *GOOD[4:]], 4, "changed inside the consume pass",
     "inconsistent"),
    ("cons skips a slot", [*GOOD[:3], consume(2, 2), *GOOD[4:]], 4, "cons=2 cons.wrap=0 does not follow", "inconsistent"),
    ("consume_out cons", [*GOOD[:-1], out(2, 1)], 6, "cons:1 cons_wrap:0 after line 4; expected cons:2", "inconsistent"),
    ("type does not match opcode", [consume(1, 0), op("ATC_INV"), "smmuv3_unhandled_cmd Unhandled command type=65",
                                    out(1, 1)], 3, "type=65 does not match CMD_ATC_INV (64)", "sequence"),
    ("truncated last line", [*GOOD, "123@1.000005:smmuv3_cmdq_consume prod=4 co"], 7, "(last line: file cut short?)",
     "bad_arguments"),
    ("truncated event name", [*GOOD, "smmuv3_cmdq_cons"], 7, "truncated event name 'smmuv3_cmdq_cons'", "truncated"),
    ("ends inside a pass", [*GOOD, consume(3, 2), op("SYNC")], 8, "trace ends inside the consume pass opened at line 7",
     "unterminated"),
    ("failed command needs no detail", [consume(1, 0), op("TLBI_NH_VA"),
                                        "smmuv3_cmdq_consume_error Error on SMMU_CMD_TLBI_NH_VA command execution: 1",
                                        out(1, 0), "%%"], 5, "not a QEMU trace event line", "garbage"),
    ("punctuation", [*GOOD, "%%%% garbage"], 7, "not a QEMU trace event line", "garbage"),
    ("number", ["12345", *GOOD], 1, "not a QEMU trace event line", "garbage"),
    ("control characters", [*GOOD[:3], "\x01\x02\x03", *GOOD[3:]], 4, "not a QEMU trace event line", "garbage"),
    ("control characters in an event", [*GOOD, "smmuv3_translate_success \x00\x07"], 7, "non-printable", "garbage"),
    ("bad prefix", ["123@abc:" + GOOD[0], *GOOD[1:]], 1, "not a QEMU trace event line", "garbage"),
    ("indented event", ["  " + GOOD[0], *GOOD[1:]], 1, "not a QEMU trace event line", "garbage"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("lines", "lineno", "fragment", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_strict_names_file_and_line(
    lines: list[str], lineno: int, fragment: str, kind: str
) -> None:
    with pytest.raises(TraceFormatError) as e:
        parse_text(lines, source="bad.log")
    msg = str(e.value)
    assert msg.startswith(f"bad.log:{lineno}: "), msg
    assert fragment in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("lines", "lineno", "fragment", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_lenient_skips_and_counts(lines: list[str], lineno: int, fragment: str, kind: str) -> None:
    t = parse_text(lines, source="bad.log", lenient=True)
    assert t.meta.malformed.get(kind, 0) >= 1, t.meta.malformed
    assert t.meta.lenient
    assert t.doorbells["n_commands"].sum() == t.commands.height
    assert t.summary()["malformed"] == dict(sorted(t.meta.malformed.items()))


def test_lenient_keeps_the_good_commands_around_a_bad_line() -> None:
    log = [*GOOD, "%%%", *(line.replace("prod=2", "prod=4").replace("prod:2", "prod:4") for line in GOOD)]
    log[-6:] = [consume(4, 2), op("TLBI_NH_VA"), va(), consume(4, 3), op("SYNC"), out(4, 4)]
    t = parse_text(log, lenient=True)
    assert t.commands.height == 4 and t.doorbells.height == 2 and t.meta.malformed == {"garbage": 1}


def test_lenient_takes_a_missing_consume_out_as_lost() -> None:
    log = [*GOOD[:-1], consume(4, 2), op("SYNC"), consume(4, 3), op("SYNC"), out(4, 4)]  # lost out(2, 2)
    t = parse_text(log, lenient=True)
    assert t.meta.malformed == {"inconsistent": 1} and t.meta.unterminated_passes == 1
    assert t.doorbells.select("n_commands", "line_end").rows() == [(2, None), (2, 10)]


# ----------------------------------------------------------------------------- files and bytes


def test_missing_directory_binary_and_bad_gzip(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match=r"nope.log: no such file"):
        parse_trace(tmp_path / "nope.log")
    with pytest.raises(TraceFormatError, match=r"is a directory"):
        parse_trace(tmp_path)
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(TraceFormatError, match=r"x.png: binary file \(NUL byte at offset 8\)"):
        parse_trace(png, lenient=True)
    latin = tmp_path / "l.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 3)
    with pytest.raises(TraceFormatError, match=r"l.txt: not a text file \(invalid UTF-8 at offset 3\)"):
        parse_trace(latin)
    bad = tmp_path / "bad.log.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate")
    with pytest.raises(TraceFormatError, match=r"bad.log.gz: corrupt gzip data"):
        parse_trace(bad)


def test_cut_short_gzip_strict_fails_lenient_reads_what_is_there(tmp_path: Path) -> None:
    text = "\n".join(GOOD * 1) + "\n"
    many = "".join(
        "\n".join([consume(2 * i + 2, 2 * i), op("TLBI_NH_VA"), va(), consume(2 * i + 2, 2 * i + 1), op("SYNC"),
                   out(2 * i + 2, 2 * i + 2)]) + "\n"
        for i in range(2000)
    )  # fmt: skip
    blob = gzip.compress(many.encode())
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(TraceFormatError, match=r"cut.log.gz: gzip stream ends early"):
        parse_trace(cut)
    t = parse_trace(cut, lenient=True)
    assert 0 < t.commands.height < 4000
    assert parse_bytes(gzip.compress(text.encode())).commands.height == 2


@pytest.mark.parametrize("gz", [False, True])
def test_a_last_line_without_newline_is_reported(tmp_path: Path, gz: bool) -> None:
    """QEMU ends every line: a file that does not was cut short, even if what is left parses."""
    text = "\n".join([*GOOD, consume(3, 2), op("TLBI_NH_ASID"), "smmuv3_cmdq_tlbi_nh_asid asid=1", out(3, 3)])
    raw = text.encode()  # no final newline: "...cons_wrap:0 " parses, but was it "cons_wrap:0 " or more?
    path = tmp_path / ("t.log.gz" if gz else "t.log")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(
        TraceFormatError, match=r"t.log(.gz)?:10: last line '.*' has no newline \(file cut short\?\)"
    ):
        parse_trace(path)
    t = parse_trace(path, lenient=True)
    assert t.meta.malformed == {"truncated": 1, "unterminated": 1} and t.meta.n_lines == 10
    assert t.commands.height == 3  # the pass the cut line would have closed is kept, flagged unterminated
    path.write_bytes(gzip.compress(raw + b"\n") if gz else raw + b"\n")
    assert parse_trace(path).commands.height == 3


def test_overlong_lines_are_refused_without_reading_them_whole(tmp_path: Path) -> None:
    p = tmp_path / "long.log"
    body = "\n".join(GOOD) + "\n"
    p.write_text(body + "smmuv3_cmdq_consume prod=" + "9" * 5000 + " cons=0 prod.wrap=0 cons.wrap=0\n" + body)
    with pytest.raises(TraceFormatError, match=r"long.log:7: line longer than 4096 bytes"):
        parse_trace(p)
    t = parse_trace(p, lenient=True)
    assert t.meta.malformed == {"garbage": 1} and t.commands.height == 4 and t.meta.n_lines == 13


def test_gzip_bomb_and_endless_input_are_refused(tmp_path: Path) -> None:
    from cmdqv_lab.errors import InputTooLargeError

    bomb = tmp_path / "bomb.log.gz"
    bomb.write_bytes(gzip.compress(b"\n" * (64 << 20), compresslevel=9))  # 64 MiB of newlines in ~64 KiB
    with pytest.raises(InputTooLargeError, match=r"bomb.log.gz: gzip data inflating more than 100 times"):
        parse_trace(bomb, lenient=True)
    with pytest.raises(TraceFormatError, match=r"/dev/zero: binary file"):
        parse_trace("/dev/zero", lenient=True)


def test_invalid_utf8_and_nul_after_the_first_block_name_the_line() -> None:
    body = ("\n".join(GOOD) + "\n").encode() * 200  # well past the 8 KiB sniff window
    for junk in (b"\xff\xfe oops\n", b"smmuv3_translate_success \x00\n"):
        raw = body + junk + body
        with pytest.raises(TraceFormatError, match=rf"^<bytes>:{6 * 200 + 1}: "):
            parse_bytes(raw)
        t = parse_bytes(raw, lenient=True)
        assert t.meta.malformed == {"garbage": 1} and t.commands.height == 800


def test_batches_frame_flags_mixed_batches() -> None:
    log = [consume(3, 0), op("TLBI_NH_VA"), va(), consume(3, 1), op("CFGI_CD"), "smmuv3_cmdq_cfgi_cd sid=0x10",
           consume(3, 2), op("SYNC"), out(3, 3)]  # fmt: skip
    b = parse_text(log).batches
    assert b.select("size", "n_tlbi", "n_cfgi", "n_sync", "mixed", "ends_with_sync").row(0) == (
        3,
        1,
        1,
        1,
        True,
        True,
    )
    assert parse_text(GOOD).batches["mixed"].to_list() == [False]
    assert parse_text(log).commands.filter(pl.col("opcode") == "CMD_CFGI_CD")["sid"].to_list() == [16]
