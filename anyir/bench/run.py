"""``anyir bench run``: train, evaluate and log every seed of one submission to one track; rerun to resume.

Layout: ``OUT/<track>-<track hash[:8]>/<submission id>/seed<k>/`` is the run folder of seed ``k``
and ``bench/<track>-<hash8>/<submission id>/seed<k>`` its leaderboard run id (one row per track
version, submission and seed: evaluating again replaces it). Rerunning the same command:

* a seed already in the leaderboard under the same track hash and submission id, with finished
  training, is skipped;
* a finished but unlogged seed is only evaluated and logged;
* a seed interrupted mid-training resumes from its latest checkpoint.

Shard sets are built (or reused when the recipe is unchanged) under ``SHARDS_ROOT/<recipe name>``.
On an open track the submission's training set is leak-audited against the track's test set first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyir.bench.submission import Entry, SubmissionError, check_leaks, training_balance

Notify = Callable[[str], None]


@dataclass(frozen=True)
class BenchRun:
    """One seed of one submission."""

    entry: Entry
    seed: int
    run_dir: Path

    @property
    def run_id(self) -> str:
        """The leaderboard run id."""
        return f"bench/{self.entry.track.id}-{self.entry.track_hash[:8]}/{self.entry.submission_id}/seed{self.seed}"

    @property
    def name(self) -> str:
        """The leaderboard name."""
        return f"{self.entry.track.id}-{self.entry.submission_id}-seed{self.seed}"


@dataclass(frozen=True)
class BenchSets:
    """The shard sets a submission needs: what it trains on, what the track scores it on."""

    data: Path
    eval: Path


@dataclass
class SeedOutcome:
    """What happened to one seed in this call, and its score once evaluated."""

    run: BenchRun
    status: str  # skipped | evaluated | trained
    score: float | None = None  # mean PSNR over the track's columns
    ssim: float | None = None
    columns: list[str] = field(default_factory=list)


def plan_runs(entry: Entry, seeds: int, out: Path) -> list[BenchRun]:
    """Seeds ``0..seeds-1`` of the submission, each with its run folder."""
    if seeds < 1:
        raise SubmissionError(f"--seeds {seeds}: give at least 1 (the track asks for {entry.track.seeds} "
                              "before a comparison is claimed)")
    folder = Path(out) / f"{entry.track.id}-{entry.track_hash[:8]}" / entry.submission_id
    return [BenchRun(entry, seed, folder / f"seed{seed}") for seed in range(seeds)]


def prepare_sets(entry: Entry, shards_root: Path, workers: int = 1, progress: bool = True,
                 notify: Notify = print) -> BenchSets:
    """Build or reuse the training and the evaluation shard sets; audit an open-track submission."""
    from anyir.data.recipe import load_recipe
    from anyir.pipeline import ensure_shards

    track = entry.track
    data_dir = Path(shards_root) / entry.recipe_name
    _, built = ensure_shards(entry.recipe, data_dir, workers=workers, progress=progress)
    notify(f"{'built' if built else 'reusing'} shard set {data_dir} (recipe {entry.recipe_name})")
    eval_recipe = load_recipe(track.eval.recipe)
    if eval_recipe.content_hash() == entry.recipe_hash:
        eval_dir = data_dir
    else:
        eval_dir = Path(shards_root) / eval_recipe.name
        if eval_dir == data_dir:
            eval_dir = Path(shards_root) / f"{eval_recipe.name}-eval"
        _, built = ensure_shards(track.eval.recipe, eval_dir, workers=workers, progress=progress)
        notify(f"{'built' if built else 'reusing'} evaluation shard set {eval_dir} (recipe {eval_recipe.name})")
    if track.data.rule == "open" and eval_dir != data_dir:
        report = check_leaks(data_dir, eval_dir, track.data.audit_threshold)
        notify(f"leak audit against the track's test set: clean ({report.summary()})")
    return BenchSets(data_dir, eval_dir)


def logged_run_ids(db: Path, entry: Entry) -> set[str]:
    """Run ids of this submission already in the leaderboard under the current track hash."""
    from anyir.leaderboard.store import reader
    from anyir.leaderboard.tracks import submission_run_ids

    if not Path(db).is_file():
        return set()
    with reader(db) as con:
        return submission_run_ids(con, entry.track.id, entry.track_hash, entry.submission_id)


def train_config(run: BenchRun, sets: BenchSets, balance: str, num_workers: int | None = None,
                 threads: int | None = None, progress: bool = True) -> Any:
    """The TrainConfig of one seed: the track's settings, the submission's balance, resume when a
    checkpoint is there."""
    from anyir.train.config import TrainConfig
    from anyir.train.run_dir import RunDir

    track = run.entry.track
    has_ckpt = RunDir(run.run_dir).has_checkpoint()
    options: dict[str, Any] = {**track.train_overrides(), "shards": sets.data, "balance": balance,
                               "seed": run.seed, "out": run.run_dir, "name": run.name, "resume": has_ckpt,
                               "overwrite": not has_ckpt, "ckpt_every": max(track.steps // 4, 1),
                               "progress": progress, "threads": threads}
    workers = num_workers if num_workers is not None else _preset_workers(track.preset)
    if workers is not None:
        options["num_workers"] = workers
    return TrainConfig(**{k: v for k, v in options.items() if v is not None})


def _preset_workers(preset: str | None) -> int | None:
    """Loader workers of the track's preset (the demo's: 0, the main process), else the trainer's default."""
    from anyir.pipeline import PRESETS

    return PRESETS[preset].num_workers if preset in PRESETS else None


