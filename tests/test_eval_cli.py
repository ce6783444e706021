"""`anyir eval` end to end on the tiny shard set (pico weights), and its error handling."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from anyir.cli import app
from anyir.leaderboard.queries import gains_over_input
from anyir.leaderboard.store import reader

runner = CliRunner()


def make_run_dir(root: Path, shards: Path, name: str = "pico-run") -> Path:
    """A run directory as the trainer writes it: weights + train_summary.json (contract keys)."""
    from anyir.data.manifest import load_manifest
    from anyir.model import create_model
    from anyir.model.io import save_model

    manifest = load_manifest(shards)
    recipe = {"name": manifest.recipe_name, "hash": manifest.recipe_hash}

    torch.manual_seed(0)
    model = create_model("pico")
    run_dir = root / name
    run_dir.mkdir(parents=True)
    save_model(model, run_dir / "model.safetensors", metadata={"recipe_name": recipe["name"],
                                                                     "recipe_hash": recipe["hash"]})
    weights = {"denoise": 0.4, "derain": 0.3, "dehaze": 0.1, "deblur": 0.1, "lowlight": 0.1}
    summary = {"world_size": 1, "steps": 2, "wall_time_s": 1.0, "images_per_s": 8.0,
               "balance": {"spec": "uniform", "weights": weights}, "samples_per_task": {}, "variant": "pico",
               "model_config": model.config.to_dict(), "params": sum(p.numel() for p in model.parameters()),
               "recipe": recipe, "shards": str(shards), "seed": 0, "config": {"steps": 2},
               "code_version": "test", "finished": True, "balance_trajectory": [{"step": 0, "weights": weights}]}
    (run_dir / "train_summary.json").write_text(json.dumps(summary))
    return run_dir


def test_eval_logs_a_run_and_the_input_baseline(tmp_path, tiny_shards):
    db = tmp_path / "lb.duckdb"
    run_dir = make_run_dir(tmp_path, tiny_shards)
    common = ["--shards", str(tiny_shards), "--leaderboard", str(db), "--no-progress", "--max-images", "1"]
    result = runner.invoke(app, ["eval", "--ckpt", str(run_dir), "--tasks", "derain,denoise", *common])
    assert result.exit_code == 0, result.output
    assert "derain" in result.output and "logged run pico-run" in result.output
    baseline = runner.invoke(app, ["eval", "--ckpt", "input", "--tasks", "derain,denoise", *common])
    assert baseline.exit_code == 0, baseline.output
    with reader(db) as con:
        runs = con.execute("SELECT name, variant, params, macs, checkpoint FROM runs WHERE origin = 'local' "
                           "ORDER BY name").fetchall()
        trajectory = con.execute("SELECT count(*) FROM balance_trajectory").fetchone()[0]
    assert [r[:2] for r in runs] == [("input", "input"), ("pico-run", "pico")]
    assert runs[1][2] > 0 and runs[1][3] > 0 and Path(runs[1][4]).is_file()
    assert trajectory == 5
    with reader(db) as con:
        gains = gains_over_input(con)
    assert set(gains["name"]) == {"pico-run"} and set(gains["task"]) == {"derain", "denoise", "average"}


def test_eval_no_log_writes_nothing(tmp_path, tiny_shards):
    db = tmp_path / "lb.duckdb"
    result = runner.invoke(app, ["eval", "--ckpt", "input", "--shards", str(tiny_shards), "--tasks", "dehaze",
                                 "--leaderboard", str(db), "--no-log", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "dehaze" in result.output and not db.exists()


def test_eval_bad_input_is_one_line_and_exit_2(tmp_path, tiny_shards):
    missing = runner.invoke(app, ["eval", "--ckpt", str(tmp_path / "nope"), "--shards", str(tiny_shards)])
    assert missing.exit_code == 2 and "no such file or directory" in missing.output
    bad_task = runner.invoke(app, ["eval", "--ckpt", "input", "--shards", str(tiny_shards), "--tasks", "desnow",
                                   "--no-log"])
    assert bad_task.exit_code == 2 and "desnow" in bad_task.output and "Traceback" not in bad_task.output


def test_leaderboard_cli_show_compare_export(tmp_path, tiny_shards):
    db = tmp_path / "lb.duckdb"
    run_dir = make_run_dir(tmp_path, tiny_shards)
    common = ["--shards", str(tiny_shards), "--leaderboard", str(db), "--no-progress", "--tasks", "derain",
              "--max-images", "1"]
    assert runner.invoke(app, ["eval", "--ckpt", str(run_dir), *common]).exit_code == 0
    assert runner.invoke(app, ["eval", "--ckpt", "input", *common]).exit_code == 0
    shown = runner.invoke(app, ["leaderboard", "show", "--setting", "aio3", "--format", "markdown", "--db", str(db)])
    assert shown.exit_code == 0 and "| AnyIR-T |" in shown.output and "31.70/.982" in shown.output
    csv = runner.invoke(app, ["leaderboard", "show", "--setting", "tiny", "--format", "csv", "--db", str(db)])
    assert csv.exit_code == 0 and "derain/tiny psnr" in csv.output and "pico-run" in csv.output
    compared = runner.invoke(app, ["leaderboard", "compare", "input", "pico-run", "--format", "csv", "--db", str(db)])
    assert compared.exit_code == 0 and "delta pico-run" in compared.output
    out = tmp_path / "export"
    exported = runner.invoke(app, ["leaderboard", "export", "--parquet", str(out), "--db", str(db)])
    assert exported.exit_code == 0 and (out / "results.parquet").is_file()
    with reader(db) as con:
        published = con.execute("SELECT run_id FROM runs WHERE name = 'AnyIR-T' AND setting = 'aio3'").fetchone()[0]
    versus = runner.invoke(app, ["leaderboard", "compare", published, "pico-run", "--db", str(db)])
    assert versus.exit_code == 0, versus.output  # disjoint columns: missing cells print as '-'
    assert "38.51" in versus.output and "rain100l" in versus.output
    unknown = runner.invoke(app, ["leaderboard", "compare", "input", "ghost", "--db", str(db)])
    assert unknown.exit_code == 2 and "ghost" in unknown.output
