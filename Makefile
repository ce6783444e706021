# The README's two commands: `make demo` and `make test`. Each creates or reuses .venv itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.anyir-installed
# Exact versions of every dependency (refresh: make lock). `make setup LOCK=` installs from
# pyproject.toml's ranges instead (platforms the lock was not resolved for: docs/install.md).
LOCK   ?= requirements-lock.txt
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: setup demo test lint lock clean-outputs

setup: $(STAMP)  ## create .venv and install the locked dependencies + anyir (reused when up to date)

# Reinstalls when pyproject.toml or the lock changes. Packages dropped from the lock stay in an
# existing .venv (pip does not remove them); `rm -rf .venv && make setup` gives the exact set.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifeq ($(strip $(LOCK)),)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
else
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
endif
	touch $(STAMP)

lock:  ## re-resolve requirements-lock.txt, test it in a fresh venv, replace the lock only if the tests pass
	PYTHON=$(PYTHON) scripts/refresh_lock.sh

demo: setup  ## build demo shards, train a small AnyIR on CPU, evaluate, log to the leaderboard, print the table
	$(VENV)/bin/anyir quickstart

test: setup  ## the whole test suite (CPU only)
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check anyir tests benchmarks

clean-outputs:  ## remove built shards, runs and the local leaderboard (keeps tracked files)
	rm -rf runs shards/demo leaderboard/leaderboard.duckdb leaderboard/leaderboard.duckdb.wal
