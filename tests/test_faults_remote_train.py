"""A whole training run over HTTP (`--shards-url-prefix http://127.0.0.1:PORT`), with the adaptive
balance and `--eval`, while the server is stopped mid-run and restarted 3+ s later: the run retries,
says so, skips nothing and logs its evaluation. The folder given as --shards holds only manifest.json,
so every byte it trained and scored on came over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from test_reader_remote import free_port, manifest_only

from anyir.train.run_dir import RunDir

REPO = Path(__file__).resolve().parents[1]


def http_server(directory: Path, port: int, log: Path) -> subprocess.Popen:
    """``python -m http.server`` as its own process (request log in ``log``), ready when it answers."""
    import socket

    sink = open(log, "a")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(directory)], stdout=sink, stderr=subprocess.STDOUT)
    sink.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("http.server did not start")


@pytest.mark.slow
def test_training_over_http_with_adaptive_balance_and_eval_survives_an_outage(tiny_shards, tmp_path):
    port, served = free_port(), tmp_path / "served.log"
    shards = manifest_only(tiny_shards, tmp_path)
    out, db, log = tmp_path / "run", tmp_path / "lb.duckdb", tmp_path / "train.log"
    (tmp_path / "cfg.yaml").write_text("balance_every: 4\n")
    args = ["--config", str(tmp_path / "cfg.yaml"), "--shards", str(shards),
            "--shards-url-prefix", f"http://127.0.0.1:{port}", "--balance", "adaptive", "--variant", "pico",
            "--steps", "12", "--batch-size", "4", "--crop", "32", "--num-workers", "0", "--threads", "1",
            "--device", "cpu", "--log-every", "1", "--no-progress", "--out", str(out), "--eval",
            "--leaderboard", str(db)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    servers = [http_server(tiny_shards, port, served)]
    with open(log, "w") as sink:
        train = subprocess.Popen([sys.executable, "-m", "anyir", "train", *args], cwd=tmp_path, env=env,
                                 stdout=sink, stderr=subprocess.STDOUT)
    try:
        metrics, deadline = out / "metrics.jsonl", time.monotonic() + 240
        while not (metrics.is_file() and metrics.read_text().strip()):
            assert train.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        servers[0].kill()  # the outage starts after the first training step
        servers[0].wait()
        down_at = time.monotonic()
        # Keep it down for at least 3 s and until the run has noticed (the evaluation's test shards at
        # the latest must come over HTTP), then bring it back on the same port.
        while time.monotonic() - down_at < 3.0 or "retrying in" not in log.read_text():
            assert train.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        outage_s = time.monotonic() - down_at
        servers.append(http_server(tiny_shards, port, served))
        train.wait(timeout=300)
    finally:
        for proc in [train, *servers]:
            if proc.poll() is None:
                proc.kill()
    output = log.read_text()
    assert train.returncode == 0, output[-4000:]
    assert outage_s >= 3.0 and "ShardRetryWarning" in output and "retrying in" in output
    summary = RunDir(out).read_summary()
    assert summary["finished"] and summary["steps"] == 12
    assert summary["skipped_shards"] == {} and summary["replaced_samples"] == 0  # retried, not skipped
    assert summary["balance"]["spec"] == "adaptive" and len(summary["balance_trajectory"]) > 1

    requests = served.read_text()
    for task in ("denoise", "derain", "dehaze", "deblur", "lowlight"):  # train (stream + adaptive) and test (eval)
        assert f"GET /{task}/train-000000.tar" in requests and f"GET /{task}/test-000000.tar" in requests
    con = duckdb.connect(str(db), read_only=True)
    (n_runs,), (n_cells,) = (con.execute("SELECT count(*) FROM runs WHERE origin = 'local'").fetchone(),
                             con.execute("SELECT count(*) FROM results JOIN runs USING (run_id) "
                                         "WHERE origin = 'local' AND metric = 'psnr'").fetchone())
    con.close()
    assert n_runs == 1 and n_cells == 8  # 7 columns (denoise has 3 sigmas) + the average
    assert len(list((out / "results").glob("*/record.json"))) == 1


def test_eval_over_http_scores_what_the_local_set_scores(tiny_shards, tmp_path):
    """`anyir eval --shards-url-prefix` scores the same numbers as the local set (the one reader)."""
    from typer.testing import CliRunner

    from anyir.cli import app

    port, served = free_port(), tmp_path / "served.log"
    server = http_server(tiny_shards, port, served)
    runner = CliRunner()
    try:
        common = ["eval", "--ckpt", "input", "--tasks", "derain,lowlight", "--no-progress", "--no-log"]
        remote = runner.invoke(app, [*common, "--shards", str(manifest_only(tiny_shards, tmp_path)),
                                     "--shards-url-prefix", f"http://127.0.0.1:{port}/{{path}}"])
        local = runner.invoke(app, [*common, "--shards", str(tiny_shards)])
    finally:
        server.kill()
        server.wait()
    assert remote.exit_code == 0 and local.exit_code == 0, remote.output
    table = lambda text: [line for line in text.splitlines() if line.startswith("│") and "tiny" in line]  # noqa: E731
    assert table(remote.output) == table(local.output) and len(table(local.output)) == 3
    assert "GET /derain/test-000000.tar" in served.read_text()
