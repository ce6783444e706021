"""One line, with the fix named, instead of a traceback: an unknown --variant, a binary file passed as
a recipe, an evaluation whose record (or leaderboard) lands on a full disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_faults_train import small_disk  # noqa: F401  (fixture)
from test_ingest import run_folder
from typer.testing import CliRunner

from anyir.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def anyir(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real command, in its own process: what a user sees on stdout and stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "anyir", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


def test_an_unknown_variant_is_one_line_listing_the_variants(tiny_shards, tmp_path):
    for args in (["train", "--shards", str(tiny_shards), "--variant", "bogus", "--steps", "1", "--out",
                  str(tmp_path / "run")], ["model", "info", "--variant", "bogus"]):
        done = anyir(*args, cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert "'bogus' is unknown" in line and "'tiny', 'small', 'nano', 'pico'" in line
        assert "anyir model list" in line
    assert not (tmp_path / "run").exists()  # nothing written for a run that cannot start


def test_a_binary_file_given_as_the_recipe_is_one_line(tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    for command in (["shards", "build", str(image), "--out", str(tmp_path / "set")],
                    ["shards", "plan", str(image)], ["mix", "plan", str(image)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        lines = [x for x in result.output.splitlines() if x.startswith("error:")]
        assert len(lines) == 1 and str(image) in lines[0] and "not a recipe (binary content" in lines[0]
        assert "shipped recipe name" in lines[0]
    assert not (tmp_path / "set").exists()


def test_a_full_disk_under_the_evaluation_record_is_one_line(tiny_shards, tmp_path, small_disk):  # noqa: F811
    disk = small_disk(64 * 1024)
    (disk / "filler").write_bytes(b"\0" * (60 * 1024))  # leave almost nothing
    run = run_folder(tmp_path, tiny_shards, "run-full")
    db = disk / "lb.duckdb"
    for target in ("input", str(run)):  # "input": the record goes beside the leaderboard, on the full disk
        result = runner.invoke(app, ["eval", "--ckpt", target, "--shards", str(tiny_shards), "--leaderboard", str(db),
                                     "--tasks", "derain", "--max-images", "1", "--no-progress"])
        if target == "input":
            assert result.exit_code == 1 and "Traceback" not in result.output, result.output
            (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
            assert "cannot write the evaluation record" in line and "No space left on device" in line
            assert not list(disk.rglob("record.json")) and not list(disk.rglob(".tmp-*"))
        else:  # the record fits in the run folder; the full leaderboard disk only defers the row
            assert result.exit_code == 0, result.output
            assert "ingest later" in result.output and len(list((run / "results").glob("*/record.json"))) == 1
