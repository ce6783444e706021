#!/usr/bin/env bash
# A short prepared training run that prints images/s, peak GPU memory and the loader wait share.
#
#   scripts/gpu_check.sh                      # GPU: 300 steps of tiny, global batch 32, crop 128, bf16
#   scripts/gpu_check.sh --cpu-smoke          # CPU: a few small steps, to check that the script works
#   scripts/gpu_check.sh --steps 500 --num-workers 12 --shards shards/demo
#
# Needs no installed package: it runs the source tree with PYTHONPATH=. (python from $PYTHON, else
# .venv/bin/python, else python3). Shards: --shards DIR, else the demo recipe is built into a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$PY" scripts/gpu_check.py "$@"
