"""Where the compiled engine is cached: one directory per engine source, shared by every checkout."""

from __future__ import annotations

from pathlib import Path

from cmdqv_lab.engine import _engine_cache_dir
from cmdqv_lab.scenarios import simulate


def test_engine_functions_are_cached_in_the_source_keyed_directory_itself() -> None:
    """numba's own locator would file them under a subdirectory named after this checkout's path, so a
    fresh clone compiled again; the engine's locator puts them in the directory keyed by the engine's
    source hash, with nothing named after the checkout."""
    simulate("open-queue", {"rate_mcmd_s": 1}, seed=0, count=500)
    d = Path(_engine_cache_dir())
    assert any(d.glob("loop.run_loop*.nbi")), sorted(p.name for p in d.iterdir())[:10]
    assert not [p for p in d.iterdir() if p.is_dir() and p.name.startswith("engine_")]
