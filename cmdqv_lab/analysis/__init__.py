"""Analysis helpers: polars expressions and aggregations over result frames.

:mod:`cmdqv_lab.analysis.summary` aggregates replicate runs (one row per seed) into means with
Student-t confidence intervals, and computes latency percentiles.
"""
