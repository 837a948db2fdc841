"""``cmdqv-lab check``: route a command stream with a policy, replay it through the functional model
and list ILL and SYNC hazards.

Usage: ``cmdqv-lab check TRACE_FILE|SCENARIO --policy NAME [--json] [--set key=value ...] [--seed N]
[--limit N]``; ``--policy all`` prints one row per policy; ``--list`` lists scenarios, policies and
``--set`` keys. ``--set`` takes CMDQV parameters (``num_vintfs``, ``sid_pairs_per_vintf``,
``guest_opcodes``, ``cmd_batch``, ``hw_sync``, ...), checker options (``vcmdqs_per_vm``,
``allocation``, ``host_vcmdqs``, ``log2size``) and, for a scenario, its own parameters.

Text output: a header (stream, routing, model, capacity), then one line per hazard::

    ILL       vm0 cpu1 op 4 batch 4[4]  CMD_CFGI_CD on vcmdq3@30: <why>
    Q2        vm0 cpu0 op 11 batch 11[0]  CMD_TLBI_NH_VA on vcmdq2@51: <why>

(``batch B[i]``: index ``i`` in the original batch; ``line N`` follows for traces), then the
counts and ``FAIL`` or ``clean``. ``--json`` prints one object: source, policy, ok, counts (ill,
q2, q3, unsynced, split_batches, split_across_queues), hazards, stream, routed, model, capacity,
disagreements. ``--policy all`` prints a table of every policy, the legend of its columns
(:data:`COMPARE_COLUMNS`) and a verdict line. Exit status: 1 when a hazard (ILL, Q2, Q3, unsynced) exists, 0 when clean, 2 for
usage errors (one line on stderr).

>>> from click.testing import CliRunner
>>> r = CliRunner().invoke(check, ["guest-mixed", "--policy", "scan", "--set", "ops=200"])
>>> r.exit_code, r.output.strip().splitlines()[-1]
(0, 'clean: no ILL or SYNC hazard under policy scan')
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from cmdqv_lab.driver.routing import POLICIES

_TITLE = {"ill": "ILL", "q2": "Q2", "q3": "Q3", "unsynced": "UNSYNCED"}
_WHAT = {
    "ill": "ILL on a guest-owned VCMDQ",
    "q2": "Q2 (waited SYNC on another queue)",
    "q3": "Q3 (hardware SYNC only)",
    "unsynced": "unsynced",
}


def _n(x: int) -> str:
    return f"{x:,}"


def format_result(r: Any, limit: int = 0) -> str:
    """The text report of a :class:`~cmdqv_lab.checker.check.CheckResult`."""
    s, ro, m = r.stream, r.routed, r.model
    errors = ", ".join(f"{k} {v:,}" for k, v in m["errors"].items()) or "none"
    vms = ", ".join(f"vm{v} x{c} vCPUs" for v, c in s["vcpus"].items()) or "none"
    gen = s.get("generator") or s.get("format", "")
    lines = [
        f"check {r.source} ({r.kind}{', ' + gen if gen else ''})  policy {r.policy}",
        f"stream    {_n(s['commands'])} commands  {_n(s['batches'])} batches  {_n(s['ops'])} ops  "
        f"guests: {vms}  host commands {_n(s['host_commands'])}",
        f"routed    vcmdq {_n(ro['paths']['vcmdq'])}  trap {_n(ro['paths']['trap'])}  host {_n(ro['paths']['host'])}"
        f"  inserted SYNCs {_n(ro['inserted_syncs'])}  dropped SYNCs {_n(ro['dropped_syncs'])}",
        f"model     queues {', '.join(m['queues'])}  events {_n(m['events'])}  hardware SYNCs {_n(m['hw_syncs'])}"
        f"  errors {errors}  CMDQV irqs {_n(m['irqs'])}  recoveries {_n(m['recoveries'])}",
    ]
    for vm, c in r.capacity["vms"].items():
        sids = ",".join(f"0x{x:x}" for x in c["matched_sids"]) or "-"
        unfit = ",".join(f"0x{x:x}" for x in c["unfit_sids"]) or "-"
        q = ",".join(map(str, c["vcmdqs"])) or "- (all trapped)"
        lines.append(f"capacity  vm{vm}: VINTF{c['vintf']} VCMDQs {q}  SID pairs {sids}  unfit {unfit}")
    lines += [f"capacity  does not fit: {p}" for p in r.capacity["problems"]]
    shown: dict[str, int] = {}
    for h in r.hazards:
        shown[h.kind] = shown.get(h.kind, 0) + 1
        if limit and shown[h.kind] > limit:
            continue
        lines.append(f"{_TITLE[h.kind]:<9} {h.where()}  {h.opcode} on {h.queue}@{h.pos}: {h.reason}")
    counts = r.counts
    hidden = sum(max(0, v - limit) for v in counts.values()) if limit else 0
    if hidden:
        lines.append(f"... {hidden:,} more hazards not shown (--limit {limit})")
    lines.append("hazards   " + "  ".join(f"{_WHAT[k]} {_n(v)}" for k, v in counts.items()))
    lines.append(f"split     {_n(r.split['batches'])} batches split into parts, "
                 f"{_n(r.split['across_queues'])} across queues (ordering/atomicity lost; informational)")  # fmt: skip
    if r.disagreements:
        lines.append(f"WARNING   routing and model disagree on ILL for {len(r.disagreements)} commands")
    total = sum(counts.values())
    lines.append(
        f"FAIL: {_n(total)} hazards under policy {r.policy}" if total
        else f"clean: no ILL or SYNC hazard under policy {r.policy}"
    )  # fmt: skip
    return "\n".join(lines)


#: The columns of ``--policy all``: (heading, source column of :func:`~cmdqv_lab.checker.check.compare`,
#: what it counts).
COMPARE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("policy", "policy", "routing policy (cmdqv_lab.driver.routing)"),
    ("verdict", "ok", "clean: no ILL, Q2, Q3 or unsynced command; FAIL otherwise"),
    ("ILL", "ill", "commands a guest-owned VCMDQ rejected (opcode not accepted or SID unmatched): never ran"),
    ("Q2", "q2", "invalidations whose op waits for a CMD_SYNC on another queue only: completion not awaited"),
    ("Q3", "q3", "invalidations only a hardware-inserted SYNC completes: software cannot observe it"),
    ("unsynced", "unsynced", "invalidations nothing completes observably (no waited SYNC, no hardware SYNC)"),
    ("split", "split", "batches the policy cut into parts (informational)"),
    (
        "across",
        "split_across_queues",
        "of those, batches whose parts went to different queues (ordering lost)",
    ),
    ("vcmdq", "vcmdq", "commands routed to a guest's pass-through VCMDQ"),
    ("trap", "trap", "commands routed the trapped way (the VMM's emulated queue, then the host)"),
    ("host", "host", "commands the host issued on its own queue"),
    ("+SYNC", "inserted", "CMD_SYNCs the policy inserted"),
    ("-SYNC", "dropped", "CMD_SYNCs the policy dropped"),
    (
        "disagree",
        "disagreements",
        "commands the router and the functional model judge differently (must be 0)",
    ),
)


def format_compare(table: Any, source: str) -> str:
    """``--policy all``: a table (one row per policy), the legend of its columns, a verdict line."""
    import polars as pl

    shown = table.select(
        *(
            (
                pl.when(pl.col(src)).then(pl.lit("clean")).otherwise(pl.lit("FAIL"))
                if src == "ok"
                else pl.col(src)
            ).alias(head)
            for head, src, _ in COMPARE_COLUMNS
        )
    )
    with pl.Config(
        tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True, tbl_formatting="UTF8_FULL_CONDENSED", tbl_cell_numeric_alignment="RIGHT",
        thousands_separator=",",
    ):  # fmt: skip
        text = str(shown)
    width = max(len(h) for h, _, _ in COMPARE_COLUMNS)
    legend = [f"  {h:<{width}}  {doc}" for h, _, doc in COMPARE_COLUMNS[1:]]
    return "\n".join(
        [f"check {source}: every routing policy", text, "columns:", *legend, verdict_line(table)]
    )


def verdict_line(table: Any) -> str:
    """``verdict: 5 of 8 policies clean (scan, ...); 3 with hazards: first-opcode (21 ILL, 13 Q2), ...``"""
    clean = [r["policy"] for r in table.iter_rows(named=True) if r["ok"]]
    bad = []
    for r in table.iter_rows(named=True):
        if not r["ok"]:
            parts = [f"{r[src]:,} {head}" for head, src, _ in COMPARE_COLUMNS[2:6] if r[src]]
            bad.append(f"{r['policy']} ({', '.join(parts)})")
    n = table.height
    head = f"verdict: {len(clean)} of {n} policies clean" + (f" ({', '.join(clean)})" if clean else "")
    return head + (f"; {len(bad)} with hazards: {', '.join(bad)}" if bad else "")


def _check_policy(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from cmdqv_lab.errors import ParamError, suggest

    if value is not None and value not in (*POLICIES, "all"):
        raise ParamError(f"--policy {value!r} is not allowed: {suggest(value, [*POLICIES, 'all'])}")
    return value


def _list() -> None:
    from cmdqv_lab.checker.check import CheckOptions
    from cmdqv_lab.checker.scenarios import scenario_names
    from cmdqv_lab.device.cmdqv import CmdqvParams

    click.echo("scenarios (every simulate scenario; then the bare registry workloads):")
    click.echo("  " + ", ".join(scenario_names()))
    click.echo("policies: " + ", ".join(POLICIES) + ", all")
    keys = [*CmdqvParams.field_infos(), *CheckOptions.field_infos()]
    click.echo("--set keys: " + ", ".join(keys) + " (and the scenario's own)")


@click.command("check")
@click.argument("source", required=False, metavar="TRACE_FILE|SCENARIO")
@click.option(
    "--policy", "-p", metavar="NAME", callback=_check_policy,
    help="Routing policy: " + ", ".join(POLICIES) + "; or all (compare them).",
)  # fmt: skip
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a parameter (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of a generated scenario.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=0, help="Print at most N hazards per kind (0: all)."
)
@click.option("--list", "list_", is_flag=True, help="List scenarios, policies and --set keys.")
def check(
    source: str | None,
    policy: str | None,
    sets: tuple[str, ...],
    seed: int,
    as_json: bool,
    limit: int,
    list_: bool,
) -> None:
    """Check a command stream for ILL and SYNC hazards under a routing policy (exit 1 if any)."""
    from cmdqv_lab.errors import ParamError

    if list_:
        _list()
        return
    if not source:
        raise ParamError("give a TRACE_FILE or SCENARIO (see --list)")
    if not policy:
        raise ParamError("--policy is required: one of " + ", ".join([*POLICIES, "all"]))
    if seed < 0:
        raise ParamError(f"--seed={seed} must be >= 0")
    from cmdqv_lab.checker.check import CheckOptions, compare, split_overrides
    from cmdqv_lab.checker.check import check as run
    from cmdqv_lab.checker.scenarios import load_source
    from cmdqv_lab.cli_simulate import parse_sets
    from cmdqv_lab.device.cmdqv import CmdqvParams

    geo, opt, rest = split_overrides(parse_sets(sets))
    params = CmdqvParams.from_overrides(geo)
    options = CheckOptions.from_overrides(opt)
    try:
        src = load_source(source, rest, seed=seed)
    except ParamError as e:
        if "unknown parameter" not in str(e):
            raise
        keys = ", ".join([*CmdqvParams.field_infos(), *CheckOptions.field_infos()])
        raise ParamError(f"{e}; checker keys: {keys}") from None
    if policy == "all":
        table = compare(src, POLICIES, params, options)
        if as_json:
            click.echo(json.dumps({"source": src.name, "policies": table.to_dicts()}, indent=2))
        else:
            click.echo(format_compare(table, src.name))
        bad = not bool(table["ok"].all())
    else:
        result = run(src, policy, params, options)
        click.echo(
            json.dumps(result.to_dict(), indent=2, default=str) if as_json else format_result(result, limit)
        )
        bad = not result.ok
    if bad:
        sys.exit(1)  # hazards found (a SystemExit passes through click and cli.main unchanged)
