"""The application layer: what the commands do, as plain functions over the pipeline's stages.

    ensure_shards      recipe -> shard set (built, or reused when an identical build is there)
    train_run          TrainConfig -> a finished run folder (anyir.train)
    train_processes    the same in one process or under torchrun with N processes
    evaluate_target    a run folder / weights file / the degraded input -> EvalReport + RunRecord
    log_evaluation     record -> the run folder's results/, then the leaderboard index (complete
                       reports only, unless explicitly allowed; "ingest later" when the index is busy)
    evaluate_and_log   the two above, which every command that evaluates goes through
    DEMO               the demo's settings, shared by ``anyir quickstart`` and the demo benchmark track

Commands in :mod:`anyir.cli` parse options, call these, and print. This module may import every
stage (it sits on top of the chain recipe -> shards -> stream -> train -> eval -> leaderboard);
no stage imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyir.data.manifest import Manifest

INPUT_TARGET = "input"


# ---------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class TrainPreset:
    """Training settings that belong together (the demo's, a track's)."""

    variant: str
    steps: int
    batch_size: int
    crop: int
    lr: float
    warmup_steps: int = 0
    min_lr: float = 0.0
    num_workers: int = 0
    processes: int = 1  # data-parallel processes on a CPU-only machine (one process drives a GPU)
    extra: dict[str, Any] = field(default_factory=dict)

    def config(self, shards: Path, **overrides: Any):
        """A TrainConfig with these settings (``overrides`` win)."""
        from anyir.train.config import TrainConfig

        values = {"shards": shards, "variant": self.variant, "steps": self.steps, "batch_size": self.batch_size,
                  "crop": self.crop, "lr": self.lr, "warmup_steps": self.warmup_steps, "min_lr": self.min_lr,
                  "num_workers": self.num_workers, **self.extra}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig(**values)

    def launch_processes(self) -> int:
        """How many processes to train with here: ``processes`` on a CPU-only machine (at most one
        per core), 1 when a GPU is present."""
        import os

        import torch

        if torch.cuda.is_available():
            return 1
        return max(1, min(self.processes, os.cpu_count() or 1))


# The demo: a non-paper `nano` model on CPU in a few minutes (docs/quickstart.md says why these values).
DEMO = TrainPreset(variant="nano", steps=800, batch_size=8, crop=64, lr=1e-3, processes=2,
                   extra={"input_error_power": 0.5})
DEMO_RECIPE = "demo"
PRESETS = {"demo": DEMO}  # named presets that track files may name (``preset: demo``)


# ---------------------------------------------------------------------------- stages


def ensure_shards(recipe: str | Path, out: Path, data_root: Path | None = None, workers: int = 1,
                  progress: bool = True, on_scan: Callable | None = None) -> tuple[Manifest, bool]:
    """(manifest, built): build ``recipe`` into ``out`` unless a set of the same recipe hash is there."""
    from anyir.data.build import build_shards
    from anyir.data.manifest import ManifestError, load_manifest
    from anyir.data.recipe import load_recipe

    loaded = load_recipe(recipe, data_root)
    try:
        manifest = load_manifest(out)
        if manifest.recipe_hash == loaded.content_hash():
            return manifest, False
    except ManifestError:
        pass
    return build_shards(loaded, out, workers=workers, progress=progress, on_scan=on_scan), True


def train_run(cfg) -> dict[str, Any]:
    """Train (one process, or this rank under torchrun); returns the training summary."""
    from anyir.train.trainer import train

    return train(cfg)


class TrainProcessesError(RuntimeError):
    """A multi-process training launch exited non-zero (the ranks printed why above it)."""


def cpu_threads_per_process(nproc: int) -> int:
    """CPU threads for each of ``nproc`` processes on this machine (at least 1)."""
    import os

    return max(1, (os.cpu_count() or 1) // max(nproc, 1))


def train_processes(cfg, nproc: int) -> None:
    """Train ``cfg`` in this process (``nproc <= 1``) or in ``nproc`` processes under ``torchrun
    --standalone`` (the resolved config goes to ``RunDir.launch_config`` for them). Each process
    gets ``cfg.threads`` CPU threads, else an equal share of the cores: two 2-thread processes on
    2 cores slow each other down many times over (OpenMP threads spin while they wait)."""
    import os
    import subprocess
    import sys

    from anyir.train.run_dir import RunDir

    if nproc <= 1:
        train_run(cfg)
        return
    cfg_file = RunDir(cfg.run_dir).write_launch_config(cfg.to_yaml())
    threads = cfg.threads or cpu_threads_per_process(nproc)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "anyir", "train", "--config", str(cfg_file)]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if done.returncode != 0:
        raise TrainProcessesError(f"{cfg.run_dir}: torchrun with {nproc} processes exited with code "
                                  f"{done.returncode} (the ranks' errors are above); rerun with --resume to "
                                  "continue from the latest checkpoint")


@dataclass
class Evaluation:
    """An evaluation and the leaderboard record it belongs to."""

    report: Any  # anyir.eval.report.EvalReport
    record: Any  # anyir.leaderboard.records.RunRecord
    run_id: str | None = None  # set once logged
    logged_to: Path | None = None  # the leaderboard file, when the row went in directly
    written: Any = None  # anyir.eval.record.EvalRecord: the record folder, once written
    deferred: str | None = None  # why the leaderboard was not written now ("ingest later" line)

    @property
    def record_path(self) -> Path | None:
        """``RUN/results/<run id>``: the evaluation's own record (written before any leaderboard row)."""
        return None if self.written is None else self.written.path


