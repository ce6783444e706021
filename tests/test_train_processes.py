"""``anyir.pipeline.train_processes``: the multi-process launch under the commands (quickstart, sweep, bench)."""

from __future__ import annotations

import shutil

import pytest

from anyir.pipeline import TrainPreset, TrainProcessesError, cpu_threads_per_process, train_processes
from anyir.train.run_dir import RunDir


def test_thread_share_is_at_least_one_per_process():
    assert cpu_threads_per_process(1) >= 1 and cpu_threads_per_process(10_000) == 1


def test_preset_processes_never_exceed_the_cores(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert TrainPreset(variant="pico", steps=1, batch_size=2, crop=32, lr=1e-3, processes=2).launch_processes() == 1
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert TrainPreset(variant="pico", steps=1, batch_size=2, crop=32, lr=1e-3, processes=2).launch_processes() == 2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one process drives a GPU
    assert TrainPreset(variant="pico", steps=1, batch_size=2, crop=32, lr=1e-3, processes=2).launch_processes() == 1


@pytest.mark.slow
def test_two_process_launch_trains_and_a_failed_launch_is_one_error(tiny_shards, tmp_path):
    preset = TrainPreset(variant="pico", steps=3, batch_size=4, crop=32, lr=1e-3)
    run = tmp_path / "run"
    train_processes(preset.config(tiny_shards, out=run, name="ddp", progress=False), 2)
    summary = RunDir(run).read_summary()
    assert summary["world_size"] == 2 and summary["steps"] == 3
    assert RunDir(run).launch_config.is_file()  # what the ranks read, kept with the run

    # The ranks cannot read their shards: torchrun exits non-zero, the caller gets one error naming the run.
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    cfg = preset.config(shards, out=tmp_path / "broken", name="broken", progress=False)
    shutil.rmtree(shards)
    with pytest.raises(TrainProcessesError, match=r"broken: torchrun with 2 processes exited with code \d+"):
        train_processes(cfg, 2)
