"""Fingerprint the engine's results on 98 configurations, to check that a speed change left them identical.

    PYTHONPATH=/path/to/main-checkout .venv/bin/python scripts/engine_fingerprint.py before.json
    .venv/bin/python scripts/engine_fingerprint.py after.json
    .venv/bin/python scripts/engine_fingerprint.py --compare before.json after.json

Each configuration (every submission algorithm, line arbitration, hold chance and home, layout, topology, wait mode, queue
topology, the guest and workload scenarios, open-queue) runs with records; the fingerprint is every metric
except ``events`` plus a hash of the per-command and per-op records; ``events`` is kept apart (a measure of
work, not of the model) and compared as a total. Two configurations livelock (set-zero on a nearly full
queue) and are compared by their error message. A few seconds with a warm compile cache.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any

H = "host-map-unmap"
CASES = []
for plat in ("d06", "generic"):
    for submit in ("linux-lockfree", "atomic-add", "spinlock", "exclusive", "cas-spinlock-fallback"):
        for cpus in (1, 2, 16, 64):
            if submit == "exclusive" and cpus > 1:
                continue
            CASES.append((H, {"platform": plat, "submit": submit, "cpus": cpus}, 3000))
for xu in ("none", "set-zero", "clear-sign"):
    for arb in ("fifo", "holder-first"):
        for lp in ("holder", "none"):
            CASES.append(
                (
                    H,
                    {
                        "cpus": 32,
                        "exclusive_unlock": xu,
                        "line_arbitration": arb,
                        "load_priority": lp,
                        "cmdq_log2size": 7,
                        "tlbis": 8,
                    },
                    2000,
                )
            )
for lay in ("per-field", "v5.9"):
    for topo in ("flat", "platform"):
        for hm in (1, 2, 4):
            CASES.append((H, {"cpus": 24, "cmdq_layout": lay, "topology": topo, "line_hold_max": hm}, 2000))
for w in ("msi", "sev", "poll", "busy"):
    CASES.append((H, {"cpus": 8, "sync_wait": w}, 2000))
    CASES.append(
        (
            H,
            {
                "cpus": 8,
                "sync_wait": w,
                "queues": "vcmdq",
                "vcmdqs": 3,
                "vcmdq_sync_wait": w,
                "smmu_parallel": 2,
            },
            2000,
        )
    )
for hold_p in (0.05, 0.5):
    for home in ("near", "other-die", "other-socket"):
        for cpus in (16, 96):
            CASES.append((H, {"cpus": cpus, "line_hold_p": hold_p, "line_home": home}, 2000))
CASES += [
    (H, {"cpus": 8, "queues": "ecmdq"}, 2000),
    (H, {"cpus": 8, "arrival": "poisson", "rate_kops_s": 300}, 3000),
    (H, {"cpus": 4, "think_ns": 0, "tlbis": 20}, 2000),
    (H, {"cpus": 128, "submit": "atomic-add"}, 2000),
    (H, {"cpus": 16, "hw_sync_insert": True, "queues": "vcmdq", "vcmdqs": 4}, 2000),
    ("open-queue", {"rate_mcmd_s": 8.0, "service_ns": 100.0}, 50000),
    ("open-queue", {}, 20000),
    ("guest-trap", {}, 1000),
    ("guest-vcmdq", {}, 1000),
    ("guest-fixup", {}, 1000),
    ("guest-noisy", {}, 500),
    ("guest-mixed", {}, 500),
    ("host-iotlb", {}, 500),
    ("host-dma-map", {}, 1000),
    ("host-fio", {}, 1000),
    ("host-netperf", {}, 1000),
    ("host-config-churn", {}, 500),
    ("host-mixed", {}, 1000),
    ("guest-wl-fio", {}, 500),
    ("trace-replay", {}, 1000),
]


def _hash(df: Any) -> str | None:
    return None if df is None else hashlib.sha256(df.write_csv().encode()).hexdigest()[:16]


def fingerprint(path: str) -> None:
    from cmdqv_lab.scenarios import simulate

    out: dict[str, Any] = {}
    t0 = time.time()
    for s, p, n in CASES:
        key = f"{s} {json.dumps(p, sort_keys=True)} {n}"
        try:
            r = simulate(s, p, seed=3, count=n, record=True)
            m = {k: v for k, v in r.metrics.items() if k != "events"}
            out[key] = {"metrics": json.loads(json.dumps(m, default=str)), "cmds": _hash(r.commands),
                        "ops": _hash(r.ops), "events": r.metrics.get("events")}  # fmt: skip
        except Exception as e:
            out[key] = {"error": f"{type(e).__name__}: {e}"}
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    print(f"{len(out)} configurations in {time.time() - t0:.1f} s -> {path}")


def compare(pa: str, pb: str) -> int:
    with open(pa) as f:
        a = json.load(f)
    with open(pb) as f:
        b = json.load(f)
    bad = ea = eb = 0
    for k, x in a.items():
        y = b.get(k, {})
        xe, ye = x.pop("events", None), y.pop("events", None)
        if isinstance(xe, int) and isinstance(ye, int):
            ea, eb = ea + xe, eb + ye
        if x == y:
            continue
        bad += 1
        print("DIFFERS", k)
        for mk, mv in x.get("metrics", {}).items():
            if mv != y.get("metrics", {}).get(mk):
                print("   ", mk, mv, y.get("metrics", {}).get(mk))
        for f in ("cmds", "ops", "error"):
            if x.get(f) != y.get(f):
                print("   ", f, x.get(f), y.get(f))
    print(f"{len(a)} configurations, {bad} differ; events {ea} -> {eb} ({eb / ea if ea else 0:.3f})")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compare"]:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    fingerprint(sys.argv[1])
