"""What a calibration constrains, and how far its assumptions move its predictions.

Two questions a reviewer asks of a fit (:mod:`cmdqv_lab.analysis.calibrate`):

* **Identifiability**: which fitted parameters do the rows pin down? :func:`identifiability`
  takes the Jacobian of the log model values of the fitted rows with respect to the log of each
  fitted parameter (central finite differences, ``step`` relative), and the Gauss-Newton covariance
  ``s^2 (J^T J)^-1`` with ``s^2`` the residual variance (``n - k`` degrees of freedom; when the
  rows are fitted exactly, ``s`` is floored at ``sigma_floor``, the seed-to-seed noise of a row).
  A parameter whose relative 1-sigma exceeds ``loose`` is reported as *not constrained*: the rows
  leave it free, and a prediction that depends on it inherits that freedom.
* **Prediction ranges**: each *assumption* (a parameter with no public number, held at a nominal
  value during the fit, ``[fit.assumptions]`` in the calibration file) is moved to each end of its
  plausible range; the free parameters are refitted there (a profile: the rows still have to be
  reproduced) and every prediction is evaluated. A prediction's range is the envelope of those
  values and the nominal one; the assumption whose two ends move it most is named. An end at which
  the refit can no longer reproduce every row within ``tolerance`` (the acceptance criterion of the
  fit) is *excluded by the data*: it is reported, and left out of the envelope. This is a range
  over assumptions, not a confidence interval: it says how much what we could not measure matters.

Checks (``[[check]]``): ratios of two rows or predictions with an allowed range, e.g. calibration.md's
16-CPU lock-free / atomic-add gap, computed at the fit and at every profile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cmdqv_lab.analysis.calibrate import CalibrationSpec, FitResult


@dataclass(frozen=True)
class Check:
    """A ratio of two row or prediction labels that must fall in ``[lo, hi]``."""

    label: str
    numerator: str
    denominator: str
    lo: float
    hi: float
    measured: float | None = None
    source: str = ""

    def value(self, values: Mapping[str, float]) -> float:
        return values[self.numerator] / values[self.denominator]


def identifiability(
    spec: CalibrationSpec,
    values: Mapping[str, float],
    residuals: Sequence[float],
    *,
    step: float = 0.05,
    loose: float = 0.5,
    sigma_floor: float = 0.02,
    count: int | None = None,
) -> list[dict[str, Any]]:
    """Per fitted parameter: d log(row) / d log(param) range, relative 1-sigma, constrained or not.

    ``residuals`` are the log errors of the fitted rows at ``values``.
    """
    from cmdqv_lab.analysis.calibrate import evaluate

    names = list(spec.params)
    cols = []
    for k in names:
        up = {**values, k: values[k] * (1 + step)}
        dn = {**values, k: values[k] * (1 - step)}
        mu = np.log([r["model"] for r in evaluate(spec, up, count)])
        md = np.log([r["model"] for r in evaluate(spec, dn, count)])
        cols.append((mu - md) / (math.log1p(step) - math.log1p(-step)))
    jac = np.column_stack(cols)
    n, k = jac.shape
    r = np.asarray(residuals, dtype=float)
    s2 = max(float(r @ r) / max(n - k, 1), sigma_floor**2)
    sv = np.linalg.svd(jac, compute_uv=False)
    cov = s2 * np.linalg.pinv(jac.T @ jac)
    out = []
    for i, name in enumerate(names):
        lo, hi, _ = spec.params[name]
        rel = math.sqrt(max(float(cov[i, i]), 0.0))
        at_bound = min(abs(values[name] - lo), abs(values[name] - hi)) <= 1e-3 * (hi - lo)
        out.append({
            "parameter": name,
            "value": float(values[name]),
            "sensitivity_min": float(jac[:, i].min()),
            "sensitivity_max": float(jac[:, i].max()),
            "rel_sigma": rel,
            "at_bound": bool(at_bound),
            "constrained": bool(rel <= loose and not at_bound),
            "condition": float(sv[0] / sv[-1]) if sv[-1] > 0 else float("inf"),
        })  # fmt: skip
    return out


def evaluate_checks(checks: Sequence[Check], values: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each check's value at ``values`` (row and prediction labels -> model values)."""
    out = []
    for c in checks:
        v = c.value(values)
        out.append({"label": c.label, "value": v, "lo": c.lo, "hi": c.hi, "measured": c.measured,
                    "ok": bool(c.lo <= v <= c.hi)})  # fmt: skip
    return out


