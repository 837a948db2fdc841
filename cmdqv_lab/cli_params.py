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
                click.echo(f"  {r['label']:<55} model {r['model']:>11,.4g}  {extra}")


@click.command("calibrate")
@click.argument("name")
@click.option("--write", is_flag=True, help="Write the fitted preset to data/params/NAME.toml.")
@click.option("--maxiter", type=click.IntRange(1, 10_000), default=150, show_default=True)
@click.option(
    "--count", type=click.IntRange(1000, 10_000_000), default=None, help="Ops per row (default: the spec's)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def calibrate(name: str, write: bool, maxiter: int, count: int | None, quiet: bool) -> None:
    """Refit preset NAME to its calibration rows (data/calibration/NAME.toml) and print predictions.

    A progress bar counts the model evaluations of the fit (each simulates every calibration
    row) and shows the best error so far; --quiet hides it.
    """
    from cmdqv_lab.analysis.calibrate import CalibrationSpec, fit, write_preset
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
    click.echo("\npredictions (not fitted):")
    for p in result.predictions:
        click.echo(f"  {p['label']:<55} {p['metric']:<20} {p['model']:,.4g}")
    if write:
        desc = (
            read_preset(name).description
            if (spec.path.parent.parent / "params" / f"{name}.toml").exists()
            else name
        )
        path = write_preset(spec, result, desc)
        click.echo(f"\nwrote {path}")
