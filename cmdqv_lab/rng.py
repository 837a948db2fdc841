"""Seeded random streams.

Randomness never comes from a global RNG. A run has one integer seed; every consumer of randomness
(a CPU's think times, a workload's addresses, an open arrival process) gets its own
``numpy.random.Generator`` built from ``SeedSequence(seed, spawn_key=key)`` where ``key`` names the
consumer. The streams are therefore independent of each other, of how many there are, of the order
in which they are created and of the number of worker processes: CPU 3's stream is the same whether
the run has 4 CPUs or 64.

>>> a = stream(7, "think", 3).random(3)
>>> b = stream(7, "think", 3).random(3)
>>> bool((a == b).all())
True
>>> bool((stream(7, "think", 4).random(3) == a).any())
False
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np


def _key_part(part: str | int) -> int:
    if isinstance(part, bool) or not isinstance(part, (str, int)):
        raise TypeError(f"stream key parts must be str or int, got {part!r}")
    if isinstance(part, str):
        return zlib.crc32(part.encode("utf-8"))
    if part < 0:
        raise ValueError(f"stream key parts must be non-negative, got {part}")
    return part


def seed_sequence(seed: int, *key: str | int) -> np.random.SeedSequence:
    """The SeedSequence of the stream named ``key`` within run ``seed``.

    Remembered for the last few thousand names: a widget re-runs the same seeds with 64 CPUs' streams
    each, and building one costs more than the CPU's first block of ops. ``typed`` keeps ``True`` and
    ``1`` apart. Spawning is the one thing that changes a SeedSequence (``Generator.spawn`` counts its
    children in it), so one that has been spawned from is not handed out again: a fresh one is."""
    try:
        ss = _seed_sequence(seed, *key)
    except TypeError:  # an unhashable part: say which, as for any other bad part
        return _make_seed_sequence(seed, *key)
    return ss if ss.n_children_spawned == 0 else _make_seed_sequence(seed, *key)


def _make_seed_sequence(seed: int, *key: str | int) -> np.random.SeedSequence:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed), spawn_key=tuple(_key_part(p) for p in key))


_seed_sequence = lru_cache(maxsize=4096, typed=True)(_make_seed_sequence)


def stream(seed: int, *key: str | int) -> np.random.Generator:
    """A fresh PCG64 generator for the stream named ``key`` within run ``seed``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, *key)))
