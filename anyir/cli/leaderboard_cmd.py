"""``anyir leaderboard show|compare|export|ingest``: read the DuckDB leaderboard, or (re)build it
from run folders (the DuckDB file is an index over them; see anyir.leaderboard.ingest).

``leaderboard_app`` is a sub-typer so other modules can add commands to it
(``leaderboard_app.command("sweep")(fn)``) before :func:`register` runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape

from anyir.cli.common import DB_HELP, OutputFormat, console, err_console, fail, note, print_frame

leaderboard_app = typer.Typer(help="Show, compare and export the leaderboard (runs + published numbers).",
                              no_args_is_help=True)

CELL = re.compile(r"^([\d.-]+)/([\d.-]+)$")  # "31.70/.982" -> PSNR and SSIM


@contextmanager
def _open(db: Path | None) -> Iterator:
    """A read connection; a busy, damaged or missing file is one line (exit 1), not a traceback."""
    from anyir.leaderboard.store import LeaderboardError, reader

    try:
        with reader(db) as con:
            yield con
    except LeaderboardError as exc:
        fail(str(exc), code=1)


def _with_flags(wide: pd.DataFrame, flags: dict[str, str]) -> pd.DataFrame:
    """Add a ``flags`` column (incomplete evaluation with n, skipped training shards) when a row has one."""
    column = wide[("run_id", "")].map(flags).fillna("")
    if not column.any():
        return wide
    out = wide.copy()
    out.insert(list(out.columns).index(("params", "")) + 1, ("flags", ""), column)
    return out


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
    from anyir.leaderboard.queries import format_cells, paper_table, run_flags, settings

    if origin not in (None, "local", "published"):
        fail(f"--origin {origin!r}: use 'local' or 'published'")
    with _open(db) as con:
        settings_ = [setting] if setting else settings(con)
        flags = run_flags(con)
        tables = {s: paper_table(con, s, origin=origin) for s in settings_}
    tables = {s: t if t.empty else _with_flags(t, flags) for s, t in tables.items()}
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

    with _open(db) as con:
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

    with _open(db) as con:
        paths = export_parquet(con, parquet)
    for path in paths:
        console.print(f"wrote {path}", highlight=False)


def sweep(
    sweep_id: str = typer.Argument(..., help="The sweep id printed by `anyir sweep` (see `anyir leaderboard sweeps`)."),
    metric: str = typer.Option("psnr", "--metric", help="psnr or ssim."),
    reference: str | None = typer.Option(None, "--reference", help="Balance to compare against (default: the first)."),
    level: float = typer.Option(0.95, "--level", help="Confidence level of the two-sided Welch t-test behind '*'."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, markdown or csv."),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Per-task metric per balance: mean ± sd over seeds, delta vs a reference balance, and '*' where
    Welch's two-sided t-test (t quantile at the Welch-Satterthwaite df) finds the delta significant at
    --level (needs 2+ seeds and some spread on both sides; claim nothing from fewer than 3 seeds).

    Example: anyir leaderboard sweep sweep-1a2b3c4d5e6f --metric psnr --format markdown
    """
    from anyir.leaderboard.sweeps import aggregate_sweep, sweep_runs, sweep_table

    if metric not in ("psnr", "ssim"):
        fail(f"--metric {metric!r}: use psnr or ssim")
    with _open(db) as con:
        try:
            rows = sweep_runs(con, sweep_id)
            table = sweep_table(aggregate_sweep(rows, reference, level), metric)
        except (LookupError, ValueError) as exc:
            fail(str(exc))
    print_frame(table.reset_index(), fmt, title=f"{sweep_id}: {metric} mean ± sd over seeds (delta vs reference; "
                f"* = significant, Welch t-test at level {level:g})")


