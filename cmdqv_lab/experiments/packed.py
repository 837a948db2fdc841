"""Published sweeps packed into one Parquet file, verified by the manifest's checksums.

A sweep runs into a directory of per-point files (``points/``, :mod:`.cache`), which is the right
form for resuming and recomputing single points but the wrong one to commit: thousands of small
files, each regeneration adding them all to the history again. A *published* sweep
(``data/results/<name>/``) is packed:

``results.parquet``
    one row per point, in point order: ``point``, ``key`` (the point's cache key),
    ``content_sha256`` (the content hash of the point's own row, as stored in its point file),
    ``schema`` (an index into ``manifest.json``'s ``packed.schemas``), then the row's columns
    (scenario, seed, count, parameters, metrics), combined as :func:`.manifest.load_sweep` combines
    point files;
``ops.parquet``, ``commands.parquet``
    only for ``record = true`` specs: every point's records with a ``point`` column;
``manifest.json``
    the sweep's manifest (:mod:`.manifest`) with a ``packed`` section: the SHA-256 and length of each
    file's bytes, and the column names and dtypes of each point's row (``schemas``), so every point's
    row is rebuilt exactly and checked against its content hash.

Reading (:func:`read_packed`) checks the bytes of ``results.parquet`` against the manifest before
polars parses them, then every point's content hash, then the combined frame's hash
(``combined_sha256``): a changed number anywhere is found without re-simulating anything.
Writing (:func:`pack`) writes the data files atomically, then ``manifest.json`` last; a reader
finding a data file that does not match the manifest (a publish killed between the two) says so.

>>> import polars as pl
>>> rows = [pl.DataFrame({"seed": [0], "x": [None]}), pl.DataFrame({"seed": [1], "x": [2.5]})]
>>> packed, schemas = pack_rows(rows, [{"index": 0, "key": "a"}, {"index": 1, "key": "b"}])
>>> packed.columns, schemas
(['point', 'key', 'content_sha256', 'schema', 'seed', 'x'], [[['seed', 'Int64'], ['x', 'Null']], [['seed', 'Int64'], ['x', 'Float64']]])
>>> [r.equals(rows[i]) for i, r in enumerate(unpack_rows(packed, schemas))]
[True, True]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cmdqv_lab.experiments.cache import (
    RECORD_KINDS,
    ResultError,
    atomic_write_bytes,
    content_sha256,
    file_digest,
    parquet_bytes,
    parse_parquet,
    read_verified,
    remove_stale_temporaries,
)

#: The packed file of a published sweep.
RESULTS_FILE = "results.parquet"
#: Version of the packed layout.
PACKED_FORMAT = 1
#: Columns of the packed file that are not columns of the points' rows.
EXTRA_COLUMNS = ("key", "content_sha256", "schema")
_DTYPES: dict[str, pl.DataType] = {
    "Int64": pl.Int64(),
    "Float64": pl.Float64(),
    "String": pl.String(),
    "Boolean": pl.Boolean(),
    "Null": pl.Null(),
}


def record_file(kind: str) -> str:
    return f"{kind}.parquet"


def pack_rows(
    rows: Sequence[pl.DataFrame], entries: Sequence[Mapping[str, Any]]
) -> tuple[pl.DataFrame, list[Any]]:
    """The packed frame of point rows (one-row frames, in point order) and their schemas."""
    schemas: list[list[list[str]]] = []
    ids: list[int] = []
    hashes: list[str] = []
    for row in rows:
        schema = [[c, str(t)] for c, t in row.schema.items()]
        for _, t in schema:
            if t not in _DTYPES:
                raise ResultError(f"cannot pack a column of dtype {t}")
        if schema not in schemas:
            schemas.append(schema)
        ids.append(schemas.index(schema))
        hashes.append(content_sha256(row))
    df = pl.concat(list(rows), how="diagonal_relaxed")
    extra = pl.DataFrame(
        {
            "point": [int(e["index"]) for e in entries],
            "key": [str(e["key"]) for e in entries],
            "content_sha256": hashes,
            "schema": ids,
        },
        schema={"point": pl.Int64, "key": pl.String, "content_sha256": pl.String, "schema": pl.Int64},
    )
    return pl.concat(
        [extra, df.drop([c for c in ("point", *EXTRA_COLUMNS) if c in df.columns])], how="horizontal"
    ), schemas


def unpack_row(packed: pl.DataFrame, i: int, schemas: Sequence[Any]) -> pl.DataFrame:
    """Point ``i``'s row rebuilt as the one-row frame it was stored as (names, order, dtypes)."""
    sid = packed["schema"][i]
    if not isinstance(sid, int) or not 0 <= sid < len(schemas):
        raise ResultError(f"point {i}: schema {sid!r} is not in the manifest")
    try:
        return packed.slice(i, 1).select([pl.col(c).cast(_DTYPES[t]) for c, t in schemas[sid]])
    except (KeyError, TypeError, ValueError, pl.exceptions.PolarsError) as e:
        raise ResultError(f"point {i}: cannot rebuild its row ({type(e).__name__})") from None


