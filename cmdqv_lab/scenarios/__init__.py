"""Named timing scenarios and the :func:`simulate` entry point.

A scenario turns its parameters (plus a platform preset) into an engine configuration and one op
stream per CPU, runs the engine, and reports the common metric set. ``cmdqv-lab simulate`` and the
notebooks call :func:`simulate`; ``cmdqv-lab simulate --list`` prints :func:`describe`.
"""

from cmdqv_lab.scenarios.base import SCENARIOS, Scenario, SimResult, describe, get_scenario, simulate

__all__ = ["SCENARIOS", "Scenario", "SimResult", "describe", "get_scenario", "simulate"]
