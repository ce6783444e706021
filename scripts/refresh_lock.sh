#!/usr/bin/env bash
# Refresh requirements-lock.txt (what `make setup` and CI install) and test it before it replaces
# the old one. Run it as `make lock`. Steps, each in a throwaway folder (removed at the end):
#
#   1. a venv with pip-tools resolves pyproject.toml's dependencies + the dev extra, newest versions
#      allowed by the ranges and by scripts/lock_constraints.txt, into exact pins (pip-compile);
#   2. a second, fresh venv installs exactly that lock, then anyir itself with --no-deps (what
#      `make setup` does), and runs the whole test suite with it (PYTEST_ARGS to narrow it);
#   3. only if the tests pass is the new lock copied over requirements-lock.txt. Review the diff
#      (git diff requirements-lock.txt) and commit it.
#
#   scripts/refresh_lock.sh                          # full refresh + whole suite (~5 min install + the suite)
#   PYTEST_ARGS="-m 'not slow'" scripts/refresh_lock.sh
#   KEEP_WORK=1 scripts/refresh_lock.sh              # keep the venvs (printed path) to look into a failure
#
# The lock is resolved for the interpreter that runs this (PYTHON, default python3: CPython 3.11 on
# Linux x86_64 is what the project's machines and CI use); pip-compile writes no environment markers,
# so it is a lock for that platform. Other platforms: `make setup LOCK=` installs from the ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
PIP_TOOLS="${PIP_TOOLS:-pip-tools==7.6.2}"
LOCK=requirements-lock.txt
WORK="$(mktemp -d "${TMPDIR:-/tmp}/anyir-lock.XXXXXX")"
if [ "${KEEP_WORK:-0}" = 1 ]; then
  trap 'echo "kept: $WORK"' EXIT
else
  trap 'rm -rf "$WORK"' EXIT
fi
export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== 1/3 resolve (${SECONDS}s): $PIP_TOOLS in $WORK/tools"
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install --quiet "$PIP_TOOLS"
# The header names `make lock` as the command; index and find-links options are machine-local,
# never written into the lock.
CUSTOM_COMPILE_COMMAND="make lock" "$WORK/tools/bin/pip-compile" --quiet --upgrade --extra dev \
  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --constraint scripts/lock_constraints.txt --output-file "$WORK/$LOCK" pyproject.toml

echo "== 2/3 install the new lock into a fresh venv and run the tests (${SECONDS}s)"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet -r "$WORK/$LOCK"
"$WORK/venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
# -e . points the new venv at this checkout; PYTHONPATH is cleared so nothing else shadows it.
eval "set -- ${PYTEST_ARGS:-}"
env -u PYTHONPATH "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider "$@"

echo "== 3/3 tests passed: updating $LOCK (${SECONDS}s)"
cp "$WORK/$LOCK" "$LOCK"
git --no-pager diff --stat -- "$LOCK" || true
echo "review with 'git diff $LOCK', then commit it"
