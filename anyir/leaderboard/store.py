"""Connections and writes: short transactions, retried while another process holds the file.

DuckDB lets one process open a file for writing and then blocks every other process, readers
included ("Could not set lock on file"). So nobody keeps the file open: each write opens it,
runs one transaction and closes it; a process that finds it locked retries with jittered
exponential backoff until ``timeout_s``, then fails with a message naming the file.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from anyir.eval.report import EvalReport
from anyir.leaderboard import schema
from anyir.leaderboard.records import RunRecord

ENV_VAR = "ANYIR_LEADERBOARD"
DEFAULT_DB = Path("leaderboard") / "leaderboard.duckdb"
DEFAULT_TIMEOUT_S = 120.0
_FIRST_WAIT_S, _MAX_WAIT_S = 0.02, 1.0


class LeaderboardBusyError(TimeoutError):
    """The database file stayed locked by another process for longer than the timeout."""


def default_db_path() -> Path:
    """``$ANYIR_LEADERBOARD`` if set, else ``leaderboard/leaderboard.duckdb`` (relative to the cwd)."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DB)


def _is_lock_error(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


def connect(db_path: str | Path, read_only: bool = False,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> duckdb.DuckDBPyConnection:
    """Open the file, retrying (full-jitter exponential backoff) while another process holds its lock."""
    db_path = Path(db_path)
    if read_only and not db_path.is_file():
        raise FileNotFoundError(f"leaderboard {db_path} does not exist; log a run first or pass --db FILE")
    if not read_only:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    deadline, wait = time.monotonic() + timeout_s, _FIRST_WAIT_S
    while True:
        try:
            return duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() + wait > deadline:
                raise LeaderboardBusyError(
                    f"leaderboard {db_path} stayed locked by another process for {timeout_s:.0f} s; "
                    f"wait for other runs/notebooks using it to finish (or close them) and retry") from exc
            time.sleep(random.uniform(0, wait))  # full jitter: writers that collided spread out
            wait = min(wait * 2, _MAX_WAIT_S)


@contextmanager
def transaction(db_path: str | Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection with the schema applied, inside one transaction; closed on exit."""
    con = connect(db_path, timeout_s=timeout_s)
    try:
        for statement in schema.STATEMENTS:
            con.execute(statement)
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()


def run_values(record: RunRecord, run_id: str, eval_info: dict | None) -> list:
    """The ``runs`` row of a record, in :data:`schema.RUN_COLUMNS` order (JSON columns serialized)."""
    values = record.model_dump(exclude={"balance_trajectory", "identity", "run_id"})
    values.update(run_id=run_id, eval=eval_info)
    for key in ("balance", "config", "eval"):
        values[key] = None if values[key] is None else json.dumps(values[key], sort_keys=True, default=str)
    return [values[column] for column in schema.RUN_COLUMNS]


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, columns: str) -> None:
    """Bulk insert a DataFrame (far faster than executemany for per-image rows)."""
    con.register("_incoming", frame)
    try:
        con.execute(f"INSERT INTO {table} SELECT {columns} FROM _incoming")
    finally:
        con.unregister("_incoming")


def write_run(con: duckdb.DuckDBPyConnection, record: RunRecord, run_id: str, results: pd.DataFrame,
              images: pd.DataFrame | None = None, eval_info: dict | None = None) -> None:
    """Replace every row of ``run_id`` inside the caller's transaction (delete, then insert)."""
    for table in schema.RUN_TABLES:
        con.execute(schema.DELETE_RUN[table], [run_id])
    con.execute(schema.INSERT_RUN, run_values(record, run_id, eval_info))
    insert_frame(con, "results", results.assign(run_id=run_id),
                  "run_id, task, dataset, metric, value, n, protocol")
    if images is not None and len(images):
        insert_frame(con, "image_results", images.assign(run_id=run_id), "run_id, task, dataset, key, metric, value")
    for step, weights in record.balance_trajectory:
        for task, weight in sorted(weights.items()):
            con.execute(schema.INSERT_WEIGHT, [run_id, step, task, weight])


def log_run(db_path: str | Path | None, run: RunRecord, report: EvalReport,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Store a run and its evaluation; return the run id. Logging it again replaces its rows.

    ``db_path=None`` uses :func:`default_db_path`. Published reference rows are loaded on first use.
    """
    from anyir.leaderboard.published import sync_published

    db_path = Path(db_path) if db_path is not None else default_db_path()
    run_id = run.resolve_run_id(report.signature())
    eval_info = {**report.signature(), "shard_dir": report.shard_dir, "wall_time_s": report.wall_time_s,
                 "skipped_metrics": report.skipped_metrics, "complete": report.complete,
                 "expected": report.expected, "scored": report.scored, "problems": report.problems}
    if not report.complete:  # only reaches here when the evaluation was explicitly allowed to be incomplete
        flag = "INCOMPLETE evaluation: " + "; ".join(report.problems[:3] or ["fewer images than the manifest lists"])
        run = run.model_copy(update={"notes": "; ".join(filter(None, [run.notes, flag]))})
    with transaction(db_path, timeout_s) as con:
        sync_published(con)
        write_run(con, run, run_id, report.to_frame(), report.image_frame(), eval_info)
    return run_id


@contextmanager
def reader(db_path: str | Path | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; creates the file (schema + published rows) first if needed."""
    from anyir.leaderboard.published import published_is_current, sync_published

    db_path = Path(db_path) if db_path is not None else default_db_path()
    if not db_path.is_file() or not published_is_current(db_path, timeout_s):
        with transaction(db_path, timeout_s) as con:
            sync_published(con)
    con = connect(db_path, read_only=True, timeout_s=timeout_s)
    try:
        yield con
    finally:
        con.close()
