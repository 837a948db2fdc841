"""The compiled event loop: run steps in ``(time, entity)`` order.

Returns when every entity is blocked with nothing pending (``ST_DONE``), when a CPU's input ring
ran dry (``ST_NEED_INPUT``: the driver refills it and calls again; nothing was changed), or when a
time or event limit is reached (the state is left resumable).
"""

from __future__ import annotations

from numba import njit

from cmdqv_lab.engine.cpu import NEED_INPUT, step_cpu
from cmdqv_lab.engine.layout import (
    G_EV_LEFT,
    G_EVENTS,
    G_NEED_CPU,
    G_NOW,
    G_T_LIMIT,
    H_NPROC,
    ID_BITS,
    ST_DONE,
    ST_EVENT_LIMIT,
    ST_NEED_INPUT,
    ST_TIME_LIMIT,
    TIME_NEVER,
)
from cmdqv_lab.engine.mem import gadd, gget, gset, hget, unmanaged
from cmdqv_lab.engine.sched import next_key
from cmdqv_lab.engine.smmu import step_proc

ID_MASK = (1 << ID_BITS) - 1


@njit(cache=True, nogil=True)
def run_loop(M_owned, t_limit, ev_limit):
    """Step entities until done, input is needed, or a limit is reached; returns the status.

    Runs without the GIL: the driver may build the next input in another thread meanwhile."""
    M = unmanaged(M_owned)
    n_proc = hget(M, H_NPROC)
    status = ST_DONE
    # the limits, where a CPU that takes its own next step (sched.next_is) sees them
    gset(M, G_T_LIMIT, t_limit)
    gset(M, G_EV_LEFT, ev_limit)
    while True:
        key = next_key(M)
        if key == TIME_NEVER:
            status = ST_DONE
            break
        now = key >> ID_BITS
        if now > t_limit:
            status = ST_TIME_LIMIT
            break
        left = gget(M, G_EV_LEFT)
        if left <= 0:
            status = ST_EVENT_LIMIT
            break
        gset(M, G_EV_LEFT, left - 1)
        e = key & ID_MASK
        gset(M, G_NOW, now)
        if e < n_proc:
            step_proc(M, e, now)
        elif step_cpu(M, e - n_proc, now) == NEED_INPUT:
            gadd(M, G_EV_LEFT, 1)  # the step that needs input is not an event: it runs again
            gset(M, G_NEED_CPU, e - n_proc)
            status = ST_NEED_INPUT
            break
    gadd(M, G_EVENTS, ev_limit - gget(M, G_EV_LEFT))
    return status
