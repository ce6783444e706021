"""Benchmark tracks (anyir.bench) for real, on a tiny track: track files validated with one-line
errors, the track hash, submission ids, ``run_submission`` (2 seeds trained, evaluated and logged;
a rerun skips them; a finished but unlogged seed is only evaluated; a seed SIGKILLed mid-training
resumes from its checkpoint) and ``anyir leaderboard track`` (mean, spread, seeds, Welch vs the
baseline, runs under an older track hash left out)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import tiny_recipe_dict
from typer.testing import CliRunner

from anyir.bench.run import logged_run_ids, plan_runs, run_submission
from anyir.bench.submission import SubmissionError, make_entry, parse_repeats
from anyir.bench.track import TrackError, load_track
from anyir.cli import app
from anyir.train.run_dir import RunDir

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

# A track on the tiny recipe: the demo preset's settings with a pico model and a budget of 2 steps of 4.
TRACK = {
    "id": "tiny", "version": 1, "description": "tiny test track", "scale": "test", "preset": "demo",
    "model": {"variant": "pico"}, "budget": {"samples": 8}, "train": {"batch_size": 4, "crop": 32, "balance_every": 1},
    "data": {"rule": "pool", "recipe": "tiny.yaml"}, "eval": {"recipe": "tiny.yaml", "columns": "all"},
    "seeds": 3, "level": 0.95, "baseline": {"balance": "uniform"},
}


def write_track(folder: Path, name: str = "track.yaml", **changes) -> Path:
    """The tiny recipe (once) and a track file next to it; ``changes`` replace top-level keys."""
    recipe = folder / "tiny.yaml"
    if not recipe.is_file():
        recipe.write_text(yaml.safe_dump(tiny_recipe_dict()))
    path = folder / name
    path.write_text(yaml.safe_dump({**TRACK, **changes}, sort_keys=False))
    return path


def shards_root_with_tiny(tiny_shards: Path, folder: Path) -> Path:
    """A shards root holding the session's tiny set under the recipe's name (reused, not rebuilt)."""
    root = folder / "shards"
    shutil.copytree(tiny_shards, root / "tiny")
    return root


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# ---------------------------------------------------------------------- track files


@pytest.mark.parametrize("change,message", [
    ({"trian": {"batch_size": 4}}, "unknown key 'trian'"),
    ({"train": {"batch_size": 4, "bach_size": 4}}, "unknown key 'train.bach_size'"),
    ({"scale": 3}, "scale: Input should be a valid string"),
    ({"budget": {"samples": 0}}, "budget.samples: Input should be greater than 0 (got 0)"),
    ({"budget": {"samples": "lots"}}, "budget.samples: Input should be a valid integer"),
    ({"eval": {"recipe": "tiny.yaml", "columns": ["denoise"]}}, "columns must be unique 'task/dataset' names"),
    ({"eval": {"recipe": "tiny.yaml", "columns": ["derain/tiny", "derain/tiny"]}}, "columns must be unique"),
    ({"eval": {"recipe": "tiny.yaml", "columns": "some"}}, "eval.columns"),
    ({"seeds": 1}, "seeds: Input should be greater than or equal to 2"),
    ({"level": 1.5}, "level: Input should be less than 1"),
    ({"model": {"variant": "gigantic"}}, "model: Value error"),
    ({"data": {"rule": "closed", "recipe": "tiny.yaml"}}, "data.rule: Input should be 'pool' or 'open'"),
    ({"data": {"rule": "pool", "recipe": "nowhere.yaml"}}, "data.recipe: track recipe 'nowhere.yaml'"),
    ({"baseline": {"balance": "uniform", "recipe": "tiny.yaml"}}, "baseline.recipe: a pool track's submissions"),
    ({"baseline": {"balance": "bogus"}}, "baseline.balance"),
])
def test_a_bad_track_file_fails_in_one_line_naming_the_file_and_the_field(tmp_path, change, message):
    path = write_track(tmp_path, **change)
    with pytest.raises(TrackError) as err:
        load_track(path)
    text = str(err.value)
    assert text.startswith(f"track file {path}: ") and "\n" not in text
    assert message in text


def test_unreadable_or_unknown_tracks_say_what_to_pass(tmp_path):
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- id: tiny\n")
    for ref, message in [(tmp_path / "broken.yaml", "not valid YAML"), (tmp_path / "list.yaml", "a YAML mapping"),
                         (tmp_path / "missing.yaml", "does not exist; pass a track file or one of demo"),
                         ("no-such-track", "unknown; shipped tracks: demo")]:
        with pytest.raises(TrackError, match=message) as err:
            load_track(ref)
        assert "\n" not in str(err.value)
    # the CLI prints the same as one error line, no traceback
    bad = write_track(tmp_path, "bad.yaml", trian={})
    result = runner.invoke(app, ["bench", "run", str(bad), "--balance", "uniform", "--db", str(tmp_path / "lb.duckdb")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = error_lines(result.output)
    assert str(bad) in line and "unknown key 'trian'" in line


def test_the_track_hash_follows_the_content_not_the_spelling(tmp_path):
    path = write_track(tmp_path)
    track = load_track(path)
    first = track.content_hash()
    assert len(first) == 16 and load_track(path).content_hash() == first
    assert track.steps == 2 and track.samples_seen == 8 and track.train.lr == 1e-3  # the preset filled the rest
    assert track.train.input_error_power == 0.5 and track.train_overrides()["input_error_power"] == 0.5
    # comments, key order and an equal value spelled otherwise: the same track
    path.write_text("# a comment\n" + yaml.safe_dump({**TRACK, "level": "0.95"}, sort_keys=True))
    assert load_track(path).content_hash() == first
    # a changed budget, seed count, column list or preset value: a new track
    for change in ({"budget": {"samples": 12}}, {"seeds": 4},
                   {"eval": {"recipe": "tiny.yaml", "columns": ["derain/tiny", "dehaze/tiny"]}},
                   {"train": {**TRACK["train"], "lr": 2e-3}}, {"train": {**TRACK["train"], "input_error_power": 0.0}}):
        assert load_track(write_track(tmp_path, **change)).content_hash() != first, change
    # an edited recipe (the data the track names) is a new track too
    write_track(tmp_path)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**tiny_recipe_dict(), "seed": 1}))
    assert load_track(path).content_hash() != first


def test_shipped_tracks_load_and_list(tmp_path):
    result = runner.invoke(app, ["bench", "tracks", "--format", "csv"])
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(io.StringIO(result.stdout))
    assert {"demo", "small", "paper"} <= set(listed.track)
    demo = load_track("demo")
    assert listed.set_index("track").loc["demo", "hash"] == demo.content_hash()
    assert demo.data.rule == "pool" and demo.seeds >= 3 and demo.baseline.balance == "uniform"


# ---------------------------------------------------------------------- submissions


def test_the_submission_id_hashes_recipe_and_balance_whatever_their_spelling(tmp_path):
    track = load_track(write_track(tmp_path))
    sid = make_entry(track, "dro(floor=0.3, eta=2):temperature:2.0").submission_id
    assert sid.startswith("s-") and len(sid) == 14
    assert make_entry(track, "dro(eta=2,floor=0.3):temperature:2").submission_id == sid
    weights = "denoise=1,derain=2,dehaze=1,deblur=1,lowlight=1"
    assert make_entry(track, weights).submission_id == make_entry(
        track, "lowlight=1.0,deblur=1,dehaze=1,derain=2.0,denoise=1").submission_id
    others = [make_entry(track, b).submission_id for b in ("natural", "uniform", "dro:temperature:2", weights)]
    assert len({sid, *others}) == 5  # another balance, another submission
    # repeat overrides are part of the submission, in any order
    one = make_entry(track, "natural", repeats=parse_repeats(["tiny_derain_train=2,tiny_deblur_train=0.5"]))
    two = make_entry(track, "natural", repeats=parse_repeats(["tiny_deblur_train=0.5", "tiny_derain_train=2"]))
    assert one.submission_id == two.submission_id != make_entry(track, "natural").submission_id
    with pytest.raises(SubmissionError, match="SOURCE=FACTOR"):
        parse_repeats(["tiny_derain_train=0"])
    # the baseline is recognised by its id
    assert make_entry(track, "uniform").baseline and not make_entry(track, "natural").baseline
    # the recipe counts by content: the same recipe under another path is the same submission;
    # a different one is refused on a pool track
    copy = tmp_path / "copy" / "same.yaml"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "tiny.yaml", copy)
    assert make_entry(track, "natural", recipe=copy).submission_id == make_entry(track, "natural").submission_id
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**tiny_recipe_dict(), "seed": 7}))
    with pytest.raises(SubmissionError, match="is a pool track"):
        make_entry(track, "natural", recipe=other)
    with pytest.raises(SubmissionError, match="unknown strategy"):
        make_entry(track, "dro:bogus")


# ---------------------------------------------------------------------- running a submission


def test_run_submission_trains_logs_skips_and_evaluates_only_what_is_missing(tiny_shards, tmp_path):
    track_file = write_track(tmp_path)
    track = load_track(track_file)
    entry = make_entry(track, "uniform")
    shards, out, db = shards_root_with_tiny(tiny_shards, tmp_path), tmp_path / "runs", tmp_path / "lb.duckdb"
    lines: list[str] = []
    outcomes = run_submission(entry, 2, out, shards, db, threads=1, progress=False, notify=lines.append)
    assert any(line.startswith("reusing shard set") for line in lines)  # the copied set, not rebuilt
    assert [o.status for o in outcomes] == ["trained", "trained"]
    assert all(o.score > 0 and 0 < o.ssim < 1 and len(o.columns) == 7 for o in outcomes)  # 3 noise levels + 4
    for outcome in outcomes:
        summary = RunDir(outcome.run.run_dir).read_summary()
        assert summary["steps"] == track.steps and summary["config"]["seed"] == outcome.run.seed
        assert summary["config"]["variant"] == "pico" and summary["config"]["batch_size"] == 4
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT run_id, seed, track_id, track_hash, submission_id, submission FROM runs "
                           "WHERE track_id IS NOT NULL ORDER BY seed").fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (o.run.run_id, o.run.seed, "tiny", track.content_hash(), entry.submission_id) for o in outcomes]
    assert json.loads(rows[0][5])["baseline"] is True and json.loads(rows[0][5])["balance"] == "uniform"

    # rerun: both seeds are logged and finished, nothing is trained or evaluated again
    stamps = {o.run.run_id: RunDir(o.run.run_dir).summary.stat().st_mtime_ns for o in outcomes}
    again = run_submission(entry, 2, out, shards, db, threads=1, progress=False, notify=lines.append)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert {o.run.run_id: RunDir(o.run.run_dir).summary.stat().st_mtime_ns for o in again} == stamps

    # a fresh leaderboard: the finished seeds are only evaluated (same scores), not retrained
    fresh = tmp_path / "fresh.duckdb"
    evaluated = run_submission(entry, 2, out, shards, fresh, threads=1, progress=False, notify=lines.append)
    assert [o.status for o in evaluated] == ["evaluated", "evaluated"]
    assert [o.score for o in evaluated] == pytest.approx([o.score for o in outcomes])
    assert {o.run.run_id: RunDir(o.run.run_dir).summary.stat().st_mtime_ns for o in evaluated} == stamps

    # the ranking: one submission, the baseline, 2 seeds, no claim made
    result = runner.invoke(app, ["leaderboard", "track", str(track_file), "--format", "csv", "--db", str(db)])
    assert result.exit_code == 0, result.output
    (row,) = pd.read_csv(io.StringIO(result.stdout)).to_dict("records")
    scores = [o.score for o in outcomes]
    assert row["submission"] == "uniform" and row["seeds"] == 2 and row["verdict"] == "baseline"
    assert row["score"] == pytest.approx(sum(scores) / 2) and row["sd"] == pytest.approx(pd.Series(scores).std())


def _wait_for(condition, timeout_s: float, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _wait_for_unlocked(run_dir: RunDir, timeout_s: float) -> None:
    """Wait until no process holds the run folder's lock (fails when one still does after timeout_s)."""
    from anyir.train.run_dir import RunLockedError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            run_dir.lock()
        except RunLockedError as err:
            if time.monotonic() > deadline:
                pytest.fail(f"a process of the killed run is still alive: {err}")
            time.sleep(0.1)
            continue
        run_dir.unlock()
        return


