"""scripts/gpu_check.sh runs end to end on CPU (--cpu-smoke) and prints its figures block."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_smoke(tiny_shards, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(REPO / "scripts" / "gpu_check.sh"), "--cpu-smoke", "--shards", str(tiny_shards), "--variant", "pico",
         "--crop", "32", "--steps", "2", "--num-workers", "0", "--out", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    block = result.stdout[result.stdout.index("=== anyir gpu_check"):]
    for label in ("device", "images/s", "peak GPU memory", "loader wait share", "step time"):
        assert label in block, label
    assert "pico, 2 steps, global batch 4, crop 32" in block
    assert (tmp_path / "run" / "train_summary.json").is_file()
