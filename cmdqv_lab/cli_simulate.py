"""``cmdqv-lab simulate``: run one timing scenario and print its metrics."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from cmdqv_lab.errors import ParamError


def parse_sets(items: tuple[str, ...]) -> dict[str, str]:
    """``("key=value", ...)`` -> dict; a malformed item is a ParamError naming it."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"--set {item!r} is malformed: expected key=value")
        if key in out:
            raise ParamError(f"--set {key} given twice")
        out[key] = value
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _table(result: dict[str, Any]) -> str:
    lines = [f"scenario {result['scenario']}  seed {result['seed']}  wall {result['wall_s']:.2f} s", ""]
    width = max(len(k) for k in result["metrics"]) + 2
    for k, v in result["metrics"].items():
        if isinstance(v, dict):
            parts = "  ".join(f"{kk} {_fmt(vv)}" for kk, vv in v.items())
            lines.append(f"  {k:<{width}}{parts}")
        else:
            lines.append(f"  {k:<{width}}{_fmt(v)}")
    return "\n".join(lines)


def _list(as_json: bool) -> None:
    from cmdqv_lab.scenarios import describe

    info = describe()
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    for s in info:
        click.echo(f"{s['scenario']}: {s['doc']}  (counts {s['count']}, default {s['default_count']:,})")
        for row in s["params"]:
            unit = f" {row['unit']}" if row["unit"] else ""
            click.echo(
                f"    {row['name']:<22} default {row['default']!s:<16} {row['allowed']}{'' if unit in row['allowed'] else unit}"
            )
        click.echo("")


@click.command("simulate")
@click.option("--scenario", "-s", metavar="NAME", help="Scenario to run (see --list).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a parameter (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run's random streams.")
@click.option("--ops", type=int, default=None, help="Operations to simulate.")
@click.option("--commands", type=int, default=None, help="Commands to simulate (command-counting scenarios).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--list", "list_", is_flag=True, help="List scenarios with their parameters, defaults and units."
)
def simulate(
    scenario: str | None,
    sets: tuple[str, ...],
    seed: int,
    ops: int | None,
    commands: int | None,
    as_json: bool,
    list_: bool,
) -> None:
    """Run a timing scenario and print its metrics (times in ns, rates per simulated second)."""
    if list_:
        _list(as_json)
        return
    if not scenario:
        raise ParamError("--scenario is required (see --list)")
    if ops is not None and commands is not None:
        raise ParamError("give --ops or --commands, not both")
    if seed < 0:
        raise ParamError(f"--seed={seed} must be >= 0")
    for name, v in (("--ops", ops), ("--commands", commands)):
        if v is not None and v < 1:
            raise ParamError(f"{name}={v} must be a positive integer")
    from cmdqv_lab.scenarios import simulate as run
    from cmdqv_lab.scenarios.base import get_scenario

    scn = get_scenario(scenario)
    overrides = parse_sets(sets)
    count = ops if ops is not None else commands
    if commands is not None and scn.count != "commands":
        raise ParamError(f"scenario {scenario} counts ops: use --ops")
    if ops is not None and scn.count != "ops":
        raise ParamError(f"scenario {scenario} counts commands: use --commands")
    result = run(scenario, overrides, seed=seed, count=count).to_json()
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        click.echo(_table(result))
