"""Parameter sweeps at scale and reviewer reproducibility.

A *sweep spec* (``data/specs/*.toml``, :mod:`.spec`) names a scenario, fixed parameters, a grid and
seeds; :func:`~cmdqv_lab.experiments.sweep.run_sweep` runs every point (one parameter combination x
one seed) on local processes or a dask.distributed cluster (:mod:`.executors`) and stores one
checksummed Parquet file per point, keyed by the point and the code version (:mod:`.cache`); a
finished sweep writes ``manifest.json`` (:mod:`.manifest`), and :mod:`.reproduce` re-runs published
sweeps and compares them exactly. ``cmdqv-lab sweep`` and ``cmdqv-lab reproduce`` are in :mod:`.cli`.

Modules are imported on demand: importing this package is cheap.
"""
