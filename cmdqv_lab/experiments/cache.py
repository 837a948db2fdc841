"""The result cache: one checksummed Parquet file per point, keyed by the point and the code version.

**Key.** A point's key is the SHA-256 (first 32 hex digits) of a canonical JSON serialisation of
the scenario, *every* resolved parameter, the seed, the count, the record flag, the package version
and the *code version* (:func:`code_version`: a hash of every source file of the package). A
change to any source file therefore invalidates every cached point (joblib.Memory would miss
changes in functions the cached one calls); a change to a default or a platform preset changes
the resolved parameters and so the key.

**File.** ``points/<key>.parquet`` holds one row (scenario, seed, count, resolved parameters,
flattened metrics) and, in the Parquet key-value metadata under :data:`META_KEY`, a JSON object
with the key, the SHA-256 of the row's canonical content (:func:`content_sha256`), the wall time
and the versions. Records, when a spec asks for them, go to ``points/<key>.ops.parquet`` and
``points/<key>.commands.parquet``, their content hashes being in the main file's metadata.

**Atomicity.** Files are written to a temporary name in the same directory, flushed, fsynced and
renamed over the final name (then the directory is fsynced); the main file is written last, so a
point exists only when all its files are complete. A process killed at any instant leaves either
no file or a complete one, plus possibly a ``*.tmp`` that the next sweep removes.

**Verification.** Reading a point checks that the file parses, that its metadata names its key and
that the content hash matches (and the records' hashes). Anything else is *corrupt*: the sweep
deletes it and computes the point again.

Results are Parquet and JSON only: nothing is pickled or evaluated when reading.

>>> import polars as pl
>>> df = pl.DataFrame({"a": [1], "b": [0.1]})
>>> content_sha256(df) == content_sha256(pl.read_parquet(io.BytesIO(parquet_bytes(df, {"x": "y"}))))
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
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.errors import CmdqvError

#: Parquet key-value metadata key holding a point's JSON metadata.
META_KEY = "cmdqv_lab.sweep"
#: Version of the on-disk layout (part of every key).
FORMAT = 1
#: Record frames a point may carry, by file suffix.
RECORD_KINDS = ("ops", "commands")


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
def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


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

    def point_keys(self) -> list[str]:
        """Keys of every main point file present (verified or not)."""
        if not self.dir.is_dir():
            return []
        return sorted(p.name.split(".")[0] for p in self.dir.glob("*.parquet") if p.name.count(".") == 1)

    def remove_temporaries(self) -> int:
        """Delete ``*.tmp`` files left by an interrupted writer; return how many."""
        n = 0
        if self.dir.is_dir():
            for p in self.dir.glob(".*.tmp"):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
        for kind in RECORD_KINDS:
            self.path(key, kind).unlink(missing_ok=True)

    def write(
        self, key: str, row: pl.DataFrame, meta: Mapping[str, Any], records: Mapping[str, pl.DataFrame]
    ) -> str:
        """Store a point (records first, main file last); return the row's content hash."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rec_hashes = {}
        for kind, frame in records.items():
            if kind not in RECORD_KINDS:
                raise ValueError(f"unknown record kind {kind!r}")
            rec_hashes[kind] = content_sha256(frame)
            atomic_write_bytes(self.path(key, kind), parquet_bytes(frame))
        sha = content_sha256(row)
        full = {**meta, "format": FORMAT, "key": key, "content_sha256": sha, "records": rec_hashes}
        atomic_write_bytes(
            self.path(key), parquet_bytes(row, {META_KEY: json.dumps(full, sort_keys=True)}, small=True)
        )
        return sha

    def read(self, key: str, *, with_records: bool = False) -> StoredPoint:
        """Read and verify a point; raise :class:`ResultError` saying why if it is absent or corrupt."""
        path = self.path(key)
        if not path.is_file():
            raise ResultError(f"{path}: missing")
        try:
            kv = pl.read_parquet_metadata(path)
            meta = json.loads(kv[META_KEY])
            row = pl.read_parquet(path)
        except Exception as e:  # any failure to parse is corruption (truncation, garbage, ...)
            raise ResultError(f"{path}: unreadable ({type(e).__name__})") from None
        if not isinstance(meta, dict) or meta.get("key") != key:
            raise ResultError(f"{path}: metadata does not name key {key}")
        if content_sha256(row) != meta.get("content_sha256"):
            raise ResultError(f"{path}: content does not match its checksum")
        records: dict[str, pl.DataFrame] = {}
        for kind, sha in dict(meta.get("records") or {}).items():
            rpath = self.path(key, str(kind))
            try:
                frame = pl.read_parquet(rpath)
            except Exception as e:
                raise ResultError(f"{rpath}: unreadable ({type(e).__name__})") from None
            if content_sha256(frame) != sha:
                raise ResultError(f"{rpath}: content does not match its checksum")
            if with_records:
                records[str(kind)] = frame
        return StoredPoint(key, row, meta, records)

    def verify(self, key: str) -> str | None:
        """``None`` if the point is present and intact, else the reason."""
        try:
            self.read(key)
        except ResultError as e:
            return str(e)
        return None
