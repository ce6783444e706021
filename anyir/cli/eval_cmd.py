"""``anyir eval`` (score a checkpoint, log it to the leaderboard) and ``anyir restore`` (user images)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
INPUT_CKPT = "input"


def fail(message: str, code: int = 2) -> None:
    """One red line naming the problem and the fix, then exit (2 = bad input)."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def split_list(text: str | None) -> list[str] | None:
    """'a,b' -> ['a', 'b']; None/'' -> None."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return items or None


def report_table(report, title: str = "evaluation") -> Table:
    """A rich table: one row per (task, dataset), one column per metric, plus n."""
    frame = report.table()
    table = Table(title=title)
    metrics = [c for c in frame.columns if c not in ("task", "dataset", "n")]
    for column in ("task", "dataset", *metrics, "n"):
        table.add_column(column, justify="left" if column in ("task", "dataset") else "right")
    for _, row in frame.iterrows():
        values = [f"{row[m]:.4f}" if m != "psnr" else f"{row[m]:.2f}" for m in metrics]
        table.add_row(row["task"], row["dataset"], *values, str(int(row["n"])))
    return table


def _record_and_model(ckpt: str, shards: Path, name: str | None, device: str):
    """(RunRecord, model or None) for --ckpt: 'input', a run directory or a .safetensors file."""
    from anyir.eval.checkpoint import load_checkpoint, resolve_checkpoint
    from anyir.leaderboard.records import SUMMARY_FILE, RunRecord

    if ckpt == INPUT_CKPT:
        return RunRecord.input_baseline(shards), None
    path = Path(ckpt)
    model = load_checkpoint(path, device=device)
    if path.is_dir() and (path / SUMMARY_FILE).is_file():
        record = RunRecord.from_run_dir(path, name=name)
    else:
        record = RunRecord.from_checkpoint(resolve_checkpoint(path), name=name)
    if record.params is None:
        record.params = sum(p.numel() for p in model.parameters())
    return record, model


def _fill_macs(record, model) -> None:
    """MACs at 224x224 when the run summary did not record them (best effort; FFTs counted apart)."""
    if model is None or record.macs is not None:
        return
    try:
        from anyir.model.complexity import complexity_report

        record.macs = int(complexity_report(model, size=224)["macs_224"])
    except Exception as exc:  # a missing count must not lose the evaluation
        err_console.print(f"note: MACs not counted ({type(exc).__name__}: {exc})", highlight=False)


def eval_command(
    ckpt: str = typer.Option(..., "--ckpt", help="Run directory (with model.safetensors), a .safetensors "
                             "file, or 'input' to score the degraded inputs themselves (the baseline run)."),
    shards: Path = typer.Option(..., "--shards", help="Shard set directory (holds manifest.json)."),
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
    leaderboard: Path | None = typer.Option(None, "--leaderboard", help="DuckDB file (default: "
                                            "$ANYIR_LEADERBOARD or leaderboard/leaderboard.duckdb)."),
    name: str | None = typer.Option(None, "--name", help="Run name in the leaderboard (default: the run "
                                    "directory's name)."),
    no_log: bool = typer.Option(False, "--no-log", help="Print the results only; do not write the leaderboard."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Evaluate a checkpoint per task and dataset (PromptIR protocol) and log it to the leaderboard.

    Example: anyir eval --ckpt runs/demo --shards shards/demo --metrics ssim_gauss
    """
    from anyir.eval.evaluate import evaluate
    from anyir.leaderboard.store import default_db_path, log_run

    try:
        record, model = _record_and_model(ckpt, shards, name, device)
        if name is not None:
            record.name = name
        report = evaluate(model, shards, tasks=split_list(tasks), split=split, tile=tile, overlap=overlap,
                          device=device, max_images=max_images, extra_metrics=split_list(metrics) or (),
                          progress=progress)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        fail(str(exc))
    console.print(report_table(report, title=f"{record.name} on {shards} ({report.split})"))
    if no_log:
        return
    _fill_macs(record, model)
    db = leaderboard or default_db_path()
    run_id = log_run(db, record, report)
    console.print(f"logged run [bold]{record.name}[/bold] as {run_id} to {db}", highlight=False)


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
