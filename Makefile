# cmdqv-lab: two commands do all the set-up on a fresh machine.
#   make report   build the rendered report (creates .venv on first use)
#   make test     lint, type-check and run the tests (creates .venv; installs test system packages)
#   make lab      JupyterLab on notebooks/ (they open as notebooks, with the cmdqv-lab kernel)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
            && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
# Two install steps: the package (all `make report`, `lab`, `results` and `reproduce` need) and the
# test tools on top ([test]: pytest, playwright, mypy, ruff, simpy, ...; about 15 s more).
STAMP := $(VENV)/.installed-$(HASH)
TEST_STAMP := $(VENV)/.installed-test-$(HASH)
# The compiled engine is cached where the CLI and Jupyter look too (cmdqv_lab/engine/__init__.py:
# $NUMBA_CACHE_DIR if set, else ~/.cache/cmdqv-lab/numba), so make, the CLI and notebooks compile it once.
export PIP_DISABLE_PIP_VERSION_CHECK := 1
PYTEST_WORKERS ?= 2

.PHONY: help venv test lint typecheck unit report report-smoke lab bench results reproduce sysdeps clean

help:
	@echo "make report   executes the notebooks and writes the offline report to report/"
	@echo "make lab      JupyterLab on notebooks/ (double-click opens a notebook with the cmdqv-lab kernel)"
	@echo "make test     ruff + mypy + the test suite (includes slow, browser and QEMU-capture tests)"
	@echo "make bench    engine, end-to-end (vs SimPy and a Lindley M/D/1), widget and sweep benchmarks"
	@echo "make results  regenerate the published sweeps in data/results (then: make reproduce)"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.11 is required (none found on PATH)" >&2; exit 1; }
	@test -x $(BIN)/python || { echo "venv: creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "venv: installing cmdqv-lab and its dependencies into $(VENV) (a few minutes the first time)"
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e .
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "venv: ready"

$(TEST_STAMP): $(STAMP)
	@echo "venv: installing the test tools ([test] extras) into $(VENV)"
	@$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

venv: $(TEST_STAMP)

sysdeps:
	@scripts/install-sysdeps

lint: $(TEST_STAMP)
	$(BIN)/ruff check cmdqv_lab tests benchmarks $(wildcard notebooks/*.py)
	$(BIN)/ruff format --check cmdqv_lab tests benchmarks

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

unit: $(TEST_STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadscope

test: $(TEST_STAMP) sysdeps lint typecheck unit

report: $(STAMP)
	@echo "report: executing notebooks/NN-*.py into report/ (progress below, one line per notebook)"
	@$(BIN)/cmdqv-lab report --out report

report-smoke: $(STAMP)
	@$(BIN)/cmdqv-lab report --smoke --out report-smoke

lab: $(STAMP)
	@$(BIN)/python -m cmdqv_lab.report.lab
	$(BIN)/jupyter lab notebooks

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench_engine.py --startup --billion
	$(BIN)/python benchmarks/bench_end_to_end.py
	$(BIN)/python benchmarks/bench_widgets.py
	$(BIN)/python benchmarks/bench_sweep.py

# Regenerate every published sweep in data/results from its spec (commit code changes first:
# each manifest records the git commit it was made from). Points are computed (and cached) in
# .cache/sweeps/NAME; data/results/NAME gets the packed result: results.parquet + manifest.json.
results: $(STAMP)
	@for spec in data/specs/*.toml; do \
	  name=$$(basename $$spec .toml); \
	  $(BIN)/cmdqv-lab sweep $$spec --publish data/results/$$name --prune || exit 1; \
	done

reproduce: $(STAMP)
	$(BIN)/cmdqv-lab reproduce --quick

clean:
	rm -rf $(VENV) .cache report report-smoke .pytest_cache .mypy_cache .ruff_cache