def unpack_rows(packed: pl.DataFrame, schemas: Sequence[Any]) -> list[pl.DataFrame]:
    """Every point's row rebuilt (:func:`unpack_row`)."""
    return [unpack_row(packed, i, schemas) for i in range(packed.height)]


def pack(
    out: Path,
    manifest: Mapping[str, Any],
    rows: Sequence[pl.DataFrame],
    records: Mapping[str, Sequence[pl.DataFrame]] | None = None,
    *,
    note: str | None = None,
) -> dict[str, Any]:
    """Write the packed form of a finished sweep to ``out``; return the manifest written.

    ``manifest`` is the sweep's manifest (its ``points`` in point order), ``rows`` the points' rows
    and ``records`` (record = true only) each kind's per-point frames. Every point's row is rebuilt
    from the packed file and compared with its content hash before anything is written.
    """
    from cmdqv_lab.experiments.manifest import write_manifest

    entries = list(manifest["points"])
    if len(rows) != len(entries):
        raise ResultError(f"{out}: {len(rows)} rows for {len(entries)} points")
    packed, schemas = pack_rows(rows, entries)
    for i, (row, e) in enumerate(zip(unpack_rows(packed, schemas), entries)):
        if content_sha256(row) != e["content_sha256"]:
            raise ResultError(f"point {i}: packing changed its content (not written)")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    blobs = {RESULTS_FILE: parquet_bytes(packed)}
    for kind, frames in (records or {}).items():
        if kind not in RECORD_KINDS or len(frames) != len(entries):
            raise ResultError(f"{out}: records {kind!r} do not match the points")
        parts = [
            f.with_columns(pl.lit(int(e["index"]), pl.Int64).alias("point")) for f, e in zip(frames, entries)
        ]
        blobs[record_file(kind)] = parquet_bytes(pl.concat(parts, how="vertical"))
    for name, data in blobs.items():
        atomic_write_bytes(out / name, data)
    for kind in RECORD_KINDS:
        if record_file(kind) not in blobs:
            (out / record_file(kind)).unlink(missing_ok=True)
    points = [{k: v for k, v in e.items() if k != "file"} for e in entries]
    section: dict[str, Any] = {
        "format": PACKED_FORMAT,
        "files": {name: file_digest(data) for name, data in blobs.items()},
        "schemas": schemas,
    }
    if note:
        section["note"] = note
    full = {**{k: v for k, v in manifest.items() if k != "points"}, "packed": section, "points": points}
    write_manifest(out, full)
    return full


@dataclass
class Packed:
    """A verified packed sweep."""

    frame: pl.DataFrame  # what load_sweep returns: one row per point, point order
    rows: list[pl.DataFrame]  # each point's row as it was stored


