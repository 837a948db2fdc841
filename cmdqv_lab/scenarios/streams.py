"""Vectorised, seeded op-stream generators shared by the scenarios.

Each CPU's stream draws from its own generators, one per purpose (think times, service times,
arrivals), so a CPU's draws do not depend on the other CPUs, on the chunk size, or on how many
commands an op has. Chunks are generated lazily: a run of 10^9 commands holds one chunk per CPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from cmdqv_lab.engine.stream import OpBlock
from cmdqv_lab.rng import stream as rng_stream
from cmdqv_lab.units import ns

#: Distributions of durations: name -> coefficient of variation.
DISTRIBUTIONS = {"deterministic": 0.0, "uniform": 1 / (2 * 3**0.5), "exponential": 1.0}


def draw_times(rng: np.random.Generator, mean_ns: float, dist: str, n: int) -> np.ndarray:
    """``n`` integer-ps durations with mean ``mean_ns``.

    ``deterministic``: all equal; ``uniform``: ``mean * U[0.5, 1.5)`` (jitter, CV 0.29);
    ``exponential``: CV 1. Perfectly deterministic closed loops can phase-lock (one CPU's cmpxchg
    losing every race); the jittered default models a real benchmark loop.
    """
    if dist == "deterministic" or mean_ns == 0:
        return np.full(n, ns(mean_ns), dtype=np.int64)
    if dist == "uniform":
        return np.rint((0.5 + rng.random(n)) * (mean_ns * 1000.0)).astype(np.int64)
    return np.rint(rng.standard_exponential(n) * (mean_ns * 1000.0)).astype(np.int64)


def draw_service(rng: np.random.Generator, means_ns: np.ndarray, dist: str, m: int) -> np.ndarray:
    """An ``(m, len(means_ns))`` array of service times (ps), column ``j`` with mean ``means_ns[j]``."""
    k = means_ns.size
    if dist == "deterministic":
        return np.broadcast_to(np.rint(means_ns * 1000).astype(np.int64), (m, k))
    if dist == "uniform":
        return np.rint((0.5 + rng.random((m, k))) * (means_ns * 1000.0)).astype(np.int64)
    return np.rint(rng.standard_exponential((m, k)) * (means_ns * 1000.0)).astype(np.int64)


def split_quota(total: int, parts: int) -> list[int]:
    """``total`` ops spread over ``parts`` CPUs as evenly as possible (lower CPUs get the remainder)."""
    base, rem = divmod(total, parts)
    return [base + (1 if i < rem else 0) for i in range(parts)]


def fixed_ops_stream(
    *,
    seed: int,
    name: str,
    cpu: int,
    n_ops: int,
    opcodes: Sequence[int],
    service_means_ns: Sequence[float],
    service_dist: str,
    gap_mean_ns: float,
    gap_dist: str,
    queue: int,
    sync: bool,
    open_loop: bool = False,
    chunk: int = 1024,
) -> Iterator[OpBlock]:
    """``n_ops`` ops of one batch each with the same opcode list.

    Closed loop: ``t`` is a think gap drawn from (``gap_mean_ns``, ``gap_dist``). Open loop: ``t``
    is an absolute arrival, gaps being exponential (Poisson) with mean ``gap_mean_ns``.
    """
    g_gap = rng_stream(seed, name, "gap", cpu)
    g_svc = rng_stream(seed, name, "service", cpu)
    means = np.asarray(service_means_ns, dtype=float)
    clock = 0
    done = 0
    while done < n_ops:
        m = min(chunk, n_ops - done)
        if open_loop:
            gaps = draw_times(g_gap, gap_mean_ns, "exponential", m)
            t = clock + np.cumsum(gaps)
            clock = int(t[-1])
        else:
            t = draw_times(g_gap, gap_mean_ns, gap_dist, m)
        svc = draw_service(g_svc, means, service_dist, m)
        yield OpBlock.uniform(n_ops=m, t=t, opcodes=opcodes, svc=svc, sync=sync, queue=queue)
        done += m
