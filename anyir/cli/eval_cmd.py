"""``anyir eval`` (score a checkpoint, log it to the leaderboard) and ``anyir restore`` (user images)."""

from __future__ import annotations

from pathlib import Path

import typer

from anyir.cli.common import DB_HELP, console, err_console, fail, print_report, split_list


def eval_command(
    ckpt: str = typer.Option(..., "--ckpt", help="Run directory (with model.safetensors), a .safetensors "
                             "file, or 'input' to score the degraded inputs themselves (the baseline run)."),
    shards: Path = typer.Option(..., "--shards", help="Shard set directory (holds manifest.json)."),
    shards_url_prefix: str | None = typer.Option(None, "--shards-url-prefix", help="Read the test tars from this "
                                                 "URL prefix instead of beside manifest.json ('{path}' = each "
                                                 "shard's manifest path)."),
    tasks: str | None = typer.Option(None, "--tasks", help="Comma-separated tasks to evaluate (default: all "
                                     "tasks of the split)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate."),
    tile: int | None = typer.Option(None, "--tile", help="Restore in TILE x TILE windows (bounded memory); "
                                    "default: whole images."),
    overlap: int = typer.Option(32, "--overlap", help="Overlap in pixels between tiles, blended linearly."),
    metrics: str | None = typer.Option(None, "--metrics", help="Extra metrics, comma-separated: ssim_gauss "
                                       "(MoCE-IR SSIM), ssim_pyiqa, psnr_pyiqa, lpips, lpips_vgg. PSNR and "
                                       "SSIM (PromptIR protocol) are always computed."),
    max_images: int | None = typer.Option(None, "--max-images", help="At most N images per task (a quick "
                                          "look; recorded in the run id)."),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda."),
    leaderboard: Path | None = typer.Option(None, "--leaderboard", help=DB_HELP),
    name: str | None = typer.Option(None, "--name", help="Run name in the leaderboard (default: the run's own "
                                    "name)."),
    no_log: bool = typer.Option(False, "--no-log", help="Print the results only; do not write the leaderboard."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Log even when a test shard or image "
                                          "cannot be scored; the row is flagged with the images scored. "
                                          "Default: fail and log nothing."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Evaluate a checkpoint per task and dataset (PromptIR protocol) and log it to the leaderboard.

    Every test shard is checked against the manifest and every listed image must be scored: an
    incomplete evaluation fails naming the shard and logs nothing (see --allow-incomplete).

    Example: anyir eval --ckpt runs/demo --shards shards/demo --metrics ssim_gauss
    """
    from anyir.data.manifest import ManifestError
    from anyir.eval.evaluate import EvalIncompleteError
    from anyir.pipeline import evaluate_target, log_evaluation

    try:
        evaluation = evaluate_target(
            ckpt, shards, name=name, tasks=split_list(tasks), split=split, tile=tile, overlap=overlap,
            device=device, max_images=max_images, extra_metrics=split_list(metrics) or (), progress=progress,
            allow_incomplete=allow_incomplete, url_prefix=shards_url_prefix)
    except EvalIncompleteError as exc:
        fail(str(exc), code=1)
    except (FileNotFoundError, ValueError, TypeError, ManifestError) as exc:
        fail(str(exc))
    print_report(evaluation.report, f"{evaluation.record.name} on {shards} ({evaluation.report.split})")
    if no_log:
        return
    log_evaluation(evaluation, leaderboard)
    console.print(f"logged run [bold]{evaluation.record.name}[/bold] as {evaluation.run_id} to "
                  f"{evaluation.logged_to}", highlight=False)


def restore_command(
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...; any size; gray/RGBA converted)."),
    ckpt: Path = typer.Option(..., "--ckpt", help="Run directory or .safetensors file."),
    out: Path = typer.Option(..., "--out", help="Output directory; each result is <name>.png."),
    tile: int = typer.Option(512, "--tile", help="Tile size for bounded memory; 0 = whole image at once."),
    overlap: int = typer.Option(32, "--overlap", help="Overlap in pixels between tiles, blended linearly."),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda."),
) -> None:
    """Restore your own images with a trained model. Unreadable files are named and skipped (exit 1).

    Example: anyir restore photo.jpg scans/*.png --ckpt runs/demo --out restored/
    """
    from anyir.eval.checkpoint import load_checkpoint
    from anyir.eval.restore import restore_files

    try:
        model = load_checkpoint(ckpt, device=device)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    written, errors = restore_files(
        model, images, out, tile=tile or None, overlap=overlap, device=device,
        on_error=lambda msg: err_console.print(f"[red]error:[/red] {msg}", highlight=False))
    console.print(f"restored {len(written)} image(s) into {out}; {len(errors)} failed", highlight=False)
    if errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``anyir eval`` and ``anyir restore``."""
    app.command("eval")(eval_command)
    app.command("restore")(restore_command)
