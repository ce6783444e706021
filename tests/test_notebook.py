"""Execute notebooks/leaderboard.ipynb against a leaderboard built here (pico run + input baseline)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "leaderboard.ipynb"


def _build_leaderboard(db: Path, run_dir: Path, shards: Path) -> None:
    from test_eval_cli import make_run_dir

    from anyir.eval.evaluate import evaluate, evaluate_run_dir
    from anyir.leaderboard.records import RunRecord
    from anyir.leaderboard.store import log_run

    make_run_dir(run_dir.parent, shards, run_dir.name)
    report = evaluate_run_dir(run_dir, shards, max_images=1, progress=False)
    log_run(db, RunRecord.from_run_dir(run_dir), report)
    log_run(db, RunRecord.input_baseline(shards), evaluate(None, shards, max_images=1, progress=False))
    # Two cells of a balance sweep (same weights file, different balance labels) for the sweep section.
    tasks = sorted({row.task for row in report.rows if row.task != "average"})
    for spec, first in (("uniform", 1 / len(tasks)), ("denoise-heavy", 0.6)):
        weights = {t: first if t == tasks[0] else (1 - first) / (len(tasks) - 1) for t in tasks}
        record = RunRecord.from_run_dir(run_dir, name=f"sweep-{spec}", sweep_id="sw-notebook")
        log_run(db, record.model_copy(update={"run_id": f"sw-notebook/{spec}", "seed": 0,
                                              "balance": {"spec": spec, "weights": weights}}), report)


def _execute(tmp_path: Path, monkeypatch, db: Path) -> nbformat.NotebookNode:
    monkeypatch.setenv("ANYIR_LEADERBOARD", str(db))
    # conftest sets MPLBACKEND=Agg, which would keep figures out of the outputs; use the inline backend.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel is another process
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


@pytest.mark.slow
def test_notebook_runs_on_a_test_built_leaderboard(tmp_path, monkeypatch, tiny_shards):
    db = tmp_path / "lb.duckdb"
    _build_leaderboard(db, tmp_path / "runs" / "pico-run", tiny_shards)
    notebook = _execute(tmp_path, monkeypatch, db)
    text = _outputs(notebook)
    assert "4 local" in text and "pico-run" in text
    assert "no sweep runs yet" not in text
    images = sum(1 for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert images >= 4  # bar chart, balance scatter, restore grid, sweep panel (+ trajectory)
    assert "no local run with an existing checkpoint" not in text
    assert "no run has an `input` baseline" not in text


def test_notebook_tolerates_a_missing_database(tmp_path, monkeypatch):
    notebook = _execute(tmp_path, monkeypatch, tmp_path / "absent.duckdb")
    assert "does not exist yet" in _outputs(notebook)
