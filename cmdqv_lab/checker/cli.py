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
disagreements. Exit status: 1 when a hazard (ILL, Q2, Q3, unsynced) exists, 0 when clean, 2 for
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
@click.option("--policy", "-p", type=click.Choice([*POLICIES, "all"]), help="Routing policy (all: compare).")
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
    import polars as pl

    if policy == "all":
        table = compare(src, POLICIES, params, options)
        if as_json:
            click.echo(json.dumps({"source": src.name, "policies": table.to_dicts()}, indent=2))
        else:
            click.echo(f"check {src.name}: every policy")
            with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
                click.echo(str(table))
        bad = not bool(table["ok"].all())
    else:
        result = run(src, policy, params, options)
        click.echo(
            json.dumps(result.to_dict(), indent=2, default=str) if as_json else format_result(result, limit)
        )
        bad = not result.ok
    if bad:
        sys.exit(1)  # hazards found (a SystemExit passes through click and cli.main unchanged)
