"""cmdq->lock over time: the state of the main queue's lock and of the CPUs around it, sampled.

The 2026 lock-fairness commit (patch-2026-cmdq-lock-fairness.txt, df180b1a4cc5) describes CPUs that
wait in ``arm_smmu_cmdq_shared_lock`` for a very long time on a nearly full queue while other CPUs
take the exclusive lock back to back. :func:`lock_timeline` shows that from the model: the engine is
deterministic, so the run stopped at each of ``times_ns`` (``simulate(..., until_ns=t)``) is the same
run seen at ``t``; at each stop it reads queue 0's lock word (the shared count and the exclusive
sign bit) and counts the CPUs by what they are doing (waiting in ``shared_lock``, in the exclusive
trylock / space poll of ``arm_smmu_cmdq_poll_until_not_full``, elsewhere) and the ops done so far.

>>> t = lock_timeline({"cpus": 4, "cmdq_log2size": 8, "exclusive_unlock": "clear-sign"}, [2_000, 4_000], count=64)
>>> t.columns
['time_ns', 'shared_count', 'exclusive', 'in_shared_lock', 'in_space_poll', 'longest_shared_wait_ns', 'ops_done']
>>> t.height, t["time_ns"].to_list()
(2, [2000.0, 4000.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from cmdqv_lab.engine import layout as L

#: CPU steps inside ``arm_smmu_cmdq_shared_lock`` (its atomic and the wait of the set-zero/clear-sign loop).
SHARED_LOCK_PCS = (L.PC_LF_SHLOCK, L.PC_SH_WAIT, L.PC_SH_READ, L.PC_SH_CAS)
#: CPU steps inside ``arm_smmu_cmdq_poll_until_not_full`` (exclusive trylock, CONS refresh, poll loop).
SPACE_POLL_PCS = (L.PC_XL_TRY, L.PC_XL_READ, L.PC_XL_UNLOCK, L.PC_XL_REREAD, L.PC_PF_READ, L.PC_PF_CHECK)


def lock_timeline(
    overrides: Mapping[str, Any],
    times_ns: Sequence[float],
    *,
    scenario: str = "host-map-unmap",
    seed: int = 0,
    count: int | None = None,
) -> pl.DataFrame:
    """One row per time in ``times_ns`` (ns, increasing): queue 0's ``cmdq->lock`` and the CPUs around it.

    Columns: ``shared_count`` (the lock's shared holders and waiters' increments), ``exclusive`` (1 while
    its sign bit is set), ``in_shared_lock`` / ``in_space_poll`` (CPUs in those functions),
    ``longest_shared_wait_ns`` (the longest ``shared_lock`` wait still in progress), ``ops_done``.
    A run that finishes before a time is reported at its end state (its last row repeats).
    """
    from cmdqv_lab.scenarios import simulate

    rows = []
    shared = np.array(SHARED_LOCK_PCS, dtype=np.int64)
    poll = np.array(SPACE_POLL_PCS, dtype=np.int64)
    for t in times_ns:
        r = simulate(scenario, dict(overrides), seed=seed, count=count, until_ns=float(t))
        e = r.engine
        q0 = e.queues[0]
        pcs = e.cpus[:, L.C_PC]
        waiting = np.isin(pcs, shared)
        t_ps = round(float(t) * 1000)
        longest = max((t_ps - int(t0) for t0 in e.cpus[waiting, L.C_SLW_T0]), default=0)
        rows.append(
            {
                "time_ns": float(t),
                "shared_count": int(q0[L.Q_LOCK]),
                "exclusive": int(q0[L.Q_XCL]),
                "in_shared_lock": int(waiting.sum()),
                "in_space_poll": int(np.isin(pcs, poll).sum()),
                "longest_shared_wait_ns": longest / 1000.0,
                "ops_done": int(e.g[L.G_OPS_DONE]),
            }
        )
    return pl.DataFrame(rows)
