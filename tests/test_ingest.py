"""The run folder is the record, the DuckDB file an index: eval writes RUN/results/<id>/, `anyir
leaderboard ingest` (re)builds the index from run folders, idempotently; several real processes
evaluating while another ingests lose and duplicate nothing; a busy, damaged or shared-FS
leaderboard never loses an evaluation (it says "ingest later")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from anyir.cli import app
from anyir.eval.record import find_eval_records, read_eval_record
from anyir.leaderboard.ingest import ingest
from anyir.leaderboard.store import LeaderboardBusyError, connect, filesystem_type, on_network_filesystem

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
EVAL = ["--tasks", "derain,dehaze", "--max-images", "1", "--no-progress"]


def run_folder(root: Path, shards: Path, name: str, seed: int = 0) -> Path:
    """A finished run folder (weights + summary) as the trainer leaves it; ``seed`` makes runs distinct."""
    from anyir.data.manifest import load_manifest
    from anyir.model import create_model
    from anyir.model.io import save_model

    manifest = load_manifest(shards)
    torch.manual_seed(seed)
    model = create_model("pico")
    folder = root / name
    folder.mkdir(parents=True)
    save_model(model, folder / "model.safetensors", metadata={"recipe_name": manifest.recipe_name})
    weights = {"derain": 0.5, "dehaze": 0.5}
    summary = {"world_size": 1, "steps": 2, "balance": {"spec": "uniform", "weights": weights},
               "samples_per_task": {}, "variant": "pico", "model_config": model.config.to_dict(),
               "params": sum(p.numel() for p in model.parameters()), "seed": seed, "run_name": name,
               "recipe": {"name": manifest.recipe_name, "hash": manifest.recipe_hash}, "finished": True,
               "balance_trajectory": [{"step": 0, "weights": weights}], "skipped_shards": {}, "replaced_samples": 0}
    (folder / "train_summary.json").write_text(json.dumps(summary))
    return folder


def local_rows(db: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        local = "run_id IN (SELECT run_id FROM runs WHERE origin = 'local')"
        return {"runs": con.execute(f"SELECT run_id, name, notes FROM runs WHERE {local} ORDER BY 1").df(),
                "results": con.execute(f"SELECT run_id, task, dataset, metric, value, n FROM results WHERE {local} "
                                       "ORDER BY ALL").df(),
                "images": con.execute(f"SELECT run_id, task, dataset, key, metric, value FROM image_results "
                                      f"WHERE {local} ORDER BY ALL").df()}
    finally:
        con.close()


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}


def test_eval_records_into_the_run_folder_and_ingest_rebuilds_the_same_index(tiny_shards, tmp_path):
    db = tmp_path / "lb" / "lb.duckdb"
    run = run_folder(tmp_path / "runs", tiny_shards, "run-a")
    for target in (str(run), "input"):
        result = runner.invoke(app, ["eval", "--ckpt", target, "--shards", str(tiny_shards), "--leaderboard", str(db),
                                     *EVAL])
        assert result.exit_code == 0, result.output
    (own,) = find_eval_records([run])
    (baseline,) = find_eval_records([db.parent / "records"])  # no run folder: kept beside the index
    assert baseline.parent.parent.name == "input"
    record = read_eval_record(own)
    assert record.complete and set(record.results.task) == {"derain", "dehaze", "average"}
    assert len(record.images) == 2 * 2  # 2 tasks x 1 image x (psnr, ssim)

    rebuilt = tmp_path / "rebuilt.duckdb"
    first = ingest([tmp_path / "runs", db.parent / "records"], rebuilt)
    assert sorted(first.added) == sorted([own.name, baseline.name]) and first.unchanged == 0
    direct, again = local_rows(db), local_rows(rebuilt)
    for table in direct:
        pd.testing.assert_frame_equal(direct[table], again[table])

    second = ingest([tmp_path / "runs", db.parent / "records"], rebuilt)  # idempotent
    assert (second.added, second.updated, second.unchanged) == ([], [], 2)
    assert ingest([tmp_path / "runs"], db).unchanged == 1  # the direct log already indexed that record
    rerun = runner.invoke(app, ["eval", "--ckpt", str(run), "--shards", str(tiny_shards), "--no-log", *EVAL])
    assert rerun.exit_code == 0  # --no-log writes no record either
    assert [read_eval_record(own).digest] == [record.digest]

    result = runner.invoke(app, ["eval", "--ckpt", str(run), "--shards", str(tiny_shards), "--leaderboard",
                                 str(tmp_path / "other.duckdb"), *EVAL])
    assert result.exit_code == 0  # the same evaluation again: same run id, record replaced
    third = ingest([tmp_path / "runs"], rebuilt)
    assert third.updated == [own.name] and not third.added
    for table, frame in local_rows(rebuilt).items():
        assert len(frame) == len(again[table]), table  # replaced, not duplicated

    cli = runner.invoke(app, ["leaderboard", "ingest", str(tmp_path / "runs"), "--db", str(rebuilt)])
    assert cli.exit_code == 0 and "0 new, 0 updated, 1 unchanged" in cli.output


@pytest.mark.slow
def test_concurrent_evaluations_and_an_ingest_lose_and_duplicate_nothing(tiny_shards, tmp_path):
    db = tmp_path / "lb.duckdb"
    runs = [run_folder(tmp_path / "runs", tiny_shards, f"run-{i}", seed=i) for i in range(3)]
    env = cli_env(ANYIR_LEADERBOARD_TIMEOUT="90")
    evals = [subprocess.Popen([sys.executable, "-m", "anyir", "eval", "--ckpt", str(run), "--shards",
                               str(tiny_shards), "--leaderboard", str(db), *EVAL], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for run in runs]
    # An ingest loop over the same folders while they evaluate (the records appear under it).
    ingest_loop = ("import sys, time\nfrom anyir.leaderboard.ingest import ingest\n"
                   "for _ in range(400):\n"
                   "    ingest([sys.argv[1]], sys.argv[2])\n"
                   "    if len(list(__import__('pathlib').Path(sys.argv[1]).glob('*/results/*/record.json'))) == 3:\n"
                   "        break\n    time.sleep(0.2)\n")
    ingester = subprocess.Popen([sys.executable, "-c", ingest_loop, str(tmp_path / "runs"), str(db)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        outputs = [p.communicate(timeout=240)[0] for p in evals]
        ingest_output = ingester.communicate(timeout=240)[0]
    finally:
        for p in [*evals, ingester]:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in evals] == [0, 0, 0], outputs
    assert ingester.returncode == 0, ingest_output
    final = ingest([tmp_path / "runs"], db)
    assert final.found == 3 and not final.problems
    rows = local_rows(db)
    records = [read_eval_record(folder) for folder in find_eval_records([tmp_path / "runs"])]
    assert sorted(rows["runs"].run_id) == sorted(r.run_id for r in records) and len(set(rows["runs"].run_id)) == 3
    assert sorted(rows["runs"].name) == ["run-0", "run-1", "run-2"]
    for record in records:  # every record's rows, exactly once
        mine = rows["results"][rows["results"].run_id == record.run_id]
        assert len(mine) == len(record.results) == 6
        assert sorted(mine.value) == pytest.approx(sorted(record.results.value))
        assert (rows["images"].run_id == record.run_id).sum() == len(record.images) == 4
    assert not rows["results"].duplicated(["run_id", "task", "dataset", "metric"]).any()
    assert not rows["images"].duplicated(["run_id", "task", "dataset", "key", "metric"]).any()


def hold_lock(db: Path) -> subprocess.Popen:
    """Another process that opens the leaderboard for writing and keeps it (as a notebook would)."""
    code = ("import sys, time, duckdb\ncon = duckdb.connect(sys.argv[1])\n"
            "con.execute('CREATE TABLE IF NOT EXISTS t (a INT)')\nprint('holding', flush=True)\ntime.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_a_busy_leaderboard_says_who_holds_it_and_eval_says_ingest_later(tiny_shards, tmp_path, monkeypatch):
    db = tmp_path / "lb.duckdb"
    run = run_folder(tmp_path / "runs", tiny_shards, "run-busy")
    holder = hold_lock(db)
    try:
        monkeypatch.setenv("ANYIR_LEADERBOARD_TIMEOUT", "2.5")
        waited = runner.invoke(app, ["leaderboard", "show", "--db", str(db)])
        assert waited.exit_code == 1
        assert f"is locked by pid {holder.pid}" in waited.output and "waiting..." in waited.output
        errors = [line for line in waited.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"stayed locked by pid {holder.pid}" in errors[0]
        with pytest.raises(LeaderboardBusyError, match=f"pid {holder.pid}"):
            connect(db, timeout_s=0.5, notify=None)

        result = runner.invoke(app, ["eval", "--ckpt", str(run), "--shards", str(tiny_shards), "--leaderboard",
                                     str(db), *EVAL])
        assert result.exit_code == 0, result.output
        assert "ingest later with `anyir leaderboard ingest" in result.output and "logged run" not in result.output
        (record,) = find_eval_records([run])
        assert str(record) in " ".join(result.output.split())  # says where the results are
    finally:
        holder.kill()
        holder.wait()
    ingested = runner.invoke(app, ["leaderboard", "ingest", str(run), "--db", str(db)])
    assert ingested.exit_code == 0 and "1 new" in ingested.output
    assert list(local_rows(db)["runs"].name) == ["run-busy"]


@pytest.mark.parametrize("damage", ["garbage", "block"])
def test_a_damaged_leaderboard_is_one_line_and_ingest_rebuilds_it(tiny_shards, tmp_path, damage):
    db = tmp_path / "lb.duckdb"
    run = run_folder(tmp_path / "runs", tiny_shards, "run-x")
    args = ["--shards", str(tiny_shards), "--leaderboard", str(db), *EVAL]
    assert runner.invoke(app, ["eval", "--ckpt", str(run), *args]).exit_code == 0
    data = bytearray(db.read_bytes())
    if damage == "garbage":
        data[:] = os.urandom(len(data))  # not a DuckDB file at all
    else:
        data[8192:8192 + 4096] = os.urandom(4096)  # one damaged block: found when read
    db.write_bytes(bytes(data))

    shown = runner.invoke(app, ["leaderboard", "show", "--db", str(db)])
    assert shown.exit_code == 1 and "Traceback" not in shown.output
    (line,) = [x for x in shown.output.splitlines() if x.startswith("error:")]
    assert str(db) in line and "damaged" in line and "anyir leaderboard ingest" in line

    again = runner.invoke(app, ["eval", "--ckpt", "input", *args])  # the evaluation itself is not lost
    assert again.exit_code == 0 and "ingest later" in again.output

    db.rename(tmp_path / "lb.damaged")
    rebuilt = runner.invoke(app, ["leaderboard", "ingest", str(tmp_path / "runs"), str(tmp_path / "records"),
                                  "--db", str(db)])
    assert rebuilt.exit_code == 0 and "2 new" in rebuilt.output
    assert sorted(local_rows(db)["runs"].name) == ["input", "run-x"]


def test_network_file_systems_are_recognised_from_the_mount_table(tmp_path):
    mounts = ("/dev/sda1 / ext4 rw 0 0\n"
              "server:/export /shared nfs4 rw 0 0\n"
              "/dev/sdb1 /shared/local ext4 rw 0 0\n"
              "lustre@tcp:/fs /lus lustre rw 0 0\n")
    assert filesystem_type("/home/x/lb.duckdb", mounts) == "ext4"
    assert on_network_filesystem("/shared/lb/lb.duckdb", mounts) == "nfs4"
    assert on_network_filesystem("/shared/local/lb.duckdb", mounts) is None  # the longest mount point wins
    assert on_network_filesystem("/lus/proj/lb.duckdb", mounts) == "lustre"
    assert on_network_filesystem("/sharedx/lb.duckdb", mounts) is None
    assert filesystem_type(tmp_path / "lb.duckdb") is not None  # this machine's real mount table


def test_a_leaderboard_on_a_network_file_system_is_not_written_directly(tiny_shards, tmp_path, monkeypatch):
    import anyir.leaderboard.store as store

    db = tmp_path / "lb.duckdb"
    monkeypatch.setattr(store, "on_network_filesystem", lambda path: "nfs4")  # the mount table part is tested above
    run = run_folder(tmp_path / "runs", tiny_shards, "run-nfs")
    result = runner.invoke(app, ["eval", "--ckpt", str(run), "--shards", str(tiny_shards), "--leaderboard", str(db),
                                 *EVAL])
    assert result.exit_code == 0 and "network file system (nfs4)" in result.output and "ingest later" in result.output
    assert not db.exists() and len(find_eval_records([run])) == 1
    started = time.monotonic()
    assert ingest([run], db).added and time.monotonic() - started < 60  # ingest (on one machine) writes it


def test_a_record_left_half_written_by_a_killed_writer_is_never_ingested_and_is_cleaned(tmp_path):
    from test_leaderboard import fake_record, fake_report

    from anyir.eval.record import write_eval_record

    results = tmp_path / "run" / "results"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    half = results / f".tmp-abc-{int(dead.stdout)}"  # a writer that died before its rename
    half.mkdir(parents=True)
    (half / "record.json").write_text("{\"format\": 1, \"run_id\": \"abc\"")  # cut short
    assert find_eval_records([tmp_path]) == []
    report = ingest([tmp_path], tmp_path / "lb.duckdb")
    assert (report.found, report.problems) == (0, [])
    written = write_eval_record(results, "xyz", fake_record("r").model_dump(mode="json"), fake_report())
    assert not half.exists() and find_eval_records([tmp_path]) == [written.path]
    assert ingest([tmp_path], tmp_path / "lb.duckdb").added == ["xyz"]
    cell = write_eval_record(results, "sweep-1a2b/uniform-seed0", fake_record("c").model_dump(mode="json"),
                             fake_report())  # sweep cells: a run id with a slash
    assert cell.path.parent == results and "/" not in cell.path.name
    assert ingest([tmp_path], tmp_path / "lb.duckdb").added == ["sweep-1a2b/uniform-seed0"]
    assert ingest([tmp_path], tmp_path / "lb.duckdb").unchanged == 2
