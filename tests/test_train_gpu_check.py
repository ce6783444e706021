"""scripts/gpu_check.sh runs every phase end to end on CPU (--cpu-smoke), without the packages the
GPU machines lack, prints its figures block and writes its JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ABSENT_ON_GPU_MACHINES = ("webdataset", "albumentations", "duckdb", "pyiqa", "datasets")

PROMPTIR_STAND_IN = '''
import torch.nn as nn


class PromptIR(nn.Module):  # stand-in with PromptIR's constructor and call signature
    def __init__(self, decoder=False):
        super().__init__()
        self.decoder = decoder
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x, noise_emb=None):
        return self.conv(x) + x
'''


@pytest.mark.slow
def test_gpu_check_cpu_smoke(tiny_shards, tmp_path):
    blocked = tmp_path / "blocked"  # importing any of these fails, as on the GPU machines
    for name in ABSENT_ON_GPU_MACHINES:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is not on the GPU machine')\n")
    (tmp_path / "promptir" / "net").mkdir(parents=True)
    (tmp_path / "promptir" / "net" / "model.py").write_text(PROMPTIR_STAND_IN)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(blocked), "PYTHON": sys.executable}
    summary = tmp_path / "out" / "gpu_check.json"
    result = subprocess.run(
        [str(REPO / "scripts" / "gpu_check.sh"), "--cpu-smoke", "--shards", str(tiny_shards), "--variant", "pico",
         "--crop", "32", "--steps", "2", "--num-workers", "0", "--out", str(tmp_path / "runs"),
         "--promptir", str(tmp_path / "promptir"), "--json", str(summary)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    block = result.stdout[result.stdout.index("=== anyir gpu_check"):]
    for label in ("device", "train images/s (eager)", "train images/s (compile)", "compile warm-up",
                  "peak GPU memory", "loader wait share", "inference 64px", "PromptIR"):
        assert label in block, label
    assert "pico, 2 steps, global batch 4, crop 32" in block
    report = json.loads(summary.read_text())
    assert report["cpu_smoke"] is True and report["shards"]["encoding"]["format"] == "png"  # the tiny set
    for run in ("train_eager", "train_compiled"):
        assert report[run]["steps"] == 2 and report[run]["images_per_s_steady"] > 0
        assert 0 <= report[run]["loader_wait_share"] <= 1 and report[run]["first_step_s"] > 0
    assert report["train_compiled"]["compiled"] is True and isinstance(report["compile_warmup_s"], float)
    assert report["inference"]["anyir_images_per_s"] > 0 and report["inference"]["promptir_images_per_s"] > 0
    assert (tmp_path / "runs" / "eager" / "train_summary.json").is_file()
    assert (tmp_path / "runs" / "compiled" / "train_summary.json").is_file()
