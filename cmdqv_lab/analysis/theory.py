"""Queueing-theory formulas the engine is checked against.

>>> round(md1_wait(rate=0.008, service=100.0), 6)   # rho = 0.8 -> Wq = rho S / (2 (1 - rho))
200.0
>>> round(mm1_wait(rate=0.008, service=100.0), 6)   # Wq = rho S / (1 - rho)
400.0
>>> x, r = mva_closed(n=1, think=900.0, service=100.0)
>>> round(x, 9), round(r, 6)
(0.001, 100.0)
"""

from __future__ import annotations


def _check(rate: float, service: float) -> float:
    rho = rate * service
    if not 0 <= rho < 1:
        raise ValueError(f"utilisation {rho:.3f} must be in [0, 1)")
    return rho


def md1_wait(rate: float, service: float) -> float:
    """Mean wait in queue of M/D/1 (Pollaczek-Khinchine with zero service variance)."""
    rho = _check(rate, service)
    return rho * service / (2.0 * (1.0 - rho))


def mm1_wait(rate: float, service: float) -> float:
    """Mean wait in queue of M/M/1."""
    rho = _check(rate, service)
    return rho * service / (1.0 - rho)


def mg1_wait(rate: float, service: float, scv: float) -> float:
    """Pollaczek-Khinchine mean wait for M/G/1 with service squared coefficient of variation ``scv``."""
    rho = _check(rate, service)
    return rho * service * (1.0 + scv) / (2.0 * (1.0 - rho))


def mva_closed(n: int, think: float, service: float) -> tuple[float, float]:
    """Exact mean-value analysis of ``n`` customers alternating a delay (mean ``think``) and one
    FCFS exponential server (mean ``service``): returns (throughput, mean response time at the server).
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    q = 0.0
    x = r = 0.0
    for k in range(1, n + 1):
        r = service * (1.0 + q)
        x = k / (think + r)
        q = x * r
    return x, r
