"""``cmdqv-lab params`` and ``cmdqv-lab calibrate``: platform presets, their provenance and fits."""

from __future__ import annotations

import json
import sys
import time

import click


@click.command("params")
@click.argument("preset", required=False)
@click.option("--sources", is_flag=True, help="Also print where each value comes from.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def params(preset: str | None, sources: bool, as_json: bool) -> None:
    """Print PRESET's parameters (value, allowed range, provenance, description), its fitted rows
    and predictions. PRESET is a name in data/params or a preset file (FILE.toml)."""
    from cmdqv_lab.describe import format_preset
    from cmdqv_lab.platform import platform_table, preset_names, read_preset

    if preset is None:
        for name in preset_names():
            click.echo(f"{name:<10} {read_preset(name).description}")
        click.echo(
            "\ncmdqv-lab params NAME: one preset's parameters (or a file of the same format: FILE.toml)"
        )
        return
    meta = read_preset(preset).meta
    if as_json:
        table = platform_table(preset)
        click.echo(json.dumps({"preset": preset, "params": table.to_dicts(), **meta}, indent=2, default=str))
        return
    click.echo(format_preset(preset, sources=sources))
    for key in ("fit_row", "prediction"):
        rows = meta.get(key, [])
        if rows:
            click.echo(f"\n{'fitted rows' if key == 'fit_row' else 'predictions (not fitted)'}:")
            for r in rows:
                extra = (
                    f"measured {r['measured']:>9,.0f}  error {r['rel_error']:+.1%}"
                    if key == "fit_row"
                    else ""
                )
                if key == "prediction" and "low" in r:
                    extra = f"prediction, range [{r['low']:,.4g} .. {r['high']:,.4g}] (moved most by {r['moved_most_by']})"
                click.echo(f"  {r['label']:<55} model {r['model']:>11,.4g}  {extra}")


@click.command("calibrate")
@click.argument("name")
@click.option("--write", is_flag=True, help="Write the fitted preset to data/params/NAME.toml.")
@click.option("--maxiter", type=click.IntRange(1, 10_000), default=150, show_default=True)
@click.option(
    "--count", type=click.IntRange(1000, 10_000_000), default=None, help="Ops per row (default: the spec's)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--intervals/--no-intervals",
    default=True,
    show_default=True,
    help="Also profile each assumption at both ends of its range (refits) and print prediction ranges.",
)
@click.option(
    "--profile-maxiter", type=click.IntRange(1, 10_000), default=40, show_default=True,
    help="Iterations of each profile refit.",
)  # fmt: skip
def calibrate(
    name: str,
    write: bool,
    maxiter: int,
    count: int | None,
    quiet: bool,
    intervals: bool,
    profile_maxiter: int,
) -> None:
    """Refit preset NAME to its calibration rows (data/calibration/NAME.toml) and print predictions.

    A progress bar counts the model evaluations of the fit (each simulates every calibration
    row) and shows the best error so far; --quiet hides it. Then (unless --no-intervals) it says
    which fitted parameters the rows constrain (Jacobian) and refits with each assumption at each
    end of its range, giving every prediction a range over the assumptions.
    """
    from cmdqv_lab.analysis.calibrate import CalibrationSpec, analyse, fit, write_preset
    from cmdqv_lab.platform import read_preset
    from cmdqv_lab.progress import bar

    spec = CalibrationSpec.load(name)
    t0 = time.time()
    progress = bar(None, f"calibrate {name}", unit=" eval", enabled=False if quiet else None)
    best = [float("inf")]

    def step(evaluations: int, value: float) -> None:
        best[0] = min(best[0], value)
        progress.set_postfix_str(f"rms log error {best[0] ** 0.5:.3f}", refresh=False)
        progress.update(1)

    if not quiet:  # one line even where no bar shows (a pipe, a log file)
        progress.write(f"fitting {', '.join(spec.params)} to {len(spec.targets)} rows "
                       f"(each evaluation simulates every row; at most {maxiter} iterations)", file=sys.stderr)  # fmt: skip
    try:
        result = fit(spec, maxiter=maxiter, count=count, progress=step)
    finally:
        progress.close()
    click.echo(f"fitted {', '.join(spec.params)} to {len(spec.targets)} rows in {time.time() - t0:.0f} s "
               f"({result.evaluations} evaluations)")  # fmt: skip
    for k, v in result.values.items():
        click.echo(f"  {k:<22} {v:g}")
    click.echo("\nfitted rows:")
    for r in result.rows:
        click.echo(
            f"  {r['label']:<45} measured {r['measured']:>9,.0f}  model {r['model']:>9,.0f}  {r['rel_error']:+.1%}"
        )
    for c in result.checks:
        measured = f"; measured {c['measured']:g}" if c["measured"] is not None else ""
        click.echo(f"  check: {c['label']} = {c['value']:.3f} (allowed {c['lo']:g} .. {c['hi']:g}{measured}): "
                   f"{'ok' if c['ok'] else 'OUTSIDE'}")  # fmt: skip
    if intervals and (spec.assumptions or spec.params):
        t1 = time.time()

        def say(msg: str) -> None:
            if not quiet:
                click.echo(f"  profiling: {msg}", err=True)

        analyse(spec, result, maxiter=profile_maxiter, count=count, progress=say)
        click.echo(f"\nidentifiability (Jacobian of log rows w.r.t. log parameters; {time.time() - t1:.0f} s "
                   f"with the profiles):")  # fmt: skip
        for r in result.identifiability:
            what = (
                "constrained" if r["constrained"] else ("at a bound" if r["at_bound"] else "NOT constrained")
            )
            click.echo(f"  {r['parameter']:<22} {r['value']:>9g}  1-sigma {r['rel_sigma']:>7.1%}  {what}")
        for pr in result.profiles:
            verdict = (
                "" if pr["consistent"] else "  EXCLUDED: the rows no longer fit (the data rule this end out)"
            )
            click.echo(f"  profile {pr['assumption']}={pr['value']:g} ({pr['end']}): worst row "
                       f"{pr['max_rel_error']:+.1%}, refitted {pr['fitted']}{verdict}")  # fmt: skip
    ranges = {r["label"]: r for r in result.ranges}
    click.echo("\npredictions (not fitted; range over the assumptions, not a confidence interval):")
    for p in result.predictions:
        rg = ranges.get(p["label"])
        span = f"  [{rg['low']:,.4g} .. {rg['high']:,.4g}] moved most by {rg['moved_most_by']}" if rg else ""
        click.echo(f"  {p['label']:<55} {p['metric']:<20} {p['model']:,.4g}{span}")
    if write:
        desc = (
            read_preset(name).description
            if (spec.path.parent.parent / "params" / f"{name}.toml").exists()
            else name
        )
        path = write_preset(spec, result, desc)
        click.echo(f"\nwrote {path}")
