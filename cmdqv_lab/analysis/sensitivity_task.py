"""The sweep task ``sensitivity``: notebook 09's three conclusions with one assumed parameter moved.

A point sets platform parameter ``parameter`` (one of :data:`~cmdqv_lab.analysis.validation.RANGES`,
or ``none``: the baseline) to its value at ``fraction`` of its range
(:func:`~cmdqv_lab.analysis.validation.range_value`) and computes
:func:`~cmdqv_lab.analysis.validation.conclusions` with ``count`` host ops and ``count // 10``
guest ops per run. Metrics: ``value`` (NaN for the baseline), one column per conclusion (``q9``,
``q6``, ``fix``) and ``refused`` (the model's one-line refusal of the setting, "" if it ran; the
conclusions are then NaN). :func:`~cmdqv_lab.analysis.validation.sensitivity` turns the sweep into
the tornado's table.

>>> t = sensitivity_task("sensitivity")
>>> t.resolve({"parameter": "spin_ns", "fraction": 1.0})["fraction"], t.count
(1.0, 'host ops')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cmdqv_lab.params import Params, param

#: Guest ops per run are the host ops divided by this (notebook 09: 20,000 host, 2,000 guest ops).
GUEST_DIVISOR = 10


def sensitivity_task(name: str) -> Any:
    """The :class:`~cmdqv_lab.experiments.tasks.Task` ``sensitivity``."""
    from cmdqv_lab.analysis.validation import CONCLUSIONS, RANGES, conclusions, range_value
    from cmdqv_lab.errors import CmdqvError, ParamError
    from cmdqv_lab.experiments.tasks import PointResult, Task

    @dataclass(frozen=True, kw_only=True)
    class SensitivityParams(Params):
        parameter: str = param("none", choices=("none", *RANGES), provenance="choice",
                               doc="the assumed platform parameter moved (none: the baseline)")  # fmt: skip
        fraction: float = param(0.0, lo=0.0, hi=1.0, provenance="choice",
                                doc="where along its range (0: low end, 1: high end)")  # fmt: skip

    def resolve(overrides: Mapping[str, Any]) -> dict[str, Any]:
        return dict(SensitivityParams.from_overrides(dict(overrides)).to_dict())

    def prepare(overrides: Mapping[str, Any], seed: int, count: int) -> None:
        SensitivityParams.from_overrides(dict(overrides))
        if count < GUEST_DIVISOR:
            raise ParamError(
                f"count={count}: at least {GUEST_DIVISOR} (guest runs get count // {GUEST_DIVISOR})"
            )

    def run(overrides: Mapping[str, Any], seed: int, count: int, record: bool) -> PointResult:
        p = SensitivityParams.from_overrides(dict(overrides))
        over = {} if p.parameter == "none" else {p.parameter: range_value(p.parameter, p.fraction)}
        value = float(next(iter(over.values()), float("nan")))
        try:
            c, refused = conclusions(over, host_ops=count, guest_ops=count // GUEST_DIVISOR, seed=seed), ""
        except CmdqvError as e:
            c, refused = {k: float("nan") for k in CONCLUSIONS}, str(e).splitlines()[0]
        return PointResult(name, seed, p.to_dict(), {"value": value, **c, "refused": refused})

    return Task(name, "host ops", resolve, prepare, run)
