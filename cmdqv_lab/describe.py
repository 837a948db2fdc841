"""What a scenario's parameters and metrics mean: one source for ``simulate --list``, ``describe``,
``params`` and parameter tables elsewhere.

:func:`parameter_rows` lists a scenario's parameters (its own, then the platform's) with their
description, unit, allowed values, the value each platform preset gives them and where that value
comes from; :func:`format_scenario` prints them, :func:`format_scenarios` lists every scenario on
one line each, :func:`format_preset` prints one preset's table (``cmdqv-lab params``).
:data:`METRICS` says what each metric of a run measures and in which unit
(:func:`format_result` prints a run's configuration, then its metrics).

>>> rows = {r.name: r for r in parameter_rows("host-map-unmap")}
>>> rows["tlbi_service_ns"].values["generic"], rows["tlbi_service_ns"].values["d06"] < 320
(250.0, True)
>>> rows["hw_sync_insert"].allowed, rows["cpus"].unit
('true/false', 'CPUs')
>>> rows["tlbi_service_ns"].provenance
'derived; d06: assumption; grace: fitted'
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Any

from cmdqv_lab.params import ParamInfo

#: Platform parameter groups: the first field of each (fields follow in declaration order).
PLATFORM_GROUPS = {
    "line_xfer_ns": "CPU and interconnect",
    "fetch_ns": "SMMU command processor",
    "sync_wait": "queues and driver",
    "trap_user_ns": "virtualisation (guest scenarios)",
}
#: The group a host scenario does not use (its costs apply to guest paths only).
GUEST_GROUP = "virtualisation (guest scenarios)"

#: metric -> (unit, what it measures). Distributions (``op_latency_ns``) have mean/p50/p99/max.
METRICS: dict[str, tuple[str, str]] = {
    "ops": ("ops", "operations completed"),
    "commands": ("commands", "commands the SMMU completed"),
    "sim_time_ns": ("ns", "simulated time"),
    "ops_per_s": ("ops/s", "throughput (closed loop: until the first CPU finishes)"),
    "ops_per_s_per_cpu": ("ops/s", "throughput per issuing CPU"),
    "commands_per_s": ("commands/s", "commands completed per simulated second"),
    "op_latency_ns": ("ns", "one op from its start to its completion (incl. CMD_SYNC wait)"),
    "queue_wait_ns": ("ns", "a command from its PROD write until the SMMU starts it"),
    "smmu_busy_fraction": ("fraction", "time the SMMU command processors are busy"),
    "cas_success_ratio": ("ratio", "cmpxchg on the queue's llq that succeeded"),
    "cas_attempts": ("attempts", "cmpxchg attempts on the llq"),
    "doorbells": ("writes", "PROD register writes"),
    "syncs": ("commands", "CMD_SYNCs issued"),
    "hw_syncs": ("commands", "CMD_SYNCs the CMDQV scheduler inserted"),
    "max_occupancy": ("entries", "most entries in any queue"),
    "exits": ("exits", "guest exits (trapped MMIO)"),
    "guest_irqs": ("interrupts", "virtual interrupts delivered to guests"),
    "illegal_commands": ("commands", "commands a VCMDQ rejected (ILL)"),
    "fixups": ("fixups", "ILLs the host's IRQ thread emulated"),
    "fixup_latency_ns": ("ns", "an ILL until its queue resumed (fix-up path)"),
    "events": ("events", "engine events (a measure of work, not of the model)"),
    "shared_lock_wait_ns": (
        "ns",
        "host and guest drivers: arm_smmu_cmdq_shared_lock of a CMD_SYNC batch, from its atomic_fetch_inc to holding cmdq->lock",
    ),
    "op_phase_ns": (
        "ns",
        "host and guest drivers: mean time per op in each phase of its batches (reserve, write, shared_lock, "
        "owner_gather, publish (a trapped guest: the PROD write's exit to the VMM), until_smmu_at_sync, "
        "sync_completion, unlock)",
    ),
    "cpus_in_retry_loop": (
        "CPUs",
        "host and guest drivers: time-averaged CPUs in the reservation loop (llq reads, space check, retries)",
    ),
    "stopped_at_ns": ("ns", "the run stopped at this simulated time (until_ns) with work left"),
    "offered_load": ("Erlang", "arrival rate x mean service time"),
    "iotlb_accesses": ("translations", "DMA translations looked up in the IOTLB (one per 4 KiB page access)"),
    "iotlb_misses": ("translations", "IOTLB lookups that missed and walked the tables"),
    "iotlb_hot_misses": ("translations", "misses on long-lived pages (what a whole-ASID flush costs)"),
    "iotlb_buffer_misses": ("translations", "misses on the unmapped buffers (first touch of a new mapping)"),
    "iotlb_miss_ratio": ("ratio", "misses / lookups"),
    "iotlb_entries_invalidated": ("entries", "IOTLB entries the invalidations removed"),
    "walk_time_ns": ("ns", "table-walk time of all misses (devices stalled)"),
    "walk_ns_per_unmap": ("ns", "walk time per unmap"),
    "dma_stall_fraction": ("fraction", "devices' busy time spent waiting for walks"),
    "dma_throughput_gbps": ("GB/s", "DMA throughput of the devices while busy (sum over devices)"),
    "cmdq_ns_per_unmap": ("ns", "mean CPU time of an unmap's invalidation (op latency)"),
    "inval_cost_ns_per_unmap": ("ns", "cmdq time + walk time per unmap (Q11's cost)"),
    "tlbis_per_unmap": ("commands", "TLBI commands per unmap (1: one CMD_TLBI_NH_ASID or one range)"),
    "asid_flush": ("", "unmaps flush the whole ASID (unmap_pages >= max_tlbi_ops, no RIL)"),
    # guest-noisy (Q12): per group, over the window until the first vCPU finished its quota
    "victim_op_latency_ns": ("ns", "a victim VM's unmap from its start to its completion (victims only)"),
    "victim_ops_per_s": ("ops/s", "unmaps of all victim VMs per second (window)"),
    "victim_ops_measured": ("ops", "victim unmaps inside the window (the latency sample)"),
    "aggressor_ops_per_s": ("ops/s", "unmaps of all aggressor VMs per second (window)"),
    "aggressor_commands_per_s": ("commands/s", "aggressor commands completed per second (window)"),
    "window_ns": ("ns", "the window: until the first issuing vCPU finished its quota"),
}


#: The metrics that say most about a run, in the order tables show them (those a run has).
KEY_METRICS: tuple[str, ...] = (
    "ops_per_s",
    "op_latency_ns_mean",
    "op_latency_ns_p99",
    "queue_wait_ns_mean",
    "smmu_busy_fraction",
    "cas_success_ratio",
    "exits",
    "illegal_commands",
    "fixups",
)


@dataclass(frozen=True)
class ParamRow:
    """One parameter of a scenario, explained."""

    name: str
    group: str  # "scenario", or a platform group of PLATFORM_GROUPS
    doc: str
    unit: str
    allowed: str
    default: Any  # the scenario's default (platform fields: the default preset's value)
    values: dict[str, Any] = field(default_factory=dict)  # platform fields: preset -> value
    provenance: str = ""  # the field's, then presets that say otherwise ("derived; d06: fitted")
    sources: dict[str, str] = field(default_factory=dict)  # "" (the field's own) or preset -> source


def fmt_value(v: Any) -> str:
    """A parameter value as ``--set`` takes it: ``true``/``false``, ``189.7``, ``65536``.

    >>> fmt_value(True), fmt_value(250.0), fmt_value(1e-3), fmt_value(100000.0), fmt_value("d06")
    ('true', '250', '0.001', '100000', 'd06')
    """
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isfinite(v) and v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.6g}"
    return str(v)


def allowed_text(default: Any, info: ParamInfo) -> str:
    """Allowed values without the unit (shown beside it): ``true/false``, ``0 .. 1000``, ``a, b``."""
    if isinstance(default, bool):
        return "true/false"
    if info.choices is not None:
        return ", ".join(fmt_value(c) for c in info.choices)
    text = info.allowed()
    return text.removesuffix(" " + info.unit) if info.unit else text


def _group_of(names: list[str]) -> dict[str, str]:
    out, group = {}, next(iter(PLATFORM_GROUPS.values()))
    for n in names:
        group = PLATFORM_GROUPS.get(n, group)
        out[n] = group
    return out


def platform_rows(presets: list[str] | None = None) -> list[ParamRow]:
    """Every platform parameter with each preset's value and provenance (default: all presets)."""
    from cmdqv_lab.platform import Platform, load_platform, preset_names, read_preset

    names = presets or preset_names()
    plats = {p: load_platform(p) for p in names}
    files = {p: read_preset(p) for p in names}
    infos = Platform.field_infos()
    groups = _group_of(list(infos))
    rows = []
    for key, (default, info) in infos.items():
        overrides = [
            f"{p}: {f.provenance[key]}"
            for p, f in files.items()
            if key in f.provenance and f.provenance[key] != info.provenance
        ]
        sources = {"": info.source} if info.source else {}
        sources.update({p: f.sources[key] for p, f in files.items() if key in f.sources})
        values = {p: getattr(plat, key) for p, plat in plats.items()}
        rows.append(
            ParamRow(
                name=key,
                group=groups[key],
                doc=info.doc,
                unit=info.unit,
                allowed=allowed_text(default, info),
                default=values[names[0]],
                values=values,
                provenance="; ".join([info.provenance, *overrides]),
                sources=sources,
            )
        )
    return rows


