"""Reading trace files as a stream: plain or gzip text, bounded memory, clear one-line errors.

QEMU writes its log backend's trace as text lines; captures in ``data/traces`` are gzip-compressed.
:class:`TraceReader` reads a file (or bytes) in chunks of :data:`CHUNK` bytes, decompressing gzip
(recognised by its magic number, not the file name; several members allowed) with a bounded output
per step, and yields *blocks* of complete lines. Limits keep a hostile file from taking the machine:

* at most :data:`MAX_TRACE_BYTES` of text and :data:`MAX_LINES` lines, and gzip data that inflates
  at most :data:`MAX_RATIO` times (QEMU traces compress about 10x; a gzip bomb 1000x): anything more
  is refused with :class:`~cmdqv_lab.errors.InputTooLargeError` as soon as it is seen, after at most
  :data:`RATIO_AFTER` bytes of a bomb, never inflated;
* lines of at most :data:`MAX_LINE` bytes (QEMU's are under 300): a longer one names its
  ``file:line`` (``--lenient``: it becomes one malformed line, and the rest of it is skipped unread);
* a NUL byte or invalid UTF-8 near the start means a binary file, not a damaged trace.

The last line of a file that does not end with a newline is held back as :attr:`TraceReader.partial`:
QEMU ends every line, so such a line was cut short and the parser reports it (``file:line``).

>>> import gzip
>>> read_trace_text(gzip.compress(b"smmuv3_cmdq_tlbi_nsnh \\n"), source="t.log.gz")
('smmuv3_cmdq_tlbi_nsnh \\n', True)
>>> read_trace_text(b"\\x7fELF\\x02\\x01\\x01\\x00\\x00", source="a.out")
Traceback (most recent call last):
...
cmdqv_lab.errors.TraceFormatError: a.out: binary file (NUL byte at offset 7), expected a QEMU trace log
>>> r = TraceReader(b"a\\r\\nb\\nc", source="x.log")
>>> list(r.blocks()), r.partial
([['a', 'b']], 'c')
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cmdqv_lab.errors import InputTooLargeError, TraceFormatError, environment_error

__all__ = ["MAX_LINE", "MAX_LINES", "MAX_TRACE_BYTES", "TraceReader", "read_trace_text"]

_GZIP_MAGIC = b"\x1f\x8b"
#: A file whose first bytes hold a NUL or are not UTF-8 is binary, not a damaged trace.
_SNIFF = 8192
#: Bytes read (and, for gzip, produced) per step.
CHUNK = 1 << 20
#: Longest line accepted (bytes). QEMU's SMMUv3 event lines are shorter than 300.
MAX_LINE = 4096
#: Most trace text accepted after decompression (bytes) and lines: 10x the largest capture we know
#: of (1.8 M lines, about 4.5 s to parse); parsing the most this admits takes under a minute.
MAX_TRACE_BYTES = 512 << 20
MAX_LINES = 10_000_000
#: Largest decompressed/compressed ratio accepted, checked once RATIO_AFTER bytes are out.
MAX_RATIO = 100
RATIO_AFTER = 1 << 20
#: What a line over MAX_LINE becomes in lenient mode (non-printable: the parser counts it as garbage).
OVERLONG = "\ufffd<line too long>"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


class TraceReader:
    """A trace file (a path, or its bytes) read as blocks of lines; see the module docstring.

    After :meth:`blocks` is exhausted, :attr:`partial` is the unterminated last line (or None),
    :attr:`gz` whether the file was gzip and :attr:`n_bytes` the text bytes read.
    """

    def __init__(
        self,
        path: str | Path | bytes,
        *,
        lenient: bool = False,
        source: str | None = None,
        max_bytes: int = MAX_TRACE_BYTES,
        max_line: int = MAX_LINE,
    ) -> None:
        self.path = path
        self.lenient = lenient
        self.name = source or ("<bytes>" if isinstance(path, bytes) else str(path))
        self.max_bytes, self.max_line = max_bytes, max_line
        self.gz = False
        self.partial: str | None = None
        self.n_bytes = 0
        self.n_raw = 0  # compressed bytes inflated so far
        self._cut = False  # a gzip stream cut short (lenient): its partial last line is dropped

    # ------------------------------------------------------------------ bytes
    def _open(self) -> BinaryIO:
        if isinstance(self.path, bytes):
            return io.BytesIO(self.path)
        p = Path(self.path)
        try:
            return open(p, "rb")
        except FileNotFoundError:
            raise TraceFormatError(f"{self.name}: no such file") from None
        except IsADirectoryError:
            raise TraceFormatError(
                f"{self.name}: is a directory, expected a QEMU trace log (.log or .log.gz)"
            ) from None
        except OSError as e:
            raise TraceFormatError(f"{self.name}: cannot read ({e.strerror or e})") from None

    def _read(self, f: BinaryIO, n: int = CHUNK) -> bytes:
        try:
            return f.read(n)
        except OSError as e:
            env = environment_error(e, f"reading {self.name}")
            if env is not None:
                raise env from None
            raise TraceFormatError(f"{self.name}: cannot read ({e.strerror or e})") from None

    def _gunzip(self, f: BinaryIO, first: bytes) -> Iterator[bytes]:
        """Decompress every gzip member, at most CHUNK bytes of output per step."""
        d = zlib.decompressobj(wbits=31)
        data, started = first, False
        while True:
            if not data:
                data = d.unconsumed_tail or self._read(f)
                if not data:
                    break
            started = True
            try:
                out = d.decompress(data, CHUNK)
            except zlib.error as e:
                raise TraceFormatError(f"{self.name}: corrupt gzip data ({e})") from None
            self.n_raw += len(data) - len(d.unconsumed_tail) - len(d.unused_data)
            data = d.unconsumed_tail
            if out:
                yield out
            if d.eof:
                rest = d.unused_data
                while len(rest) < 2:
                    more = self._read(f)
                    if not more:
                        break
                    rest += more
                if not rest:
                    return
                if rest[:2] != _GZIP_MAGIC:
                    self._check_trailer(f, rest)
                    return
                d, data, started = zlib.decompressobj(wbits=31), rest, False
        if started and not d.eof:
            if not self.lenient:
                raise TraceFormatError(
                    f"{self.name}: gzip stream ends early (file cut short?); --lenient reads what is there"
                )
            self._cut = True
            tail = d.flush()
            if tail:
                yield tail

    def _check_trailer(self, f: BinaryIO, rest: bytes) -> None:
        """Bytes after the last gzip member: NUL padding is tolerated, anything else is not."""
        n = 0
        while rest:
            if rest.strip(b"\x00"):
                raise TraceFormatError(f"{self.name}: non-gzip data after the gzip stream")
            n += len(rest)
            if n > self.max_bytes:
                raise InputTooLargeError(f"{self.name}: more than {_mib(self.max_bytes)} of padding")
            rest = self._read(f)

    def _raw(self) -> Iterator[bytes]:
        f = self._open()
        with f:
            first = self._read(f)
            self.gz = first[:2] == _GZIP_MAGIC
            if self.gz:
                yield from self._gunzip(f, first)
                return
            while first:
                yield first
                first = self._read(f)

    # ------------------------------------------------------------------ lines
    def _sniff(self, head: bytes) -> None:
        nul = head.find(b"\x00")
        if nul >= 0:
            raise TraceFormatError(
                f"{self.name}: binary file (NUL byte at offset {nul}), expected a QEMU trace log"
            )
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(head) - 4:  # not just a character cut by the sniff window
                raise TraceFormatError(
                    f"{self.name}: not a text file (invalid UTF-8 at offset {e.start}), expected a QEMU trace log"
                ) from None

    def _decode(self, data: bytes, line0: int) -> list[str]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            if not self.lenient:
                line = line0 + data.count(b"\n", 0, e.start) + 1
                raise TraceFormatError(
                    f"{self.name}:{line}: invalid UTF-8 byte 0x{data[e.start]:02x} (binary data?)"
                ) from None
            text = data.decode("utf-8", errors="replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        lines.pop()  # the block ends with a newline
        return lines

    def _too_long(self, line: int) -> str:
        if not self.lenient:
            raise TraceFormatError(
                f"{self.name}:{line}: line longer than {self.max_line} bytes (not a QEMU trace event line:"
                " a damaged or binary file?)"
            )
        return OVERLONG

    def _chunks(self) -> Iterator[bytes]:
        """The text bytes, counted against the size cap, after the first ones are sniffed."""
        head: list[bytes] = []
        n_head = 0
        raw = self._raw()
        for chunk in raw:  # hold chunks back until the sniff window is full (or the file ends)
            self._count(len(chunk))
            head.append(chunk)
            n_head += len(chunk)
            if n_head >= _SNIFF:
                break
        self._sniff(b"".join(head)[:_SNIFF])
        yield from head
        for chunk in raw:
            self._count(len(chunk))
            yield chunk

    def _count(self, n: int) -> None:
        self.n_bytes += n
        if self.n_bytes > self.max_bytes:
            what = "decompressed text" if self.gz else "text"
            raise InputTooLargeError(
                f"{self.name}: more than {_mib(self.max_bytes)} of {what}: refused (a gzip bomb, or not a"
                " trace this tool reads)"
            )
        if self.gz and self.n_bytes > RATIO_AFTER and self.n_bytes > MAX_RATIO * self.n_raw:
            raise InputTooLargeError(
                f"{self.name}: gzip data inflating more than {MAX_RATIO} times (a gzip bomb? QEMU traces"
                f" compress about 10 times): refused after {_mib(self.n_bytes)}"
            )

    def blocks(self) -> Iterator[list[str]]:
        """The file's complete lines (newlines removed, CRLF as LF), a block per chunk read."""
        carry = b""
        skipping = False  # inside an overlong line (lenient): drop bytes up to its newline
        n_lines = 0
        for chunk in self._chunks():
            start = 0
            if skipping:
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue
                start, skipping = nl + 1, False
            last = chunk.rfind(b"\n", start)
            if last < 0:
                carry += chunk[start:]
                if len(carry) > self.max_line:
                    n_lines += 1
                    yield [self._too_long(n_lines)]
                    carry, skipping = b"", True
                continue
            data = carry + chunk[start : last + 1]
            carry = chunk[last + 1 :]
            lines = self._decode(data, n_lines)
            if lines and max(map(len, lines)) > self.max_line:
                lines = [
                    x if len(x) <= self.max_line else self._too_long(n_lines + i + 1)
                    for i, x in enumerate(lines)
                ]
            n_lines += len(lines)
            if n_lines > MAX_LINES:
                raise InputTooLargeError(
                    f"{self.name}: more than {MAX_LINES:,} lines: refused (not a trace this tool reads)"
                )
            yield lines
            if len(carry) > self.max_line:
                n_lines += 1
                yield [self._too_long(n_lines)]
                carry, skipping = b"", True
        if carry and not self._cut:
            (self.partial,) = self._decode(carry + b"\n", n_lines)


def read_trace_text(
    path: str | Path | bytes, *, lenient: bool = False, source: str | None = None
) -> tuple[str, bool]:
    """Return ``(text, was_gzip)`` of a trace file (a path) or of its raw bytes, within the limits.

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
    r = TraceReader(path, lenient=lenient, source=source)
    lines = [x for block in r.blocks() for x in block]
    text = "".join(x + "\n" for x in lines) + (r.partial or "")
    return text, r.gz
