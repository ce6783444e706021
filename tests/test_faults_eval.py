"""Faults at evaluation time: a damaged test shard makes `anyir eval` fail with one line and write
nothing (no leaderboard row, no record folder); --allow-incomplete logs a flagged row that
`anyir leaderboard show` displays with the images scored."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from test_eval_cli import make_run_dir
from typer.testing import CliRunner

from anyir.cli import app

runner = CliRunner()


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def damaged_copy(tiny_shards: Path, tmp_path: Path, how: str) -> tuple[Path, str]:
    """A copy of the shard set whose derain test tar has garbage over the header of its second member
    (``how="header"``) or lost its second half (``how="truncate"``)."""
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    tar_path = shards / "derain" / "test-000000.tar"
    data = bytearray(tar_path.read_bytes())
    if how == "header":
        with tarfile.open(tar_path) as tar:
            second = tar.getmembers()[1]
        data[second.offset:second.offset + 512] = os.urandom(512)
    else:
        data = data[: len(data) // 2]
    tar_path.write_bytes(bytes(data))
    return shards, "derain/test-000000.tar"


@pytest.mark.parametrize("how", ["header", "truncate"])
def test_a_damaged_test_shard_fails_eval_with_one_line_and_writes_nothing(tiny_shards, tmp_path, how):
    shards, bad = damaged_copy(tiny_shards, tmp_path, how)
    run_dir = make_run_dir(tmp_path, shards)
    db = tmp_path / "lb" / "lb.duckdb"
    for target in (str(run_dir), "input"):
        result = runner.invoke(app, ["eval", "--ckpt", target, "--shards", str(shards), "--leaderboard", str(db),
                                     "--tasks", "derain,dehaze", "--no-progress"])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and not isinstance(result.exception, (ValueError, OSError))
        lines = error_lines(result.output)
        assert len(lines) == 1 and bad in lines[0] and "nothing was logged" in lines[0], result.output
        assert "--allow-incomplete" in lines[0]
    assert not db.exists() and not (db.parent / "records").exists()  # no row, no record
    assert not (run_dir / "results").exists()


def test_allow_incomplete_logs_a_flagged_row_that_show_displays_with_n(tiny_shards, tmp_path):
    shards, bad = damaged_copy(tiny_shards, tmp_path, "header")
    run_dir = make_run_dir(tmp_path, shards)
    db = tmp_path / "lb.duckdb"
    result = runner.invoke(app, ["eval", "--ckpt", str(run_dir), "--shards", str(shards), "--leaderboard", str(db),
                                 "--tasks", "derain,dehaze", "--no-progress", "--allow-incomplete"])
    assert result.exit_code == 0, result.output
    assert "INCOMPLETE" in result.output and bad in result.output  # the table title says so
    (record,) = (run_dir / "results").glob("*/record.json")
    info = json.loads(record.read_text())["eval"]
    assert info["complete"] is False and info["expected"] == {"derain": 2, "dehaze": 2}
    assert info["scored"] == {"dehaze": 2} and any(bad in p for p in info["problems"])

    shown = runner.invoke(app, ["leaderboard", "show", "--setting", "tiny", "--format", "csv", "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.output.splitlines() if ",pico-run," in line)
    assert "INCOMPLETE eval: derain n=0/2" in row
    table = runner.invoke(app, ["leaderboard", "show", "--setting", "tiny", "--db", str(db)])
    assert table.exit_code == 0 and "INCOMPLETE" in table.output and "n=0/2" in table.output

    complete = runner.invoke(app, ["eval", "--ckpt", "input", "--shards", str(tiny_shards), "--leaderboard", str(db),
                                   "--tasks", "dehaze", "--no-progress"])
    assert complete.exit_code == 0, complete.output
    csv = runner.invoke(app, ["leaderboard", "show", "--setting", "tiny", "--format", "csv", "--db", str(db)]).output
    input_row = next(line for line in csv.splitlines() if ",input," in line)
    assert "INCOMPLETE" not in input_row  # only the flagged run carries the flag
