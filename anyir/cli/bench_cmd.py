"""``anyir bench tracks|run``: list the benchmark tracks; train, evaluate and log a submission's seeds.

The work is in :mod:`anyir.bench`; this module parses options and prints. Rank a track with
``anyir leaderboard track TRACK``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from anyir.cli.common import DB_HELP, OutputFormat, console, fail, note, print_frame

bench_app = typer.Typer(help="Benchmark tracks: the model and budget fixed, the data is the submission.",
                        no_args_is_help=True)


def tracks(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, markdown or csv.")) -> None:
    """List the shipped tracks with their scale, budget (samples seen) and data rule.

    Example: anyir bench tracks
    """
    from anyir.bench.track import TrackError, load_track, track_names

    rows = []
    for name in track_names():
        try:
            t = load_track(name)
        except TrackError as err:
            fail(str(err))
        columns = "all" if t.eval.columns == "all" else str(len(t.eval.columns))
        rows.append({"track": t.id, "scale": t.scale, "model": t.model.variant, "samples seen": f"{t.samples_seen:,}",
                     "steps x batch": f"{t.steps:,} x {t.train.batch_size}", "crop": t.train.crop,
                     "data": f"{t.data.rule}: {t.data.recipe}", "score columns": columns, "seeds": t.seeds,
                     "baseline": t.baseline.balance, "hash": t.content_hash()})
    print_frame(pd.DataFrame(rows), fmt, title="benchmark tracks (anyir bench run TRACK --balance SPEC)")


def run(
    track: str = typer.Argument(..., help="A shipped track name (`anyir bench tracks`) or a track file."),
    balance: str = typer.Option(..., "--balance", help="The submission's balance: natural, uniform, temperature:T, "
                                "promptir, task=w,..., or adaptive ones: adaptive, progress, dro "
                                "[(key=value,...)][:base]. Quote parentheses in the shell."),
    recipe: str | None = typer.Option(None, "--recipe", help="Open tracks: the recipe to train on (a file or a "
                                      "shipped name); pool tracks train on their own recipe only."),
    repeats: list[str] | None = typer.Option(None, "--repeats", help="Per-source repeat factor SOURCE=FACTOR "
                                             "(repeatable, or comma-separated): scales natural/temperature balances."),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds 0..N-1 (default: the track's number, which a "
                                     "claim against the baseline needs)."),
    out: Path = typer.Option(Path("runs/bench"), "--out", help="Parent folder of the run folders."),
    shards_root: Path = typer.Option(Path("shards"), "--shards-root", help="Where shard sets are built or reused "
                                     "(<root>/<recipe name>)."),
    leaderboard: Path | None = typer.Option(None, "--leaderboard", "--db", help=DB_HELP),
    nproc: int | None = typer.Option(None, "--nproc", help="Processes per run (torchrun --standalone when > 1); "
                                     "default: the track preset's on a CPU-only machine (demo: 2), else 1."),
    num_workers: int | None = typer.Option(None, "--num-workers", help="Loader workers per process (default: the "
                                           "track preset's, else the trainer's)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: the trainer's)."),
    workers: int = typer.Option(1, "--workers", help="Processes for a shard build."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
) -> None:
    """Train, evaluate and log each seed of a submission to a track; rerun the same command to resume.

    Example: anyir bench run demo --balance uniform --seeds 3, then anyir leaderboard track demo
    """
    import torch

    from anyir.bench.run import run_submission
    from anyir.bench.submission import SubmissionError, make_entry, parse_repeats
    from anyir.bench.track import TrackError, load_track
    from anyir.data.manifest import ManifestError
    from anyir.data.recipe import RecipeError
    from anyir.leaderboard.store import default_db_path
    from anyir.pipeline import PRESETS, TrainProcessesError
    from anyir.train import TrainSetupError
    from anyir.train.run_dir import RunLockedError

    db = leaderboard or default_db_path()
    try:
        loaded = load_track(track)
        entry = make_entry(loaded, balance, recipe, parse_repeats(repeats))
    except (TrackError, SubmissionError, RecipeError) as err:
        fail(str(err))
    count = seeds if seeds is not None else loaded.seeds
    if count < loaded.seeds:
        note(f"{count} seed(s): the ranking makes no claim against the baseline below {loaded.seeds} seeds")
    console.print(f"track [bold]{loaded.id}[/] ({entry.track_hash}), submission [bold]{entry.submission_id}[/]: "
                  f"{entry.label}{' (the baseline)' if entry.baseline else ''}; {count} seed(s) -> "
                  f"{out / (loaded.id + '-' + entry.track_hash[:8]) / entry.submission_id}", highlight=False, soft_wrap=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if nproc is None:
        nproc = PRESETS[loaded.preset].launch_processes() if loaded.preset in PRESETS else 1
    try:
        outcomes = run_submission(entry, count, out, shards_root, db, nproc=nproc, workers=workers,
                                  num_workers=num_workers, threads=threads, device=device, progress=progress,
                                  notify=lambda line: console.print(line, highlight=False, soft_wrap=True))
    except (SubmissionError, RecipeError, ManifestError, TrainSetupError, TrainProcessesError, RunLockedError) as err:
        fail(str(err), code=1)
    skipped = sum(o.status == "skipped" for o in outcomes)
    console.print(f"done: {len(outcomes) - skipped} seed(s) logged, {skipped} already there; rank with "
                  f"`anyir leaderboard track {track}" + (f" --db {db}`" if leaderboard else "`"), highlight=False, soft_wrap=True)


bench_app.command("tracks")(tracks)
bench_app.command("run")(run)


def register(app: typer.Typer) -> None:
    """Add the ``anyir bench`` command group."""
    app.add_typer(bench_app, name="bench")
