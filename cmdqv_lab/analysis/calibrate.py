"""Fitting platform presets to public measurements, and their predictions.

A calibration file (``data/calibration/<preset>.toml``) names the scenario, the parameters to fit
with their bounds, the measured rows to fit (``[[target]]``) and the configurations to predict but
never fit (``[[prediction]]``, calibration.md's held-out rule). :func:`fit` minimises the mean squared
log error of the targets with Nelder-Mead on the bounded parameters (common random numbers: every
evaluation uses the same seed); :func:`write_preset` stores the fitted values, the rows they were
fitted to, the residuals and the predictions in ``data/params/<preset>.toml``.

Assumptions (``[fit.assumptions]``: parameters with no public number, held at their nominal value
from ``base`` during the fit, with a plausible range) and checks (``[[check]]``: a ratio of two rows
or predictions with an allowed range) feed :mod:`cmdqv_lab.analysis.uncertainty`: which fitted
parameters the rows constrain, and each prediction's range over the assumptions (profiled: the free
parameters are refitted at each end of each assumption).

``cmdqv-lab calibrate d06`` refits and prints; ``--write`` updates the preset.
"""

from __future__ import annotations

import datetime as _dt
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmdqv_lab import __version__
from cmdqv_lab.analysis.uncertainty import (
    Check,
    evaluate_checks,
    identifiability,
    model_values,
    prediction_ranges,
)
from cmdqv_lab.errors import ParamError
from cmdqv_lab.platform import PARAMS_DIR

CALIBRATION_DIR = PARAMS_DIR.parent / "calibration"


@dataclass(frozen=True)
class Row:
    label: str
    overrides: dict[str, Any]
    value: float | None = None
    metric: str = ""
    source: str = ""
    scenario: str = ""  # default: the spec's


@dataclass(frozen=True)
class CalibrationSpec:
    preset: str
    scenario: str
    metric: str
    count: int
    seed: int
    base: dict[str, Any]
    params: dict[str, tuple[float, float, float]]
    targets: tuple[Row, ...]
    predictions: tuple[Row, ...]
    path: Path
    sources: dict[str, str] = field(default_factory=dict)  # where fixed base values come from
    rows: str = "calibration.md"  # which published rows the targets are
    assumptions: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (low, high)
    checks: tuple[Check, ...] = ()

    @classmethod
    def load(cls, name: str) -> CalibrationSpec:
        path = CALIBRATION_DIR / f"{name}.toml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in CALIBRATION_DIR.glob("*.toml")))
            raise ParamError(f"no calibration {name!r}: one of {known}")
        data = tomllib.loads(path.read_text())
        fit = data["fit"]
        params = {k: (float(v[0]), float(v[1]), float(v[2])) for k, v in fit["params"].items()}
        targets = tuple(
            Row(t["label"], dict(t["set"]), float(t["value"]), t.get("metric", fit["metric"]), t.get("source", ""),
                t.get("scenario", ""))
            for t in data["target"]
        )  # fmt: skip
        preds = tuple(
            Row(p["label"], dict(p["set"]), None, p.get("metric", fit["metric"]), "", p.get("scenario", ""))
            for p in data["prediction"]
        )
        base = dict(fit.get("base", {}))
        # an integer assumption (both ends integers, e.g. line_hold_max) stays integer
        assumptions: dict[str, tuple[float, float]] = {
            k: (v[0], v[1]) if all(isinstance(x, int) for x in v) else (float(v[0]), float(v[1]))
            for k, v in fit.get("assumptions", {}).items()
        }
        for k, (a_lo, a_hi) in assumptions.items():
            if k not in base:
                raise ParamError(f"{path}: assumption {k!r} needs its nominal value in [fit] base")
            if not a_lo <= float(base[k]) <= a_hi:
                raise ParamError(
                    f"{path}: assumption {k}={base[k]} is outside its range [{a_lo:g}, {a_hi:g}]"
                )
        labels = {r.label for r in (*targets, *preds)}
        checks = []
        for c in data.get("check", []):
            for part in ("numerator", "denominator"):
                if c[part] not in labels:
                    raise ParamError(
                        f"{path}: check {c['label']!r}: {part} {c[part]!r} is not a row or prediction label"
                    )
            checks.append(Check(c["label"], c["numerator"], c["denominator"], float(c["range"][0]),
                                float(c["range"][1]), c.get("measured"), c.get("source", "")))  # fmt: skip
        return cls(
            fit["preset"], fit["scenario"], fit["metric"], int(fit["count"]), int(fit["seed"]),
            base, params, targets, preds, path, dict(fit.get("sources", {})),
            fit.get("rows", "calibration.md"), assumptions, tuple(checks),
        )  # fmt: skip


