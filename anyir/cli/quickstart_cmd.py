"""``anyir quickstart``: the whole pipeline on the built-in demo data, in one command.

recipe (the shipped ``demo`` recipe) -> shards (reused when the recipe is unchanged) -> train a small
AnyIR on CPU (GPU when present) -> evaluate every task on held-out images -> log the run and the
degraded input (the ``input`` baseline) to the DuckDB leaderboard -> print the per-task gain table and
write ``restored_grid.png`` (degraded / restored / clean per task) into the run folder.
Each invocation adds a new run (named by its start time); shards and the venv are reused. The
settings are ``anyir.pipeline.DEMO``.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from anyir.cli.common import fail
from anyir.cli.common import wide_console as console  # the gain table is wide

# Wide enough for the gain table even when piped (make demo | tee log).

# Published columns shown beside the demo tasks: (setting, task, dataset) of the seed paper's tables.
# The demo data are synthetic degradations of scikit-image samples, NOT these benchmarks.
PAPER_COLUMN = {
    ("denoise", "demo_s15"): ("aio3", "denoise", "bsd68_s15"),
    ("denoise", "demo_s25"): ("aio3", "denoise", "bsd68_s25"),
    ("denoise", "demo_s50"): ("aio3", "denoise", "bsd68_s50"),
    ("derain", "demo"): ("aio3", "derain", "rain100l"),
    ("dehaze", "demo"): ("aio3", "dehaze", "sots_outdoor"),
    ("deblur", "demo"): ("aio5", "deblur", "gopro"),
    ("lowlight", "demo"): ("aio5", "lowlight", "lolv1"),
}
PAPER_METHODS = ("AnyIR-T", "PromptIR")


def unique_run_name(runs: Path, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... when a run folder of that name exists already."""
    name, k = base, 1
    while (runs / name).exists():
        k += 1
        name = f"{base}-{k}"
    return name


def paper_numbers(db: Path) -> pd.DataFrame:
    """Published AnyIR-T / PromptIR PSNR+SSIM of the seed paper, from the leaderboard itself."""
    from anyir.leaderboard.queries import published_values
    from anyir.leaderboard.store import reader

    with reader(db) as con:
        return published_values(con, list(PAPER_METHODS), "%seed paper%")


def gain_table(model_rows: pd.DataFrame, input_rows: pd.DataFrame, paper: pd.DataFrame) -> Table:
    """Per task/dataset: input and model PSNR/SSIM, the gain, and the paper's numbers beside them."""
    def pick(frame: pd.DataFrame, task: str, dataset: str, metric: str) -> float:
        hit = frame[(frame.task == task) & (frame.dataset == dataset) & (frame.metric == metric)]
        return float(hit.value.iloc[0]) if len(hit) else float("nan")

    table = Table(title="Demo: held-out test images (synthetic degradations of scikit-image samples)")
    for col in ("task", "dataset", "input", "model", "gain dB", "paper column*", *PAPER_METHODS):
        table.add_column(col, justify="left" if col in ("task", "dataset", "paper column*") else "right")
    keys = model_rows[model_rows.metric == "psnr"][["task", "dataset"]].drop_duplicates()
    for task, dataset in keys.itertuples(index=False):
        i_p, i_s = pick(input_rows, task, dataset, "psnr"), pick(input_rows, task, dataset, "ssim")
        m_p, m_s = pick(model_rows, task, dataset, "psnr"), pick(model_rows, task, dataset, "ssim")
        gain = m_p - i_p
        cells = [task, dataset, f"{i_p:.2f}/{i_s:.3f}", f"{m_p:.2f}/{m_s:.3f}",
                 f"[{'green' if gain > 0 else 'red'}]{gain:+.2f}[/]"]
        setting, p_task, p_dataset = PAPER_COLUMN.get((task, dataset), (None, task, dataset))
        cells.append(f"{setting} {p_dataset}" if setting else "-")
        for method in PAPER_METHODS:
            ref = paper[(paper.method == method) & (paper.setting == setting)] if setting else paper.iloc[:0]
            p, s = pick(ref, p_task, p_dataset, "psnr"), pick(ref, p_task, p_dataset, "ssim")
            cells.append(f"{p:.2f}/{s:.3f}" if p == p else "-")
        table.add_row(*cells)
    return table


