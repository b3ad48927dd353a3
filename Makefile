# Two entry points (README.md): `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test verify data docs bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU wheel from local disk; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

demo: $(STAMP)
	$(PY) -m benchmarks.demo

verify: $(STAMP)
	$(PY) -m qiadapters.circuits.verify

# The API reference from the docstrings (pdoc) into build/api/ (ignored by git).
docs: $(STAMP)
	$(PY) docs/api.py build/api

data: $(STAMP)
	$(PY) -c "from benchmarks.data import ensure_wordnet; ensure_wordnet()"

# The commands behind benchmarks/results/ (hours on 2 cores; each module's docstring says more).
bench: $(STAMP)
	$(PY) -m benchmarks.circuits --threads 1 --budget 10
	$(PY) -m benchmarks.physics
	$(PY) -m benchmarks.physics --threads 1 --tag threads1
	$(PY) -m benchmarks.speed --threads 1
	$(PY) -m benchmarks.tradeoff --threads 1

# Smoke runs of the same code paths (minutes), written to benchmarks/results/quick/ (ignored).
bench-quick: $(STAMP)
	$(PY) -m benchmarks.circuits --quick
	$(PY) -m benchmarks.physics --quick
	$(PY) -m benchmarks.speed --quick
	$(PY) -m benchmarks.tradeoff --quick --threads 1

clean:
	rm -rf $(VENV) build *.egg-info
