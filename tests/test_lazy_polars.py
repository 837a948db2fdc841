"""The host and open-queue simulations run without importing polars (0.15-0.2 s of every CLI
process): the schemas name their column types (cmdqv_lab.dtypes) and polars is imported where a
frame is built."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

from cmdqv_lab.dtypes import Dtypes

SCRIPT = """
import sys
sys.argv = ["cmdqv-lab", "simulate", "-s", sys.argv[1], "--json", *sys.argv[2:]]
import cmdqv_lab.cli as cli
try:
    cli.main()
except SystemExit as e:
    assert not e.code, e.code
print("polars" if "polars" in sys.modules else "no polars", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["host-map-unmap", "--ops", "500"],
        ["host-map-unmap", "--ops", "500", "--set", "cpus=4", "--set", "submit=atomic-add"],
        ["open-queue", "--commands", "1000"],
    ],
)
def test_a_simulation_from_the_cli_does_not_import_polars(args: list[str]) -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=True)
    assert r.stderr.strip().splitlines()[-1] == "no polars", r.stderr
    assert r.stdout.startswith("{")  # the metrics, as JSON


def test_dtypes_are_polars_types_looked_up_by_name() -> None:
    d = Dtypes({"a": "Int64", "b": "String"})
    assert list(d) == ["a", "b"] and len(d) == 2
    assert d["a"] == pl.Int64 and dict(d) == {"a": pl.Int64, "b": pl.String}
    assert pl.DataFrame(schema=d).schema == pl.Schema({"a": pl.Int64, "b": pl.String})
    with pytest.raises(KeyError):
        d["c"]
    with pytest.raises(AttributeError):
        Dtypes({"x": "NoSuchType"})["x"]
