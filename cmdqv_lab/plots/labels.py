"""Words with units for column names, on axes, legends and table headers.

Charts and result tables take frames whose columns are identifiers (``ops_per_s_per_cpu``); a
reader wants "map+unmap per CPU (ops/s)". :func:`label` looks a column up in :data:`LABELS` and
otherwise spells it out: underscores become spaces and a unit suffix becomes a unit in brackets.
Names from the spec and the driver (CMD_SYNC, TLBI_NH_VA, CMD_BATCH) stay as they are.

>>> label("ops_per_s_per_cpu"), label("fixup_wait_ns"), label("irq_latency_us")
('ops/s per CPU', 'fix-up wait (ns)', 'IRQ latency (µs)')
>>> label("CMD_BATCH"), label("cpus")
('CMD_BATCH', 'CPUs')
"""

from __future__ import annotations

import re

#: Known columns -> words with units.
LABELS: dict[str, str] = {
    "cpus": "CPUs",
    "threads": "threads (vCPUs)",
    "vms": "guest VMs",
    "vcpus": "vCPUs",
    "policy": "routing policy",
    "config": "configuration",
    "series": "series",
    "path": "guest path",
    "load": "load",
    "case": "case",
    "k": "VCMDQs per guest",
    "N": "host VCMDQs",
    "seed": "seed",
    "seeds": "seeds",
    "kind": "what it is",
    "ops": "ops",
    "ops_per_s": "ops/s (all CPUs)",
    "ops_per_s_per_cpu": "ops/s per CPU",
    "time_us": "simulated time (us)",
    "longest_shared_wait_us": "longest wait in progress for the shared lock (us)",
    "ops_done": "operations completed",
    "exclusive_unlock": "release of the exclusive cmdq lock",
    "ops_per_s_per_vcpu": "unmaps/s per vCPU",
    "kops_per_s": "thousand ops/s",
    "unmaps_per_s_per_cpu": "unmaps/s per CPU",
    "offered_unmaps_per_s": "offered unmaps/s (all CPUs)",
    "op_latency_ns_mean": "mean op latency (ns)",
    "op_latency_ns_p50": "p50 op latency (ns)",
    "op_latency_ns_p99": "p99 op latency (ns)",
    "latency_ns": "latency (ns)",
    "unmap_latency_ns": "mean unmap latency (ns)",
    "mean_us": "mean unmap latency (µs)",
    "p99_us": "p99 unmap latency (µs)",
    "smmu_busy_fraction": "SMMU busy fraction",
    "cas_success_ratio": "cmpxchg success ratio",
    "fixup_latency_ns_mean": "mean fix-up latency (ns)",
    "fixup_mean_ns": "mean fix-up latency (ns)",
    "fixup_p99_ns": "p99 fix-up latency (ns)",
    "md1_ns": "M/D/1 mean (ns)",
    "unmap_mean_ns": "mean unmap latency (ns)",
    "unsupported_fraction": "unsupported fraction",
    "unsupported": "unsupported fraction",
    "split_sync_fraction": "lone-SYNC fraction",
    "s12_fraction": "batches with TLBI_S12_VMALL",
    "granule_kib": "unmap size (KiB)",
    "accepted_set": "accepted opcode set",
    "ill_per_1e4_ops": "ILL per 10⁴ unmaps",
    "q2_unmaps_per_1e4": "unmaps at risk per 10⁴",
    "trapped_share": "share of commands trapped",
    "exits_per_1e4_ops": "VM exits per 10⁴ unmaps",
    "guest_irqs_per_1e4_ops": "guest error IRQs per 10⁴ unmaps",
    "cmd_batch": "CMD_BATCH (commands per turn)",
    "hw_sync": "hardware SYNCs",
    "hw_sync_ns": "hardware SYNC cost (ns)",
    "cpu_in_cmdq_pct": "CPU time in the cmdq path (%)",
    "cmdq_us_per_mib": "cmdq CPU time per MiB read (µs)",
    "reduction_pct": "time saved (%)",
    "line_xfer_ns": "cache-line transfer (ns)",
    "irq_latency_ns": "IRQ latency (ns)",
    "irq_latency_us": "IRQ latency (µs)",
    "irq_handler_ns": "IRQ handler (ns)",
    "vmm_trap_us": "VMM trap cost (µs)",
    "vcmdqs_per_vm": "VCMDQs per VM",
    "vms_fully_served": "VMs with every VCMDQ they asked for",
    "allocation": "VCMDQ allocator",
    "utilisation": "utilisation",
    "mean_wait_ns": "mean wait (ns)",
    "position": "position in the range (0 = low, 1 = high)",
    "change_pct": "change vs baseline (%)",
    "conclusion": "conclusion",
    "parameter": "parameter",
    "value": "value",
    "count": "count",
    "hazard": "hazard",
    "trace": "trace",
    "opcode": "opcode",
    "smmu_parallel": "SMMU command processors",
    "percentile": "percentile",
    "view": "view",
    "source": "source",
    "service_dist": "service distribution",
    "workload · mode": "workload · mode",
    "atc_batch": "ATC_INV batch",
}

_UNITS = {"ns": "ns", "us": "µs", "ms": "ms", "s": "s", "kib": "KiB", "mib": "MiB", "pct": "%", "hz": "Hz"}
_WORDS = {"cpu": "CPU", "cpus": "CPUs", "vm": "VM", "vms": "VMs", "irq": "IRQ", "smmu": "SMMU", "mmio": "MMIO",
          "vmm": "VMM", "tlbi": "TLBI", "cfgi": "CFGI", "ill": "ILL", "vcmdq": "VCMDQ", "vcmdqs": "VCMDQs",
          "ecmdq": "ECMDQ", "fixup": "fix-up", "p50": "p50", "p99": "p99", "md1": "M/D/1", "sync": "SYNC",
          "per": "per", "1e4": "10⁴"}  # fmt: skip
_SPEC_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")


def label(column: str) -> str:
    """Words with units for a column name (see module doc)."""
    if column in LABELS:
        return LABELS[column]
    if _SPEC_NAME.match(column) or "_" not in column:
        return column
    parts = column.split("_")
    unit = _UNITS.get(parts[-1].lower())
    if unit:
        parts = parts[:-1]
    words = " ".join(_WORDS.get(p.lower(), p) for p in parts)
    return f"{words} ({unit})" if unit else words


def is_identifier_title(text: str) -> bool:
    """True when a title still reads like a column name (a lowercase snake_case token in it).

    >>> is_identifier_title("ops_per_s_per_cpu (mean over seeds)"), is_identifier_title("CMD_BATCH (commands)")
    (True, False)
    """
    return re.search(r"(?<![A-Za-z0-9])[a-z][a-z0-9]*_[a-z0-9_]+", text) is not None
