"""``host-map-unmap``: host CPUs invalidating on unmap, as John Garry's map+unmap benchmark does.

Each CPU loops: think (``think_ns``: the dma_map and unmap page-table work) -> unmap: one
``arm_smmu_cmdq_issue_cmdlist`` of ``tlbis`` CMD_TLBI_NH_VA plus a CMD_SYNC (strict mode) -> wait
for the SYNC. The submission algorithm (``submit``) runs on the chosen topology (``queues``): one
main CMDQ shared by all CPUs; ``vcmdqs`` Tegra241 VCMDQs chosen by ``cpu % vcmdqs`` (each a full
copy of the algorithm, as Linux's tegra241-cmdqv does); or one ECMDQ per CPU. With
``arrival=poisson`` each CPU instead gets open Poisson arrivals at ``rate_kops_s``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cmdqv_lab.device.commands import Opcode
from cmdqv_lab.engine.runner import EngineConfig, QueueSpec
from cmdqv_lab.engine.stream import OpBlock
from cmdqv_lab.errors import ParamError
from cmdqv_lab.params import Params, param
from cmdqv_lab.platform import Platform
from cmdqv_lab.scenarios.base import Scenario, register
from cmdqv_lab.scenarios.streams import fixed_ops_stream, split_quota

SUBMITS = ("linux-lockfree", "atomic-add", "spinlock", "exclusive")


@dataclass(frozen=True, kw_only=True)
class HostMapUnmapParams(Params):
    platform: str = param("d06", provenance="choice", doc="platform preset in data/params")
    cpus: int = param(16, unit="CPUs", lo=1, hi=4000, provenance="choice", doc="CPUs running the loop")
    submit: str = param("linux-lockfree", choices=SUBMITS, provenance="choice", doc="submission algorithm")
    queues: str = param("main", choices=("main", "vcmdq", "ecmdq"), provenance="choice", doc="queue topology")
    vcmdqs: int = param(2, unit="queues", lo=1, hi=128, provenance="choice", doc="VCMDQs (queues=vcmdq)")
    tlbis: int = param(1, unit="commands", lo=0, hi=63, provenance="choice", doc="CMD_TLBI_NH_VA per unmap")
    arrival: str = param(
        "closed", choices=("closed", "poisson"), provenance="choice", doc="closed loop or open"
    )
    rate_kops_s: float = param(
        100.0,
        unit="kops/s per CPU",
        lo=1e-3,
        hi=1e6,
        provenance="choice",
        doc="arrival rate (arrival=poisson)",
    )


def queue_layout(
    p: HostMapUnmapParams, plat: Platform, max_batch: int | None = None
) -> tuple[tuple[QueueSpec, ...], list[int]]:
    """The queues of the topology and each CPU's queue (``max_batch``: largest batch, for atomic-add)."""
    return host_queues(
        p.queues, p.cpus, p.vcmdqs, p.submit, plat, p.tlbis + 1 if max_batch is None else max_batch
    )


def host_queues(
    queues: str, cpus: int, vcmdqs: int, submit: str, plat: Platform, max_batch: int
) -> tuple[tuple[QueueSpec, ...], list[int]]:
    """Host topologies: one main CMDQ, ``vcmdqs`` VCMDQs chosen by ``cpu % vcmdqs``, or one ECMDQ per CPU."""
    if queues == "main":
        n_q = 1
        owners = [0] * cpus
    elif queues == "vcmdq":
        n_q = vcmdqs
        owners = [c % vcmdqs for c in range(cpus)]
    else:
        n_q = cpus
        owners = list(range(cpus))
    if submit == "exclusive" and len(set(owners)) != cpus:
        raise ParamError(
            f"submit=exclusive needs one queue per CPU: use queues=ecmdq or vcmdqs>={cpus} (got queues={queues}"
            + (f", vcmdqs={vcmdqs})" if queues == "vcmdq" else ")")
        )
    if submit == "atomic-add":
        log2 = {"main": plat.cmdq_log2size, "vcmdq": plat.vcmdq_log2size, "ecmdq": plat.ecmdq_log2size}[
            queues
        ]
        sharers = max(owners.count(q) for q in set(owners))
        if sharers * max_batch > (1 << log2):
            raise ParamError(
                f"submit=atomic-add cannot wait for space after reserving: {sharers} CPUs x {max_batch} entries "
                f"exceed a 2^{log2}-entry queue (the reservation would deadlock); use a larger queue"
            )
    procs = min(plat.smmu_parallel, n_q)
    if queues == "vcmdq":
        qs = tuple(
            QueueSpec(plat.vcmdq_log2size, submit, plat.vcmdq_sync_wait, i % procs) for i in range(n_q)
        )
    elif queues == "ecmdq":
        qs = tuple(QueueSpec(plat.ecmdq_log2size, submit, plat.sync_wait, i % procs) for i in range(n_q))
    else:
        qs = (QueueSpec(plat.cmdq_log2size, submit, plat.sync_wait, 0),)
    return qs, owners


def _build(
    p: HostMapUnmapParams, plat: Platform | None, seed: int, n_ops: int
) -> tuple[EngineConfig, list[Iterator[OpBlock]]]:
    assert plat is not None
    qs, owners = queue_layout(p, plat)
    quotas = split_quota(n_ops, p.cpus)
    opcodes = [int(Opcode.CMD_TLBI_NH_VA)] * p.tlbis + [int(Opcode.CMD_SYNC)]
    means = [plat.service_ns(op) for op in opcodes]
    open_loop = p.arrival == "poisson"
    gap = 1e6 / p.rate_kops_s if open_loop else plat.think_ns
    streams = [
        fixed_ops_stream(
            seed=seed,
            name="host-map-unmap",
            cpu=c,
            n_ops=quotas[c],
            opcodes=opcodes,
            service_means_ns=means,
            service_dist=plat.service_dist,
            gap_mean_ns=gap,
            gap_dist=plat.think_dist,
            queue=owners[c],
            sync=True,
            open_loop=open_loop,
        )
        for c in range(p.cpus)
    ]
    cfg = EngineConfig(
        queues=qs,
        n_cpus=p.cpus,
        quotas=tuple(quotas),
        costs=plat.costs(),
        n_procs=min(plat.smmu_parallel, len(qs)),
        open_loop=open_loop,
    )
    return cfg, streams


SCENARIO = register(
    Scenario(
        name="host-map-unmap",
        doc=__doc__.strip().splitlines()[0] if __doc__ else "",
        params=HostMapUnmapParams,
        build=_build,
        count="ops",
        default_count=100_000,
    )
)