def model_values(result: FitResult) -> dict[str, float]:
    """Row and prediction labels -> model values of a fit."""
    return {
        **{r["label"]: r["model"] for r in result.rows},
        **{p["label"]: p["model"] for p in result.predictions},
    }


def prediction_ranges(
    spec: CalibrationSpec,
    result: FitResult,
    *,
    refit: Callable[[CalibrationSpec, Mapping[str, float]], FitResult],
    progress: Callable[[str], None] | None = None,
    tolerance: float = 0.15,
    bisect_steps: int = 3,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Profile every assumption at both ends of its range; return (ranges, profiles).

    ``refit(spec_at_end, start_values)`` refits the free parameters with the assumption moved
    (``spec_at_end.base`` carries it) and returns the fit with its predictions. ``ranges`` has one
    row per prediction: nominal model value, low, high, the assumption that moves it most and by
    how much; ``profiles`` one row per (assumption, end): the refitted values, the worst row error
    there and every prediction. An end the rows cannot fit within ``tolerance`` is kept as an
    inconsistent profile, and ``bisect_steps`` bisections towards the nominal value find the
    furthest value they allow (``end`` = "high (data limit)"), which joins the envelope instead.
    """
    import dataclasses

    nominal = {p["label"]: p["model"] for p in result.predictions}
    profiles: list[dict[str, Any]] = []

    def at(name: str, value: float) -> FitResult:
        if progress:
            progress(f"{name} = {value:g}")
        return refit(dataclasses.replace(spec, base={**spec.base, name: value}), result.values)

    for name, (lo, hi) in spec.assumptions.items():
        for end, value in (("low", lo), ("high", hi)):
            fit_there = at(name, value)
            if fit_there.max_rel_error > tolerance:
                # the data rule this end out: record it, then bisect towards the nominal value for
                # the furthest value the rows still allow, and profile there instead
                profiles.append(_profile(name, end, value, fit_there, spec, consistent=False))
                ok_v, bad_v, ok_fit = spec.base[name], value, None
                for _ in range(bisect_steps):
                    mid = (ok_v + bad_v) / 2
                    if isinstance(value, int):  # an integer assumption bisects on integers
                        mid = round(mid)
                        if mid in (ok_v, bad_v):
                            break
                    f_mid = at(name, mid)
                    if f_mid.max_rel_error <= tolerance:
                        ok_v, ok_fit = mid, f_mid
                    else:
                        bad_v = mid
                if ok_fit is None:
                    continue
                value, fit_there, end = ok_v, ok_fit, f"{end} (data limit)"
            profiles.append(_profile(name, end, value, fit_there, spec, consistent=True))
    used = [pr for pr in profiles if pr["consistent"]]
    ranges = []
    for label, v0 in nominal.items():
        vals = [v0] + [pr["predictions"][label] for pr in used]
        swing: dict[str, float] = {}
        for pr in used:
            swing.setdefault(pr["assumption"], 0.0)
        for name in swing:
            ends = [v0, *(pr["predictions"][label] for pr in used if pr["assumption"] == name)]
            swing[name] = (max(ends) - min(ends)) / abs(v0) if v0 else float("nan")
        most = max(swing, key=lambda n: swing[n]) if swing else ""
        ranges.append({
            "label": label,
            "model": v0,
            "low": float(min(vals)),
            "high": float(max(vals)),
            "moved_most_by": most,
            "moved_most_rel": swing.get(most, 0.0),
            "profiles_used": len(used),
        })  # fmt: skip
    return ranges, profiles


def _profile(
    name: str, end: str, value: float, fit_there: FitResult, spec: CalibrationSpec, *, consistent: bool
) -> dict[str, Any]:
    return {
        "assumption": name,
        "end": end,
        "value": value,
        "fitted": dict(fit_there.values),
        "max_rel_error": fit_there.max_rel_error,
        "consistent": consistent,
        "predictions": {p["label"]: p["model"] for p in fit_there.predictions},
        "checks": evaluate_checks(spec.checks, model_values(fit_there)),
    }
