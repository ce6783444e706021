"""``anyir sweep``: one run per (balance, seed) from the same shards, evaluated and logged under one id.

The sweep id is a hash of everything that defines the sweep (shard set, balances, seeds, training
options), so running the same command again resumes it: runs already in the leaderboard are skipped,
finished but unlogged runs are only evaluated, and a run interrupted mid-training continues from its
latest checkpoint. With ``--nproc N > 1`` each run trains under ``torchrun --standalone``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import typer

from anyir.cli.common import console, fail


def split_balances(text: str) -> list[str]:
    """The balance specs of a ``--balances`` list (:func:`anyir.data.balance.split_specs`), each checked
    by the one parser: ``"natural,uniform,derain=2,dehaze=1,dro(floor=0.3)"`` -> four specs. Separate
    two explicit balances with ``;`` (``"a=1,b=2;a=2,b=1"``)."""
    from anyir.data.balance import BalanceError, parse_balance, split_specs

    out = split_specs(text)
    if not out:
        raise typer.BadParameter(f"no balance in {text!r}; e.g. natural,uniform,temperature:2,adaptive",
                                 param_hint="--balances")
    for spec in out:
        try:
            parse_balance(spec)
        except BalanceError as err:
            raise typer.BadParameter(str(err), param_hint="--balances") from None
    return out


def slug(balance: str) -> str:
    """A folder-safe name for a balance spec."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", balance.replace(":", "-").replace(",", "_"))


@dataclass(frozen=True)
class SweepRun:
    """One cell of the sweep grid."""

    balance: str
    seed: int
    run_dir: Path

    @property
    def name(self) -> str:
        return self.run_dir.name


def sweep_id_for(recipe_hash: str, balances: list[str], seeds: list[int], options: dict) -> str:
    """A stable id: the same shards + balances + seeds + options give the same sweep (so it resumes)."""
    from anyir.degrade.seeding import seed_from_key

    key = json.dumps({"recipe": recipe_hash, "balances": balances, "seeds": seeds, **options}, sort_keys=True)
    return f"sweep-{seed_from_key(key):016x}"[:22]


def train_one(run: SweepRun, options: dict, shards: Path, nproc: int) -> None:
    """Train (or resume) one run, in-process or under torchrun."""
    from anyir.pipeline import train_processes
    from anyir.train.config import TrainConfig
    from anyir.train.run_dir import RunDir

    has_ckpt = RunDir(run.run_dir).has_checkpoint()
    cfg = TrainConfig(shards=shards, balance=run.balance, seed=run.seed, out=run.run_dir, name=run.name,
                      resume=has_ckpt, overwrite=not has_ckpt, **options)
    train_processes(cfg, nproc)


def logged_runs(db: Path, sweep_id: str) -> set[str]:
    """Names of the runs of this sweep already in the leaderboard."""
    from anyir.leaderboard.queries import sweep_run_names
    from anyir.leaderboard.store import reader

    if not db.is_file():
        return set()
    with reader(db) as con:
        return sweep_run_names(con, sweep_id)


def finished(run_dir: Path) -> bool:
    """True when the run's training summary says it finished."""
    from anyir.train.run_dir import RunDir

    return RunDir(run_dir).is_finished()


def sweep(
    shards: Path = typer.Argument(..., help="Shard set folder (holds manifest.json); it is never rebuilt."),
    balances: str = typer.Option("natural,uniform,adaptive", help="Comma-separated balance specs: natural, "
                                 "uniform, temperature:T, promptir, task=w,task=w (use ';' between two explicit "
                                 "ones), or adaptive ones: adaptive, progress, dro, each [(key=value,...)][:base]."),
    seeds: int = typer.Option(1, help="Seeds per balance (0..N-1); 2+ gives a seed spread."),
    variant: str = typer.Option("nano", help="Model variant."),
    steps: int = typer.Option(300, help="Optimizer steps per run."),
    batch_size: int = typer.Option(8, help="Global batch size."),
    crop: int = typer.Option(64, help="Training crop."),
    lr: float = typer.Option(1e-3, help="Peak learning rate."),
    balance_every: int = typer.Option(25, help="Steps between adaptive-balance updates."),
    nproc: int = typer.Option(1, help="Processes per run (torchrun --standalone when > 1)."),
    out: Path = typer.Option(Path("runs/sweeps"), help="Parent folder of the sweep's run folders."),
    leaderboard: Path = typer.Option(None, help="DuckDB file (default $ANYIR_LEADERBOARD or leaderboard/leaderboard.duckdb)."),
    sweep_id: str = typer.Option(None, help="Explicit sweep id (default: a hash of the sweep's definition)."),
) -> None:
    """Train, evaluate and log one run per (balance, seed); rerun the same command to resume.

    Example: ``anyir sweep shards/demo --balances natural,uniform,temperature:2,adaptive --seeds 2``,
    then ``anyir leaderboard sweep SWEEP_ID`` for per-task means and seed spreads.
    """
    from anyir.data.manifest import load_manifest
    from anyir.leaderboard.store import default_db_path
    from anyir.pipeline import TrainProcessesError, evaluate_and_log

    db = leaderboard or default_db_path()
    manifest = load_manifest(shards)
    specs = split_balances(balances)
    options = {"variant": variant, "steps": steps, "batch_size": batch_size, "crop": crop, "lr": lr,
               "balance_every": balance_every, "num_workers": 0, "ckpt_every": max(steps // 4, 1)}
    sid = sweep_id or sweep_id_for(manifest.recipe_hash, specs, list(range(seeds)), options)
    runs = [SweepRun(b, s, out / sid / f"{slug(b)}-seed{s}") for b in specs for s in range(seeds)]
    console.print(f"sweep [bold]{sid}[/]: {len(specs)} balances x {seeds} seeds = {len(runs)} runs -> {out / sid}")
    done = logged_runs(db, sid)
    for i, run in enumerate(runs, 1):
        label = f"[{i}/{len(runs)}] {run.name}"
        if run.name in done and finished(run.run_dir):
            console.print(f"{label}: already in the leaderboard, skipped")
            continue
        if not finished(run.run_dir):
            console.print(f"{label}: training ({run.balance}, seed {run.seed})")
            try:
                train_one(run, options, shards, nproc)
            except TrainProcessesError as err:
                fail(f"{err}; or rerun this sweep command, which resumes it", code=1)
        console.print(f"{label}: evaluating and logging")
        # One leaderboard row per sweep cell: a retrained cell replaces its old row.
        evaluate_and_log(run.run_dir, shards, leaderboard=db, name=run.name, sweep_id=sid, progress=False,
                         run_id=f"{sid}/{run.name}")
    console.print(f"done: anyir leaderboard sweep {sid}" + (f" --db {db}" if leaderboard else ""))


def register(app: typer.Typer) -> None:
    """Add ``anyir sweep``."""
    app.command("sweep")(sweep)