def scenario_platform(name: str) -> str | None:
    """The preset a scenario uses by default (None: it takes no platform)."""
    from cmdqv_lab.scenarios.base import get_scenario

    scn = get_scenario(name)
    if not scn.uses_platform:
        return None
    infos = scn.params.field_infos()
    return str(infos["platform"][0]) if "platform" in infos else "generic"


def is_guest(name: str) -> bool:
    """Whether a scenario runs guest paths (virtualisation costs apply)."""
    return name.startswith("guest-")


def parameter_rows(name: str) -> list[ParamRow]:
    """Scenario ``name``'s parameters: its own (with defaults), then the platform's (value per preset,
    the scenario's default preset first)."""
    from cmdqv_lab.platform import preset_names
    from cmdqv_lab.scenarios.base import get_scenario

    scn = get_scenario(name)
    rows = []
    for key, (default, info) in scn.params.field_infos().items():
        allowed = allowed_text(default, info)
        if key == "platform":
            allowed = ", ".join(preset_names()) + " or FILE.toml"
        rows.append(ParamRow(key, "scenario", info.doc, info.unit, allowed, default,
                             provenance=info.provenance, sources={"": info.source} if info.source else {}))  # fmt: skip
    preset = scenario_platform(name)
    if preset is not None:
        own = {r.name for r in rows}
        order = [preset, *(p for p in preset_names() if p != preset)]
        rows += [r for r in platform_rows(order) if r.name not in own]
    return rows


