"""DMA through the IOTLB around a timed unmap run: translations, invalidations, misses, walk time.

The timing engine gives, for every unmap op of every CPU, when its think time ended (``ready_ps``)
and when the SMMU completed its CMD_SYNC (``sync_complete_ps``: from then on the invalidation has
taken effect). This module turns those times into IOTLB events (:mod:`cmdqv_lab.iotlb.model`) and
counts what the devices pay:

* **buffer traffic**: CPU ``c`` unmaps for device ``c mod devices`` (ASID ``asid_base + c mod
  devices``, as :func:`~cmdqv_lab.workloads.synthetic.io.unmap_workload` issues it). Before each
  unmap the device reads the buffer once, one translation per 4 KiB page, spread evenly over the
  think time before the op (the buffer is mapped, the device moves it, then it is unmapped);
  the buffer of CPU ``c`` is at its IOVA in the unmap commands (one slot: the same IOVA each time).
* **long-lived traffic**: each device also translates pages of mappings that are not unmapped
  (descriptor rings, other buffers in flight, pinned regions): ``footprint_pages`` pages, accessed
  uniformly at random as a Poisson process of ``hot_rate_mps`` million page accesses per second
  over the whole run (own random stream per device: ``rng.stream(seed, name, "dma", device)``).
  These are what a whole-ASID invalidation throws away and range invalidations keep.
* **invalidations**: at ``sync_complete_ps`` of each op, the pages of the buffer
  (CMD_TLBI_NH_VA per page, or range TLBIs with RIL) or, when Linux falls back
  (``pages >= max_tlbi_ops`` without RIL, :func:`~cmdqv_lab.workloads.synthetic.inval.unmap_batches`),
  every entry of the ASID (CMD_TLBI_NH_ASID).

Events at the same picosecond are ordered accesses first, then invalidations, then by CPU/device
and position: the result is a function of the seed and the engine's records only.

Costs: a miss stalls the device's DMA for ``walk_ns`` (one walk at a time per device, no overlap
with transfers: an assumption that makes walks as costly as they can be); a device moves a 4 KiB
page per access at ``dma_link_gbps`` otherwise. ``dma_throughput_gbps`` is the sum over devices of
bytes / (transfer time + stall time): what each device achieves while it is moving data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cmdqv_lab.errors import ParamError
from cmdqv_lab.iotlb.model import ACCESS, INV_ASID, INV_RANGE, Iotlb
from cmdqv_lab.rng import stream as rng_stream

PAGE = 4096
#: First page number of the long-lived mappings (IOVA 256 MiB: below every unmapped buffer, which
#: start at IOVA 4 GiB, ``io.IOVA_BASE``).
HOT_PAGE = 1 << 16
#: Most IOTLB events one run may build (memory: 5 int64 arrays).
MAX_EVENTS = 60_000_000


@dataclass(frozen=True)
class Unmaps:
    """What the devices need to know of a run's unmaps: size, where, which ASID, how invalidated."""

    pages: int  # pages per unmap
    whole: bool  # one CMD_TLBI_NH_ASID instead of per-page/range TLBIs
    devices: int
    asid_base: int
    buffer_page: np.ndarray  # first page of CPU c's buffer, per CPU


def _ordered(ops: pl.DataFrame) -> pl.DataFrame:
    return ops.select("cpu", "ready_ps", "complete_ps", "sync_complete_ps").sort("cpu", "ready_ps")


