# `make demo` and `make test` set up .venv on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test test-fast bench gpu-check crosscheck clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m artsy.demo

test: $(STAMP)
	$(PY) -m pytest

# everything but the tests marked slow (full Brian2 cross-check, demos, notebooks, wheel install)
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

crosscheck: $(STAMP)
	$(PY) -m synsim.crosscheck

bench: $(STAMP)
	$(PY) benchmarks/synsim_throughput.py

# on a GPU machine (<= 8 min): the tests marked cuda, a ViT-B/16 run per gate, the CUDA benchmark;
# one JSON in benchmarks/results/gpu_check.json. Without a GPU: says so, runs nothing, exits 0.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

clean-venv:
	rm -rf $(VENV)
