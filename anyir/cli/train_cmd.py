"""``anyir train``: parse options into a TrainConfig, train, then optionally evaluate and log.

The same command runs in one process and under torchrun (DDP)::

    anyir train --shards shards/demo --variant nano --steps 300 --batch-size 8 --crop 64 --out runs/demo
    torchrun --nproc_per_node 2 -m anyir train --shards shards/demo --variant nano --steps 300 --out runs/ddp

``--eval`` / ``--leaderboard`` run here, on rank 0 after training, because the trainer library must
not import evaluation or the leaderboard (data flows one way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from anyir.cli.common import err_console, fail, is_main_process, print_report


def _parse_ablation(items: list[str] | None) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs -> dict, values read as YAML scalars (``false``, ``0.5``, ``[0.5,0.5,0]``)."""
    if not items:
        return None
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE, e.g. --ablation fusion=false", param_hint="--ablation")
        out[key.strip()] = yaml.safe_load(value)
    return out


def train_command(
    config: Path | None = typer.Option(None, "--config", help="YAML file of TrainConfig options; flags override it."),
    shards: Path | None = typer.Option(None, "--shards", help="Shard set folder (holds manifest.json)."),
    shards_url_prefix: str | None = typer.Option(None, "--shards-url-prefix", help="Read the tar files from here instead of beside manifest.json; '{path}' is replaced by each shard's manifest path, e.g. 'pipe:aws s3 cp s3://bucket/shards/aio3/{path} -'."),
    strict_shards: bool | None = typer.Option(None, "--strict-shards", help="Fail the run on a shard that does not match the manifest, instead of skipping it (skips are recorded in train_summary.json and the leaderboard)."),
    variant: str | None = typer.Option(None, "--variant", help="Model variant: tiny, small (paper), nano, pico (non-paper). Default tiny."),
    ablation: list[str] | None = typer.Option(None, "--ablation", help="Model ablation switch KEY=VALUE (repeatable), e.g. fusion=false, lambda_mode=spatial."),
    steps: int | None = typer.Option(None, "--steps", help="Optimizer steps (set --steps or --epochs)."),
    epochs: float | None = typer.Option(None, "--epochs", help="Epochs of the stream (paper: 120 for 3 tasks, 130 for 5)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="GLOBAL batch size, split evenly over ranks. Default 32 (paper)."),
    crop: int | None = typer.Option(None, "--crop", help="Square training crop in pixels. Default 128 (paper)."),
    balance: str | None = typer.Option(None, "--balance", help="Task balance: natural, uniform, temperature:T, promptir, task=w,task=w, or adaptive[:base] (weights follow the per-task unrestored fraction; see README). Default: the shard set's."),
    samples_per_epoch: int | None = typer.Option(None, "--samples-per-epoch", help="Samples per epoch over all ranks. Default: the stream's (all samples x repeats)."),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate. Default 2e-4 (paper)."),
    min_lr: float | None = typer.Option(None, "--min-lr", help="Learning rate at the end of the cosine decay. Default 0."),
    warmup_steps: int | None = typer.Option(None, "--warmup-steps", help="Linear warm-up steps before the cosine. Default 0."),
    weight_decay: float | None = typer.Option(None, "--weight-decay", help="Adam weight decay. Default 0."),
    fft_weight: float | None = typer.Option(None, "--fft-weight", help="Weight of the Fourier-domain L1 term. Default 0.1 (MoCE-IR)."),
    input_error_power: float | None = typer.Option(None, "--input-error-power", help="Weight each sample's loss by (0.1 / (input error + 0.02)) ** P. Default 0: the paper's loss (the demo uses 0.5)."),
    grad_clip: float | None = typer.Option(None, "--grad-clip", help="Clip the global gradient norm to this value. Default off."),
    precision: str | None = typer.Option(None, "--precision", help="auto (bf16 autocast on CUDA, fp32 on CPU), bf16 or fp32."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads. Default: $OMP_NUM_THREADS, else cores minus --num-workers (min 1)."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda. Under torchrun each rank uses cuda:LOCAL_RANK."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of model init, sample order, crops and noise. Default 0."),
    out: Path | None = typer.Option(None, "--out", help="Run folder. Default runs/<name>."),
    name: str | None = typer.Option(None, "--name", help="Run name (also the leaderboard name). Default <variant>-seed<seed>."),
    resume: bool | None = typer.Option(None, "--resume", help="Continue the run in --out from its latest checkpoint (uses its config.yaml unless --config is given)."),
    overwrite: bool | None = typer.Option(None, "--overwrite", help="Start over in a run folder that already has checkpoints."),
    ckpt_every: int | None = typer.Option(None, "--ckpt-every", help="Checkpoint every N steps (always at the end too). Default 1000."),
    keep_checkpoints: int | None = typer.Option(None, "--keep-checkpoints", help="Keep this many recent checkpoints. Default 2."),
    log_every: int | None = typer.Option(None, "--log-every", help="Steps between metrics.jsonl lines. Default 10."),
    num_workers: int | None = typer.Option(None, "--num-workers", help="DataLoader worker processes per rank; each makes a slice of every batch (at most the per-rank batch size run). Default 2."),
    channels_last: bool | None = typer.Option(None, "--channels-last", help="Use the channels_last memory format."),
    compile_model: bool | None = typer.Option(None, "--compile", help="torch.compile the model."),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="Show the progress bar (rank 0)."),
    debug_log_keys: bool | None = typer.Option(None, "--debug-log-keys", help="Write the sample keys each rank saw to RUN_DIR/keys/rank<N>.tsv."),
    eval_after: bool | None = typer.Option(None, "--eval", help="Evaluate the final model on the shard set's test split (rank 0)."),
    leaderboard: Path | None = typer.Option(None, "--leaderboard", help="DuckDB file to log the evaluated run to (needs --eval)."),
) -> None:
    """Train AnyIR on a shard set (one process, or DDP under torchrun).

    Example: anyir train --shards shards/demo --variant nano --steps 300 --batch-size 8 --crop 64 --eval
    """
    from anyir.train.config import ConfigError, load_config

    overrides = {
        "shards": shards, "shards_url_prefix": shards_url_prefix, "strict_shards": strict_shards, "variant": variant, "ablation": _parse_ablation(ablation), "steps": steps,
        "epochs": epochs, "batch_size": batch_size, "crop": crop, "balance": balance,
        "samples_per_epoch": samples_per_epoch, "lr": lr, "min_lr": min_lr, "warmup_steps": warmup_steps,
        "weight_decay": weight_decay, "fft_weight": fft_weight, "input_error_power": input_error_power, "grad_clip": grad_clip, "precision": precision,
        "device": device, "threads": threads, "seed": seed, "out": out, "name": name, "resume": resume, "overwrite": overwrite,
        "ckpt_every": ckpt_every, "keep_checkpoints": keep_checkpoints, "log_every": log_every,
        "num_workers": num_workers, "channels_last": channels_last, "compile": compile_model,
        "progress": progress, "debug_log_keys": debug_log_keys, "eval": eval_after, "leaderboard": leaderboard,
    }
    if config is None and resume and out is not None and (out / "config.yaml").is_file():
        config = out / "config.yaml"  # resuming: start from the run's own resolved config
    try:
        cfg = load_config(config, overrides)
    except ConfigError as err:
        fail(str(err))
    _check_model_options(cfg)
    summary = _run_training(cfg)
    if not is_main_process():
        return
    err_console.print(f"[green]trained[/green] {summary['steps']} steps in {summary['wall_time_s']:.1f} s "
                      f"({summary['images_per_s']:.1f} img/s, loader wait {summary['loader_wait_share']:.0%}) "
                      f"-> {cfg.run_dir}", highlight=False)
    if summary.get("skipped_shards"):
        err_console.print(f"[yellow]{len(summary['skipped_shards'])} shard(s) skipped as unusable, "
                          f"{summary['replaced_samples']} samples replaced[/yellow] (see train_summary.json)",
                          highlight=False)
    if cfg.eval:
        _evaluate_and_log(cfg)


def _check_model_options(cfg: Any) -> None:
    """An unknown --variant or --ablation key: one line listing what exists (before any rank starts work)."""
    from anyir.model import Ablation, variant_config

    try:
        variant_config(cfg.variant, Ablation(**cfg.ablation) if cfg.ablation else None)
    except (ValueError, TypeError) as err:
        fail(f"--{err}; see `anyir model list`")


def _run_training(cfg: Any) -> dict[str, Any]:
    """Call the trainer, turning user-input errors into one-line messages."""
    from anyir.data.balance import BalanceError
    from anyir.data.manifest import ManifestError
    from anyir.data.reader import ShardError
    from anyir.pipeline import train_run
    from anyir.train import NonFiniteLossError, TrainSetupError
    from anyir.train.errors import DiskFullError
    from anyir.train.run_dir import RunLockedError

    try:
        return train_run(cfg)
    except (ManifestError, BalanceError, TrainSetupError, RunLockedError) as err:
        fail(str(err))
    except (NonFiniteLossError, ShardError, DiskFullError) as err:
        fail(str(err), code=1)


def _evaluate_and_log(cfg: Any) -> None:
    """Evaluate the run's final weights on the test split, print a per-task table, record the results in
    the run folder (``results/``) and, with --leaderboard, index them there."""
    from anyir.eval.evaluate import EvalIncompleteError
    from anyir.pipeline import evaluate_target, log_evaluation, record_evaluation

    try:
        evaluation = evaluate_target(cfg.run_dir, cfg.shards, name=cfg.name, device=_eval_device(cfg),
                                     progress=cfg.progress, url_prefix=cfg.shards_url_prefix)
    except EvalIncompleteError as err:
        fail(str(err), code=1)
    print_report(evaluation.report, f"{cfg.run_name}: test split of {evaluation.report.recipe_name}")
    try:
        if cfg.leaderboard is None:
            record_evaluation(evaluation)
        else:
            log_evaluation(evaluation, cfg.leaderboard)
    except OSError as err:
        fail(f"cannot write the evaluation record: {err.strerror or err} ({err.filename or ''}); "
             "free space or check permissions, then run `anyir eval --ckpt RUN`", code=1)
    if evaluation.logged_to is not None:
        err_console.print(f"logged run [bold]{evaluation.run_id}[/bold] to {evaluation.logged_to}", highlight=False)
    else:
        err_console.print(f"evaluation recorded in {evaluation.record_path}", highlight=False)


def _eval_device(cfg: Any) -> str:
    """Evaluate where we trained: CUDA when asked or available under auto."""
    import torch

    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def register(app: typer.Typer) -> None:
    """Add ``anyir train`` to the top-level app."""
    app.command("train")(train_command)
