"""tests/data holds inputs for tests, not tests: keep pytest's doctest collection from importing them."""

collect_ignore_glob = ["*.py"]
