"""DuckDB leaderboard: published rows, idempotent logging, compare, export, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import os

import duckdb
import pytest

from anyir.eval.report import EvalReport, ImageResult, aggregate
from anyir.leaderboard.published import load_published_csv
from anyir.leaderboard.queries import (
    compare_runs,
    export_parquet,
    format_cells,
    gains_over_input,
    paper_table,
)
from anyir.leaderboard.records import RunRecord
from anyir.leaderboard.store import log_run, reader

SEED_PAPER = "seed paper"


def fake_report(offset: float = 0.0, recipe: str = "demo", images: int = 3) -> EvalReport:
    """A small report without running a model: two tasks, three images each."""
    rows = []
    for i in range(images):
        for task, dataset, base in (("derain", "demo", 30.0), ("denoise", "demo_s25", 28.0)):
            rows.append(ImageResult(task, dataset, f"{task}-{i}", "psnr", base + offset + i))
            rows.append(ImageResult(task, dataset, f"{task}-{i}", "ssim", 0.8 + offset / 100))
    return EvalReport(rows=aggregate(rows, {"psnr": "promptir", "ssim": "promptir"}, recipe), images=rows,
                      split="test", tasks=["denoise", "derain"], recipe_name=recipe, recipe_hash="h" + recipe,
                      shard_dir="/nowhere", protocol="promptir", metrics=["psnr", "ssim"])


def fake_record(name: str, identity: str | None = None, weights: dict | None = None) -> RunRecord:
    weights = weights or {"derain": 0.5, "denoise": 0.5}
    return RunRecord(name=name, identity=identity or name, variant="pico", params=1000, recipe_name="demo",
                     recipe_hash="hdemo", setting="demo", balance={"spec": "explicit", "weights": weights},
                     config={"steps": 3}, world_size=1, steps=3,
                     balance_trajectory=[(0, weights), (3, weights)])


def count(db, sql: str, params=()) -> int:
    with reader(db) as con:
        return con.execute(sql, list(params)).fetchone()[0]


def test_published_csv_holds_the_seed_tables_and_anchors():
    frame = load_published_csv()
    seed = frame[frame["citation"].str.contains(SEED_PAPER)]
    per_table = seed.groupby(seed["citation"].str[-7:]).size().to_dict()
    # Every method row: 15 x 12 values (DA-CLIP has no average), 16 x 12, 8 x 24 (WeatherDiff: no haze_snow).
    assert per_table == {"Table 1": 178, "Table 2": 192, "Table 3": 190}
    weatherdiff = seed[seed.method == "WeatherDiff"].set_index(["task", "metric"])["value"]
    assert weatherdiff[("average", "psnr")] == 22.49 and weatherdiff[("average", "ssim")] == 0.799
    assert "haze_snow" not in set(weatherdiff.index.get_level_values("task"))  # the blank cell of Table 3
    assert seed.groupby(seed["citation"].str[-7:])["method"].nunique().to_dict() == {
        "Table 1": 15, "Table 2": 16, "Table 3": 8}
    anyir_t = seed[(seed.method == "AnyIR-T") & (seed.task == "average")].set_index(["setting", "metric"])["value"]
    assert anyir_t[("aio3", "psnr")] == 32.80 and anyir_t[("aio5", "psnr")] == 30.71
    assert anyir_t[("cdd11", "psnr")] == 29.40 and anyir_t[("cdd11", "ssim")] == 0.886
    unverified = frame[frame.verified == "false"]
    assert set(unverified.method) == {"PromptIR", "MoCE-IR"}  # docs/leaderboard-published.md: secondary compilation only
    cdd_input = frame[(frame.method == "Input") & (frame.setting == "cdd11")]
    assert len(cdd_input) == 13 and set(cdd_input.verified) == {"true"}
    assert set(frame.setting) == {"aio3", "aio5", "cdd11"}


def test_published_rows_load_once(tmp_path):
    db = tmp_path / "lb.duckdb"
    n_csv = len(load_published_csv())
    assert count(db, "SELECT count(*) FROM results") == n_csv  # loaded on first use
    assert count(db, "SELECT count(*) FROM results") == n_csv  # not again
    log_run(db, fake_record("a"), fake_report())
    assert count(db, "SELECT count(*) FROM runs WHERE origin = 'published'") == 58
    with reader(db) as con:
        cells = format_cells(paper_table(con, "aio3"))
    row = cells[cells.name == "PromptIR"].iloc[0]
    assert row["derain/rain100l"] == "36.37/.972" and row["average/aio3"] == "32.06/.913"


def test_logging_twice_replaces_instead_of_duplicating(tmp_path):
    db = tmp_path / "lb.duckdb"
    first = log_run(db, fake_record("run-a"), fake_report())
    again = log_run(db, fake_record("run-a"), fake_report(offset=1.0))
    assert first == again
    assert count(db, "SELECT count(*) FROM runs WHERE origin = 'local'") == 1
    assert count(db, "SELECT count(*) FROM results WHERE run_id = ?", [first]) == 6  # 2 cols + avg, x2 metrics
    assert count(db, "SELECT count(*) FROM image_results WHERE run_id = ?", [first]) == 12
    assert count(db, "SELECT count(*) FROM balance_trajectory WHERE run_id = ?", [first]) == 4
    with reader(db) as con:
        value = con.execute("SELECT value FROM results WHERE run_id = ? AND task = 'derain' AND metric = 'psnr'",
                            [first]).fetchone()[0]
    assert value == pytest.approx(32.0)  # the second log's values (base 30 + 1 + mean(0, 1, 2))
    other_protocol = fake_report()
    other_protocol.tile = 64
    assert log_run(db, fake_record("run-a"), other_protocol) != first  # a different evaluation: new run


def test_compare_gives_per_task_deltas_and_gains_over_input(tmp_path):
    db = tmp_path / "lb.duckdb"
    base = RunRecord(name="input", identity="input:hdemo", variant="input", recipe_name="demo",
                     recipe_hash="hdemo", setting="demo")
    log_run(db, base, fake_report(offset=-5.0))
    log_run(db, fake_record("better"), fake_report(offset=2.0))
    with reader(db) as con:
        frame = compare_runs(con, ["input", "better"])
        gains = gains_over_input(con)
    derain = frame[(frame.task == "derain") & (frame.metric == "psnr")].iloc[0]
    assert derain["delta better"] == pytest.approx(7.0)
    assert list(frame.columns[:5]) == ["task", "dataset", "metric", "input", "better"]
    psnr_gain = gains[(gains.task == "derain") & (gains.metric == "psnr")]["gain_over_input"]
    assert psnr_gain.tolist() == pytest.approx([7.0])
    with reader(db) as con, pytest.raises(KeyError, match="no run with that id or name"):
        compare_runs(con, ["input", "missing"])


def test_export_parquet_is_readable_by_duckdb(tmp_path):
    db = tmp_path / "lb.duckdb"
    run_id = log_run(db, fake_record("x"), fake_report())
    with reader(db) as con:
        paths = export_parquet(con, tmp_path / "export")
    assert sorted(p.name for p in paths) == ["balance_trajectory.parquet", "image_results.parquet",
                                            "results.parquet", "runs.parquet"]
    con = duckdb.connect()
    n = con.execute("SELECT count(*) FROM read_parquet(?) WHERE run_id = ?",
                    [str(tmp_path / "export" / "image_results.parquet"), run_id]).fetchone()[0]
    assert n == 12
    names = con.execute("SELECT name FROM read_parquet(?) WHERE origin = 'local'",
                        [str(tmp_path / "export" / "runs.parquet")]).fetchall()
    assert names == [("x",)]


def _writer(db: str, worker: int, runs: int) -> None:
    """Child process: log ``runs`` own runs plus one run every worker shares; read after each write."""
    for i in range(runs):
        log_run(db, fake_record(f"w{worker}-r{i}"), fake_report(offset=i), timeout_s=120)
        with reader(db) as con:
            con.execute("SELECT count(*) FROM results").fetchone()
    log_run(db, fake_record("shared"), fake_report(offset=worker), timeout_s=120)


@pytest.mark.slow
def test_concurrent_writers_lose_nothing_and_duplicate_nothing(tmp_path):
    db = str(tmp_path / "lb.duckdb")
    ctx = mp.get_context("spawn")
    workers, runs = 4, 5
    procs = [ctx.Process(target=_writer, args=(db, w, runs)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * workers
    local = workers * runs + 1
    assert count(db, "SELECT count(*) FROM runs WHERE origin = 'local'") == local
    assert count(db, "SELECT count(DISTINCT name) FROM runs WHERE origin = 'local'") == local
    assert count(db, "SELECT count(*) FROM results r JOIN runs USING (run_id) WHERE origin = 'local'") == local * 6
    assert count(db, "SELECT count(*) FROM image_results") == local * 12
    assert count(db, "SELECT count(*) FROM balance_trajectory") == local * 4
    assert count(db, "SELECT count(*) FROM (SELECT run_id, task, dataset, metric FROM results "
                     "GROUP BY ALL HAVING count(*) > 1)") == 0
    assert count(db, "SELECT count(*) FROM runs WHERE origin = 'published'") == 58  # loaded exactly once


def test_db_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYIR_LEADERBOARD", str(tmp_path / "env.duckdb"))
    run_id = log_run(None, fake_record("env"), fake_report())
    assert os.path.isfile(tmp_path / "env.duckdb")
    assert count(None, "SELECT count(*) FROM runs WHERE run_id = ?", [run_id]) == 1