def build_events(
    ops: pl.DataFrame, u: Unmaps, *, footprint: int, rate_mps: float, seed: int, name: str
) -> dict[str, np.ndarray]:
    """The IOTLB events of a run, time-ordered: columns ``t``, ``kind``, ``asid``, ``page``,
    ``npages``, ``device`` and ``hot`` (1: long-lived traffic, 0: buffer traffic or invalidation)."""
    o = _ordered(ops)
    cpu = o["cpu"].to_numpy().astype(np.int64)
    ready = o["ready_ps"].to_numpy()
    done = o["complete_ps"].to_numpy()
    inv_t = np.where(o["sync_complete_ps"].to_numpy() >= 0, o["sync_complete_ps"].to_numpy(), done)
    n = cpu.size
    t_end = int(done.max()) if n else 0
    expect_hot = rate_mps * 1e-6 * t_end * u.devices  # rate_mps * 1e6 per s = rate_mps * 1e-6 per ps
    total = n * (u.pages + 1) + expect_hot
    if total > MAX_EVENTS:
        raise ParamError(
            f"host-iotlb: about {total:.3g} IOTLB events (unmaps x pages + hot_rate_mps x time) exceed "
            f"{MAX_EVENTS:,}: fewer ops, pages or a lower hot_rate_mps"
        )
    # previous completion of the same CPU (0 before its first op)
    first = np.ones(n, bool)
    first[1:] = cpu[1:] != cpu[:-1]
    prev = np.concatenate([[0], done[:-1]])
    prev[first] = 0
    dev = cpu % u.devices
    asid = u.asid_base + dev
    # buffer accesses: page k of op i at prev + (k + 1) * (ready - prev) / (pages + 1)
    k = np.arange(u.pages, dtype=np.int64)
    span = np.maximum(ready - prev, 0)
    b_t = (prev[:, None] + (k[None, :] + 1) * span[:, None] // (u.pages + 1)).ravel()
    b_page = (u.buffer_page[cpu][:, None] + k[None, :]).ravel()
    b_asid = np.repeat(asid, u.pages)
    b_dev = np.repeat(dev, u.pages)
    # invalidations
    i_kind = np.full(n, INV_ASID if u.whole else INV_RANGE, np.int64)
    i_page = np.where(u.whole, 0, u.buffer_page[cpu])
    i_np = np.full(n, 0 if u.whole else u.pages, np.int64)
    # long-lived traffic, per device
    h_t, h_page, h_dev = [], [], []
    for d in range(u.devices):
        if rate_mps <= 0 or footprint <= 0 or t_end <= 0:
            break
        g = rng_stream(seed, name, "dma", d)
        mean_ps = 1e6 / rate_mps
        m = int(t_end / mean_ps + 8 * np.sqrt(t_end / mean_ps) + 16)
        t = np.cumsum(np.rint(-np.log1p(-g.random(m)) * mean_ps).astype(np.int64))
        while t[-1] <= t_end:  # pragma: no cover - 8 sigma above the mean
            more = np.cumsum(np.rint(-np.log1p(-g.random(m)) * mean_ps).astype(np.int64))
            t = np.concatenate([t, t[-1] + more])
        pages = g.integers(0, footprint, t.size)
        keep = t <= t_end
        h_t.append(t[keep])
        h_page.append(HOT_PAGE + pages[keep])
        h_dev.append(np.full(int(keep.sum()), d, np.int64))
    ht = np.concatenate(h_t) if h_t else np.zeros(0, np.int64)
    hp = np.concatenate(h_page) if h_page else np.zeros(0, np.int64)
    hd = np.concatenate(h_dev) if h_dev else np.zeros(0, np.int64)
    nb, nh = b_t.size, ht.size
    cols = {
        "t": np.concatenate([b_t, ht, inv_t]),
        "kind": np.concatenate([np.zeros(nb + nh, np.int64), i_kind]),
        "asid": np.concatenate([b_asid, u.asid_base + hd, asid]),
        "page": np.concatenate([b_page, hp, i_page]),
        "npages": np.concatenate([np.ones(nb + nh, np.int64), i_np]),
        "device": np.concatenate([b_dev, hd, dev]),
        "hot": np.concatenate([np.zeros(nb, np.int64), np.ones(nh, np.int64), np.zeros(n, np.int64)]),
    }
    seq = np.arange(cols["t"].size)
    order = np.lexsort((seq, cols["kind"] != ACCESS, cols["t"]))
    return {k: v[order] for k, v in cols.items()}


def iotlb_metrics(
    ev: dict[str, np.ndarray], *, entries: int, ways: int, walk_ns: float, link_gbps: float, devices: int,
    unmaps: int, cmdq_ns_per_unmap: float,
) -> dict[str, Any]:  # fmt: skip
    """Run the events through a cold IOTLB and summarise (see the module docstring for the costs)."""
    tlb = Iotlb(entries, ways)
    out = tlb.run(ev["kind"], ev["asid"], ev["page"], ev["npages"])
    acc = ev["kind"] == ACCESS
    miss = acc & (out == 0)
    hot = ev["hot"] == 1
    accesses, misses = int(acc.sum()), int(miss.sum())
    per_dev_acc = np.bincount(ev["device"][acc], minlength=devices).astype(np.float64)
    per_dev_miss = np.bincount(ev["device"][miss], minlength=devices).astype(np.float64)
    transfer_ns = per_dev_acc * PAGE / link_gbps  # GB/s = bytes/ns
    stall_ns = per_dev_miss * walk_ns
    busy = transfer_ns + stall_ns
    tput = float(np.sum(np.divide(per_dev_acc * PAGE, busy, out=np.zeros(devices), where=busy > 0)))
    walk_total = misses * walk_ns
    walk_per_unmap = walk_total / unmaps if unmaps else 0.0
    return {
        "iotlb_accesses": accesses,
        "iotlb_misses": misses,
        "iotlb_hot_misses": int((miss & hot).sum()),
        "iotlb_buffer_misses": int((miss & ~hot).sum()),
        "iotlb_miss_ratio": misses / accesses if accesses else 0.0,
        "iotlb_entries_invalidated": int(out[~acc].sum()),
        "walk_time_ns": walk_total,
        "walk_ns_per_unmap": walk_per_unmap,
        "dma_stall_fraction": float(stall_ns.sum() / busy.sum()) if busy.sum() > 0 else 0.0,
        "dma_throughput_gbps": tput,
        "cmdq_ns_per_unmap": cmdq_ns_per_unmap,
        "inval_cost_ns_per_unmap": cmdq_ns_per_unmap + walk_per_unmap,
    }
