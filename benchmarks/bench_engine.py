"""Engine speed: simulated commands per second of the compiled engine and of the SimPy reference,
on the same inputs in one process, for open-queue and host-map-unmap at 1, 16 and 64 CPUs.

    python benchmarks/bench_engine.py            # the table (about a minute)
    python benchmarks/bench_engine.py --startup  # + a second `cmdqv-lab simulate` process, 1e5 ops
    python benchmarks/bench_engine.py --billion  # + 10^9 open-queue commands: wall time, peak RSS

The reference is run on fewer commands (it is slow); rates are per simulated command, so the ratio
compares like with like. Rates use the process's CPU time (what one core delivers, robust to other
load on the machine); the engine's wall-clock rate is printed too. Best of three runs each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from cmdqv_lab.engine.runner import EngineConfig, run_engine  # noqa: E402
from cmdqv_lab.scenarios.base import get_scenario, resolve  # noqa: E402
from tests.reference.simpy_model import run_reference  # noqa: E402

CASES = [
    ("open-queue", {"rate_mcmd_s": 8.0, "service_ns": 100.0}, 1),
    ("host-map-unmap", {"cpus": 1}, 1),
    ("host-map-unmap", {"cpus": 16}, 16),
    ("host-map-unmap", {"cpus": 64}, 64),
]


def materialise(scenario: str, overrides: dict, count: int, record: bool):  # type: ignore[no-untyped-def, type-arg]
    scn = get_scenario(scenario)
    params, plat = resolve(scn, overrides)
    cfg, streams = scn.build(params, scn.run_platform(params, plat), 7, count)
    blocks = [list(s) for s in streams]
    if record:
        cfg = EngineConfig(**{**cfg.__dict__, "record": True})
    return cfg, blocks


def bench_case(scenario: str, overrides: dict, engine_count: int, ref_count: int, repeats: int = 3) -> dict:  # type: ignore[type-arg]
    cfg, blocks = materialise(scenario, overrides, engine_count, False)
    run_engine(cfg, [iter(b) for b in blocks])  # warm (loads compiled code)
    best = best_wall = float("inf")
    for _ in range(repeats):
        t, w = time.process_time(), time.perf_counter()
        res = run_engine(cfg, [iter(b) for b in blocks])
        best = min(best, time.process_time() - t)
        best_wall = min(best_wall, time.perf_counter() - w)
    cmds = int(res.g[3])  # G_CMDS_DONE
    rcfg, rblocks = materialise(scenario, overrides, ref_count, True)
    ref_s = float("inf")
    for _ in range(2):
        t = time.process_time()
        ref = run_reference(rcfg, rblocks)
        ref_s = min(ref_s, time.process_time() - t)
    ref_cmds = len(ref.cmd_records)
    eng_rate, ref_rate = cmds / best, ref_cmds / ref_s
    return {"engine_cmds": cmds, "engine_s": best, "engine_rate": eng_rate, "engine_wall_rate": cmds / best_wall,
            "ref_cmds": ref_cmds, "ref_s": ref_s, "ref_rate": ref_rate, "ratio": eng_rate / ref_rate}  # fmt: skip


def startup() -> float:
    """Wall time of a fresh `cmdqv-lab simulate` process (compiled code already cached), 1e5 ops."""
    exe = Path(sys.executable).parent / "cmdqv-lab"
    cmd = [str(exe), "simulate", "--scenario", "host-map-unmap", "--ops", "100000", "--json"]
    subprocess.run(cmd, check=True, capture_output=True)  # make sure the cache is warm
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def billion() -> tuple[float, float]:
    """Wall time and peak RSS of 10^9 open-queue commands, in a process of their own (the peak of
    this process includes the table's pre-built inputs and SimPy references). The peak is the
    child's own ``VmHWM``: its ``ru_maxrss`` keeps the size of this process it was forked from
    (Linux carries the peak across ``exec``), which read 637 MiB for a 209 MiB run."""
    code = (
        "import json, resource, time\n"
        "from cmdqv_lab.scenarios import simulate\n"
        "t = time.perf_counter()\n"
        "r = simulate('open-queue', {'rate_mcmd_s': 8.0, 'service_ns': 100.0}, seed=1, count=1_000_000_000)\n"
        "assert r.metrics['commands'] == 1_000_000_000\n"
        "wall = time.perf_counter() - t\n"
        "try:\n"
        "    hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0]\n"
        "    peak = int(hwm.split()[1]) / 1024\n"
        "except (OSError, IndexError):\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps([wall, peak]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    wall, rss = json.loads(out.splitlines()[-1])
    return float(wall), float(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--startup", action="store_true")
    ap.add_argument("--billion", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply command counts")
    a = ap.parse_args()
    print(describe())
    print(f"{'scenario':<16} {'cpus':>4} {'engine cmds':>12} {'engine Mcmd/s':>14} {'(wall)':>7} {'SimPy cmds':>11} "
          f"{'SimPy kcmd/s':>13} {'ratio':>8}")  # fmt: skip
    for scenario, over, cpus in CASES:
        n_eng = int((5_000_000 if scenario == "open-queue" else 400_000) * a.scale)
        n_ref = int(20_000 * a.scale) if cpus < 64 else int(6_400 * a.scale)
        r = bench_case(scenario, over, n_eng, n_ref)
        print(f"{scenario:<16} {cpus:>4} {r['engine_cmds']:>12,} {r['engine_rate'] / 1e6:>14.2f} "
              f"{r['engine_wall_rate'] / 1e6:>7.2f} {r['ref_cmds']:>11,} {r['ref_rate'] / 1e3:>13.1f} {r['ratio']:>8.0f}")  # fmt: skip
    if a.startup:
        print(f"second `cmdqv-lab simulate` process, host-map-unmap 1e5 ops: {startup():.2f} s")
    if a.billion:
        wall, rss = billion()
        print(f"open-queue 10^9 commands: {wall:.0f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
