"""Two real processes under torchrun (gloo, CPU): exact mixture over ranks, no duplicates, no hang, resume."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from anyir.data.balance import epoch_counts, resolve_weights
from anyir.data.manifest import load_manifest
from anyir.train.run_dir import RunDir

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240  # generous: a hang must FAIL the test, not block CI


def _torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 -m anyir.train ARGS``; output kept in files so a hang
    that hits the timeout still shows what the ranks printed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "anyir.train", *args]
    log = tmp_path / f"torchrun-{len(list(tmp_path.glob('torchrun-*.log')))}.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True)
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # SIGTERM, not SIGKILL: torchrun forwards it to the ranks (they run in their own sessions).
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            pytest.fail(f"torchrun did not finish in {TIMEOUT_S} s (hang?); output:\n{log.read_text()[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, log.read_text(), "")


def _keys(run_dir: Path) -> list[tuple[int, int, str, str]]:
    """(rank, step, task, key) of every sample each rank trained on."""
    rows = []
    for rank in (0, 1):
        for line in (run_dir / "keys" / f"rank{rank}.tsv").read_text().splitlines():
            step, task, key = line.split("\t")
            rows.append((rank, int(step), task, key))
    return rows


@pytest.mark.slow
def test_two_process_torchrun_exact_mixture_and_resume(tiny_shards, tmp_path):
    out = tmp_path / "ddp"
    manifest = load_manifest(tiny_shards)
    counts = manifest.counts("train")
    per_epoch, batch = sum(counts.values()), 4
    steps_per_epoch = per_epoch // batch
    common = ["--shards", str(tiny_shards), "--variant", "pico", "--batch-size", str(batch), "--crop", "32",
              "--num-workers", "1", "--device", "cpu", "--balance", "uniform",
              "--samples-per-epoch", str(per_epoch), "--out", str(out), "--debug-log-keys", "--no-progress",
              "--ckpt-every", str(steps_per_epoch), "--log-every", "1", "--seed", "5"]
    # First launch stops at the end of epoch 0 (steps = one epoch); the second resumes for a few more.
    first = _torchrun([*common, "--steps", str(steps_per_epoch)], tmp_path)
    assert first.returncode == 0, first.stdout[-4000:]
    summary = RunDir(out).read_summary()
    assert summary["world_size"] == 2 and summary["steps"] == steps_per_epoch and summary["finished"]

    weights = resolve_weights("uniform", counts, manifest.repeats)
    expected = epoch_counts(weights, steps_per_epoch * batch)
    assert summary["samples_per_task"] == expected  # exact, summed over both ranks

    rows = _keys(out)
    assert Counter(r[0] for r in rows) == {0: per_epoch // 2, 1: per_epoch // 2}  # equal work per rank
    assert Counter(r[2] for r in rows) == expected
    for task, n_wanted in expected.items():
        seen = Counter(key for _, _, t, key in rows if t == task)
        available = counts[task]
        assert len(seen) == min(n_wanted, available), task  # no sample skipped while another repeats
        assert max(seen.values()) <= math.ceil(n_wanted / available), task  # no repeat beyond intended

    second = _torchrun([*common, "--resume", "--steps", str(steps_per_epoch + 3)], tmp_path)
    assert second.returncode == 0, second.stdout[-4000:]
    resumed = RunDir(out).read_summary()
    assert resumed["steps"] == steps_per_epoch + 3 and resumed["resumed_from"] == f"step-{steps_per_epoch:07d}"
    assert sum(resumed["samples_per_task"].values()) == (steps_per_epoch + 3) * batch
    later = [r for r in _keys(out) if r[1] > steps_per_epoch]
    assert len(later) == 3 * batch and Counter(r[0] for r in later) == {0: 6, 1: 6}


def test_batch_not_divisible_by_world_fails_clearly(tiny_shards, tmp_path):
    """Checked before any process group work, so a plain DistEnv of world size 2 exercises it."""
    import torch

    from anyir.data.shardset import ShardSet
    from anyir.train import TrainConfig, TrainSetupError
    from anyir.train.data import build_train_data
    from anyir.train.distributed import DistEnv

    cfg = TrainConfig(shards=tiny_shards, steps=1, batch_size=3, num_workers=0, out=tmp_path / "odd")
    env = DistEnv(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(TrainSetupError, match="batch_size=3 is not divisible by the world size 2"):
        build_train_data(cfg, env, {"denoise": 1.0}, ShardSet.open(tiny_shards))
