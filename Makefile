# The README's two commands: `make demo` and `make test`. Each creates or reuses .venv itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.anyir-installed
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: setup demo test lint clean-outputs

setup: $(STAMP)  ## create .venv and install anyir with its dev extra (reused when up to date)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: setup  ## build demo shards, train a small AnyIR on CPU, evaluate, log to the leaderboard, print the table
	$(VENV)/bin/anyir quickstart

test: setup  ## the whole test suite (CPU only)
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check anyir tests benchmarks

clean-outputs:  ## remove built shards, runs and the local leaderboard (keeps tracked files)
	rm -rf runs shards/demo leaderboard/leaderboard.duckdb leaderboard/leaderboard.duckdb.wal
