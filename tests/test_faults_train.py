"""Faults around a training run, done for real: a swapped shard (recorded, never trained on), a failed
resume that must not touch the run folder, a second writer on a locked run folder, leftovers of a
process killed mid-checkpoint, and a disk that fills up (a real small tmpfs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from anyir.cli import app
from anyir.data.manifest import load_manifest
from anyir.data.reader import split_member_name
from anyir.train.run_dir import RunDir

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
PICO = ["--variant", "pico", "--batch-size", "4", "--crop", "32", "--device", "cpu", "--no-progress", "--seed", "1",
        "--threads", "1"]


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def tar_keys(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return {split_member_name(m.name)[0] for m in tar if m.isfile()}


def train_process(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """``python -m anyir train ARGS`` as its own process (output to ``log``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(log, "w") as sink:
        return subprocess.Popen([sys.executable, "-m", "anyir", "train", *args], cwd=cwd, env=env,
                                stdout=sink, stderr=subprocess.STDOUT)


def wait_for(condition, timeout_s: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}:\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


# ------------------------------------------------------------------ a swapped shard in a training run


def test_a_swapped_local_shard_is_recorded_and_never_trained_on(tiny_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    good, swapped = shards / "derain" / "train-000000.tar", shards / "derain" / "train-000001.tar"
    intruder = tar_keys(shards / "dehaze" / "train-000000.tar")
    shutil.copy(shards / "dehaze" / "train-000000.tar", swapped)  # another task's tar under a derain name
    lost = next(s.samples for s in load_manifest(shards).splits["train"]["derain"].shards
                if s.path == "derain/train-000001.tar")
    out, db = tmp_path / "run", tmp_path / "lb.duckdb"
    # natural balance, one full epoch (40 samples / batch 4): every shard must be opened once.
    args = ["train", "--shards", str(shards), *PICO, "--steps", "10", "--balance", "natural", "--num-workers", "0",
            "--debug-log-keys", "--out", str(out), "--eval", "--leaderboard", str(db)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 shard(s) skipped as unusable" in result.output

    summary = RunDir(out).read_summary()
    (url, reason), = summary["skipped_shards"].items()
    assert url.endswith("derain/train-000001.tar") and "the manifest" in reason
    assert summary["replaced_samples"] == lost and summary["samples_per_task"]["derain"] == 12  # replaced, not lost
    rows = [line.split("\t") for line in (out / "keys" / "rank0.tsv").read_text().splitlines()]
    trained = {(task, key) for _, task, key in rows}
    derain = {key for task, key in trained if task == "derain"}
    assert derain and not derain & intruder  # not one dehaze sample of the swapped tar trained as derain
    assert derain <= tar_keys(good)  # only samples of the good derain shard

    con = duckdb.connect(str(db), read_only=True)
    row = con.execute("SELECT skipped_shards, replaced_samples, notes FROM runs WHERE origin = 'local'").fetchone()
    con.close()
    assert row[:2] == (1, lost) and "1 training shard(s) skipped" in row[2]
    shown = runner.invoke(app, ["leaderboard", "show", "--setting", "tiny", "--format", "csv", "--db", str(db)])
    assert f"1 train shard(s) skipped, {lost} samples replaced" in shown.output

    strict = runner.invoke(app, [*args[:-5], "--out", str(tmp_path / "strict"), "--strict-shards"])
    assert strict.exit_code == 1 and "Traceback" not in strict.output
    (line,) = error_lines(strict.output)
    assert "derain/train-000001.tar" in line and "the manifest says" in line


# ------------------------------------------------------------------ a failed resume touches nothing


def test_a_failed_resume_leaves_the_run_folder_as_it_was(tiny_shards, tmp_path):
    out = tmp_path / "run"
    common = ["train", "--shards", str(tiny_shards), *PICO, "--out", str(out), "--ckpt-every", "2"]
    first = runner.invoke(app, [*common, "--steps", "4", "--num-workers", "2"])
    assert first.exit_code == 0, first.output
    before = {name: (out / name).read_bytes() for name in ("config.yaml", "command.txt", "metrics.jsonl",
                                                           "train_summary.json")}
    bad = runner.invoke(app, ["train", "--out", str(out), "--resume", "--num-workers", "1", "--steps", "6"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    (line,) = error_lines(bad.output)
    assert "cannot resume" in line and "num_workers" in line
    assert {name: (out / name).read_bytes() for name in before} == before  # config.yaml byte-identical

    good = runner.invoke(app, ["train", "--out", str(out), "--resume", "--steps", "6"])
    assert good.exit_code == 0, good.output
    summary = RunDir(out).read_summary()
    assert summary["steps"] == 6 and summary["resumed_from"] == "step-0000004"
    assert summary["config"]["num_workers"] == 2


# ------------------------------------------------------------------ two writers, one run folder


@pytest.mark.slow
def test_a_second_writer_is_refused_naming_the_holder(tiny_shards, tmp_path):
    out, log = tmp_path / "run", tmp_path / "first.log"
    args = ["--shards", str(tiny_shards), *PICO, "--num-workers", "0", "--out", str(out), "--log-every", "1",
            "--ckpt-every", "5"]
    first = train_process([*args, "--steps", "5000"], tmp_path, log)
    try:
        metrics = out / "metrics.jsonl"
        wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 2, 180,
                 "the first run to log 2 steps", first, log)
        config = (out / "config.yaml").read_bytes()
        for extra in (["--resume"], ["--overwrite"]):
            second = subprocess.run([sys.executable, "-m", "anyir", "train", *args, "--steps", "20", *extra],
                                    cwd=tmp_path, capture_output=True, text=True, timeout=180,
                                    env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
            assert second.returncode == 2, second.stderr
            assert "Traceback" not in second.stderr and second.stdout == ""
            (line,) = second.stderr.strip().splitlines()
            assert f"pid {first.pid} on host {socket.gethostname()}" in line and "in use by training" in line
        assert first.poll() is None  # still training, undisturbed
        assert (out / "config.yaml").read_bytes() == config
    finally:
        stop(first)
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1))  # one writer: no interleaved or repeated lines
    resumed = runner.invoke(app, ["train", "--out", str(out), "--resume", "--steps", "12"])
    assert resumed.exit_code == 0, resumed.output  # the lock died with its holder (SIGKILL)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; no psutil needed)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.slow
def test_ranks_end_when_the_torchrun_launcher_is_killed(tiny_shards, tmp_path):
    """SIGKILL only the torchrun launcher: its ranks end too (Linux: PR_SET_PDEATHSIG), so no orphan
    trains on holding the run folder; the checkpoints stay for a --resume."""
    from anyir.train.run_dir import RunDir

    out, log = tmp_path / "run", tmp_path / "torchrun.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    args = ["--shards", str(tiny_shards), *PICO, "--num-workers", "0", "--out", str(out), "--log-every", "1",
            "--ckpt-every", "5"]
    with open(log, "w") as sink:
        launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                     "--nproc_per_node", "2", "-m", "anyir.train", *args, "--steps", "5000"],
                                    cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    ranks: list[int] = []
    try:
        metrics = out / "metrics.jsonl"
        wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 6
                 and RunDir(out).has_checkpoint(), 180, "the ranks to train and checkpoint", launcher, log)
        ranks = _children(launcher.pid)
        holder = int((out / "run.lock").read_text().split("pid ")[1].split()[0])
        assert holder in ranks
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_running(pid) for pid in ranks):
            time.sleep(0.1)
        assert not [pid for pid in ranks if _running(pid)], "ranks kept running after their launcher died"
        run = RunDir(out)
        run.lock()  # free: nothing of the killed run holds the folder
        run.unlock()
        assert run.has_checkpoint() and not run.is_finished()
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for pid in ranks:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _running(pid: int) -> bool:
    """True while any thread of ``pid`` is alive. A killed multi-threaded process shows its main
    thread as a zombie while its other threads still exit, and those still hold its files (and
    so its flock): look at every thread, not the main one alone."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in threads:
        try:
            state = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            return True
    return False


# ------------------------------------------------------------------ leftovers of a killed process


@pytest.mark.slow
def test_a_checkpoint_left_half_written_by_a_killed_process_is_cleaned_on_the_next_start(tiny_shards, tmp_path):
    out, log = tmp_path / "run", tmp_path / "killed.log"
    proc = train_process(["--shards", str(tiny_shards), *PICO, "--num-workers", "0", "--out", str(out),
                          "--ckpt-every", "1", "--keep-checkpoints", "1", "--steps", "5000"], tmp_path, log)
    ckpts, leftover = out / "checkpoints", None
    try:
        deadline = time.monotonic() + 180
        while leftover is None and time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in ckpts.glob(".tmp-step-*")] if ckpts.is_dir() else []
            if not temps:
                continue
            os.kill(proc.pid, signal.SIGSTOP)  # freeze it mid-write, then make sure it really is mid-write
            if temps[0].exists() and (ckpts / "latest").is_file():
                leftover = temps[0]
                os.kill(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGCONT)
    finally:
        stop(proc)
    assert leftover is not None, f"never caught a checkpoint mid-write:\n{log.read_text()[-2000:]}"
    assert leftover.exists() and leftover.name.endswith(f"-{proc.pid}")
    good = (ckpts / "latest").read_text().strip()
    resumed = runner.invoke(app, ["train", "--out", str(out), "--resume", "--steps", str(int(good[5:]) + 2)])
    assert resumed.exit_code == 0, resumed.output
    assert not leftover.exists() and not list(ckpts.glob(".tmp-*"))
    assert RunDir(out).read_summary()["resumed_from"] == good


# ------------------------------------------------------------------ a full disk (real tmpfs)


@pytest.fixture
def small_disk(tmp_path):
    """Mount a tmpfs of a given size (root only); skip where mounting is not permitted."""
    mounted: list[Path] = []

    def mount(size_bytes: int) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode}); "
                        "this test needs root or CAP_SYS_ADMIN")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_disk_full_during_a_checkpoint_names_the_disk_and_the_last_good_checkpoint(tiny_shards, small_disk):
    from anyir.model import create_model

    params = sum(p.numel() for p in create_model("pico").parameters())
    checkpoint = 12 * params + 200_000  # weights + Adam's two moments, plus a margin for the rest
    disk = small_disk(int(2.5 * checkpoint))  # about two checkpoints fit, not three
    out = disk / "run"
    result = runner.invoke(app, ["train", "--shards", str(tiny_shards), *PICO, "--num-workers", "0",
                                 "--out", str(out), "--ckpt-every", "1", "--keep-checkpoints", "2", "--steps", "8"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = error_lines(result.output)
    good = (out / "checkpoints" / "latest").read_text().strip()
    failed = f"step-{int(good[5:]) + 1:07d}"
    assert f"disk full while writing checkpoint {out / 'checkpoints' / failed}" in line
    assert str(disk) in line and "MB free" in line
    assert f"the last good checkpoint is {out / 'checkpoints' / good}" in line and "--resume" in line
    assert RunDir(out).has_checkpoint() and not list((out / "checkpoints").glob(".tmp-*"))  # the half one is gone


def test_disk_full_during_a_shard_build_keeps_the_previous_set(tmp_path, small_disk):
    from conftest import tiny_recipe_dict

    from anyir.data.reader import verify_shard_set
    from anyir.data.shardset import ShardSet

    disk = small_disk(400_000)
    recipe = tiny_recipe_dict("tiny")
    small = {**recipe, "sources": recipe["sources"][:2]}  # denoise only: fits
    (tmp_path / "small.json").write_text(json.dumps(small))
    (tmp_path / "full.json").write_text(json.dumps(recipe))
    out = disk / "set"
    first = runner.invoke(app, ["shards", "build", str(tmp_path / "small.json"), "--out", str(out), "--no-progress"])
    assert first.exit_code == 0, first.output
    manifest = (out / "manifest.json").read_bytes()
    full = runner.invoke(app, ["shards", "build", str(tmp_path / "full.json"), "--out", str(out), "--no-progress"])
    assert full.exit_code == 1 and "Traceback" not in full.output
    (line,) = error_lines(full.output)
    assert "disk full while writing the shard set" in line and str(disk) in line
    assert f"the previous shard set at {out} is intact" in line and "choose another --out" in line
    assert (out / "manifest.json").read_bytes() == manifest and not verify_shard_set(ShardSet.open(out))
    assert sorted(p.name for p in disk.iterdir()) == ["set"]  # the staged build was removed