def _section(directory: Path, m: Mapping[str, Any]) -> dict[str, Any]:
    sec = m.get("packed")
    if not isinstance(sec, dict) or sec.get("format") != PACKED_FORMAT:
        raise ResultError(f"{directory / 'manifest.json'}: packed section missing or of another format")
    if not isinstance(sec.get("files"), dict) or not isinstance(sec.get("schemas"), list):
        raise ResultError(f"{directory / 'manifest.json'}: packed section without files or schemas")
    return sec


def verify_packed(
    directory: str | Path, m: Mapping[str, Any]
) -> tuple[list[pl.DataFrame | None], pl.DataFrame | None, list[str]]:
    """Check every stored checksum of a packed sweep; ``(rows, frame, problems)``.

    ``rows[i]`` is point ``i``'s verified row, or None if it is damaged; ``frame`` the combined
    frame (None if the file itself is unusable); ``problems`` one line per thing found wrong.
    """
    d = Path(directory)
    entries = m["points"]
    nothing: list[pl.DataFrame | None] = [None] * len(entries)
    path = d / RESULTS_FILE
    try:
        sec = _section(d, m)
        for name, digest in sec["files"].items():
            if name != RESULTS_FILE:
                read_verified(d / name, digest)
        try:
            data = read_verified(path, sec["files"].get(RESULTS_FILE))
        except ResultError as bad:
            raise ResultError(f"{bad}; an interrupted publish? regenerate it") from None
        packed, _ = parse_parquet(data, path)
    except ResultError as err:
        return nothing, None, [str(err)]
    if any(c not in packed.columns for c in ("point", *EXTRA_COLUMNS)) or packed.height != len(entries):
        return nothing, None, [f"{path}: not the packed rows of the {len(entries)} points in manifest.json"]
    if packed["point"].to_list() != [entry["index"] for entry in entries]:
        return nothing, None, [f"{path}: its points are not those of manifest.json, in order"]
    rows: list[pl.DataFrame | None] = []
    problems = []
    keys, stored = packed["key"].to_list(), packed["content_sha256"].to_list()
    for i, entry in enumerate(entries):
        try:
            row = unpack_row(packed, i, sec["schemas"])
            if (
                keys[i] != entry["key"]
                or stored[i] != entry["content_sha256"]
                or content_sha256(row) != stored[i]
            ):
                raise ResultError(f"point {i} does not match its content checksum")
            rows.append(row)
        except ResultError as err:
            rows.append(None)
            problems.append(f"{path}: {err}")
    frame = packed.drop(list(EXTRA_COLUMNS))
    if not problems and content_sha256(frame) != m.get("combined_sha256"):
        problems.append(f"{path}: the combined rows do not match manifest.json's combined_sha256")
    return rows, frame, problems


def read_packed(directory: str | Path, m: Mapping[str, Any]) -> Packed:
    """Read and verify ``directory/results.parquet`` against its manifest ``m`` (see the module doc)."""
    rows, frame, problems = verify_packed(directory, m)
    if problems or frame is None:
        raise ResultError(problems[0])
    return Packed(frame, [r for r in rows if r is not None])


def read_packed_records(directory: str | Path, m: Mapping[str, Any], point: int, kind: str) -> pl.DataFrame:
    """The ``kind`` records of one point of a packed ``record = true`` sweep, verified."""
    d = Path(directory)
    sec = _section(d, m)
    name = record_file(kind)
    if name not in sec["files"]:
        raise ResultError(f"{d}: point {point} has no {kind} records (the spec needs record = true)")
    frame, _ = parse_parquet(read_verified(d / name, sec["files"][name]), d / name)
    if "point" not in frame.columns:
        raise ResultError(f"{d / name}: no point column")
    out = frame.filter(pl.col("point") == point).drop("point")
    entry = next(e for e in m["points"] if e["index"] == point)
    if content_sha256(out) != (entry.get("records") or {}).get(kind):
        raise ResultError(f"{d / name}: point {point}'s records do not match their checksum")
    return out
