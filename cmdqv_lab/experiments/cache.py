"""The result cache: one checksummed Parquet file per point, keyed by the point and the code version.

**Key.** A point's key is the SHA-256 (first 32 hex digits) of a canonical JSON serialisation of
the scenario, *every* resolved parameter, the seed, the count, the record flag, the package version
and the *code version* (:func:`code_version`: a hash of every source file of the package). A
change to any source file therefore invalidates every cached point (joblib.Memory would miss
changes in functions the cached one calls); a change to a default or a platform preset changes
the resolved parameters and so the key.

**Files.** ``points/<key>.parquet`` holds one row (scenario, seed, count, resolved parameters,
flattened metrics). Records, when a spec asks for them, go to ``points/<key>.ops.parquet`` and
``points/<key>.commands.parquet``. ``points/<key>.json`` (the *index* of the point) holds the key,
the SHA-256 of the row's canonical content (:func:`content_sha256`), the records' content hashes,
the wall time, the versions and, per file, the SHA-256 and length of its **bytes**.

**Atomicity.** Files are written to a temporary name in the same directory (``.NAME.PID.HEX.tmp``:
the writer's pid is in the name), flushed, fsynced and renamed over the final name (then the
directory is fsynced). Records first, then the index, then the row file: a point exists when its
row file does, and then everything it refers to is complete. A process killed at any instant leaves
either no row file or a complete point, plus possibly a temporary file that the next sweep removes
once its writer is dead (:func:`remove_stale_temporaries`).

**Verification.** Reading a point reads its index (size-capped, JSON), then each file's bytes, and
compares their length and SHA-256 with the index *before any parser sees them*: a damaged file
never reaches polars (a flipped bit in a Parquet footer can make its reader panic, or abort the
whole process trying to allocate 2^61 bytes). Parsing is isolated as well (:func:`parse_parquet`
turns anything the reader raises, including polars' ``PanicException``, a ``BaseException``, into
corruption of that file), and the parsed row must match its content hash. Anything else is
*corrupt*: the sweep deletes the point and computes it again, with one line saying so.

Results are Parquet and JSON only: nothing is pickled or evaluated when reading.

>>> import polars as pl
>>> df = pl.DataFrame({"a": [1], "b": [0.1]})
>>> content_sha256(df) == content_sha256(parse_parquet(parquet_bytes(df, {"x": "y"}), "t")[0])
True
>>> content_sha256(df) == content_sha256(df.with_columns(pl.col("a").cast(pl.Int32)))
False
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.atomicfile import TMP_NAME, write_bytes
from cmdqv_lab.errors import CmdqvError

#: Parquet key-value metadata key holding a packed result's JSON metadata.
META_KEY = "cmdqv_lab.sweep"
#: Version of the on-disk layout (part of every key). 2: byte checksums in a JSON index per point.
FORMAT = 2
#: Record frames a point may carry, by file suffix.
RECORD_KINDS = ("ops", "commands")
#: Largest point index file read (bytes).
MAX_INDEX_BYTES = 1 << 20


class ResultError(CmdqvError, RuntimeError):
    """A stored result is missing, corrupt or does not match its manifest."""


# ------------------------------------------------------------------------------- canonical forms
def _canon(x: Any) -> Any:
    """JSON-safe canonical value: floats by their exact repr, NaN/inf spelled out, keys sorted later."""
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return {"float": repr(x)}
        return x
    if isinstance(x, dict):
        return {str(k): _canon(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_canon(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):  # numpy scalar
        return _canon(x.item())
    return x


def canonical_json(obj: Any) -> bytes:
    """A canonical, exact JSON serialisation (sorted keys, no spaces, floats round-trip).

    >>> canonical_json({"b": 0.1, "a": [1, True, None]})
    b'{"a":[1,true,null],"b":0.1}'
    """
    return json.dumps(_canon(obj), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def content_sha256(df: pl.DataFrame) -> str:
    """SHA-256 of a frame's *content* (column names, dtypes, values), not of its file bytes.

    Parquet files written by different polars versions differ (the footer records the writer), so
    results are compared by this hash, which depends only on the data.
    """
    h = hashlib.sha256()
    h.update(canonical_json([[c, str(t)] for c, t in df.schema.items()]))
    for batch in df.iter_slices(65536):
        for row in batch.iter_rows():
            h.update(b"\n")
            h.update(canonical_json(list(row)))
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """SHA-256 (first 16 hex digits) of every ``*.py`` file of the installed package.

    >>> len(code_version())
    16
    """
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        if "__pycache__" in f.parts:
            continue
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def package_version() -> str:
    from cmdqv_lab import __version__

    return __version__


def point_key(
    scenario: str,
    params: Mapping[str, Any],
    seed: int,
    count: int,
    record: bool = False,
    *,
    code: str | None = None,
    version: str | None = None,
) -> str:
    """The cache key of one point (see the module docstring).

    >>> k = point_key("open-queue", {"rate_mcmd_s": 8.0}, 0, 1000, code="c0de", version="0.1.0")
    >>> k == point_key("open-queue", {"rate_mcmd_s": 8.0}, 0, 1000, code="c0de", version="0.1.0")
    True
    >>> k == point_key("open-queue", {"rate_mcmd_s": 8.0}, 0, 1000, code="c0df", version="0.1.0")
    False
    """
    blob = {
        "format": FORMAT,
        "scenario": scenario,
        "params": dict(params),
        "seed": seed,
        "count": count,
        "record": record,
        "code": code_version() if code is None else code,
        "version": package_version() if version is None else version,
    }
    return hashlib.sha256(canonical_json(blob)).hexdigest()[:32]


# ------------------------------------------------------------------------------- atomic files
def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (:func:`cmdqv_lab.atomicfile.write_bytes`)."""
    write_bytes(path, data)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie counts as dead).

    >>> pid_alive(os.getpid()), pid_alive(2**22 + 1)
    (True, False)
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_write_bytes`."""
    return TMP_NAME.match(name) is not None


def remove_stale_temporaries(directory: Path) -> list[str]:
    """Delete the temporary files in ``directory`` whose writer process is dead; return their names.

    A writer killed between creating its temporary file and renaming it (SIGKILL, power loss, a
    full disk) leaves ``.NAME.PID.HEX.tmp`` behind; the pid in the name tells whether the writer
    may still be running (then the file is left alone).
    """
    removed = []
    if directory.is_dir():
        for p in directory.iterdir():
            m = TMP_NAME.match(p.name)
            if m is not None and not pid_alive(int(m.group("pid"))):
                p.unlink(missing_ok=True)
                removed.append(p.name)
    return sorted(removed)


def parquet_bytes(
    df: pl.DataFrame, metadata: Mapping[str, str] | None = None, *, small: bool = False
) -> bytes:
    """Parquet file bytes; ``small`` (one-row point files): no statistics, no compression."""
    buf = io.BytesIO()
    if small:
        df.write_parquet(
            buf, metadata=dict(metadata) if metadata else None, statistics=False, compression="uncompressed"
        )
    else:
        df.write_parquet(buf, metadata=dict(metadata) if metadata else None)
    return buf.getvalue()


# ------------------------------------------------------------------------------- verified reading
def file_digest(data: bytes) -> dict[str, Any]:
    """What an index stores about a file's bytes: ``{"sha256", "bytes"}``."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def read_verified(path: Path, digest: Any) -> bytes:
    """The bytes of ``path`` if their length and SHA-256 are those of ``digest``, else ResultError.

    At most ``digest["bytes"] + 1`` bytes are read, so a damaged index cannot make this read a
    huge file, and no parser sees bytes that are not exactly the ones written.
    """
    if not (
        isinstance(digest, dict)
        and isinstance(digest.get("sha256"), str)
        and isinstance(digest.get("bytes"), int)
        and 0 <= digest["bytes"] < 1 << 40
    ):
        raise ResultError(f"{path}: no valid checksum recorded for it")
    try:
        with open(path, "rb") as f:
            data = f.read(digest["bytes"] + 1)
    except FileNotFoundError:
        raise ResultError(f"{path}: missing") from None
    except OSError as e:
        raise ResultError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) != digest["bytes"] or hashlib.sha256(data).hexdigest() != digest["sha256"]:
        raise ResultError(f"{path}: bytes do not match their checksum (damaged file)")
    return data


def parse_parquet(data: bytes, where: str | Path) -> tuple[pl.DataFrame, dict[str, str]]:
    """Parse Parquet bytes into ``(frame, key-value metadata)``; any failure is a ResultError.

    The reader is isolated: whatever it raises, ``BaseException`` subclasses such as polars'
    ``PanicException`` included (only KeyboardInterrupt, SystemExit and GeneratorExit pass),
    means the file is corrupt. Call it on bytes verified by :func:`read_verified`: a reader that
    aborts the process cannot be caught.
    """
    try:
        kv = pl.read_parquet_metadata(io.BytesIO(data))
        df = pl.read_parquet(io.BytesIO(data))
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # PanicException derives from BaseException
        raise ResultError(f"{where}: unreadable ({type(e).__name__})") from None
    return df, dict(kv or {})


def read_index(path: Path, what: str = "index") -> dict[str, Any]:
    """A small JSON object file (size-capped); ResultError if absent, too large, damaged or not an object."""
    from cmdqv_lab.inputs import loads_json, read_bytes_capped

    try:
        raw = read_bytes_capped(path, MAX_INDEX_BYTES, ResultError, what)
        obj = loads_json(raw, str(path), ResultError)
    except ResultError:
        raise
    except CmdqvError as e:  # too large, nested too deeply: damaged all the same
        raise ResultError(str(e)) from None
    if not isinstance(obj, dict):
        raise ResultError(f"{path}: not a JSON object")
    return obj


# ------------------------------------------------------------------------------- the store
@dataclass
class StoredPoint:
    """A verified point read from the store."""

    key: str
    row: pl.DataFrame
    meta: dict[str, Any]
    records: dict[str, pl.DataFrame] = field(default_factory=dict)


class PointStore:
    """The ``points/`` directory of a sweep (see the module docstring)."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    def path(self, key: str, kind: str = "") -> Path:
        return self.dir / (f"{key}.{kind}.parquet" if kind else f"{key}.parquet")

    def index_path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def _files(self, key: str) -> list[Path]:
        return [self.path(key), self.index_path(key), *(self.path(key, k) for k in RECORD_KINDS)]

    def point_keys(self) -> list[str]:
        """Keys of every point with a file present (complete, partial or corrupt)."""
        if not self.dir.is_dir():
            return []
        return sorted(
            {p.name.split(".")[0] for p in self.dir.iterdir() if p.suffix in (".parquet", ".json")} - {""}
        )

    def exists(self, key: str) -> bool:
        """Whether the point's row file is there (it is renamed into place last)."""
        return self.path(key).exists()

    def remove_temporaries(self) -> int:
        """Delete temporary files left by dead writers; return how many."""
        return len(remove_stale_temporaries(self.dir))

    def delete(self, key: str) -> None:
        for p in self._files(key):  # the row file first: the point stops existing at once
            p.unlink(missing_ok=True)

    def write(
        self, key: str, row: pl.DataFrame, meta: Mapping[str, Any], records: Mapping[str, pl.DataFrame]
    ) -> str:
        """Store a point (records, index, then the row file); return the row's content hash."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rec_hashes = {}
        files = {}
        for kind, frame in records.items():
            if kind not in RECORD_KINDS:
                raise ValueError(f"unknown record kind {kind!r}")
            rec_hashes[kind] = content_sha256(frame)
            data = parquet_bytes(frame)
            files[self.path(key, kind).name] = file_digest(data)
            atomic_write_bytes(self.path(key, kind), data)
        sha = content_sha256(row)
        data = parquet_bytes(row, small=True)
        files[self.path(key).name] = file_digest(data)
        full = {
            **meta,
            "format": FORMAT,
            "key": key,
            "content_sha256": sha,
            "records": rec_hashes,
            "files": files,
        }
        atomic_write_bytes(self.index_path(key), json.dumps(full, sort_keys=True, indent=1).encode())
        atomic_write_bytes(self.path(key), data)
        return sha

    def read(self, key: str, *, with_records: bool = False) -> StoredPoint:
        """Read and verify a point; raise :class:`ResultError` saying why if it is absent or corrupt.

        Record files are checked byte for byte; they are parsed (and their content hashes checked)
        only with ``with_records``.
        """
        path = self.path(key)
        if not path.is_file():
            raise ResultError(f"{path}: missing")
        meta = read_index(self.index_path(key), "point index")
        files = meta.get("files")
        if meta.get("key") != key or meta.get("format") != FORMAT or not isinstance(files, dict):
            raise ResultError(f"{self.index_path(key)}: not the index of point {key}")
        row, _ = parse_parquet(read_verified(path, files.get(path.name)), path)
        if content_sha256(row) != meta.get("content_sha256"):
            raise ResultError(f"{path}: content does not match its checksum")
        records: dict[str, pl.DataFrame] = {}
        rec = meta.get("records")
        if not isinstance(rec, dict):
            raise ResultError(f"{self.index_path(key)}: not the index of point {key}")
        for kind, sha in rec.items():
            if kind not in RECORD_KINDS:
                raise ResultError(f"{self.index_path(key)}: unknown record kind {kind!r}")
            rpath = self.path(key, kind)
            data = read_verified(rpath, files.get(rpath.name))
            if with_records:
                frame, _ = parse_parquet(data, rpath)
                if content_sha256(frame) != sha:
                    raise ResultError(f"{rpath}: content does not match its checksum")
                records[kind] = frame
        return StoredPoint(key, row, meta, records)

    def verify(self, key: str) -> str | None:
        """``None`` if the point is present and intact, else the reason."""
        try:
            self.read(key)
        except ResultError as e:
            return str(e)
        return None
