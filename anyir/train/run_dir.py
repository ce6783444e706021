"""`RunDir`: the one owner of a run folder's files. The run folder is the record of a run.

    runs/<name>/
      config.yaml          the resolved TrainConfig (written once the run has validated its options)
      command.txt          every command line that worked on the run (a resume appends its own)
      metrics.jsonl        the training log, one JSON line per logged step
      train_summary.json   what the run did (counts per task, balance, speed, skipped shards, ...)
      model.safetensors    the final weights
      checkpoints/         step-NNNNNNN/ folders and ``latest`` (see anyir.train.checkpoint)
      keys/rank<N>.tsv     sample keys seen per rank (only with --debug-log-keys)
      results/             evaluation results, one sub-folder per evaluation (written by anyir.eval)
      restored_grid.png    degraded / restored / clean test images (anyir quickstart; anyir.eval.figures)
      run.lock             held (flock) by the process writing the run; names host and pid

Everything else (trainer, evaluation, records, sweeps, tracks, tests) asks a ``RunDir`` for paths
instead of spelling file names. A second process that tries to write a locked run folder fails
with one line naming the holder; the lock dies with its holder, even on SIGKILL.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anyir.process import pid_alive

CONFIG = "config.yaml"
COMMAND = "command.txt"
METRICS = "metrics.jsonl"
SUMMARY = "train_summary.json"
WEIGHTS = "model.safetensors"
CHECKPOINTS = "checkpoints"
KEYS = "keys"
RESULTS = "results"
LOCK = "run.lock"
GRID = "restored_grid.png"
LAUNCH_CONFIG = "launch_config.yaml"  # the config handed to torchrun's processes


class RunLockedError(RuntimeError):
    """Another process holds the run folder; the message names it (host, pid, since when)."""


def write_atomic(path: Path, text: str) -> Path:
    """Write a text file via temp + fsync + rename, so a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


class RunDir:
    """A run folder: every file's path, and the few operations on them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------ paths

    @property
    def name(self) -> str:
        """The folder name."""
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def command(self) -> Path:
        return self.path / COMMAND

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def results(self) -> Path:
        return self.path / RESULTS

    @property
    def grid(self) -> Path:
        return self.path / GRID

    @property
    def launch_config(self) -> Path:
        return self.path / LAUNCH_CONFIG

    def keys_log(self, rank: int) -> Path:
        """Per-rank ``step<TAB>task<TAB>key`` debug log."""
        return self.path / KEYS / f"rank{rank}.tsv"

    # ------------------------------------------------------------ state

    def exists(self) -> bool:
        return self.path.is_dir()

    def has_checkpoint(self) -> bool:
        """True when a complete checkpoint can be resumed from."""
        from anyir.train.checkpoint import latest_checkpoint

        return latest_checkpoint(self.checkpoints) is not None

    def is_finished(self) -> bool:
        """True when the summary says training finished and the final weights exist."""
        return self.summary.is_file() and self.weights.is_file() and bool(self.read_summary().get("finished"))

    def read_summary(self) -> dict[str, Any]:
        """``train_summary.json``; FileNotFoundError naming the file and the fix."""
        if not self.summary.is_file():
            raise FileNotFoundError(f"{self.summary}: missing; is {self.path} a finished training run folder?")
        return json.loads(self.summary.read_text(encoding="utf-8"))

    def read_config(self) -> dict[str, Any]:
        """The saved resolved config as a mapping."""
        import yaml

        return yaml.safe_load(self.config.read_text(encoding="utf-8")) or {}

    # ------------------------------------------------------------ writing

    def write_config(self, yaml_text: str) -> None:
        """Write ``config.yaml`` (call only after the options were validated against the run)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config, yaml_text)

    def write_launch_config(self, yaml_text: str) -> Path:
        """Write the config that a multi-process launch passes to every rank (``--config``)."""
        self.path.mkdir(parents=True, exist_ok=True)
        return write_atomic(self.launch_config, yaml_text)

    def append_command(self, line: str) -> None:
        """Record a command that worked on this run."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.command, "a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")

    def append_metrics(self, record: dict[str, Any]) -> None:
        """One line of the training log."""
        with open(self.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``train_summary.json`` atomically."""
        return write_atomic(self.summary, json.dumps(summary, indent=2, sort_keys=True) + "\n")

    def truncate_logs(self, step: int, rank: int, main: bool) -> None:
        """Drop log lines written after ``step`` (a resume redoes those steps)."""
        if main:
            _truncate(self.metrics, step, lambda line: json.loads(line)["step"])
        _truncate(self.keys_log(rank), step, lambda line: int(line.split("\t")[0]))

    def clear_training(self) -> None:
        """Remove a previous attempt's training outputs (config and command history stay until rewritten)."""
        for sub in (CHECKPOINTS, KEYS):
            shutil.rmtree(self.path / sub, ignore_errors=True)
        for path in (self.metrics, self.summary, self.weights):
            path.unlink(missing_ok=True)

    def clean_stale(self) -> list[Path]:
        """Remove temporary files and folders that killed processes left (``.tmp-*``, ``.old-*``)."""
        removed = []
        for pattern in (".*.tmp-*", f"{CHECKPOINTS}/.tmp-*", f"{CHECKPOINTS}/.old-*", f"{CHECKPOINTS}/.*.tmp-*",
                        f"{RESULTS}/.tmp-*", f"{RESULTS}/.old-*"):
            for path in self.path.glob(pattern):
                pid = path.name.rsplit("-", 1)[-1]
                if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
                    continue
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    # ------------------------------------------------------------ the writer's lock

    def lock(self, what: str = "training") -> None:
        """Take the run folder for this process, or raise RunLockedError naming the holder.

        An advisory ``flock`` on ``run.lock``: released by the kernel when the holder exits, however
        it exits. (On network file systems flock may be local to a node; see docs/faults.md.)
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(f"run folder {self.path} is in use by {holder}; wait for it to finish or stop it "
                                 "(e.g. ranks left running after the torchrun launcher was killed), "
                                 "or use another --out") from None
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.write(fd, f"{what} pid {os.getpid()} on host {socket.gethostname()} since {stamp}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock` (also released automatically at exit)."""
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()


def _truncate(path: Path, step: int, step_of: Callable[[str], int]) -> None:
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and step_of(line) <= step]
    write_atomic(path, "".join(line + "\n" for line in kept))