def sweeps(db: Path | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """List the sweeps in the leaderboard (id, runs, balances, seeds)."""
    from anyir.leaderboard.sweeps import list_sweeps

    with _open(db) as con:
        frame = list_sweeps(con)
    print_frame(frame, OutputFormat.table, title="sweeps")


def track(
    track_ref: str = typer.Argument(..., metavar="TRACK", help="A shipped track name or a track file."),
    per_column: bool = typer.Option(False, "--per-column", help="Also print each score column per submission: "
                                    "mean ± sd over seeds, delta vs the baseline ('*': Welch-significant)."),
    level: float | None = typer.Option(None, "--level", help="Confidence level of the two-sided Welch t-test "
                                       "(default: the track's)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, markdown or csv."),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Rank a track's submissions: score = mean PSNR over the track's columns, mean ± sd over seeds, SSIM
    beside, delta vs the baseline with Welch's p ('*' = significant at the level with the track's seeds).
    Only runs under the track file's current hash are ranked.

    Example: anyir leaderboard track demo --format markdown
    """
    from anyir.bench.submission import baseline_entry
    from anyir.bench.track import TrackError, load_track
    from anyir.leaderboard.sweeps import aggregate_sweep, sweep_table
    from anyir.leaderboard.tracks import column_rows, track_ranking

    try:
        loaded = load_track(track_ref)
        digest = loaded.content_hash()
        baseline = baseline_entry(loaded, digest).submission_id
    except TrackError as exc:
        fail(str(exc))
    level = loaded.level if level is None else level
    with _open(db) as con:
        try:
            ranking = track_ranking(con, loaded.id, digest, loaded.eval.columns, level, loaded.seeds, baseline)
            rows = column_rows(con, ranking) if per_column else None
        except (LookupError, ValueError) as exc:
            fail(str(exc))
    table = ranking.table.drop(columns=["submission_id"]).rename(columns={"label": "submission"})
    if fmt is not OutputFormat.csv:
        table = table.round({"score": 3, "sd": 3, "ssim": 4, "ssim_sd": 4, "delta": 3, "p_value": 4})
    print_frame(table, fmt, title=f"track {loaded.id} ({digest}): mean PSNR over {len(ranking.columns)} columns, "
                f"mean ± sd over seeds; delta vs baseline, Welch p at level {level:g}")
    if rows is not None:
        base_label = ranking.table.label[ranking.table.submission_id == baseline].tolist()
        reference = base_label[0] if base_label else None
        rows = rows.sort_values("balance", key=lambda s: s != reference, kind="stable")  # the baseline first
        wide = sweep_table(aggregate_sweep(rows, reference, level))
        print_frame(wide.reset_index().rename(columns={"balance": "submission"}), fmt,
                    title=f"track {loaded.id}: PSNR per column, mean ± sd (delta vs {reference}; * = Welch p < {1 - level:g})")
    if ranking.older_runs or ranking.incomplete:
        note(f"left out: {ranking.older_runs} run(s) under older versions of track {loaded.id}"
             + (f", {len(ranking.incomplete)} run(s) lacking a score column" if ranking.incomplete else ""))


def ingest(
    folders: list[Path] = typer.Argument(..., help="Run folders, or folders holding them (searched recursively for "
                                         "results/<id>/record.json), e.g. runs/* or leaderboard/records."),
    db: Path | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Build or update the leaderboard index from the evaluation records in run folders.

    Idempotent by run id: unchanged records are skipped, rewritten ones replace their rows. Use it to
    rebuild a damaged or deleted leaderboard file, or on one machine after syncing run folders from a
    cluster (where nodes must not share one DuckDB file).

    Example: anyir leaderboard ingest runs leaderboard/records --db leaderboard/leaderboard.duckdb
    """
    from anyir.eval.record import RecordError
    from anyir.leaderboard.ingest import ingest as ingest_records
    from anyir.leaderboard.store import LeaderboardError, default_db_path

    target = db or default_db_path()
    try:
        report = ingest_records(folders, target)
    except (FileNotFoundError, RecordError) as exc:
        fail(str(exc))
    except LeaderboardError as exc:
        fail(str(exc), code=1)
    for line in report.problems:
        err_console.print(f"[yellow]skipped:[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    flagged = f", {len(report.incomplete)} flagged INCOMPLETE" if report.incomplete else ""
    console.print(f"ingested into {target}: {len(report.added)} new, {len(report.updated)} updated, "
                  f"{report.unchanged} unchanged{flagged}; {len(report.problems)} unreadable", highlight=False,
                  soft_wrap=True)
    if report.problems:
        raise typer.Exit(1)


leaderboard_app.command("show")(show)
leaderboard_app.command("ingest")(ingest)
leaderboard_app.command("sweep")(sweep)
leaderboard_app.command("sweeps")(sweeps)
leaderboard_app.command("track")(track)
leaderboard_app.command("compare")(compare)
leaderboard_app.command("export")(export)


def register(app: typer.Typer) -> None:
    """Add the ``anyir leaderboard`` command group."""
    app.add_typer(leaderboard_app, name="leaderboard")
