"""Aggregate replicate runs: means with Student-t confidence intervals, and percentiles.

A sweep runs every configuration with several seeds and writes one row per replicate. The helpers
here turn such a frame into one row per configuration (:func:`summarize_replicates`), compute
latency percentiles per group (:func:`percentiles`), and put confidence intervals on a percentile
across seeds (:func:`summarize_percentiles`: the percentile is computed per seed first, so the
interval reflects run-to-run variation, not the spread of individual latencies).

Missing values (null or NaN) are ignored: ``n`` counts the values actually used.

Sweeps (:mod:`cmdqv_lab.experiments`) are read with :func:`load_sweep` (one row per point: seed,
parameters, flattened metrics) and summarised per grid point with :func:`summarize_sweep`.

>>> import polars as pl
>>> df = pl.DataFrame({"policy": ["a", "a", "a", "b"], "ops_per_s": [1.0, 2.0, 3.0, 5.0]})
>>> summarize_replicates(df, by="policy", value="ops_per_s")  # doctest: +NORMALIZE_WHITESPACE
shape: (2, 6)
┌────────┬──────┬──────┬─────┬───────────┬──────────┐
│ policy ┆ mean ┆ std  ┆ n   ┆ ci_lo     ┆ ci_hi    │
│ ---    ┆ ---  ┆ ---  ┆ --- ┆ ---       ┆ ---      │
│ str    ┆ f64  ┆ f64  ┆ u32 ┆ f64       ┆ f64      │
╞════════╪══════╪══════╪═════╪═══════════╪══════════╡
│ a      ┆ 2.0  ┆ 1.0  ┆ 3   ┆ -0.484138 ┆ 4.484138 │
│ b      ┆ 5.0  ┆ null ┆ 1   ┆ null      ┆ null     │
└────────┴──────┴──────┴─────┴───────────┴──────────┘
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from cmdqv_lab.errors import FrameError

#: Percentiles reported for latency distributions by default.
DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)

#: Output columns of :func:`summarize_replicates` after the group columns.
SUMMARY_COLUMNS: tuple[str, ...] = ("mean", "std", "n", "ci_lo", "ci_hi")

#: Output columns of :func:`percentiles` after the group columns.
PERCENTILE_COLUMNS: tuple[str, ...] = ("q", "percentile", "value")


def _check_names(keys: Sequence[str], value: str, reserved: Sequence[str], where: str) -> None:
    for k in keys:
        if k in reserved:
            raise FrameError(f"{where}: group column {k!r} clashes with an output column; rename it")
        if k == value:
            raise FrameError(f"{where}: {k!r} is both a group column and the value")


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def require_columns(df: pl.DataFrame, columns: Sequence[str], where: str) -> None:
    """Raise :class:`~cmdqv_lab.errors.FrameError` naming ``where`` if a column is missing.

    >>> require_columns(pl.DataFrame({"a": [1]}), ["a", "b"], "demo")
    Traceback (most recent call last):
    ...
    cmdqv_lab.errors.FrameError: demo: missing column 'b' (frame has: a)
    """
    if not isinstance(df, pl.DataFrame):
        raise FrameError(f"{where}: expected a polars DataFrame, got {type(df).__name__}")
    for c in columns:
        if c not in df.columns:
            have = ", ".join(df.columns) or "no columns"
            raise FrameError(f"{where}: missing column {c!r} (frame has: {have})")


def _clean(value: str) -> pl.Expr:
    """The value column as Float64 with NaN turned into null (so aggregations skip it)."""
    return pl.col(value).cast(pl.Float64).fill_nan(None)


def t_critical(n: Sequence[int] | pl.Series, confidence: float = 0.95) -> pl.Series:
    """Two-sided Student-t critical values for samples of size ``n`` (null where ``n < 2``).

    >>> t_critical([1, 2, 3, 30]).round(4).to_list()
    [None, 12.7062, 4.3027, 2.0452]
    """
    from scipy import stats

    _check_confidence(confidence)
    ns = pl.Series("n", n, dtype=pl.Int64)
    dof = ns - 1
    valid = (dof >= 1).fill_null(False)
    out = [
        float(stats.t.ppf(0.5 + confidence / 2.0, int(d))) if ok else None
        for d, ok in zip(dof.to_list(), valid.to_list())
    ]
    return pl.Series("t", out, dtype=pl.Float64)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise FrameError(f"confidence={confidence!r} is out of range: allowed 0 < confidence < 1")


def summarize_replicates(
    df: pl.DataFrame,
    by: str | Sequence[str] | None,
    value: str,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Mean, sample standard deviation and Student-t confidence interval per group.

    Parameters
    ----------
    df
        One row per replicate (e.g. per seed).
    by
        Group column(s); ``None`` summarises the whole frame into one row.
    value
        The measured column.
    confidence
        Two-sided confidence level of the interval on the mean.

    Returns
    -------
    polars.DataFrame
        The group columns, then ``mean``, ``std`` (ddof=1), ``n`` (values used), ``ci_lo``,
        ``ci_hi``; sorted by the group columns. The interval is ``mean ± t(n-1) · std / sqrt(n)``.
        With ``n == 1`` there is no estimate of spread: ``std``, ``ci_lo`` and ``ci_hi`` are
        null (not a zero-width interval), so charts draw no band there. With ``n == 0`` (all
        values missing) ``mean`` is null too.

    Examples
    --------
    >>> df = pl.DataFrame({"x": [10.0, 12.0, 14.0, 16.0]})
    >>> row = summarize_replicates(df, by=None, value="x").row(0, named=True)
    >>> row["mean"], round(row["std"], 4), row["n"], round(row["ci_lo"], 3), round(row["ci_hi"], 3)
    (13.0, 2.582, 4, 8.891, 17.109)
    """
    keys = _as_list(by)
    require_columns(df, [*keys, value], "summarize_replicates")
    _check_names(keys, value, SUMMARY_COLUMNS, "summarize_replicates")
    _check_confidence(confidence)
    v = _clean(value)
    aggs = [
        v.mean().alias("mean"),
        v.std(ddof=1).alias("std"),
        v.count().cast(pl.UInt32).alias("n"),
    ]
    if keys:
        out = df.group_by(keys).agg(aggs).sort(keys, nulls_last=True)
    else:
        out = df.select(aggs)
    t = t_critical(out["n"], confidence)
    half = pl.lit(t) * pl.col("std") / pl.col("n").cast(pl.Float64).sqrt()
    return out.with_columns(
        (pl.col("mean") - half).alias("ci_lo"),
        (pl.col("mean") + half).alias("ci_hi"),
    ).select([*keys, *SUMMARY_COLUMNS])


