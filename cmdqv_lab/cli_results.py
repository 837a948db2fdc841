"""``cmdqv-lab results show|export``: a sweep's results as a table, or written to a file.

SOURCE is a sweep directory or a sweep spec (name or file); see :mod:`cmdqv_lab.results`.
"""

from __future__ import annotations

import click


@click.group("results")
def results() -> None:
    """Look at a sweep's results (one row per point) or export them (csv, parquet, json)."""


def _legend(columns: list[str]) -> list[str]:
    from cmdqv_lab.describe import METRICS

    out = []
    for c in columns:
        base, _, stat = c.rpartition("_")
        key, suffix = (
            (base, f" ({stat})") if base in METRICS and stat in ("mean", "p50", "p99", "max") else (c, "")
        )
        if key in METRICS:
            unit, doc = METRICS[key]
            out.append(f"  {c:<22} {unit:<11} {doc}{suffix}")
    return out


@results.command("show")
@click.argument("source", metavar="DIR|SPEC")
@click.option(
    "--metrics", "-m", default=None, metavar="A,B,...", help="Metric columns (default: the key ones)."
)
def show(source: str, metrics: str | None) -> None:
    """Print a sweep's results: one row per point with the parameters it varies, its seed and key
    metrics (every column: cmdqv-lab results export)."""
    import polars as pl

    from cmdqv_lab.analysis.summary import sweep_grid_keys
    from cmdqv_lab.describe import fmt_metric
    from cmdqv_lab.results import load, locate, shown_columns

    directory = locate(source)
    full = load(directory, params="grid")
    grid = sweep_grid_keys(directory)
    df = shown_columns(full, grid, [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None)
    seeds = ", ".join(map(str, sorted(set(full["seed"].to_list()))))
    click.echo(f"{directory}: {full.height} points of {full['scenario'][0]}, count {full['count'][0]:,} "
               f"(varied: {', '.join(grid) or 'nothing'}; seeds {seeds})")  # fmt: skip
    numbers = [c for c in df.columns if c not in ("point", "seed") and df[c].dtype.is_numeric()]
    shown = df.with_columns(
        pl.col(c).map_elements(fmt_metric, return_dtype=pl.String).fill_null("-") for c in numbers
    )
    with pl.Config(
        tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True, tbl_formatting="UTF8_FULL_CONDENSED", tbl_cell_alignment="RIGHT",
    ):  # fmt: skip
        click.echo(str(shown))
    legend = _legend(df.columns)
    if legend:
        click.echo("columns:")
        click.echo("\n".join(legend))
    click.echo(f"every column: cmdqv-lab results export {source} --format csv -o FILE")


@results.command("export")
@click.argument("source", metavar="DIR|SPEC")
@click.option(
    "--format", "fmt", type=str, default=None, help="csv, parquet or json (default: from -o's suffix)."
)
@click.option("--out", "-o", "out", required=True, metavar="FILE", help="File to write.")
@click.option(
    "--params", type=click.Choice(["all", "grid"]), default="all", show_default=True,
    help="Every resolved parameter, or only those the sweep varies.",
)  # fmt: skip
def export(source: str, fmt: str | None, out: str, params: str) -> None:
    """Write a sweep's results, one row per point (id, parameters, seed, every metric), to FILE."""
    from cmdqv_lab.results import load, write

    df = load(source, params=params)
    path = write(df, out, fmt)
    click.echo(f"wrote {path}: {df.height} points x {df.width} columns")
