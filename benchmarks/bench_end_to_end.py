"""End-to-end speed as a user sees it, beside the engine-only rate and two references from the same run.

    python benchmarks/bench_end_to_end.py            # the table (a few minutes on 2 cores)
    python benchmarks/bench_end_to_end.py --scale 0.2

For each case, ``--repeats`` fresh ``cmdqv-lab simulate ... --json`` processes (warm compile cache, as a
user's second run; the median and the range are printed): simulated commands per second of its
in-process ``wall_s`` (input generation, compile stage, engine, metrics) and of the whole process
(imports included). Beside it, the engine-only rate on pre-built inputs
(``bench_engine.py``'s method) and, for open-queue, two references on the *same arrival times*:

* a plain SimPy M/D/1 queue (one ``simpy.Resource``, a process per command), the usual way to write it;
* a numba Lindley recursion ``W[n+1] = max(0, W[n] + S - (A[n+1] - A[n]))``: the fastest possible simulation
  of that queue (no events at all), the ceiling. Its mean wait is printed beside the engine's as a check.

Measured on the 2-core machine of the earlier sessions (load 0.7-1.7), median of 3 processes,
end-to-end M commands/s: open-queue 2e7 11.65 (11.45-12.15; 93x SimPy's 125 k/s, 4.7 % of the
Lindley recursion's 249 M/s), host-map-unmap d06 1 CPU 4.83 (4.48-4.88), 16 CPUs 1.46 (1.44-1.46),
64 CPUs 0.85 (0.82-0.85); engine-only 12.09, 5.70, 1.66, 1.01. On the AMD EPYC (znver3) VM of
2026-12-08 (load 0.4-1.3): open-queue 10.00 (9.60-10.83; 121x SimPy's 82.5 k/s, 1.6 % of Lindley's
629 M/s), d06 2.67 (1.82-3.34), 1.27 (1.23-1.28), 0.70 (0.69-0.70); engine-only 11.11, 4.71, 1.35,
0.87. That machine's runs vary a lot from one minute to the next, so the median is now of 5.
DESIGN.md, "Speed as the user sees it", has the history and says what bounds them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_engine import bench_case  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from cmdqv_lab.scenarios.open_queue import OpenQueueParams, _arrivals  # noqa: E402

RATE_MCMD_S, SERVICE_NS = 8.0, 100.0
CASES = [
    ("open-queue", {"rate_mcmd_s": RATE_MCMD_S, "service_ns": SERVICE_NS}, 20_000_000),
    ("host-map-unmap", {"platform": "d06", "cpus": 1}, 400_000),
    ("host-map-unmap", {"platform": "d06", "cpus": 16}, 400_000),
    ("host-map-unmap", {"platform": "d06", "cpus": 64}, 100_000),
]


def cli_run(scenario: str, sets: dict[str, object], ops: int) -> tuple[int, float, float]:
    """(commands, in-process wall_s, process wall s) of one fresh `cmdqv-lab simulate` process."""
    exe = Path(sys.executable).parent / "cmdqv-lab"
    count = "--commands" if scenario == "open-queue" else "--ops"
    cmd = [str(exe), "simulate", "-s", scenario, count, str(ops), "--json"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    proc = time.perf_counter() - t
    j = json.loads(out)
    return int(j["metrics"]["commands"]), float(j["wall_s"]), proc


def arrivals_ps(n: int, seed: int = 7) -> np.ndarray:
    p = OpenQueueParams(rate_mcmd_s=RATE_MCMD_S, service_ns=SERVICE_NS)
    return np.concatenate([c.t_ps for c in _arrivals(p, seed, n)])


@njit(cache=False)
def lindley_mean_wait(a: np.ndarray, s: int) -> float:
    w = 0
    total = 0
    for i in range(1, a.size):
        w = max(0, w + s - (a[i] - a[i - 1]))
        total += w
    return total / a.size


def simpy_md1(a: np.ndarray, s: int) -> float:
    """Mean wait (ps) of a plain SimPy M/D/1 on arrival times ``a`` (ps)."""
    import simpy

    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    waits = []

    def job(env: simpy.Environment):  # type: ignore[no-untyped-def]
        t0 = env.now
        with server.request() as req:
            yield req
            waits.append(env.now - t0)
            yield env.timeout(s)

    def source(env: simpy.Environment):  # type: ignore[no-untyped-def]
        prev = 0
        for t in a.tolist():
            yield env.timeout(t - prev)
            prev = t
            env.process(job(env))

    env.process(source(env))
    env.run()
    return float(np.mean(waits))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply command counts")
    ap.add_argument("--repeats", type=int, default=5, help="CLI processes per case (the median is shown)")
    a = ap.parse_args()
    print(describe())
    s_ps = int(SERVICE_NS * 1000)
    n_ref = int(200_000 * a.scale)
    arr = arrivals_ps(n_ref)
    t = time.perf_counter()
    simpy_w = simpy_md1(arr, s_ps)
    simpy_rate = n_ref / (time.perf_counter() - t)
    n_lin = int(20_000_000 * a.scale)
    arr_l = arrivals_ps(n_lin)
    lindley_mean_wait(arr_l[:1000], s_ps)  # compile
    t = time.perf_counter()
    lin_w = lindley_mean_wait(arr_l, s_ps)
    lin_rate = n_lin / (time.perf_counter() - t)
    print(f"references on the same open-queue arrivals (M/D/1, {RATE_MCMD_S} Mcmd/s, {SERVICE_NS} ns):")
    print(
        f"  SimPy M/D/1       {n_ref:>11,} cmds {simpy_rate / 1e3:>10.1f} kcmd/s  mean wait {simpy_w / 1e3:.2f} ns"
        f" (Lindley on the same arrivals: {lindley_mean_wait(arr, s_ps) / 1e3:.2f} ns)"
    )
    print(
        f"  numba Lindley     {n_lin:>11,} cmds {lin_rate / 1e6:>10.1f} Mcmd/s  mean wait {lin_w / 1e3:.2f} ns"
    )
    hdr = (f"{'scenario':<15} {'cpus':>4} {'commands':>11} {'end-to-end Mcmd/s':>18} {'(process)':>10} "
           f"{'engine-only':>12} {'e2e/SimPy':>10} {'e2e/Lindley':>12} {'engine/Lindley':>15}")  # fmt: skip
    print(hdr)
    for scenario, sets, ops in CASES:
        n = int(ops * a.scale)
        cli_run(scenario, sets, min(n, 10_000))  # warm the compile cache for this scenario
        runs = [cli_run(scenario, sets, n) for _ in range(a.repeats)]
        cmds = runs[0][0]
        rates = sorted(cmds / w for _, w, _ in runs)
        e2e = float(np.median(rates))
        e2e_proc = float(np.median([cmds / p for _, _, p in runs]))
        over = {k: v for k, v in sets.items() if k != "platform"}
        eng = bench_case(scenario, over, n, 2_000, repeats=1)["engine_wall_rate"]
        cpus = int(sets.get("cpus", 1))  # type: ignore[call-overload]
        rel_simpy = f"{e2e / simpy_rate:>9.0f}x"
        oq = scenario == "open-queue"
        rel_lin = f"{e2e / lin_rate:>12.1%}" if oq else f"{'':>12}"
        eng_lin = f"{eng / lin_rate:>15.1%}" if oq else f"{'':>15}"
        print(f"{scenario:<15} {cpus:>4} {cmds:>11,} {e2e / 1e6:>18.2f} {e2e_proc / 1e6:>10.2f} {eng / 1e6:>12.2f} "
              f"{rel_simpy} {rel_lin} {eng_lin}   (end-to-end over {len(rates)} runs: "
              f"{rates[0] / 1e6:.2f}-{rates[-1] / 1e6:.2f})", flush=True)  # fmt: skip
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