@pytest.mark.slow
def test_a_seed_killed_mid_training_resumes_from_its_checkpoint(tiny_shards, tmp_path):
    track_file = write_track(tmp_path, budget={"samples": 400})  # 100 steps, a checkpoint every 25
    track = load_track(track_file)
    entry = make_entry(track, "natural")
    shards, out, db = shards_root_with_tiny(tiny_shards, tmp_path), tmp_path / "runs", tmp_path / "lb.duckdb"
    (run,) = plan_runs(entry, 1, out)
    args = ["bench", "run", str(track_file), "--balance", "natural", "--seeds", "1", "--out", str(out),
            "--shards-root", str(shards), "--db", str(db), "--threads", "1", "--no-progress"]
    log = tmp_path / "first.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "anyir", *args], cwd=tmp_path, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(lambda: RunDir(run.run_dir).has_checkpoint(), 500, proc, log, "the first checkpoint")
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: nothing of the run survives
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # Ranks under torchrun (the track's preset may train in 2 processes) end with their launcher.
    _wait_for_unlocked(RunDir(run.run_dir), 60)
    assert not RunDir(run.run_dir).is_finished(), "training finished before the kill; raise the budget"
    assert logged_run_ids(db, entry) == set()  # killed before its evaluation: nothing logged

    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert "seed 0" in resumed.output and "resuming pico" in resumed.output
    summary = RunDir(run.run_dir).read_summary()
    assert summary["steps"] == track.steps and summary["resumed_from"].startswith("step-")
    assert 0 < int(summary["resumed_from"].removeprefix("step-")) < track.steps
    steps = [json.loads(line)["step"] for line in RunDir(run.run_dir).metrics.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == track.steps  # no step logged twice after the resume
    ranked = runner.invoke(app, ["leaderboard", "track", str(track_file), "--format", "csv", "--db", str(db)])
    assert ranked.exit_code == 0, ranked.output
    (row,) = pd.read_csv(io.StringIO(ranked.stdout)).to_dict("records")
    assert row["submission"] == "natural" and row["seeds"] == 1 and row["verdict"] == "no baseline run yet"


# ---------------------------------------------------------------------- ranking a track


COLUMNS = ["derain/tiny", "dehaze/tiny"]


def log_fake_run(db: Path, entry, seed: int, score: float, track_hash: str | None = None,
                 columns: list[str] = COLUMNS, trajectory=()) -> str:
    """A logged run of ``entry`` whose score columns average to ``score`` (PSNR; SSIM = score / 40),
    plus a column outside the track's score, through the leaderboard's own write path."""
    from anyir.bench.run import BenchRun
    from anyir.leaderboard.records import RunRecord
    from anyir.leaderboard.store import transaction, write_run

    fields = entry.record_fields()
    if track_hash is not None:
        fields["track_hash"] = track_hash
    run_id = BenchRun(entry, seed, Path("unused")).run_id + ("" if track_hash is None else f"@{track_hash}")
    record = RunRecord(name=run_id, identity=run_id, seed=seed, balance_trajectory=list(trajectory), **fields)
    spread = [score - 1.0, score + 1.0] if len(columns) == 2 else [score] * len(columns)
    rows = [(c.split("/")[0], c.split("/")[1], "psnr", v) for c, v in zip(columns, spread, strict=True)]
    rows += [(c.split("/")[0], c.split("/")[1], "ssim", v / 40) for c, v in zip(columns, spread, strict=True)]
    rows += [("deblur", "tiny", "psnr", 99.0), ("deblur", "tiny", "ssim", 0.99)]  # not a score column
    results = pd.DataFrame(rows, columns=["task", "dataset", "metric", "value"]).assign(n=2, protocol="promptir")
    with transaction(db, notify=None) as con:
        write_run(con, record, run_id, results)
    return run_id


def test_leaderboard_track_ranks_with_spread_and_claims_only_what_welch_supports(tmp_path):
    from scipy import stats

    track_file = write_track(tmp_path, eval={"recipe": "tiny.yaml", "columns": COLUMNS})
    track = load_track(track_file)
    db = tmp_path / "lb.duckdb"
    scores = {
        "uniform": [20.0, 20.2, 19.9],  # the baseline
        "natural": [21.0, 21.1, 20.9],  # clearly better
        "temperature:2": [20.1, 19.8, 20.3],  # the same within the noise
        "progress": [19.0, 19.1, 18.9],  # clearly worse
        "dro(floor=0.3)": [23.0, 23.1],  # best mean, but only 2 seeds: no claim
    }
    entries = {b: make_entry(track, b) for b in scores}
    for balance, values in scores.items():
        for seed, value in enumerate(values):
            log_fake_run(db, entries[balance], seed, value)
    log_fake_run(db, entries["natural"], 3, 10.0, track_hash="0123456789abcdef")  # an older version of the track
    log_fake_run(db, entries["uniform"], 3, 50.0, columns=["derain/tiny"])  # lacks dehaze: left out

    result = runner.invoke(app, ["leaderboard", "track", str(track_file), "--format", "csv", "--db", str(db)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout)).set_index("submission")
    assert list(table.index) == ["dro(floor=0.3)", "natural", "temperature:2", "uniform", "progress"]
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    for balance, values in scores.items():
        row = table.loc[str(make_entry(track, balance).submission.balance)]
        assert row.seeds == len(values)  # the older-hash and the incomplete runs are not counted
        assert row.score == pytest.approx(sum(values) / len(values))
        assert row.sd == pytest.approx(pd.Series(values).std())
        assert row.ssim == pytest.approx(row.score / 40)
        if balance != "uniform":
            assert row.delta == pytest.approx(row.score - table.loc["uniform", "score"])
            assert row.p_value == pytest.approx(stats.ttest_ind(values, scores["uniform"], equal_var=False).pvalue)
    verdicts = table.verdict.to_dict()
    assert verdicts == {"natural": "beats baseline*", "progress": "below baseline*", "uniform": "baseline",
                        "temperature:2": "no significant difference",
                        "dro(floor=0.3)": "no claim: needs 3 seeds on both sides (has 2 and 3)"}
    assert [v for v in verdicts.values() if "*" in v] == ["beats baseline*", "below baseline*"]
    assert "left out: 1 run(s) under older versions of track tiny, 1 run(s) lacking a score column" in result.stderr

    # at --level 0.99 a '*' needs p < 0.01
    strict = runner.invoke(app, ["leaderboard", "track", str(track_file), "--format", "csv", "--db", str(db),
                                 "--level", "0.99"])
    assert strict.exit_code == 0, strict.output
    strict_table = pd.read_csv(io.StringIO(strict.stdout)).set_index("submission")
    for balance in ("natural", "progress", "temperature:2"):
        assert ("*" in strict_table.loc[balance, "verdict"]) == (table.loc[balance, "p_value"] < 0.01)

    # the per-column view marks the same comparisons column by column
    wide = runner.invoke(app, ["leaderboard", "track", str(track_file), "--per-column", "--format", "markdown",
                               "--db", str(db)])
    assert wide.exit_code == 0, wide.output
    assert "score/track" in wide.stdout and "deblur/tiny" not in wide.stdout

    # editing the track leaves every run above out of its ranking
    write_track(tmp_path, eval={"recipe": "tiny.yaml", "columns": COLUMNS}, seeds=4)
    changed = runner.invoke(app, ["leaderboard", "track", str(track_file), "--db", str(db)])
    assert changed.exit_code == 2 and "no runs under its current hash" in changed.output


# ---------------------------------------------------------------------- figures of a track


def test_track_figures_mark_the_baseline_the_seeds_and_only_significant_differences():
    from anyir.eval.track_figures import track_ranking_figure, weight_trajectories_figure

    table = pd.DataFrame([
        {"label": "natural", "score": 21.0, "sd": 0.1, "seeds": 3, "verdict": "beats baseline*"},
        {"label": "dro", "score": 20.5, "sd": 0.4, "seeds": 2, "verdict": "no claim: needs 3 seeds on both sides"},
        {"label": "uniform", "score": 20.0, "sd": 0.2, "seeds": 3, "verdict": "baseline"},
    ])
    runs = pd.DataFrame({"label": ["natural"] * 3 + ["dro"] * 2 + ["uniform"] * 3,
                         "psnr": [20.9, 21.0, 21.1, 20.2, 20.8, 19.8, 20.0, 20.2]})
    ax = track_ranking_figure(table, runs).axes[0]
    ticks = ax.get_yticklabels()
    assert [t.get_text() for t in ticks] == ["uniform (n=3)", "dro (n=2)", "natural (n=3) *"]  # best on top
    assert [t.get_fontweight() for t in ticks] == ["bold", "normal", "normal"]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [20.0, 20.0]  # the baseline's mean
    assert sorted(len(c.get_offsets()) for c in ax.collections if len(c.get_offsets()) > 1) == [2, 3, 3]
    with pytest.raises(ValueError, match="no submission"):
        track_ranking_figure(table.iloc[:0])

    trajectory = pd.DataFrame([
        {"group": "dro", "seed": s, "step": step, "task": task, "weight": w}
        for s, shift in ((0, 0.0), (1, 0.1)) for step, (a, b) in ((0, (0.5, 0.5)), (10, (0.3 - shift, 0.7 + shift)))
        for task, w in (("dehaze", a), ("derain", b))])
    fig = weight_trajectories_figure(trajectory)
    (ax,) = fig.axes
    mean = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert mean["dehaze"] == pytest.approx([0.5, 0.25]) and mean["derain"] == pytest.approx([0.5, 0.75])
    assert ax.get_title() == "dro (2 seeds)"