def quickstart(
    steps: int = typer.Option(None, help="Optimizer steps (default: the demo preset's)."),
    variant: str = typer.Option(None, help="Model variant (`anyir model list`); default: the demo preset's (nano)."),
    batch_size: int = typer.Option(None, help="Global batch size (default: the demo preset's)."),
    crop: int = typer.Option(None, help="Training crop in pixels (default: the demo preset's)."),
    lr: float = typer.Option(None, help="Peak learning rate (default: the demo preset's; the paper's 2e-4 is tuned "
                             "for 120 epochs, not minutes)."),
    seed: int = typer.Option(0, help="Training seed."),
    balance: str = typer.Option(None, help="Task balance (default: the demo recipe's), e.g. natural, temperature:2, adaptive."),
    shards: Path = typer.Option(Path("shards/demo"), help="Where the demo shard set is built / reused."),
    runs: Path = typer.Option(Path("runs"), help="Parent folder of the run directory."),
    leaderboard: Path = typer.Option(None, help="DuckDB file (default: $ANYIR_LEADERBOARD or leaderboard/leaderboard.duckdb)."),
    workers: int = typer.Option(1, help="Processes for the shard build."),
    processes: int = typer.Option(None, help="Training processes (torchrun --standalone when > 1); default: the "
                                  "demo preset's on a CPU-only machine (2, at most one per core), 1 with a GPU."),
) -> None:
    """Run the whole pipeline on the built-in demo data and print the per-task gain table.

    Example: ``anyir quickstart`` (what ``make demo`` runs), or ``anyir quickstart --steps 200`` for a
    faster, weaker look. A second call reuses the shards and adds a second run to the leaderboard.
    """
    from anyir.eval.checkpoint import load_checkpoint
    from anyir.eval.figures import restoration_grid
    from anyir.leaderboard.store import default_db_path
    from anyir.pipeline import (
        DEMO,
        DEMO_RECIPE,
        TrainProcessesError,
        ensure_shards,
        evaluate_and_log,
        train_processes,
    )
    from anyir.train.run_dir import RunDir

    start = time.perf_counter()
    db = leaderboard or default_db_path()
    console.print(f"[green]1/4[/] building the demo recipe into {shards} (reused when unchanged)")
    manifest, built = ensure_shards(DEMO_RECIPE, shards, workers=workers)
    if not built:
        console.print(f"      reusing demo shards in {shards} (recipe unchanged)")
    name = unique_run_name(runs, "quickstart-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"))
    run_dir = runs / name
    cfg = DEMO.config(shards, steps=steps, variant=variant, batch_size=batch_size, crop=crop, lr=lr,
                      balance=balance, seed=seed, out=run_dir, name=name)
    cfg = cfg.model_copy(update={"ckpt_every": max(cfg.steps // 2, 1)})
    nproc = processes or DEMO.launch_processes()
    console.print(f"[green]2/4[/] training {cfg.variant} for {cfg.steps} steps"
                  f"{f' in {nproc} processes' if nproc > 1 else ''} -> {run_dir}")
    try:
        train_processes(cfg, nproc)
    except TrainProcessesError as err:
        fail(str(err), code=1)
    console.print("[green]3/4[/] evaluating every task on the held-out test images (model, then input)")
    model = evaluate_and_log(run_dir, shards, leaderboard=db)
    baseline = evaluate_and_log("input", shards, leaderboard=db, progress=False)
    console.print(f"[green]4/4[/] logged run {model.run_id} and the input baseline {baseline.run_id} to {db}")
    console.print(gain_table(model.report.to_frame(), baseline.report.to_frame(), paper_numbers(db)))
    console.print("[dim]PSNR dB / SSIM. * paper: published AnyIR-T / PromptIR on the REAL benchmark in "
                  "'paper column' (seed paper Tables 1-2): different data, shown for scale only.[/]")
    grid = restoration_grid(load_checkpoint(run_dir), shards, RunDir(run_dir).grid, title=f"run {name}")
    console.print(f"grid        {grid}  (degraded / restored / clean, one row per task)\n"
                  f"shards      {shards}/manifest.json\ncheckpoint  {run_dir}/model.safetensors\n"
                  f"leaderboard {db}  (anyir leaderboard show --setting demo)\n"
                  f"notebook    notebooks/leaderboard.ipynb\n"
                  f"total wall time {time.perf_counter() - start:.0f} s")


def register(app: typer.Typer) -> None:
    """Add ``anyir quickstart``."""
    app.command("quickstart")(quickstart)