def percentile_label(q: float) -> str:
    """``0.5 -> 'p50'``, ``0.999 -> 'p99.9'``.

    >>> [percentile_label(q) for q in (0.5, 0.9, 0.99, 0.999, 1.0)]
    ['p50', 'p90', 'p99', 'p99.9', 'p100']
    """
    _check_quantiles([q])
    return f"p{round(q * 100.0, 6):g}"


def _check_quantiles(q: Sequence[float]) -> None:
    if len(q) == 0:
        raise FrameError("percentiles: no quantiles given")
    for x in q:
        if not 0.0 <= float(x) <= 1.0:
            raise FrameError(f"quantile {x!r} is out of range: allowed 0 .. 1")


def percentiles(
    df: pl.DataFrame,
    value: str,
    by: str | Sequence[str] | None = None,
    q: Sequence[float] = DEFAULT_QUANTILES,
) -> pl.DataFrame:
    """Percentiles of ``value`` per group, as a long frame.

    Linear interpolation between order statistics (numpy's default, Hyndman-Fan type 7).

    Returns
    -------
    polars.DataFrame
        The group columns, then ``q`` (float), ``percentile`` (label such as ``"p99"``) and
        ``value`` (the percentile, Float64), sorted by group then ``q``.

    Examples
    --------
    >>> df = pl.DataFrame({"latency_ns": [1, 2, 3, 4]})
    >>> percentiles(df, "latency_ns", q=(0.5, 0.9))["value"].to_list()
    [2.5, 3.7]
    """
    keys = _as_list(by)
    require_columns(df, [*keys, value], "percentiles")
    _check_names(keys, value, PERCENTILE_COLUMNS, "percentiles")
    qs = [float(x) for x in q]
    _check_quantiles(qs)
    v = _clean(value)
    aggs = [v.quantile(x, interpolation="linear").alias(f"__q{i}") for i, x in enumerate(qs)]
    wide = df.group_by(keys).agg(aggs) if keys else df.select(aggs)
    parts = [
        wide.select(
            *keys,
            pl.lit(x, dtype=pl.Float64).alias("q"),
            pl.lit(percentile_label(x)).alias("percentile"),
            pl.col(f"__q{i}").cast(pl.Float64).alias("value"),
        )
        for i, x in enumerate(qs)
    ]
    return pl.concat(parts).sort([*keys, "q"], nulls_last=True)


