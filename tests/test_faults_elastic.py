"""Multi-node launch and elastic restarts, for real (gloo on CPU, 127.0.0.1 only):

* two torchrun "nodes" (``--nnodes 2 --nproc_per_node 1``, static rendezvous) train one run together;
* under ``torchrun --max-restarts 1`` a rank killed with SIGKILL after a checkpoint restarts the group,
  which resumes from the latest checkpoint by itself and ends with exactly the samples (per task, per
  rank, in order) of the uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anyir.train.run_dir import RunDir

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # a hang must fail the test, not block CI
STEPS = 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(shards: Path, out: Path) -> list[str]:
    return ["-m", "anyir.train", "--shards", str(shards), "--variant", "pico", "--batch-size", "4", "--crop", "32",
            "--num-workers", "0", "--device", "cpu", "--balance", "uniform", "--steps", str(STEPS),
            "--ckpt-every", "3", "--log-every", "1", "--seed", "7", "--debug-log-keys", "--no-progress",
            "--out", str(out)]


def launch(torchrun_args: list[str], args: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(log, "w") as sink:
        return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *torchrun_args, *args], cwd=cwd,
                                env=env, stdout=sink, stderr=subprocess.STDOUT)


def finish(procs: list[subprocess.Popen], logs: list[Path]) -> None:
    """Wait for every launcher; on a hang, stop them (SIGTERM reaches the ranks) and fail with the logs."""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        pytest.fail("torchrun did not finish (hang?):\n" + "\n".join(log.read_text()[-2000:] for log in logs))


@pytest.fixture(scope="module")
def two_node_run(tiny_shards, tmp_path_factory) -> Path:
    """One run trained by two torchrun launchers ("nodes" 0 and 1) over static rendezvous on 127.0.0.1."""
    root = tmp_path_factory.mktemp("two_nodes")
    out, port = root / "run", free_port()
    logs = [root / f"node{rank}.log" for rank in (0, 1)]
    procs = [launch(["--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank), "--rdzv_backend", "static",
                     "--master_addr", "127.0.0.1", "--master_port", str(port)], train_args(tiny_shards, out),
                    logs[rank], root) for rank in (0, 1)]
    finish(procs, logs)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)
    return out


@pytest.mark.slow
def test_two_torchrun_nodes_train_one_run(two_node_run):
    summary = RunDir(two_node_run).read_summary()
    assert summary["world_size"] == 2 and summary["steps"] == STEPS and summary["finished"]
    assert sum(summary["samples_per_task"].values()) == STEPS * 4
    for rank in (0, 1):  # each node's rank trained its half of every batch
        lines = (two_node_run / "keys" / f"rank{rank}.tsv").read_text().splitlines()
        assert len(lines) == STEPS * 2


@pytest.mark.slow
def test_a_killed_rank_restarts_the_group_which_resumes_and_matches_an_uninterrupted_run(
        tiny_shards, tmp_path, two_node_run):
    out, log = tmp_path / "run", tmp_path / "elastic.log"
    launcher = launch(["--standalone", "--nproc_per_node", "2", "--max-restarts", "1", "--monitor-interval", "0.2"],
                      train_args(tiny_shards, out), log, tmp_path)
    latest = out / "checkpoints" / "latest"
    deadline, killed = time.monotonic() + TIMEOUT_S, None
    try:
        while killed is None:
            assert launcher.poll() is None, f"ended before a rank could be killed:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            if latest.is_file() and latest.read_text().strip():
                text = (out / "run.lock").read_text()  # "training pid N on host H since ..."
                killed = int(text.split("pid ")[1].split()[0])
                killed_after = latest.read_text().strip()
                os.kill(killed, signal.SIGKILL)  # rank 0 dies mid-run, after a checkpoint
            time.sleep(0.02)
    finally:
        finish([launcher], [log])
    output = log.read_text()
    assert launcher.returncode == 0, output[-4000:]
    assert "torchrun restart 1: resuming" in output  # resumed by itself: no --resume was passed

    summary = RunDir(out).read_summary()
    assert summary["finished"] and summary["steps"] == STEPS
    assert summary["resumed_from"] is not None and summary["resumed_from"] >= killed_after
    assert int(summary["resumed_from"][5:]) < STEPS  # it really was killed mid-run
    reference = RunDir(two_node_run).read_summary()
    assert summary["samples_per_task"] == reference["samples_per_task"]
    for rank in (0, 1):  # the very same samples, step by step, as the uninterrupted run
        keys = (out / "keys" / f"rank{rank}.tsv").read_text()
        assert keys == (two_node_run / "keys" / f"rank{rank}.tsv").read_text(), rank
    assert not list((out / "checkpoints").glob(".tmp-*"))
