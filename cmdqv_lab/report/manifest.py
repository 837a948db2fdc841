"""What the report was built from: the environment manifest and the data manifests.

The environment manifest records the Python, the platform, the versions of cmdqv-lab's
dependencies (and of the Vega runtime shipped in the site) and the git commit, with a flag when
the working tree had uncommitted changes. Data manifests are the provenance files the pipeline
writes (``data/results/*/manifest.json``, ``data/traces/*.json``), read as JSON and fingerprinted.

>>> env = environment(Path("."), smoke=True)
>>> env["smoke"], env["python"] == platform.python_version(), "polars" in env["packages"]
(True, True, True)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Globs (relative to the data directory) of provenance files shown in the report.
DATA_MANIFEST_GLOBS: tuple[str, ...] = ("results/*/manifest.json", "traces/*.json")

#: Largest data manifest read into the report (bytes); larger ones are listed with their hash only.
MAX_MANIFEST_BYTES = 2_000_000


def _git(repo: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_info(repo: Path, exclude: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """``{"commit", "branch", "dirty"}`` of the repository containing ``repo``, or None.

    ``dirty``: uncommitted changes to tracked files, ignoring paths under ``exclude``.
    """
    commit = _git(repo, "rev-parse", "HEAD")
    if not commit:
        return None
    pathspec = ["--", ".", *(f":(exclude){p}" for p in exclude)] if exclude else []
    status = _git(repo, "status", "--porcelain", "--untracked-files=no", *pathspec)
    return {
        "commit": commit,
        "branch": _git(repo, "rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status),
    }


def package_versions() -> dict[str, str]:
    """Installed versions of cmdqv-lab's declared dependencies (runtime and test extras)."""
    names = {"cmdqv-lab"}
    try:
        for req in metadata.requires("cmdqv-lab") or []:
            m = re.match(r"^\s*([A-Za-z0-9_.\-]+)", req)
            if m:
                names.add(m.group(1))
    except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
        pass
    out: dict[str, str] = {}
    for name in sorted(names, key=str.lower):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def vega_versions() -> dict[str, str]:
    """Versions of the Vega, Vega-Lite and vega-embed runtime shipped in the site."""
    import vl_convert as vlc

    from cmdqv_lab.plots.display import vl_version

    return {
        "vega": str(vlc.get_vega_version()),
        "vega-lite": str(vl_version() or vlc.get_vegalite_versions()[-1]),
        "vega-embed": str(vlc.get_vega_embed_version()),
    }


def environment(repo: Path, *, smoke: bool, command: str = "") -> dict[str, Any]:
    """The environment manifest of a build (JSON-safe)."""
    from cmdqv_lab import __version__

    return {
        "built_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cmdqv_lab": __version__,
        "command": command,
        "smoke": smoke,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "git": git_info(repo),
        "packages": package_versions(),
        "vega_runtime": vega_versions(),
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_manifests(data_dir: Path) -> list[dict[str, Any]]:
    """Every provenance file under ``data_dir`` matching :data:`DATA_MANIFEST_GLOBS`.

    Each entry has ``path`` (relative to the data directory's parent), ``sha256``, ``bytes``, and
    either ``content`` (the parsed JSON) or ``error`` (why it could not be read).
    """
    if not data_dir.is_dir():
        return []
    seen: list[Path] = []
    for pattern in DATA_MANIFEST_GLOBS:
        seen += sorted(p for p in data_dir.glob(pattern) if p.is_file())
    out: list[dict[str, Any]] = []
    for p in seen:
        entry: dict[str, Any] = {
            "path": p.relative_to(data_dir.parent).as_posix(),
            "sha256": _sha256(p),
            "bytes": p.stat().st_size,
        }
        if entry["bytes"] > MAX_MANIFEST_BYTES:
            entry["error"] = f"larger than {MAX_MANIFEST_BYTES} bytes: not included"
        else:
            try:
                entry["content"] = json.loads(p.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                entry["error"] = f"not valid JSON: {e}"
        out.append(entry)
    return out
