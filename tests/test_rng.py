"""Seeded streams (:mod:`cmdqv_lab.rng`): remembering a stream's SeedSequence changes nothing a
consumer sees, and bad names are refused whatever was remembered before."""

from __future__ import annotations

import numpy as np
import pytest

from cmdqv_lab import rng


def fresh(seed: int, *key: str | int) -> np.random.Generator:
    """The stream built without the remembered SeedSequences."""
    return np.random.Generator(np.random.PCG64(rng._make_seed_sequence(seed, *key)))


def test_a_remembered_stream_draws_what_a_fresh_one_draws() -> None:
    rng._seed_sequence.cache_clear()
    for _ in range(2):  # the second time from the cache
        for key in [("service", 1, 3), ("gap", 0, 63), ("think", 5)]:
            assert np.array_equal(rng.stream(11, *key).random(8), fresh(11, *key).random(8))
    assert rng._seed_sequence.cache_info().hits >= 3


def test_each_call_is_a_new_generator_at_the_start_of_its_stream() -> None:
    a = rng.stream(3, "gap", 2)
    first = a.random(4)
    a.random(100)  # drawing from one generator moves no other
    assert np.array_equal(rng.stream(3, "gap", 2).random(4), first)
    assert rng.stream(3, "gap", 2) is not rng.stream(3, "gap", 2)


def test_bad_names_are_refused_after_good_ones_were_remembered() -> None:
    rng.stream(7, 1)  # True == 1 and hashes alike: the cache must not hand this one out for True
    with pytest.raises(TypeError, match="str or int, got True"):
        rng.stream(7, True)
    with pytest.raises(TypeError, match=r"str or int, got \[1\]"):
        rng.stream(7, [1])  # type: ignore[arg-type]  (unhashable: not even looked up)
    with pytest.raises(ValueError, match="non-negative, got -3"):
        rng.stream(7, -3)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        rng.stream(-1, "a")
    with pytest.raises(ValueError, match=r"got 1\.5"):
        rng.stream(1.5, "a")  # type: ignore[arg-type]
    rng.stream(np.int64(7), 1)  # a numpy integer seed is a seed
    assert np.array_equal(rng.stream(np.int64(7), 1).random(3), rng.stream(7, 1).random(3))


def test_spawning_from_a_stream_changes_no_later_stream_of_that_name() -> None:
    """``Generator.spawn`` counts its children in the stream's SeedSequence: a remembered one that
    was spawned from would give a later stream of the same name other children."""
    first = [g.random(3) for g in rng.stream(5, "custom", 1).spawn(2)]
    again = [g.random(3) for g in rng.stream(5, "custom", 1).spawn(2)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert np.array_equal(rng.stream(5, "custom", 1).random(4), fresh(5, "custom", 1).random(4))
