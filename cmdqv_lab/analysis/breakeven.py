"""Q6 findings: where the error-interrupt fix-up stops beating the trapped paths.

A break-even is read off two latency curves over the fraction of unsupported unmaps: the first
fraction at which the fix-up path's mean latency exceeds the other's, linearly interpolated
between grid points (:func:`break_even`). :func:`crossing_table` does that per load and per other
path; :func:`sensitivity` across the assumed interrupt latency and the VMM's trap cost;
:func:`per_unsupported_cost` measures, at one vCPU, what one unsupported unmap adds on each path.

>>> break_even([0.0, 0.5, 1.0], [1.0, 2.0, 3.0], [1.5, 2.0, 2.5])
(0.5, '50%')
>>> break_even([0.0, 0.5, 1.0], [1.0, 1.1, 1.2], [2.0, 2.0, 2.0])
(None, 'none')
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def break_even(
    f: Sequence[float], a: Sequence[float], b: Sequence[float], tol: float = 1e-3
) -> tuple[float | None, str]:
    """Where ``a`` (fix-up) first exceeds ``b`` on the fraction grid ``f``: (value, label).

    Linear interpolation of the relative difference between the last grid point where fix-up was
    not slower and the first where it is. When the two curves coincide at the start (fix-up and a
    fallback are the same clean VCMDQ at 0 %) and fix-up is already slower at the next point, the
    crossing lies somewhere below that point: the label says "< f". None: never on the grid.
    """
    d = [(x - y) / y for x, y in zip(a, b)]
    for i in range(len(f)):
        if d[i] > tol:
            if i == 0:
                return f[0], f"{f[0]:.0%}"
            if abs(d[i - 1]) <= tol and f[i - 1] == f[0]:
                return f[i], f"< {f[i]:.0%}"
            be = f[i - 1] + (f[i] - f[i - 1]) * (-d[i - 1]) / (d[i] - d[i - 1])
            return be, f"{be:.0%}"
    return None, "none"


def crossing_table(means: pl.DataFrame, by: list[str], fix: str = "fixup") -> pl.DataFrame:
    """Break-even of ``fix`` against every other path per group (``means``: path, fraction, mean)."""
    rows = []
    for key, g in means.group_by(by, maintain_order=True):
        fx = g.filter(pl.col("path") == fix).sort("unsupported_fraction")
        for other in sorted(set(g["path"]) - {fix}):
            ot = g.filter(pl.col("path") == other).sort("unsupported_fraction")
            j = fx.join(ot, on="unsupported_fraction", suffix="_o").sort("unsupported_fraction")
            be, label = break_even(
                j["unsupported_fraction"].to_list(), j["mean"].to_list(), j["mean_o"].to_list()
            )
            rows.append(
                {
                    **dict(zip(by, key)),
                    "versus": other,
                    "break_even_fraction": be,
                    "break_even": "none (fix-up faster up to 100%)" if be is None else label,
                    "speedup_at_0": j["mean_o"][0] / j["mean"][0],
                    "fixup_vs_other_at_100": j["mean"][-1] / j["mean_o"][-1],
                }
            )
    return pl.DataFrame(rows)


def sensitivity(cost_mean: pl.DataFrame) -> pl.DataFrame:
    """Break-even per (load, irq_latency_ns of fix-up, vmm_trap_ns of the other path, other path).

    ``cost_mean``: load, path, irq_latency_ns, vmm_trap_ns, unsupported_fraction, mean.
    """
    fix_side = cost_mean.filter(pl.col("path") == "fixup").drop("vmm_trap_ns")
    other_side = cost_mean.filter(pl.col("path") != "fixup").drop("irq_latency_ns")
    pairs = fix_side.join(other_side, on=["load", "unsupported_fraction"], suffix="_o")
    rows = []
    for (ld, il, vt, other), g in pairs.group_by(
        "load", "irq_latency_ns", "vmm_trap_ns", "path_o", maintain_order=True
    ):
        g = g.sort("unsupported_fraction")
        be, label = break_even(
            g["unsupported_fraction"].to_list(), g["mean"].to_list(), g["mean_o"].to_list()
        )
        rows.append({"load": ld, "irq_latency_us": il / 1e3, "vmm_trap_us": vt / 1e3, "versus": other,
                     "break_even_fraction": be, "label": label})  # fmt: skip
    return pl.DataFrame(rows).sort("load", "versus", "irq_latency_us", "vmm_trap_us")


def slope(df: pl.DataFrame, x: str = "unsupported_fraction", y: str = "op_latency_ns_mean") -> float:
    """Least-squares slope of ``y`` over ``x``."""
    xs, ys = df[x], df[y]
    xm, ym = xs.mean(), ys.mean()
    return float(((xs - xm) * (ys - ym)).sum() / ((xs - xm) ** 2).sum())  # type: ignore[operator]


def per_unsupported_cost(one: pl.DataFrame) -> pl.DataFrame:
    """At one vCPU: extra latency per unsupported unmap on each path, and its part beyond the knob.

    The knob is ``irq_latency_ns`` for the fix-up path and ``vmm_trap_ns`` for the others.
    """
    rows = []
    for (p, il, vt), g in one.group_by("path", "irq_latency_ns", "vmm_trap_ns", maintain_order=True):
        knob = il if p == "fixup" else vt
        rows.append({"path": p, "knob_ns": knob, "extra_ns_per_unsupported_unmap": slope(g)})
    return pl.DataFrame(rows).with_columns(
        (pl.col("extra_ns_per_unsupported_unmap") - pl.col("knob_ns")).alias("fixed_part_ns")
    )


def break_even_text(table: pl.DataFrame, versus: str) -> str:
    """A crossing-table row in words: "at every fraction", "up to 12%", "only below 5%" or "n/a"."""
    r = table.filter(pl.col("versus") == versus)
    if r.height == 0:
        return "n/a"
    if r["break_even_fraction"][0] is None:
        return "at every fraction"
    label = r["break_even"][0]
    return f"only below {label[2:]}" if label.startswith("<") else f"up to {label}"
