"""``anyir leaderboard show|compare|export``: read the DuckDB leaderboard.

``leaderboard_app`` is a sub-typer so other modules can add commands to it
(``leaderboard_app.command("sweep")(fn)``) before :func:`register` runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import typer

from anyir.cli.common import DB_HELP, OutputFormat, console, fail, print_frame

leaderboard_app = typer.Typer(help="Show, compare and export the leaderboard (runs + published numbers).",
                              no_args_is_help=True)

CELL = re.compile(r"^([\d.-]+)/([\d.-]+)$")  # "31.70/.982" -> PSNR and SSIM


def _compact(cells: pd.DataFrame) -> pd.DataFrame:
    """Terminal shape: no id/setting columns (the title names the setting), PSNR over SSIM in a cell."""
    out = cells.drop(columns=["run_id", "setting"])
    out.columns = [c.replace("/", "\n") for c in out.columns]
    return out.map(lambda v: CELL.sub(r"\1\n\2", v) if isinstance(v, str) else v)


def _flat_numeric(wide: pd.DataFrame) -> pd.DataFrame:
    """CSV shape: one column per (task/dataset, metric), e.g. ``derain/rain100l psnr``."""
    out = wide.copy()
    out.columns = [a if b == "" else f"{a} {b}" for a, b in wide.columns]
    return out


def show(
    setting: str | None = typer.Option(None, "--setting", help="aio3 | aio5 | cdd11 | demo (or a recipe name); "
                                       "default: every setting, one table each."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, markdown or csv."),
    origin: str | None = typer.Option(None, "--origin", help="Only 'local' or only 'published' rows."),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Paper-style tables (PSNR/SSIM per column) of our runs beside the published numbers.

    Example: anyir leaderboard show --setting aio3 --format markdown
    """
    from anyir.leaderboard.queries import format_cells, paper_table, settings
    from anyir.leaderboard.store import reader

    if origin not in (None, "local", "published"):
        fail(f"--origin {origin!r}: use 'local' or 'published'")
    with reader(db) as con:
        settings_ = [setting] if setting else settings(con)
        tables = {s: paper_table(con, s, origin=origin) for s in settings_}
    if all(t.empty for t in tables.values()):
        fail(f"no runs for setting {setting!r}; known settings: aio3, aio5, cdd11, demo (or a recipe name)")
    for name, wide in tables.items():
        if not wide.empty:
            if fmt is OutputFormat.csv:
                frame = _flat_numeric(wide)
            else:
                frame = format_cells(wide) if fmt is OutputFormat.markdown else _compact(format_cells(wide))
            print_frame(frame, fmt, title=f"setting {name} (PSNR/SSIM)")


def compare(
    runs: list[str] = typer.Argument(..., help="Two or more run ids or names; deltas are vs the first."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, markdown or csv."),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Per-task values of several runs and each run's delta vs the first.

    Example: anyir leaderboard compare input demo-uniform demo-promptir
    """
    from anyir.leaderboard.queries import compare_runs
    from anyir.leaderboard.store import reader

    with reader(db) as con:
        try:
            frame = compare_runs(con, runs)
        except (KeyError, ValueError) as exc:
            fail(str(exc).strip("'\""))
    print_frame(frame.round(4), fmt, title=f"compare vs {runs[0]}")


def export(
    parquet: Path = typer.Option(..., "--parquet", help="Directory for runs/results/image_results/"
                                 "balance_trajectory .parquet files."),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Export every table to Parquet.

    Example: anyir leaderboard export --parquet leaderboard/export
    """
    from anyir.leaderboard.queries import export_parquet
    from anyir.leaderboard.store import reader

    with reader(db) as con:
        paths = export_parquet(con, parquet)
    for path in paths:
        console.print(f"wrote {path}", highlight=False)


def sweep(
    sweep_id: str = typer.Argument(..., help="The sweep id printed by `anyir sweep` (see `anyir leaderboard sweeps`)."),
    metric: str = typer.Option("psnr", "--metric", help="psnr or ssim."),
    reference: str | None = typer.Option(None, "--reference", help="Balance to compare against (default: the first)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, markdown or csv."),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Per-task metric per balance: mean ± sd over seeds, delta vs a reference balance, and '*' where the
    delta is larger than two standard errors of the seed spread (needs 2+ seeds on both sides).

    Example: anyir leaderboard sweep sweep-1a2b3c4d5e6f --metric psnr --format markdown
    """
    from anyir.leaderboard.store import reader
    from anyir.leaderboard.sweeps import aggregate_sweep, sweep_runs, sweep_table

    if metric not in ("psnr", "ssim"):
        fail(f"--metric {metric!r}: use psnr or ssim")
    with reader(db) as con:
        try:
            rows = sweep_runs(con, sweep_id)
            table = sweep_table(aggregate_sweep(rows, reference), metric)
        except (LookupError, ValueError) as exc:
            fail(str(exc))
    print_frame(table.reset_index(), fmt, title=f"{sweep_id}: {metric} mean ± sd over seeds (delta vs reference; * = beyond seed spread)")


def sweeps(db: Path | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """List the sweeps in the leaderboard (id, runs, balances, seeds)."""
    from anyir.leaderboard.store import reader
    from anyir.leaderboard.sweeps import list_sweeps

    with reader(db) as con:
        frame = list_sweeps(con)
    print_frame(frame, OutputFormat.table, title="sweeps")


leaderboard_app.command("show")(show)
leaderboard_app.command("sweep")(sweep)
leaderboard_app.command("sweeps")(sweeps)
leaderboard_app.command("compare")(compare)
leaderboard_app.command("export")(export)


def register(app: typer.Typer) -> None:
    """Add the ``anyir leaderboard`` command group."""
    app.add_typer(leaderboard_app, name="leaderboard")