# ----------------------------------------------------------------------------- text
def _align(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell; the last column is not padded."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]


def _grouped(rows: list[ParamRow], table: list[list[str]], extra: Any) -> list[str]:
    """``table`` (a header, then one row per ``rows``) aligned, a heading before each new group,
    and ``extra(row)`` lines after each row."""
    out = _align(table)
    lines, group = [out[0]], ""
    for r, text in zip(rows, out[1:]):
        if r.group != group and r.group != "scenario":
            group = r.group
            lines.append(f" {group}")
        lines += [text, *extra(r)]
    return lines


def _count_text(scn: Any) -> str:
    option = "--commands" if scn.count == "commands" else "--ops"
    default = f"default {scn.default_count:,}" if scn.default_count else "default: the workload's own"
    return f"size: {option} N ({scn.count}; {default})"


def format_scenario(name: str, *, sources: bool = False) -> str:
    """Scenario ``name`` explained: what it models, its size, every parameter (see module doc)."""
    from cmdqv_lab.scenarios.base import get_scenario

    scn = get_scenario(name)
    rows = parameter_rows(name)
    preset = scenario_platform(name)
    lines = [
        f"{name}: {one_line(scn.doc, name)}",
        f"  {_count_text(scn)}; set a parameter with --set NAME=VALUE",
        "",
    ]

    def source_lines(r: ParamRow) -> list[str]:
        if not sources:
            return []
        return [f"      source ({k or 'default'}): {v}" for k, v in r.sources.items()]

    own = [r for r in rows if r.group == "scenario"]
    lines.append("scenario parameters")
    table = [["name", "default", "allowed", "description"]]
    table += [[r.name, fmt_value(r.default), with_unit(r.allowed, r.unit), r.doc] for r in own]
    lines += _grouped(own, table, source_lines)
    plat = [r for r in rows if r.group != "scenario"]
    if plat:
        presets = list(plat[0].values)
        lines += ["", f"platform parameters: the value each preset gives (this scenario runs {preset} unless "
                      "--set platform=...)"]  # fmt: skip
        head = [
            "name",
            *(f"{p}*" if p == preset else p for p in presets),
            "allowed",
            "provenance",
            "description",
        ]
        skipped = [r for r in plat if r.group == GUEST_GROUP and not is_guest(name)]
        shown = [r for r in plat if r not in skipped]
        body = [[r.name, *(_preset_cell(r, p) for p in presets), with_unit(r.allowed, r.unit),
                 r.provenance.split(";")[0], r.doc] for r in shown]  # fmt: skip
        lines += _grouped(shown, [head, *body], source_lines)
        if skipped:
            lines.append(f" {GUEST_GROUP}: not used by a host scenario")
            lines += textwrap.wrap(", ".join(r.name for r in skipped), 100, initial_indent="  ",
                                   subsequent_indent="  ")  # fmt: skip
        lines.append(f"  * default preset; (fitted) etc.: the preset's own provenance for its value. "
                     f"Where values come from: cmdqv-lab describe {name} --sources")  # fmt: skip
    return "\n".join(lines)


def with_unit(allowed: str, unit: str) -> str:
    """``0 .. 1000`` and ``ns`` -> ``0 .. 1000 ns`` (choices and booleans take no unit)."""
    return f"{allowed} {unit}" if unit and ".." in allowed else allowed


def _preset_cell(r: ParamRow, preset: str) -> str:
    """A preset's value, with the preset's provenance when it differs from the parameter's."""
    value = fmt_value(r.values[preset])
    for part in r.provenance.split("; ")[1:]:
        who, _, prov = part.partition(": ")
        if who == preset:
            return f"{value} ({prov})"
    return value


def one_line(doc: str, name: str) -> str:
    """The first sentence of a scenario's docstring, without its name."""
    for prefix in (f"``{name}``:", f"{name}:"):
        doc = doc.removeprefix(prefix).strip()
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def format_scenarios() -> str:
    """Every scenario on one line: name, what it models, its default preset."""
    from cmdqv_lab.scenarios.base import get_scenario, scenario_names
    from cmdqv_lab.workloads.registry import plugin_names

    rows = []
    for name in scenario_names():
        scn = get_scenario(name)
        preset = scenario_platform(name)
        rows.append([name, one_line(scn.doc, name) + (f" [{preset}]" if preset else "")])
    lines = _align([["scenario", "what it models [default platform preset]"], *rows])
    plugins = plugin_names()
    if plugins:
        lines += [
            "",
            "workloads from installed packages: " + ", ".join(plugins) + " (host-NAME, guest-wl-NAME)",
        ]
    lines += [
        "",
        "cmdqv-lab simulate --list -s NAME (or cmdqv-lab describe NAME): a scenario's parameters.",
        "Your own workload: host-FILE.toml, guest-wl-FILE.toml, host-module.py:function (README).",
    ]
    return "\n".join(lines)


def format_preset(name: str, *, sources: bool = False) -> str:
    """One platform preset's parameters: value, unit, allowed, provenance, description."""
    from cmdqv_lab.platform import read_preset

    preset = read_preset(name)
    rows = platform_rows([name])
    lines = [f"{name}: {preset.description}" if preset.description else name]
    table = [["name", "value", "allowed", "provenance", "description"]]
    for r in rows:
        prov = preset.provenance.get(r.name, r.provenance.split(";")[0])
        table.append([r.name, fmt_value(r.values[name]), with_unit(r.allowed, r.unit), prov, r.doc])

    def source_lines(r: ParamRow) -> list[str]:
        src = r.sources.get(name) or r.sources.get("")
        return [f"      source: {src}"] if sources and src else []

    return "\n".join([*lines, *_grouped(rows, table, source_lines)])


# ----------------------------------------------------------------------------- results
def fmt_metric(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def format_result(result: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
    """A run (``SimResult.to_json()``): the configuration that ran, then each metric with its unit.

    The configuration lists the scenario's own parameters (every one, they are few), the platform
    preset, the platform parameters set with ``--set``, the seed and the size.
    """
    from cmdqv_lab.platform import Platform
    from cmdqv_lab.scenarios.base import get_scenario

    name = result["scenario"]
    scn = get_scenario(name)
    params = result["params"]
    own = [k for k in scn.params.field_infos() if k in params]
    plat_keys = set(Platform.field_infos())
    changed = [k for k in (overrides or {}) if k in plat_keys and k not in own]
    size = result["metrics"].get("commands" if scn.count == "commands" else "ops")
    lines = [f"{name}  seed {result['seed']}  {scn.count} {fmt_metric(size)}  wall {result['wall_s']:.2f} s"]
    conf = [f"{k}={fmt_value(params[k])}" for k in own]
    conf += [f"{k}={fmt_value(params[k])} (set)" for k in changed]
    width = 0
    line = "  config"
    for item in conf:
        if width and width + len(item) > 96:
            lines.append(line)
            line, width = "        ", 0
        line += " " + item
        width += len(item) + 1
    lines += [line, ""]
    table = []
    for k, v in result["metrics"].items():
        unit, doc = METRICS.get(k, ("", ""))
        if isinstance(v, dict):
            value = "  ".join(f"{kk} {fmt_metric(vv)}" for kk, vv in v.items())
        else:
            value = fmt_metric(v)
        table.append([k, value, unit, doc])
    lines += _align(table)
    return "\n".join(lines)