@dataclass
class FitResult:
    values: dict[str, float]
    rows: list[dict[str, Any]]  # label, measured, model, rel_error
    predictions: list[dict[str, Any]]  # label, metric, model
    evaluations: int
    loss: float
    history: list[float] = field(default_factory=list)
    identifiability: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    ranges: list[dict[str, Any]] = field(default_factory=list)  # per prediction: low, high, moved_most_by
    profiles: list[dict[str, Any]] = field(default_factory=list)  # per (assumption, end)

    @property
    def max_rel_error(self) -> float:
        return max(abs(r["rel_error"]) for r in self.rows)


def _run(spec: CalibrationSpec, values: Mapping[str, float], row: Row, count: int) -> float:
    from cmdqv_lab.scenarios import simulate

    res = simulate(
        row.scenario or spec.scenario, {**spec.base, **values, **row.overrides}, seed=spec.seed, count=count
    )
    v: Any = res.metrics
    for part in (row.metric or spec.metric).split("."):  # e.g. op_latency_ns.mean
        v = v[part]
    return float("nan") if v is None else float(v)


def evaluate(
    spec: CalibrationSpec, values: Mapping[str, float], count: int | None = None
) -> list[dict[str, Any]]:
    """Model value and relative error of every target row at ``values``."""
    n = count or spec.count
    out = []
    for row in spec.targets:
        model = _run(spec, values, row, n)
        assert row.value is not None
        out.append(
            {"label": row.label, "measured": row.value, "model": model, "rel_error": model / row.value - 1}
        )
    return out


def predict(
    spec: CalibrationSpec, values: Mapping[str, float], count: int | None = None
) -> list[dict[str, Any]]:
    """The held-out predictions at ``values``."""
    n = count or spec.count
    return [
        {"label": r.label, "metric": r.metric, "model": _run(spec, values, r, n)} for r in spec.predictions
    ]


def fit(
    spec: CalibrationSpec,
    *,
    maxiter: int = 120,
    count: int | None = None,
    progress: Callable[[int, float], None] | None = None,
    start: Mapping[str, float] | None = None,
) -> FitResult:
    """Fit ``spec.params`` to ``spec.targets`` (Nelder-Mead on [0, 1]-scaled bounded parameters),
    from the spec's start values or ``start``."""
    from scipy.optimize import minimize

    names = list(spec.params)
    lo = np.array([spec.params[k][0] for k in names])
    hi = np.array([spec.params[k][1] for k in names])
    s0 = {k: spec.params[k][2] for k in names} if start is None else {k: float(start[k]) for k in names}
    x0 = np.clip((np.array([s0[k] for k in names]) - lo) / (hi - lo), 0, 1)
    history: list[float] = []

    def values_of(x: np.ndarray) -> dict[str, float]:
        return {k: float(v) for k, v in zip(names, lo + np.clip(x, 0, 1) * (hi - lo))}

    def loss(x: np.ndarray) -> float:
        penalty = float(np.sum(np.clip(-x, 0, None) + np.clip(x - 1, 0, None)))
        rows = evaluate(spec, values_of(x), count)
        errs = [math.log(r["model"] / r["measured"]) for r in rows if r["model"] > 0]
        value = float(np.mean(np.square(errs))) if len(errs) == len(rows) else 10.0
        history.append(value)
        if progress:
            progress(len(history), value)
        return value + penalty

    res = minimize(loss, x0, method="Nelder-Mead", options={"maxiter": maxiter, "xatol": 1e-3, "fatol": 1e-6})
    values = {k: float(f"{v:.5g}") for k, v in values_of(res.x).items()}  # 5 significant digits
    rows = evaluate(spec, values, count)
    errs = [math.log(r["model"] / r["measured"]) for r in rows]
    result = FitResult(
        values, rows, predict(spec, values, count), len(history), float(np.mean(np.square(errs))), history
    )
    result.checks = evaluate_checks(spec.checks, model_values(result))
    return result


