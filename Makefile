# Two entry points (README.md): `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test verify data bench clean

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

data: $(STAMP)
	$(PY) -c "from benchmarks.data import ensure_wordnet; ensure_wordnet()"

# The benchmarks behind benchmarks/results/ (long: see each module's docstring for --quick).
bench: $(STAMP)
	$(PY) -m benchmarks.circuits
	$(PY) -m benchmarks.physics
	$(PY) -m benchmarks.speed
	$(PY) -m benchmarks.tradeoff

clean:
	rm -rf $(VENV) build *.egg-info
