"""``cmdqv-lab simulate`` and ``cmdqv-lab describe``: run one timing scenario, or explain one.

``simulate SCENARIO`` (or ``-s SCENARIO``) prints the configuration that ran, then every metric
with its unit (:func:`cmdqv_lab.describe.format_result`); ``--json`` prints one object.
``simulate --list`` lists the scenarios, ``simulate --list -s NAME`` and ``describe NAME`` explain
one scenario's parameters (:func:`cmdqv_lab.describe.format_scenario`).
"""

from __future__ import annotations

import json

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


def _pick_scenario(positional: str | None, option: str | None) -> str | None:
    if positional and option and positional != option:
        raise ParamError(f"two scenarios given: {positional} and -s {option}; give one")
    return positional or option


@click.command("simulate")
@click.argument("scenario_arg", required=False, metavar="[SCENARIO]")
@click.option("--scenario", "-s", metavar="NAME", help="Scenario to run (or give it as the argument).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a parameter (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run's random streams.")
@click.option("--ops", type=int, default=None, help="Operations to simulate.")
@click.option("--commands", type=int, default=None, help="Commands to simulate (command-counting scenarios).")
@click.option("--until-ns", type=float, default=None, help="Stop at this simulated time (ns).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--list", "list_", is_flag=True, help="List the scenarios; with a scenario: explain its parameters."
)
def simulate(
    scenario_arg: str | None,
    scenario: str | None,
    sets: tuple[str, ...],
    seed: int,
    ops: int | None,
    commands: int | None,
    until_ns: float | None,
    as_json: bool,
    list_: bool,
) -> None:
    """Run a timing scenario and print the configuration that ran, then its metrics with units.

    \b
    Examples:
      cmdqv-lab simulate --list                      the scenarios, one line each
      cmdqv-lab simulate --list -s host-map-unmap    one scenario's parameters explained
      cmdqv-lab simulate host-map-unmap --set cpus=16 --set platform=d06
      cmdqv-lab simulate -s host-my.toml             a workload of your own (see README)
    """
    name = _pick_scenario(scenario_arg, scenario)
    if list_:
        _describe(name, as_json)
        return
    if not name:
        raise ParamError(
            "give a scenario: cmdqv-lab simulate SCENARIO (cmdqv-lab simulate --list shows them)"
        )
    if ops is not None and commands is not None:
        raise ParamError("give --ops or --commands, not both")
    if seed < 0:
        raise ParamError(f"--seed={seed} must be >= 0")
    for opt, v in (("--ops", ops), ("--commands", commands)):
        if v is not None and v < 1:
            raise ParamError(f"{opt}={v} must be a positive integer")
    from cmdqv_lab.describe import format_result
    from cmdqv_lab.scenarios import simulate as run
    from cmdqv_lab.scenarios.base import get_scenario

    scn = get_scenario(name)
    overrides = parse_sets(sets)
    count = ops if ops is not None else commands
    if commands is not None and scn.count != "commands":
        raise ParamError(f"scenario {name} counts {scn.count}: use --ops")
    if ops is not None and scn.count == "commands":
        raise ParamError(f"scenario {name} counts commands: use --commands")
    result = run(name, overrides, seed=seed, count=count, until_ns=until_ns).to_json()
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        click.echo(format_result(result, overrides))


def _describe(name: str | None, as_json: bool) -> None:
    from dataclasses import asdict

    from cmdqv_lab.describe import format_scenario, format_scenarios, parameter_rows

    if as_json:
        from cmdqv_lab.scenarios import describe

        if name is None:
            click.echo(json.dumps(describe(), indent=2, default=str))
        else:
            rows = [asdict(r) for r in parameter_rows(name)]
            click.echo(json.dumps({"scenario": name, "params": rows}, indent=2, default=str))
        return
    click.echo(format_scenarios() if name is None else format_scenario(name))


@click.command("describe")
@click.argument("scenario", metavar="SCENARIO")
@click.option("--sources", is_flag=True, help="Also print where each default and preset value comes from.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def describe(scenario: str, sources: bool, as_json: bool) -> None:
    """Explain SCENARIO: what it models, its size, and every parameter with its description, unit,
    allowed values, the value each platform preset gives it, and provenance."""
    from cmdqv_lab.describe import format_scenario

    if as_json:
        _describe(scenario, True)
    else:
        click.echo(format_scenario(scenario, sources=sources))