def analyse(
    spec: CalibrationSpec,
    result: FitResult,
    *,
    maxiter: int = 40,
    count: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Add identifiability and the predictions' ranges over the assumptions to ``result``.

    Each profile refits from the nominal fit with at most ``maxiter`` iterations.
    """
    if progress:
        progress("identifiability (Jacobian of the fitted rows)")
    errs = [math.log(r["model"] / r["measured"]) for r in result.rows]
    result.identifiability = identifiability(spec, result.values, errs, count=count)

    nominal_rows = [r["model"] for r in result.rows]

    def refit(moved: CalibrationSpec, start: Mapping[str, float]) -> FitResult:
        rows = evaluate(moved, start, count)
        if [r["model"] for r in rows] == nominal_rows:
            # the rows do not see this assumption (e.g. a cross-socket cost at <= 16 CPUs): the
            # objective is unchanged, so the nominal fit is the refit; only the predictions move
            same = FitResult(dict(start), rows, predict(moved, start, count), 0, result.loss)
            same.checks = evaluate_checks(moved.checks, model_values(same))
            return same
        return fit(moved, maxiter=maxiter, count=count, start=start)

    result.ranges, result.profiles = prediction_ranges(spec, result, refit=refit, progress=progress)
    return result


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def render_preset(spec: CalibrationSpec, result: FitResult, description: str) -> str:
    """The preset file text: values with provenance, fitted rows, residuals, predictions."""
    from cmdqv_lab.platform import Platform

    platform_fields = Platform.field_infos()
    fixed = {k: v for k, v in spec.base.items() if k in platform_fields}
    lines = [
        f"# Generated by `cmdqv-lab calibrate {spec.preset} --write` from {spec.path.relative_to(PARAMS_DIR.parent.parent)}.",
        "# Fitted ONLY to the [[fit_row]] rows below; [[prediction]] rows are model outputs for held-out configs.",
        "[preset]",
        f"name = {_toml_value(spec.preset)}",
        f"description = {_toml_value(description)}",
        f"fitted_on = {_toml_value(_dt.date.today().isoformat())}",
        f"code_version = {_toml_value(__version__)}",
        f"fit_scenario = {_toml_value(spec.scenario)}",
        f"fit_metric = {_toml_value(spec.metric)}",
        f"fit_count = {spec.count}",
        f"fit_seed = {spec.seed}",
        f"fit_evaluations = {result.evaluations}",
        f"fit_rms_log_error = {math.sqrt(result.loss):.4f}",
        f"fit_max_rel_error = {result.max_rel_error:.4f}",
        "",
        "[values]",
    ]
    lines += [f"{k} = {_toml_value(v)}" for k, v in {**fixed, **result.values}.items()]
    lines += ["", "[provenance]"]
    lines += [f'{k} = "fitted"' for k in result.values]
    lines += [f'{k} = "assumption"' for k in spec.assumptions if k in platform_fields]
    lines += ["", "[sources]"]
    for k, src in spec.sources.items():
        lines.append(f"{k} = {_toml_value(src)}")
    for k, (lo, hi, _) in spec.params.items():
        lines.append(f"{k} = {_toml_value(f'fitted to {spec.rows} within [{lo:g}, {hi:g}]')}")
    for row in result.rows:
        lines += [
            "",
            "[[fit_row]]",
            f"label = {_toml_value(row['label'])}",
            f"measured = {row['measured']:.0f}",
            f"model = {row['model']:.0f}",
            f"rel_error = {row['rel_error']:.4f}",
        ]
    ranges = {r["label"]: r for r in result.ranges}
    for p in result.predictions:
        lines += ["", "[[prediction]]", f"label = {_toml_value(p['label'])}", f"metric = {_toml_value(p['metric'])}",
                  f"model = {p['model']:.6g}"]  # fmt: skip
        r = ranges.get(p["label"])
        if r is not None:
            lines += [f"low = {r['low']:.6g}", f"high = {r['high']:.6g}",
                      f"moved_most_by = {_toml_value(r['moved_most_by'])}", f"moved_most_rel = {r['moved_most_rel']:.4f}"]  # fmt: skip
    for k, (lo, hi) in spec.assumptions.items():
        lines += ["", "[[assumption]]", f"parameter = {_toml_value(k)}", f"nominal = {_toml_value(spec.base[k])}",
                  f"low = {lo:g}", f"high = {hi:g}"]  # fmt: skip
        if k in spec.sources:
            lines.append(f"source = {_toml_value(spec.sources[k])}")
    for c in result.checks:
        lines += ["", "[[check]]", f"label = {_toml_value(c['label'])}", f"model = {c['value']:.4f}",
                  f"lo = {c['lo']:g}", f"hi = {c['hi']:g}", f"ok = {_toml_value(c['ok'])}"]  # fmt: skip
        if c["measured"] is not None:
            lines.append(f"measured = {c['measured']:g}")
    for row in result.identifiability:
        lines += ["", "[[identifiability]]", f"parameter = {_toml_value(row['parameter'])}",
                  f"rel_sigma = {row['rel_sigma']:.4f}", f"constrained = {_toml_value(row['constrained'])}",
                  f"at_bound = {_toml_value(row['at_bound'])}"]  # fmt: skip
    for pr in result.profiles:
        lines += ["", "[[profile]]", f"assumption = {_toml_value(pr['assumption'])}", f"end = {_toml_value(pr['end'])}",
                  f"value = {pr['value']:g}", f"max_rel_error = {pr['max_rel_error']:.4f}",
                  f"consistent = {_toml_value(pr['consistent'])}", f"fitted = {_toml_value(pr['fitted'])}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_preset(spec: CalibrationSpec, result: FitResult, description: str) -> Path:
    """Write ``data/params/<preset>.toml`` atomically."""
    from cmdqv_lab.atomicfile import write_bytes

    return write_bytes(PARAMS_DIR / f"{spec.preset}.toml", render_preset(spec, result, description).encode())
