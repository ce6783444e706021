"""The training loop in one process: run record, exact resume, NaN guard, balance hook, run-folder rules."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from anyir.data.manifest import load_manifest
from anyir.model import AnyIRConfig
from anyir.model.io import load_model, read_metadata
from anyir.train import NonFiniteLossError, RunDirError, TrainConfig, train
from anyir.train.checkpoint import latest_checkpoint
from anyir.train.run_dir import RunDir


def _cfg(shards, out, **over) -> TrainConfig:
    base = dict(shards=shards, out=out, variant="pico", steps=6, batch_size=4, crop=32, num_workers=0,
                device="cpu", progress=False, ckpt_every=3, log_every=1, seed=3, threads=1)
    return TrainConfig(**{**base, **over})


def _losses(run_dir) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {(m := json.loads(line))["step"]: m["loss"] for line in lines}


class _Killed(Exception):
    """Stands in for the process dying."""


def test_run_writes_the_record(tiny_shards, tmp_path):
    out = tmp_path / "run"
    summary = train(_cfg(tiny_shards, out, balance="uniform", steps=4))
    on_disk = RunDir(out).read_summary()
    assert on_disk == json.loads(json.dumps(summary))
    for key in ("world_size", "steps", "wall_time_s", "images_per_s", "balance", "samples_per_task", "variant",
                "model_config", "params", "recipe", "shards", "seed", "config", "code_version", "finished",
                "balance_trajectory", "loader_wait_share"):
        assert key in on_disk, key
    manifest = load_manifest(tiny_shards)
    assert on_disk["world_size"] == 1 and on_disk["steps"] == 4 and on_disk["finished"] is True
    assert sum(on_disk["samples_per_task"].values()) == 4 * 4
    assert set(on_disk["samples_per_task"]) == set(manifest.tasks("train"))
    assert on_disk["balance"]["spec"] == "uniform"
    assert on_disk["balance"]["weights"] == pytest.approx({t: 0.2 for t in manifest.tasks("train")})
    assert len(on_disk["balance_trajectory"]) == 1 and on_disk["recipe"]["hash"] == manifest.recipe_hash
    assert 0.0 <= on_disk["loader_wait_share"] <= 1.0 and on_disk["images_per_s"] > 0
    meta = read_metadata(out / "model.safetensors")
    assert (meta["variant"], meta["recipe_name"], meta["recipe_hash"]) == ("pico", manifest.recipe_name,
                                                                           manifest.recipe_hash)
    assert load_model(out / "model.safetensors").config == AnyIRConfig.from_dict(on_disk["model_config"])
    assert TrainConfig.model_validate(on_disk["config"]).steps == 4
    assert (out / "config.yaml").is_file() and (out / "command.txt").read_text().strip()
    assert latest_checkpoint(out / "checkpoints").name == "step-0000004"  # always checkpointed at the end
    assert len(_losses(out)) == 4


def test_input_error_power_reaches_the_optimised_loss(tiny_shards, tmp_path):
    plain = train(_cfg(tiny_shards, tmp_path / "plain", balance="uniform", steps=2))
    weighted = train(_cfg(tiny_shards, tmp_path / "weighted", balance="uniform", steps=2, input_error_power=0.5))
    # same seed, model and first batch: only the loss weighting differs
    assert _losses(tmp_path / "plain")[1] != _losses(tmp_path / "weighted")[1]
    assert plain["config"]["input_error_power"] == 0.0 and weighted["config"]["input_error_power"] == 0.5


def test_resume_matches_an_uninterrupted_run(tiny_shards, tmp_path):
    """Train 6 steps straight; separately train, die after step 4 (checkpoint at 3), resume: same result."""
    straight = tmp_path / "straight"
    train(_cfg(tiny_shards, straight))

    def die_after_4(step, loss, model):
        if step == 4:
            raise _Killed

    broken = tmp_path / "broken"
    with pytest.raises(_Killed):
        train(_cfg(tiny_shards, broken), on_step=die_after_4)
    assert latest_checkpoint(broken / "checkpoints").name == "step-0000003"
    summary = train(_cfg(tiny_shards, broken, resume=True))
    assert summary["resumed_from"] == "step-0000003" and summary["steps"] == 6

    a, b = _losses(straight), _losses(broken)
    assert sorted(b) == [1, 2, 3, 4, 5, 6]  # step 4 of the dead attempt was dropped and redone
    for step in range(1, 7):
        assert b[step] == pytest.approx(a[step], rel=1e-6, abs=1e-7), step
    wa = load_model(straight / "model.safetensors").state_dict()
    wb = load_model(broken / "model.safetensors").state_dict()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-5, atol=1e-6)
    assert summary["samples_per_task"] == RunDir(straight).read_summary()["samples_per_task"]


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tiny_shards, tmp_path):
    out = tmp_path / "nan"

    def poison_after_3(step, loss, model):
        if step == 3:  # corrupt the weights: the next forward gives NaN
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteLossError) as err:
        train(_cfg(tiny_shards, out), on_step=poison_after_3)
    message = str(err.value)
    assert "step 4" in message and "task mix" in message and "step-0000003" in message
    last = latest_checkpoint(out / "checkpoints")
    assert last.name == "step-0000003"
    weights = load_model(last / "model.safetensors").state_dict()
    assert all(torch.isfinite(w).all() for w in weights.values())
    summary = RunDir(out).read_summary()
    assert summary["finished"] is False and summary["steps"] == 3
    assert not (out / "model.safetensors").exists()


def test_balance_controller_changes_the_stream_weights(tiny_shards, tmp_path):
    seen: list[tuple[int, dict[str, float]]] = []

    class OnlyDenoiseLater:
        def update(self, signals):
            seen.append((signals.step, dict(signals.train_losses)))
            if signals.step == 2:
                return {"denoise": 1.0, "derain": 0.0, "dehaze": 0.0, "deblur": 0.0, "lowlight": 0.0}
            return None

    out = tmp_path / "ctl"
    summary = train(_cfg(tiny_shards, out, balance="uniform", balance_every=2, debug_log_keys=True),
                    controller=OnlyDenoiseLater())
    assert [s for s, _ in seen] == [2, 4, 6]
    assert all(v > 0 and v == v for _, losses in seen for v in losses.values())
    assert len(summary["balance_trajectory"]) == 2 and summary["balance_trajectory"][1]["step"] == 2
    late_tasks = {line.split("\t")[1] for line in (out / "keys" / "rank0.tsv").read_text().splitlines()
                  if int(line.split("\t")[0]) > 2}
    assert late_tasks == {"denoise"}
    assert set(seen[1][1]) == {"denoise"}  # losses since the change come from denoise only


def test_run_folder_is_protected(tiny_shards, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RunDirError, match="no checkpoint"):
        train(_cfg(tiny_shards, out, resume=True, steps=2))
    train(_cfg(tiny_shards, out, steps=2, ckpt_every=2))
    with pytest.raises(RunDirError, match="--resume to continue"):
        train(_cfg(tiny_shards, out, steps=2))
    train(_cfg(tiny_shards, out, steps=2, overwrite=True))
    assert RunDir(out).read_summary()["steps"] == 2


def test_cli_reports_bad_input_in_one_line(tiny_shards, tmp_path):
    from anyir.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "--fft-weight" in result.output and "Example" in result.output
    bad = runner.invoke(app, ["train", "--shards", str(tiny_shards), "--steps", "2", "--precision", "fp16"])
    assert bad.exit_code == 2 and "precision" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(app, ["train", "--shards", str(tmp_path / "none"), "--steps", "2",
                                  "--out", str(tmp_path / "r")])
    assert missing.exit_code == 2 and "manifest.json" in missing.output
    uneven = runner.invoke(app, ["train", "--shards", str(tiny_shards), "--steps", "2", "--balance", "bogus",
                                 "--out", str(tmp_path / "r2")])
    assert uneven.exit_code == 2 and "bogus" in uneven.output


def test_cli_trains_evaluates_and_logs(tiny_shards, tmp_path):
    from anyir.cli import app

    out, db = tmp_path / "cli_run", tmp_path / "lb.duckdb"
    result = CliRunner().invoke(app, [
        "train", "--shards", str(tiny_shards), "--variant", "pico", "--steps", "2", "--batch-size", "2",
        "--crop", "32", "--num-workers", "0", "--device", "cpu", "--threads", "1", "--no-progress", "--out", str(out),
        "--name", "cli-test", "--eval", "--leaderboard", str(db),
    ])
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output and "denoise" in result.output and "logged run" in result.output
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute("select name from runs where origin = 'local'").fetchall()]
    assert names == ["cli-test"]


def test_tars_read_through_a_url_prefix(tiny_shards, tmp_path):
    """Object-storage layout: manifest.json local, tar files behind a URL (here a `pipe:cat` command,
    the same mechanism as `pipe:aws s3 cp s3://bucket/{path} -`)."""
    local = tmp_path / "manifest_only"
    local.mkdir()
    (local / "manifest.json").write_bytes((tiny_shards / "manifest.json").read_bytes())
    prefix = f"pipe:cat {tiny_shards}/{{path}}"
    reference = train(_cfg(tiny_shards, tmp_path / "local", steps=3, balance="uniform"))
    remote = train(_cfg(local, tmp_path / "remote", steps=3, balance="uniform", shards_url_prefix=prefix))
    assert remote["finished"] and remote["samples_per_task"] == reference["samples_per_task"]
    assert _losses(tmp_path / "remote") == _losses(tmp_path / "local")  # same bytes, same batches