def summarize_percentiles(
    df: pl.DataFrame,
    value: str,
    by: str | Sequence[str] | None = None,
    replicate: str = "seed",
    q: Sequence[float] = DEFAULT_QUANTILES,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Percentiles per replicate, then their mean and confidence interval across replicates.

    Returns
    -------
    polars.DataFrame
        The group columns, ``q``, ``percentile``, then the columns of :func:`summarize_replicates`.

    Examples
    --------
    >>> df = pl.DataFrame({"seed": [1, 1, 2, 2], "latency_ns": [1.0, 3.0, 2.0, 6.0]})
    >>> out = summarize_percentiles(df, "latency_ns", q=(0.5,))
    >>> out.select("percentile", "mean", "n").row(0)
    ('p50', 3.0, 2)
    """
    keys = _as_list(by)
    require_columns(df, [*keys, replicate, value], "summarize_percentiles")
    _check_names([*keys, replicate], value, (*PERCENTILE_COLUMNS, *SUMMARY_COLUMNS), "summarize_percentiles")
    per_rep = percentiles(df, value, by=[*keys, replicate], q=q)
    return summarize_replicates(per_rep, by=[*keys, "q", "percentile"], value="value", confidence=confidence)


# ----------------------------------------------------------------------------------------- sweeps
def load_sweep(directory: str | Path, *, params: str = "all") -> pl.DataFrame:
    """The results of a finished sweep (``cmdqv-lab sweep``), one row per point, files verified.

    ``directory`` is a sweep's output directory (``points/`` + ``manifest.json``) or a published,
    packed one (``data/results/<name>``: ``results.parquet`` + ``manifest.json``). Columns:
    ``point``, ``scenario``, ``seed``, ``count``, the parameters (``params="all"``: every resolved
    parameter; ``"grid"``: only the varied ones), then the flattened metrics
    (``op_latency_ns.p99`` -> ``op_latency_ns_p99``). Rows are in point order (the seed varies
    fastest). A missing or corrupt file (bytes, content or combined hash not those recorded) raises
    :class:`~cmdqv_lab.experiments.cache.ResultError`.

    Examples
    --------
    >>> import tempfile
    >>> from cmdqv_lab.experiments.spec import parse_spec
    >>> from cmdqv_lab.experiments.sweep import run_sweep
    >>> text = 'scenario = "open-queue"\\ncount = 2000\\nreplicates = 3\\n[grid]\\nrate_mcmd_s = [2.0, 8.0]'
    >>> out = tempfile.mkdtemp()
    >>> _ = run_sweep(parse_spec(text, "demo.toml"), out, workers=1, progress=False)
    >>> df = load_sweep(out, params="grid")
    >>> df.select("point", "rate_mcmd_s", "seed", "commands").head(4).rows()
    [(0, 2.0, 0, 2000), (1, 2.0, 1, 2000), (2, 2.0, 2, 2000), (3, 8.0, 0, 2000)]
    >>> summarize_sweep(out, "smmu_busy_fraction").select("rate_mcmd_s", "n").rows()
    [(2.0, 3), (8.0, 3)]
    """
    from cmdqv_lab.experiments.manifest import load_sweep as _load

    return _load(directory, params=params)


def sweep_grid_keys(directory: str | Path) -> list[str]:
    """The parameters a sweep varies, in axis order (from its manifest)."""
    from cmdqv_lab.experiments.manifest import read_manifest

    return list(read_manifest(directory)["resolved"]["grid_keys"])


def summarize_sweep(
    source: str | Path | pl.DataFrame,
    metric: str | Sequence[str],
    by: str | Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Replicates (seeds) of each grid point aggregated by :func:`summarize_replicates`.

    Parameters
    ----------
    source
        A sweep directory, or a frame from :func:`load_sweep`.
    metric
        A metric column, or several.
    by
        Group columns; default: the sweep's grid keys (needs ``source`` to be a directory).
    confidence
        Two-sided confidence level of the interval on the mean.

    Returns
    -------
    polars.DataFrame
        The group columns, ``metric`` (the metric's name), then ``mean``, ``std``, ``n``,
        ``ci_lo``, ``ci_hi``; sorted by metric (in the order given), then the group columns.

    Examples
    --------
    >>> df = pl.DataFrame({"cpus": [1, 1, 4, 4], "seed": [0, 1, 0, 1], "ops_per_s": [1.0, 3.0, 5.0, 7.0]})
    >>> summarize_sweep(df, "ops_per_s", by="cpus").select("cpus", "metric", "mean", "n").rows()
    [(1, 'ops_per_s', 2.0, 2), (4, 'ops_per_s', 6.0, 2)]
    """
    if isinstance(source, pl.DataFrame):
        df = source
        if by is None:
            raise FrameError("summarize_sweep: give by= for a frame (or pass the sweep directory)")
    else:
        df = load_sweep(source)
        if by is None:
            by = sweep_grid_keys(source)
    keys = _as_list(by)
    metrics = [metric] if isinstance(metric, str) else list(metric)
    if not metrics:
        raise FrameError("summarize_sweep: no metric given")
    _check_names(keys, "metric", SUMMARY_COLUMNS, "summarize_sweep")
    parts = []
    for m in metrics:
        out = summarize_replicates(df, by=keys or None, value=m, confidence=confidence)
        parts.append(out.select(*keys, pl.lit(m).alias("metric"), *SUMMARY_COLUMNS))
    return pl.concat(parts)


# ----------------------------------------------------------------------------------- chart bands
#: Output columns of :func:`replicate_band` after the group columns.
BAND_COLUMNS: tuple[str, ...] = ("mean", "n", "lo", "hi")


def replicate_band(
    df: pl.DataFrame,
    by: str | Sequence[str] | None,
    value: str,
    confidence: float = 0.95,
) -> tuple[pl.DataFrame, str]:
    """Mean per group and a band across replicates that never misleads, with what the band is.

    - no group has two replicates: no band (``lo``/``hi`` null), "one run per point: no interval";
    - every value positive (latencies, rates): a Student-t interval computed on the logarithm of
      the values and mapped back, so it never reaches zero or below;
    - every value non-negative (counts with zeros): the lowest to the highest replicate;
    - otherwise: the Student-t interval of the mean.

    Returns the group columns, ``mean``, ``n``, ``lo``, ``hi`` (``lo``/``hi`` null where ``n < 2``)
    and a sentence describing the line and the band.

    Examples
    --------
    >>> df = pl.DataFrame({"g": ["a"] * 3, "lat": [1.0, 10.0, 100.0]})
    >>> band, how = replicate_band(df, "g", "lat")
    >>> band["lo"][0] > 0, how
    (True, 'line: mean of 3 seeds; band: 95% confidence interval on a log scale')
    >>> replicate_band(pl.DataFrame({"g": ["a"], "lat": [5.0]}), "g", "lat")[1]
    'one run per point: no interval'
    """
    keys = _as_list(by)
    require_columns(df, [*keys, value], "replicate_band")
    s = summarize_replicates(df, keys or None, value, confidence)
    v = df[value].cast(pl.Float64).fill_nan(None).drop_nulls()
    n_max = int(s["n"].max() or 0)  # type: ignore[arg-type]
    n_min = int(s["n"].min() or 0)  # type: ignore[arg-type]
    seeds = f"{n_max} seeds" if n_min == n_max else f"{n_min}-{n_max} seeds"
    pct = f"{confidence * 100:g}%"
    if n_max < 2:
        out = s.with_columns(pl.lit(None, pl.Float64).alias("lo"), pl.lit(None, pl.Float64).alias("hi"))
        how = "one run per point: no interval"
    elif v.len() and bool((v > 0).all()):
        logs = df.select(*keys, pl.col(value).cast(pl.Float64).fill_nan(None).log().alias("__log"))
        ls = summarize_replicates(logs, keys or None, "__log", confidence)
        band = ls.select(*keys, pl.col("ci_lo").exp().alias("lo"), pl.col("ci_hi").exp().alias("hi"))
        out = (
            s.join(band, on=keys, how="left", nulls_equal=True)
            if keys
            else pl.concat([s, band], how="horizontal")
        )
        how = f"line: mean of {seeds}; band: {pct} confidence interval on a log scale"
    elif v.len() and bool((v >= 0).all()):
        rng = df.group_by(keys).agg(
            pl.col(value).cast(pl.Float64).min().alias("lo"), pl.col(value).cast(pl.Float64).max().alias("hi")
        ) if keys else df.select(pl.col(value).cast(pl.Float64).min().alias("lo"),
                                 pl.col(value).cast(pl.Float64).max().alias("hi"))  # fmt: skip
        out = (
            s.join(rng, on=keys, how="left", nulls_equal=True)
            if keys
            else pl.concat([s, rng], how="horizontal")
        )
        how = f"line: mean of {seeds}; band: lowest to highest seed"
    else:
        out = s.rename({"ci_lo": "lo", "ci_hi": "hi"})
        how = f"line: mean of {seeds}; band: {pct} confidence interval (Student t)"
    out = out.with_columns(
        pl.when(pl.col("n") >= 2).then(pl.col("lo")).otherwise(None).alias("lo"),
        pl.when(pl.col("n") >= 2).then(pl.col("hi")).otherwise(None).alias("hi"),
    )
    return out.select(*keys, *BAND_COLUMNS).sort(keys, nulls_last=True) if keys else out.select(
        *BAND_COLUMNS
    ), how
