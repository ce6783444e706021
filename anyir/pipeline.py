"""The application layer: what the commands do, as plain functions over the pipeline's stages.

    ensure_shards      recipe -> shard set (built, or reused when an identical build is there)
    train_run          TrainConfig -> a finished run folder (anyir.train)
    evaluate_target    a run folder / weights file / the degraded input -> EvalReport + RunRecord
    log_evaluation     record -> leaderboard (complete reports only, unless explicitly allowed)
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
    extra: dict[str, Any] = field(default_factory=dict)

    def config(self, shards: Path, **overrides: Any):
        """A TrainConfig with these settings (``overrides`` win)."""
        from anyir.train.config import TrainConfig

        values = {"shards": shards, "variant": self.variant, "steps": self.steps, "batch_size": self.batch_size,
                  "crop": self.crop, "lr": self.lr, "warmup_steps": self.warmup_steps, "min_lr": self.min_lr,
                  "num_workers": self.num_workers, **self.extra}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig(**values)


# The demo: a non-paper `nano` model on CPU in a few minutes (docs/quickstart.md says why these values).
DEMO = TrainPreset(variant="nano", steps=700, batch_size=8, crop=64, lr=1e-3)
DEMO_RECIPE = "demo"


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


@dataclass
class Evaluation:
    """An evaluation and the leaderboard record it belongs to."""

    report: Any  # anyir.eval.report.EvalReport
    record: Any  # anyir.leaderboard.records.RunRecord
    run_id: str | None = None  # set once logged
    logged_to: Path | None = None


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


def log_evaluation(evaluation: Evaluation, leaderboard: Path | None = None, run_id: str | None = None) -> Evaluation:
    """Log to the leaderboard (``None``: the default file). Incomplete reports are logged flagged only
    when they were allowed at evaluation time; ``run_id`` forces the id (e.g. one row per sweep cell)."""
    from anyir.leaderboard.store import default_db_path, log_run

    db = Path(leaderboard) if leaderboard is not None else default_db_path()
    record = evaluation.record if run_id is None else evaluation.record.model_copy(update={"run_id": run_id})
    evaluation.run_id = log_run(db, record, evaluation.report)
    evaluation.logged_to = db
    return evaluation


def evaluate_and_log(target: str | Path, shards: Path, *, leaderboard: Path | None = None, log: bool = True,
                     run_id: str | None = None, **evaluate_options: Any) -> Evaluation:
    """:func:`evaluate_target`, then :func:`log_evaluation` (unless ``log=False``)."""
    evaluation = evaluate_target(target, shards, **evaluate_options)
    return log_evaluation(evaluation, leaderboard, run_id) if log else evaluation