def evaluate_run(run: BenchRun, sets: BenchSets, db: Path, device: str, progress: bool) -> SeedOutcome:
    """Score the seed on the track's test split, check the score columns are there, record and log it."""
    from anyir.leaderboard.tracks import run_score
    from anyir.pipeline import evaluate_target, log_evaluation

    track = run.entry.track
    evaluation = evaluate_target(run.run_dir, sets.eval, name=run.name, tile=track.eval.tile, device=device,
                                 progress=progress)
    frame = evaluation.report.to_frame()
    score = run_score(frame, track.eval.columns)
    if score.missing:
        raise SubmissionError(f"{run.run_dir}: the evaluation of {sets.eval} has no result column(s) "
                              f"{score.missing} that track {track.id!r} scores; check the track's eval.recipe")
    evaluation.record = evaluation.record.model_copy(update=run.entry.record_fields())
    log_evaluation(evaluation, db, run_id=run.run_id)
    return SeedOutcome(run, "evaluated", score.psnr, score.ssim, score.columns)


def run_submission(entry: Entry, seeds: int, out: Path, shards_root: Path, db: Path, *, nproc: int = 1,
                   workers: int = 1, num_workers: int | None = None, threads: int | None = None,
                   device: str = "cpu", progress: bool = True, notify: Notify = print) -> list[SeedOutcome]:
    """Train, evaluate and log each seed that is not logged yet (module docstring)."""
    from anyir.pipeline import train_processes
    from anyir.train.run_dir import RunDir

    runs = plan_runs(entry, seeds, out)
    sets = prepare_sets(entry, shards_root, workers=workers, progress=progress, notify=notify)
    from anyir.data.manifest import load_manifest

    balance = training_balance(entry, load_manifest(sets.data))
    if balance != entry.submission.balance:
        notify(f"balance {entry.submission.balance} with repeats {entry.submission.repeats} trains as {balance}")
    done = logged_run_ids(db, entry)
    outcomes = []
    for i, run in enumerate(runs, 1):
        label = f"[{i}/{len(runs)}] seed {run.seed} ({run.run_dir})"
        finished = RunDir(run.run_dir).is_finished()
        if run.run_id in done and finished:
            notify(f"{label}: already in the leaderboard, skipped")
            outcomes.append(SeedOutcome(run, "skipped"))
            continue
        trained = not finished
        if trained:
            cfg = train_config(run, sets, balance, num_workers, threads, progress)
            notify(f"{label}: {'resuming' if cfg.resume else 'training'} {cfg.variant}, {cfg.steps} steps of "
                   f"{cfg.batch_size} ({entry.track.samples_seen} samples seen)")
            train_processes(cfg, nproc)
        notify(f"{label}: evaluating on {sets.eval} and logging")
        outcome = evaluate_run(run, sets, db, device, progress)
        outcome.status = "trained" if trained else "evaluated"
        notify(f"{label}: score {outcome.score:.3f} dB PSNR (SSIM {outcome.ssim:.4f}) over {len(outcome.columns)} columns")
        outcomes.append(outcome)
    return outcomes
