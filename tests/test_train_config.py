"""TrainConfig validation, the loss, the schedule and atomic checkpoints (no training loop here)."""

from __future__ import annotations

import math

import pytest
import torch

from anyir.train.checkpoint import (
    LATEST,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from anyir.train.config import ConfigError, TrainConfig, load_config
from anyir.train.losses import input_error_weights, per_sample_loss, task_loss_sums
from anyir.train.schedule import lr_factor


def _write(tmp_path, text):
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return path


def test_defaults_follow_the_paper_protocol():
    cfg = TrainConfig(shards="s", steps=10)
    assert (cfg.batch_size, cfg.crop, cfg.lr, cfg.betas) == (32, 128, 2e-4, (0.9, 0.999))
    assert cfg.fft_weight == 0.1 and cfg.warmup_steps == 0 and cfg.min_lr == 0.0
    assert cfg.run_dir.as_posix() == "runs/tiny-seed0"


def test_yaml_scientific_notation_and_cli_overrides(tmp_path):
    # YAML 1.1 reads 2e-4 as the *string* "2e-4": it must still become the float.
    path = _write(tmp_path, "shards: s\nsteps: 5\nlr: 3e-4\nbetas: [0.8, 0.99]\nablation: {fusion: false}\n")
    cfg = load_config(path, {"steps": 7, "lr": None})
    assert cfg.lr == pytest.approx(3e-4) and isinstance(cfg.lr, float)
    assert cfg.steps == 7 and cfg.betas == (0.8, 0.99) and cfg.ablation == {"fusion": False}
    again = load_config(_write(tmp_path, cfg.to_yaml()))
    assert again == cfg  # the saved config.yaml loads back to the same config


@pytest.mark.parametrize(
    "text, needle",
    [
        ("shards: s\nsteps: 5\nlearning_rate: 1e-3\n", "unknown option 'learning_rate'"),
        ("shards: s\nsteps: 5\nlr: fast\n", "option 'lr'"),
        ("shards: s\nsteps: five\n", "option 'steps'"),
        ("shards: s\nsteps: true\n", "option 'steps'"),
        ("shards: s\nsteps: 5\nlr: yes\n", "option 'lr'"),
        ("shards: s\n", "set exactly one of steps / epochs"),
        ("shards: s\nsteps: 5\nepochs: 2\n", "set exactly one of steps / epochs"),
        ("shards: s\nsteps: 5\nprecision: fp16\n", "option 'precision'"),
        ("shards: s\nsteps: 5\nablation: {fusoin: false}\n", "known ablation fields"),
        ("shards: s\nsteps: 5\nablation: {split: diagonal}\n", "split"),
        ("shards: s\nsteps: 5\nleaderboard: lb.duckdb\n", "needs eval=true"),
        ("- a\n- b\n", "must hold a mapping"),
    ],
)
def test_bad_config_fails_with_the_key_and_file(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value)
    if "mapping" not in needle:
        assert str(path) in str(err.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_loss_is_l1_plus_weighted_fft_l1():
    torch.manual_seed(0)
    pred, target = torch.rand(3, 3, 8, 10), torch.rand(3, 3, 8, 10)
    got = per_sample_loss(pred, target, fft_weight=0.1)
    spatial = (pred - target).abs().mean(dim=(1, 2, 3))
    diff = torch.fft.rfft2(pred) - torch.fft.rfft2(target)
    frequency = torch.cat([diff.real.abs(), diff.imag.abs()], dim=1).mean(dim=(1, 2, 3))
    torch.testing.assert_close(got, spatial + 0.1 * frequency)
    torch.testing.assert_close(per_sample_loss(pred, target, 0.0), spatial)
    assert per_sample_loss(target, target, 0.1).abs().max() == 0


def test_input_error_weights_favour_mildly_degraded_inputs():
    gt = torch.full((3, 3, 4, 4), 0.5)
    lq = gt.clone()
    lq[1] += 0.04  # a mild degradation (error 0.04)
    lq[2] -= 0.3  # a heavy one (error 0.3)
    w = input_error_weights(lq, gt, power=0.5)
    torch.testing.assert_close(w, torch.tensor([5.0, 0.1 / 0.06, 0.1 / 0.32]) ** 0.5)
    assert w[0] > w[1] > w[2]
    assert input_error_weights(lq, gt, power=0.0).tolist() == [1.0, 1.0, 1.0]  # off: the paper's loss
    assert TrainConfig(shards="s", steps=1).input_error_power == 0.0


def test_task_loss_sums_split_by_task():
    sums, counts = task_loss_sums(torch.tensor([1.0, 2.0, 4.0]), ["b", "a", "b"], {"a": 0, "b": 1})
    assert sums.tolist() == [2.0, 5.0] and counts.tolist() == [1.0, 2.0]


def test_schedule_warmup_then_cosine_to_min():
    assert [lr_factor(s, 10, 2, 0.0) for s in (0, 1)] == [0.5, 1.0]
    assert lr_factor(2, 10, 2, 0.0) == 1.0
    assert lr_factor(6, 10, 2, 0.0) == pytest.approx(0.5)
    assert lr_factor(10, 10, 2, 0.1) == pytest.approx(0.1)
    values = [lr_factor(s, 100, 0, 0.0) for s in range(100)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False)) and values[0] == 1.0
    assert math.isclose(values[50], 0.5)


def test_checkpoint_is_atomic_pruned_and_round_trips(tmp_path):
    from anyir.model import create_model

    model = create_model("pico")
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
        save_checkpoint(root, step, model, {"step": step, "x": torch.arange(3)}, {"variant": "pico"}, keep=2)
    assert sorted(p.name for p in root.iterdir()) == [LATEST, "step-0000002", "step-0000003"]
    assert latest_checkpoint(root).name == "step-0000003"
    fresh = create_model("pico")
    state = load_checkpoint(latest_checkpoint(root), fresh)
    assert state["step"] == 3 and state["x"].tolist() == [0, 1, 2]
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # A crash mid-write leaves a temp folder behind, never a half checkpoint under the real name.
    (root / ".tmp-step-0000004-123").mkdir()
    assert latest_checkpoint(root).name == "step-0000003"


def test_rng_state_round_trip():
    import random

    import numpy as np

    saved = rng_state()
    first = (torch.rand(2).tolist(), np.random.rand(), random.random())
    set_rng_state(saved)
    assert (torch.rand(2).tolist(), np.random.rand(), random.random()) == first
