"""What every command shares: the consoles, the one-line error, the output formats and renderers.

Errors a user can fix are printed as ONE red line naming the file/option and the fix, then the
command exits with code 2 (bad input) or 1 (the operation failed); no traceback.
"""

from __future__ import annotations

import os
from enum import Enum
from typing import NoReturn

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # error lines stay whole (grep-able)
# Paper tables are wide: when piped (no terminal width to honour) do not fold them into 80 columns.
wide_console = console if console.is_terminal else Console(width=240)
DB_HELP = "DuckDB leaderboard file (default: $ANYIR_LEADERBOARD or leaderboard/leaderboard.duckdb)."


def is_main_process() -> bool:
    """Rank 0 (or no torchrun): the one process that prints results."""
    return os.environ.get("RANK", "0") == "0"


def fail(message: str, code: int = 2) -> NoReturn:
    """One red line naming the problem and the fix, then exit (2: bad input, 1: the operation failed)."""
    if is_main_process():
        err_console.print(f"[red]error:[/red] {escape(str(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A one-line notice on stderr (not an error)."""
    if is_main_process():
        err_console.print(escape(message), highlight=False, soft_wrap=True)


def split_list(text: str | None) -> list[str] | None:
    """'a,b' -> ['a', 'b']; None/'' -> None."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return items or None


class OutputFormat(str, Enum):
    """How a table is printed."""

    table = "table"
    markdown = "markdown"
    csv = "csv"


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a string, '-' for missing values (pandas' astype(str) keeps NaN as missing)."""
    return frame.map(lambda v: "-" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v))


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    cells = as_text(frame).map(lambda v: v.replace("|", "\\|"))
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def print_frame(frame: pd.DataFrame, fmt: OutputFormat, title: str) -> None:
    """Print ``frame`` as a rich table, markdown or CSV (CSV and markdown go to stdout unadorned)."""
    if fmt is OutputFormat.csv:
        typer.echo(frame.to_csv(index=False), nl=False)
    elif fmt is OutputFormat.markdown:
        typer.echo(f"\n**{title}**\n\n{to_markdown(frame)}\n")
    else:
        table = Table(title=escape(title))
        for column in frame.columns:
            table.add_column(escape(str(column)), overflow="fold")
        for row in as_text(frame).itertuples(index=False, name=None):
            table.add_row(*(escape(c) for c in row))
        wide_console.print(table)


def report_frame(report) -> pd.DataFrame:
    """An evaluation report as one row per (task, dataset): metrics rounded, plus n."""
    frame = report.table()
    metrics = [c for c in frame.columns if c not in ("task", "dataset", "n")]
    out = frame[["task", "dataset"]].copy()
    for m in metrics:
        out[m] = frame[m].round(2 if m.startswith("psnr") else 4)
    out["n"] = frame["n"].astype(int)
    return out


def print_report(report, title: str, fmt: OutputFormat = OutputFormat.table) -> None:
    """The per-task table of an evaluation, the same for every command that evaluates."""
    suffix = "" if report.complete else "  [INCOMPLETE: " + "; ".join(report.problems[:2]) + "]"
    print_frame(report_frame(report), fmt, title + suffix)
