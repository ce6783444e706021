#!/usr/bin/env bash
# The prepared GPU check (see scripts/gpu_check.py): AnyIR-T train images/s in bf16 with and without
# torch.compile (compile warm-up apart), peak memory, loader wait share at N workers with the npy
# shards, inference images/s at 256x256 (vs PromptIR with --promptir DIR), one JSON summary.
#
#   scripts/gpu_check.sh --json $OUT/gpu_check.json                 # GPU: ~3-4 min on an H100/A100
#   scripts/gpu_check.sh --promptir ../PromptIR --num-workers 12    # also PromptIR; more loader workers
#   scripts/gpu_check.sh --cpu-smoke                                # CPU: every phase tiny, checks the script
#
# Needs no installed package: it runs the source tree with PYTHONPATH=. (python from $PYTHON, else
# .venv/bin/python, else python3). Besides torch it imports numpy, Pillow, OpenCV, scikit-image,
# pydantic, PyYAML, tqdm, safetensors (and einops for PromptIR); not webdataset, albumentations,
# duckdb, pyiqa or datasets. Shards: --shards DIR, else the demo recipe is built into a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$PY" scripts/gpu_check.py "$@"
