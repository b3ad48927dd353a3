# Two entry points (README.md): `make demo` and `make test`. Each builds .venv on first use,
# from constraints.txt: the exact versions the test suite last passed with (a lock), so that a
# release elsewhere cannot turn a green main red.  pyproject.toml keeps loose ranges for users.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := constraints.txt
# The CPU wheel on local disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
# The newest releases of everything but torch, rebuilt by every `make test-latest`.
LATEST := .venv-latest

.PHONY: demo test test-latest lock verify data docs bench bench-quick bench-results bench-views bench-experiments clean

# pip and the build backend come from the lock too, and the package is built with them
# (--no-build-isolation): nothing in the environment is whatever is newest that day.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) pip setuptools
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -c $(LOCK) --no-build-isolation -e ".[test,bench]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

# The same suite against the newest releases (not part of CI): the way to learn early that a
# dependency broke us.  A fresh environment every time, so "newest" means today's.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip setuptools
	$(LATEST)/bin/python -m pip install -q $(TORCH)
	$(LATEST)/bin/python -m pip install -q --no-build-isolation -e ".[test,bench]"
	$(LATEST)/bin/python -m pytest -q -n 2 tests

# A new lock: the newest releases, written to $(LOCK) only if the whole suite passes on them.
lock: test-latest
	head -n 2 $(LOCK) > $(LOCK).tmp
	$(LATEST)/bin/python -m pip freeze --all --exclude-editable \
	  | sed -E 's/^(torch==[^+]+)\+.*/\1/' >> $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	@echo "$(LOCK) now pins the versions the suite just passed with; run make test, then commit it"

demo: $(STAMP)
	$(PY) -m benchmarks.demo

verify: $(STAMP)
	$(PY) -m qiadapters.circuits.verify

# The API reference from the docstrings (pdoc) into build/api/ (ignored by git).
docs: $(STAMP)
	$(PY) docs/api.py build/api

data: $(STAMP)
	$(PY) -c "from benchmarks.common.data import ensure_wordnet; ensure_wordnet()"

# The commands behind benchmarks/results/ (hours on 2 cores; each module's docstring says more).
bench: $(STAMP)
	$(PY) -m benchmarks.circuits --threads 1 --budget 10
	$(PY) -m benchmarks.physics
	$(PY) -m benchmarks.physics --threads 1 --tag threads1
	$(PY) -m benchmarks.speed --threads 1
	$(PY) -m benchmarks.tradeoff --threads 1

# The run records follow the experiments: a new or changed input of a benchmark (a row's
# benchmarks/<benchmark>/experiments/<family>/<name>/training_params.json, the defaults, a
# registry config) reruns it, and a rerun trains only the runs its records lack.
RESULTS      := benchmarks/results
TRADEOFF_IN  := $(shell find benchmarks/tradeoff/experiments -name '*.json') $(wildcard benchmarks/configs/*.json)
VISION_IN    := $(shell find benchmarks/vision/experiments -name '*.json') $(wildcard benchmarks/configs/vision/*.json)
$(RESULTS)/tradeoff_runs.jsonl: $(TRADEOFF_IN) | $(STAMP)
	$(PY) -m benchmarks.tradeoff --threads 1
	touch $@
$(RESULTS)/vision.csv: $(VISION_IN) | $(STAMP)
	$(PY) -m benchmarks.vision
	touch $@
bench-results: $(RESULTS)/tradeoff_runs.jsonl $(RESULTS)/vision.csv

# Each row's experiments/<family>/<name>/adapter_config.json, written by its config class from
# the registry (benchmarks/configs/); tests/test_adapter_configs.py fails when one is stale.
bench-experiments: $(STAMP)
	$(PY) -m benchmarks.common.adapter_configs

# Per-experiment views of the run records, benchmarks/<benchmark>/results/<family>--<name>.json
# (derived, ignored by git; benchmarks/common/views.py says what they hold).
bench-views: $(STAMP)
	$(PY) -m benchmarks.common.views

# Smoke runs of the same code paths (minutes), written to benchmarks/results/quick/ (ignored).
bench-quick: $(STAMP)
	$(PY) -m benchmarks.circuits --quick
	$(PY) -m benchmarks.physics --quick
	$(PY) -m benchmarks.speed --quick
	$(PY) -m benchmarks.tradeoff --quick --threads 1

clean:
	rm -rf $(VENV) $(LATEST) build *.egg-info
