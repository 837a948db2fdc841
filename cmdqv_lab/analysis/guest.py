"""Registry workloads issued by guests on pass-through VCMDQs (the ``guest-wl-<workload>`` scenarios).

One function for notebooks 02 (Q2's fix cost) and 04 (Q5's churn and mixed batches): the
workload's own parameters plus the guest topology (routing policy, the accepted opcode set, the
platform, whether the op runs in a guest, extra CPU work per op).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def guest_stream_run(
    workload: str,
    overrides: Mapping[str, Any],
    *,
    policy: str = "scan",
    guest_opcodes: str = "linux",
    seed: int = 0,
    platform: str = "grace",
    prefix_ns: float | None = None,
    as_guest: bool = False,
) -> dict[str, Any]:
    """Metrics of one ``guest-wl-<workload>`` run.

    ``overrides`` holds the workload's parameters; its ``ops`` (or ``cycles``) is the run length.
    ``prefix_ns`` is the guest CPU work added before each op (None: the scenario's default).
    """
    from cmdqv_lab.scenarios import simulate

    over = dict(overrides)
    count = over.pop("ops", None) or over.pop("cycles", None)
    topo = {"policy": policy, "guest_opcodes": guest_opcodes, "platform": platform, "as_guest": as_guest,
            "op_cpu_ns": -1.0 if prefix_ns is None else prefix_ns}  # fmt: skip
    return simulate(f"guest-wl-{workload}", {**over, **topo}, seed=seed, count=count).metrics
