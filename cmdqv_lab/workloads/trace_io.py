"""Reading trace files: plain or gzip text, with clear errors for missing, binary or cut-short files.

QEMU writes its log backend's trace as text lines; captures in ``data/traces`` are gzip-compressed.
:func:`read_trace_text` returns the decoded text of either, detecting gzip by its magic number
(not the file name), and refuses what is not a text trace with a one-line
:class:`~cmdqv_lab.errors.TraceFormatError`:

>>> import gzip
>>> read_trace_text(gzip.compress(b"smmuv3_cmdq_tlbi_nsnh \\n"), source="t.log.gz")
('smmuv3_cmdq_tlbi_nsnh \\n', True)
>>> read_trace_text(b"\\x7fELF\\x02\\x01\\x01\\x00\\x00", source="a.out")
Traceback (most recent call last):
...
cmdqv_lab.errors.TraceFormatError: a.out: binary file (NUL byte at offset 7), expected a QEMU trace log
"""

from __future__ import annotations

import zlib
from pathlib import Path

from cmdqv_lab.errors import TraceFormatError

__all__ = ["read_trace_text"]

_GZIP_MAGIC = b"\x1f\x8b"
#: A file whose first bytes hold a NUL or are not UTF-8 is binary, not a damaged trace.
_SNIFF = 8192


def _gunzip(raw: bytes, source: str, lenient: bool) -> bytes:
    """Decompress every gzip member; a cut-short stream raises unless ``lenient``."""
    out: list[bytes] = []
    data = raw
    while data:
        d = zlib.decompressobj(wbits=31)
        try:
            out.append(d.decompress(data))
        except zlib.error as e:
            raise TraceFormatError(f"{source}: corrupt gzip data ({e})") from None
        if not d.eof:
            if not lenient:
                raise TraceFormatError(
                    f"{source}: gzip stream ends early (file cut short?); --lenient reads what is there"
                )
            out.append(d.flush())
            text = b"".join(out)
            cut = text.rfind(b"\n")  # drop the partial last line
            return text[: cut + 1]
        data = d.unused_data
        if data[:2] != _GZIP_MAGIC:
            if data.strip(b"\x00"):
                raise TraceFormatError(f"{source}: {len(data)} bytes of non-gzip data after the gzip stream")
            break
    return b"".join(out)


def _check_text(data: bytes, source: str) -> None:
    head = data[:_SNIFF]
    nul = head.find(b"\x00")
    if nul >= 0:
        raise TraceFormatError(f"{source}: binary file (NUL byte at offset {nul}), expected a QEMU trace log")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut by the sniff window
            raise TraceFormatError(
                f"{source}: not a text file (invalid UTF-8 at offset {e.start}), expected a QEMU trace log"
            ) from None


def read_trace_text(
    path: str | Path | bytes, *, lenient: bool = False, source: str | None = None
) -> tuple[str, bool]:
    """Return ``(text, was_gzip)`` of a trace file (a path) or of its raw bytes.

    Parameters
    ----------
    path
        A file path, or the file's bytes (then ``source`` names it in messages).
    lenient
        Read a cut-short gzip stream up to its last complete line; decode bad bytes as U+FFFD
        (the parser then skips those lines as garbage) instead of raising.

    Raises
    ------
    TraceFormatError
        Missing file, directory, unreadable, binary, corrupt gzip, or (strict) bytes that are not UTF-8.
    """
    if isinstance(path, bytes):
        raw, name = path, source or "<bytes>"
    else:
        p = Path(path)
        name = source or str(p)
        if not p.exists():
            raise TraceFormatError(f"{name}: no such file")
        if p.is_dir():
            raise TraceFormatError(f"{name}: is a directory, expected a QEMU trace log (.log or .log.gz)")
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise TraceFormatError(f"{name}: cannot read ({e.strerror or e})") from None
    gz = raw[:2] == _GZIP_MAGIC
    data = _gunzip(raw, name, lenient) if gz else raw
    _check_text(data, name)
    try:
        return data.decode("utf-8"), gz
    except UnicodeDecodeError as e:
        if lenient:
            return data.decode("utf-8", errors="replace"), gz
        line = data.count(b"\n", 0, e.start) + 1
        raise TraceFormatError(
            f"{name}:{line}: invalid UTF-8 byte 0x{data[e.start]:02x} (binary data?)"
        ) from None