def evaluate_target(target: str | Path, shards: Path, *, name: str | None = None, sweep_id: str | None = None,
                    tasks: Iterable[str] | None = None, split: str = "test", tile: int | None = None,
                    overlap: int = 32, device: str = "cpu", max_images: int | None = None,
                    extra_metrics: Iterable[str] = (), progress: bool = True, allow_incomplete: bool = False,
                    url_prefix: str | None = None) -> Evaluation:
    """Evaluate ``target``: a run folder, a ``.safetensors`` file, or ``"input"`` (the degraded input)."""
    from anyir.data.shardset import ShardSet
    from anyir.eval.checkpoint import load_checkpoint, resolve_checkpoint
    from anyir.eval.evaluate import evaluate
    from anyir.leaderboard.records import RunRecord
    from anyir.train.run_dir import RunDir

    shard_set = ShardSet.open(shards, url_prefix)
    if str(target) == INPUT_TARGET:
        record, model = RunRecord.input_baseline(shard_set.manifest), None
    else:
        path = Path(target)
        model = load_checkpoint(path, device=device)
        if path.is_dir() and RunDir(path).summary.is_file():
            record = RunRecord.from_run_dir(path, name=name, sweep_id=sweep_id)
        else:
            record = RunRecord.from_checkpoint(resolve_checkpoint(path), name=name)
        if record.params is None:
            record.params = sum(p.numel() for p in model.parameters())
    if name is not None:
        record.name = name
    report = evaluate(model, shard_set, tasks=tasks, split=split, tile=tile, overlap=overlap, device=device,
                      max_images=max_images, extra_metrics=extra_metrics, progress=progress,
                      allow_incomplete=allow_incomplete)
    _fill_macs(record, model)
    return Evaluation(report, record)


def _fill_macs(record, model) -> None:
    """MACs at 224x224 when the run summary did not record them (best effort; FFTs counted apart)."""
    if model is None or record.macs is not None:
        return
    try:
        from anyir.model.complexity import complexity_report

        record.macs = int(complexity_report(model, size=224)["macs_224"])
    except Exception:  # a missing count must not lose the evaluation
        record.macs = None


# How long logging an evaluation waits for a busy leaderboard before it leaves the row to an ingest.
LOG_WAIT_S = 30.0


def record_root(evaluation: Evaluation, leaderboard: Path) -> Path:
    """Where an evaluation's record folder goes: ``RUN/results/`` of the run folder it scored, or for
    targets without one (the ``input`` baseline, a bare weights file) ``records/<name>/results/`` beside
    the leaderboard file (so ``anyir leaderboard ingest`` can rebuild those rows too)."""
    from anyir.train.run_dir import RunDir

    if evaluation.record.run_dir:
        return RunDir(evaluation.record.run_dir).results
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in evaluation.record.name) or "run"
    return leaderboard.parent / "records" / safe / "results"


