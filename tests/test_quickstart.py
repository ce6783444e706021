"""`anyir quickstart` end to end on the demo recipe (few steps): shards reused, runs added, table printed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from anyir.cli import app
from anyir.leaderboard.store import reader
from anyir.pipeline import DEMO


@pytest.mark.slow
def test_quickstart_twice_reuses_shards_and_adds_a_run(tmp_path):
    args = ["quickstart", "--steps", "2", "--crop", "32", "--batch-size", "2", "--shards", str(tmp_path / "shards"),
            "--runs", str(tmp_path / "runs"), "--leaderboard", str(tmp_path / "lb.duckdb")]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "building the demo recipe" in first.output and "reusing" not in first.output
    for column in ("input", "model", "gain dB", "AnyIR-T", "PromptIR", "lowlight", "demo_s50"):
        assert column in first.output, column
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "reusing demo shards" in second.output
    with reader(tmp_path / "lb.duckdb") as con:
        names = [r[0] for r in con.execute("SELECT name FROM runs WHERE origin = 'local' ORDER BY name").fetchall()]
        paper = con.execute("SELECT count(*) FROM runs WHERE origin = 'published'").fetchone()[0]
    assert names.count("input") == 1  # the baseline is replaced, not duplicated
    assert len([n for n in names if n.startswith("quickstart-")]) == 2 and paper > 0
    assert len(list((tmp_path / "runs").glob("quickstart-*/model.safetensors"))) == 2
    # On a CPU-only machine the demo trains data-parallel, one process per core up to the preset's 2.
    summary = json.loads(next((tmp_path / "runs").glob("quickstart-*/train_summary.json")).read_text())
    assert summary["world_size"] == DEMO.launch_processes()
    assert "in 2 processes" in first.output or DEMO.launch_processes() == 1
