"""route_frame reproduces its golden outputs (tests/data/routing_golden.parquet, written by the
polars route_frame on :func:`routing_cases.cases`): rows, order, columns, dtypes and nulls."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from tests.routing_cases import GOLDEN, N_CASES, cases


def test_route_frame_reproduces_the_golden_outputs() -> None:
    want = pl.read_parquet(GOLDEN)
    parts = want.partition_by("case", as_dict=True, maintain_order=True)
    n = 0
    for k, case in enumerate(cases()):
        got = case.route()
        exp = parts.get((k,))
        if exp is None:
            assert got.height == 0, k
            assert got.schema == want.drop("case").schema, k
            continue
        try:
            assert_frame_equal(got, exp.drop("case"), check_exact=True)
        except AssertionError as e:
            raise AssertionError(f"case {k} ({case.policy}): {e}") from e
        n += 1
    assert n == want["case"].n_unique() and n < N_CASES
