"""Execute notebooks/leaderboard.ipynb: after a real quickstart (as `make demo` + README), on a
test-built leaderboard with a sweep, and without any database."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "leaderboard.ipynb"
NOTHING_TO_SHOW = "no local run with an existing checkpoint and shard set"


def _execute(notebook_dir: Path, monkeypatch, db: Path | None) -> nbformat.NotebookNode:
    """Run the notebook with ``notebook_dir`` as its working directory (the kernel inherits our env)."""
    if db is None:
        monkeypatch.delenv("ANYIR_LEADERBOARD", raising=False)  # the notebook's default path
    else:
        monkeypatch.setenv("ANYIR_LEADERBOARD", str(db))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel is another process on a small machine
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook_dir)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    return notebook


def _text(cell: nbformat.NotebookNode) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", []))


def _images(cell: nbformat.NotebookNode) -> int:
    return sum(1 for o in cell.get("outputs", []) if "image/png" in o.get("data", {}))


def _cell(notebook: nbformat.NotebookNode, marker: str) -> nbformat.NotebookNode:
    """The code cell whose source contains ``marker``."""
    return next(c for c in notebook.cells if c.cell_type == "code" and marker in c.source)


def _all_text(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(_text(c) for c in notebook.cells)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_notebook_shows_restored_images_after_a_real_quickstart(tmp_path, monkeypatch):
    # As `make demo` does: relative paths, run from the project folder (here tmp_path).
    command = [sys.executable, "-m", "anyir", "quickstart", "--steps", "20", "--crop", "32", "--batch-size", "2",
               "--shards", "shards/demo", "--runs", "runs", "--leaderboard", "leaderboard/leaderboard.duckdb"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ANYIR_LEADERBOARD", None)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = re.search(r"^grid +(\S+restored_grid\.png)", done.stdout, re.MULTILINE)
    assert printed, done.stdout[-3000:]
    grid = tmp_path / printed.group(1)
    assert grid.parent.parent == tmp_path / "runs" and (grid.parent / "model.safetensors").is_file()
    with Image.open(grid) as image:
        assert image.format == "PNG" and image.height > 2 * image.width  # 7 rows (5 tasks, 3 sigmas) of 3

    # As the README says: open the notebook from notebooks/ (a copy here), default leaderboard path.
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(NOTEBOOK, notebooks)
    notebook = _execute(notebooks, monkeypatch, db=None)
    text = _all_text(notebook)
    assert NOTHING_TO_SHOW not in text and "does not exist yet" not in text
    first_picture = next(c for c in notebook.cells if _images(c))
    assert first_picture is _cell(notebook, "gain_figure(")  # the gain over the input comes first
    grid_cell = _cell(notebook, "restoration_figure(")
    assert _images(grid_cell) == 1
    checked = re.search(r"(\d+) of (\d+) titles checked against image_results: largest PSNR difference (\S+) dB",
                        _text(grid_cell))
    assert checked and checked.group(1) == checked.group(2) == "7" and float(checked.group(3)) < 1e-4
    assert _images(_cell(notebook, "balance_figure(")) == 1


def _build_leaderboard(db: Path, run_dir: Path, shards: Path) -> None:
    """A pico run, the input baseline, and a balance sweep: uniform, denoise-heavy (two seeds), adaptive
    (weights that moved from uniform to denoise-heavy)."""
    from test_eval_cli import make_run_dir

    from anyir.eval.evaluate import evaluate, evaluate_run_dir
    from anyir.leaderboard.records import RunRecord
    from anyir.leaderboard.store import log_run

    make_run_dir(run_dir.parent, shards, run_dir.name)
    report = evaluate_run_dir(run_dir, shards, max_images=1, progress=False)
    log_run(db, RunRecord.from_run_dir(run_dir), report)
    log_run(db, RunRecord.input_baseline(shards), evaluate(None, shards, max_images=1, progress=False))
    tasks = sorted({row.task for row in report.rows if row.task != "average"})
    for spec, first, seed in (("uniform", 1 / len(tasks), 0), ("denoise-heavy", 0.6, 0), ("denoise-heavy", 0.6, 1)):
        weights = {t: first if t == tasks[0] else (1 - first) / (len(tasks) - 1) for t in tasks}
        record = RunRecord.from_run_dir(run_dir, name=f"sweep-{spec}-{seed}", sweep_id="sw-notebook")
        log_run(db, record.model_copy(update={"run_id": f"sw-notebook/{spec}/{seed}", "seed": seed,
                                              "balance": {"spec": spec, "weights": weights}}), report)
    uniform = {t: 1 / len(tasks) for t in tasks}
    record = RunRecord.from_run_dir(run_dir, name="sweep-adaptive-0", sweep_id="sw-notebook")
    log_run(db, record.model_copy(update={"run_id": "sw-notebook/adaptive/0", "seed": 0,
                                          "balance": {"spec": "adaptive", "weights": weights},
                                          "balance_trajectory": [(0, uniform), (10, weights)]}), report)


@pytest.mark.slow
def test_notebook_draws_sweeps_and_several_runs(tmp_path, monkeypatch, tiny_shards):
    db = tmp_path / "lb.duckdb"
    _build_leaderboard(db, tmp_path / "runs" / "pico-run", tiny_shards)
    notebook = _execute(NOTEBOOK.parent, monkeypatch, db)  # cwd: the real notebooks folder, not tmp_path
    text = _all_text(notebook)
    assert "6 local" in text and "pico-run" in text
    assert NOTHING_TO_SHOW not in text and "no sweep runs yet" not in text
    assert "no run has an `input` baseline" not in text
    gains = _cell(notebook, "gain_figure(")
    assert _images(gains) == 1 and "sweep-denoise-heavy-1" in _text(gains)  # several runs side by side
    assert _images(_cell(notebook, "restoration_figure(")) == 1
    balance = _cell(notebook, "balance_figure(")
    assert _images(balance) == 1 and "every task has one weight" not in _text(balance)
    assert _images(_cell(notebook, "aggregate_sweep(")) == 1
    trajectories = _cell(notebook, "moving = trajectory")
    assert _images(trajectories) == 1 and "no run changed its weights" not in _text(trajectories)


def test_notebook_tolerates_a_missing_database(tmp_path, monkeypatch):
    notebook = _execute(NOTEBOOK.parent, monkeypatch, tmp_path / "absent.duckdb")
    text = _all_text(notebook)
    assert "does not exist yet" in text and NOTHING_TO_SHOW in text
    tracks = _text(_cell(notebook, "track_ranking_figure("))
    assert tracks.strip() == ("note: no benchmark track runs yet; run `anyir bench run demo --balance uniform` "
                              "(docs/tracks.md)")
    assert sum(_images(c) for c in notebook.cells) == 0


def test_notebook_ranks_a_track_with_error_bars_and_draws_adaptive_weights(tmp_path, monkeypatch):
    from test_bench import COLUMNS, log_fake_run, write_track

    from anyir.bench.submission import make_entry
    from anyir.bench.track import load_track

    track = load_track(write_track(tmp_path, eval={"recipe": "tiny.yaml", "columns": COLUMNS}))
    db = tmp_path / "lb.duckdb"
    start, moved = {"derain": 0.5, "dehaze": 0.5}, {"derain": 0.3, "dehaze": 0.7}
    for balance, scores in {"uniform": [20.0, 20.2, 19.9], "natural": [21.0, 21.1, 20.9],
                            "dro(floor=0.3)": [20.5, 20.0, 20.9]}.items():
        entry = make_entry(track, balance)
        adaptive = entry.submission.balance.startswith("dro")
        for seed, score in enumerate(scores):
            log_fake_run(db, entry, seed, score, trajectory=[(0, start), (5, moved)] if adaptive else [(0, start)])
    notebook = _execute(NOTEBOOK.parent, monkeypatch, db)
    cell = _cell(notebook, "track_ranking_figure(")
    text = _text(cell)
    assert _images(cell) == 2  # the ranking, the dro submission's weights
    assert "beats baseline*" in text and "no significant difference" in text and "note:" not in text