def record_evaluation(evaluation: Evaluation, leaderboard: Path | None = None, run_id: str | None = None,
                      notify: Callable[[str], None] | None = None) -> Evaluation:
    """Write the evaluation's record folder (see :mod:`anyir.eval.record`); sets ``run_id`` and ``written``.

    A run folder that cannot be written (read-only, someone else's) gets its record beside the
    leaderboard file instead, and ``notify`` says so.
    """
    import errno

    from anyir.eval.record import write_eval_record
    from anyir.leaderboard.store import default_db_path

    db = Path(leaderboard) if leaderboard is not None else default_db_path()
    record = evaluation.record if run_id is None else evaluation.record.model_copy(update={"run_id": run_id})
    evaluation.record, evaluation.run_id = record, record.resolve_run_id(evaluation.report.signature())
    fields, root = record.model_dump(mode="json"), record_root(evaluation, db)
    try:
        evaluation.written = write_eval_record(root, evaluation.run_id, fields, evaluation.report)
    except OSError as err:
        if not record.run_dir or err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        elsewhere = db.parent / "records" / Path(record.run_dir).name / "results"
        evaluation.written = write_eval_record(elsewhere, evaluation.run_id, fields, evaluation.report)
        (notify or _stderr_line)(f"cannot write {root} ({err.strerror}); the evaluation record is in "
                                 f"{evaluation.written.path} instead")
    return evaluation


def log_evaluation(evaluation: Evaluation, leaderboard: Path | None = None, run_id: str | None = None,
                   wait_s: float | None = None, notify: Callable[[str], None] | None = None) -> Evaluation:
    """Record the evaluation in its run folder, then index it in the leaderboard (``None``: the default file).

    The run folder is the record; the leaderboard row is an index entry. When the leaderboard file is
    on a network file system, stays locked for longer than ``wait_s`` (default: 30 s, or
    ``$ANYIR_LEADERBOARD_TIMEOUT``), or cannot be opened, this still succeeds: ``deferred`` says why
    and ``notify`` (default: stderr) prints "written to RUN/results/ID; ingest later with ...".
    Incomplete reports get here only when they were allowed at evaluation time (they are flagged);
    ``run_id`` forces the id (e.g. one row per sweep cell).
    """
    from anyir.leaderboard.store import (
        TIMEOUT_ENV_VAR,
        LeaderboardError,
        default_db_path,
        default_timeout_s,
        log_records,
        on_network_filesystem,
    )

    db = Path(leaderboard) if leaderboard is not None else default_db_path()
    notify = notify or _stderr_line
    record_evaluation(evaluation, db, run_id, notify)
    network = on_network_filesystem(db)
    if network:
        evaluation.deferred = (f"leaderboard {db} is on a network file system ({network}), where DuckDB's lock does "
                               "not protect it across machines")
    else:
        import os

        wait = default_timeout_s() if os.environ.get(TIMEOUT_ENV_VAR) else LOG_WAIT_S
        try:
            log_records(db, [evaluation.written], timeout_s=wait if wait_s is None else wait_s, notify=notify)
            evaluation.logged_to = db
        except LeaderboardError as err:
            evaluation.deferred = str(err)
    if evaluation.deferred:
        folder = evaluation.record_path.parent.parent
        notify(f"{evaluation.deferred}; the results are written to {evaluation.record_path}; "
               f"ingest later with `anyir leaderboard ingest {folder} --db {db}`")
    return evaluation


def _stderr_line(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def evaluate_and_log(target: str | Path, shards: Path, *, leaderboard: Path | None = None, log: bool = True,
                     run_id: str | None = None, **evaluate_options: Any) -> Evaluation:
    """:func:`evaluate_target`, then :func:`log_evaluation` (unless ``log=False``)."""
    evaluation = evaluate_target(target, shards, **evaluate_options)
    return log_evaluation(evaluation, leaderboard, run_id) if log else evaluation
