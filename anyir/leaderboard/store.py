"""Connections and writes: short transactions, retried while another process holds the file.

DuckDB lets one process open a file for writing and then blocks every other process, readers
included ("Could not set lock on file"). So nobody keeps the file open: each write opens it,
runs one transaction and closes it; a process that finds it locked retries with jittered
exponential backoff, says so on stderr (naming the holder's pid when DuckDB gives it) while it
waits, and after ``timeout_s`` fails with one line naming the file and the holder.

The DuckDB file is an index: the record of every local run lives in its run folder
(:mod:`anyir.eval.record`), and ``anyir leaderboard ingest`` rebuilds the index from them
(:mod:`anyir.leaderboard.ingest`). A damaged file therefore fails with one line that says so.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from anyir.eval.record import EvalRecord, evaluation_info
from anyir.eval.report import EvalReport
from anyir.leaderboard import schema
from anyir.leaderboard.records import RunRecord
from anyir.train.run_dir import RunDir

ENV_VAR = "ANYIR_LEADERBOARD"
TIMEOUT_ENV_VAR = "ANYIR_LEADERBOARD_TIMEOUT"  # seconds to wait for a locked file (default 120)
DEFAULT_DB = Path("leaderboard") / "leaderboard.duckdb"
DEFAULT_TIMEOUT_S = 120.0
_FIRST_WAIT_S, _MAX_WAIT_S = 0.02, 1.0
_FIRST_NOTE_S, _NOTE_EVERY_S = 1.0, 10.0  # say we are waiting after 1 s, then every 10 s
REBUILD_HINT = "it is only an index over run folders: move it aside and rebuild it with `anyir leaderboard ingest runs`"
# File systems shared between machines: DuckDB's single-writer lock does not protect a file there.
NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
                        "fuse.sshfs", "fuse.glusterfs", "fuse.gcsfuse", "fuse.s3fs", "fuse.juicefs", "9p", "afs",
                        "wekafs", "panfs", "orangefs", "fuse.lustre"})

Notify = Callable[[str], None]


class LeaderboardError(RuntimeError):
    """The leaderboard file cannot be used; ``str(err)`` is one line naming the file and the fix."""


class LeaderboardBusyError(LeaderboardError, TimeoutError):
    """The database file stayed locked by another process for longer than the timeout."""


class LeaderboardCorruptError(LeaderboardError):
    """The file is not a readable DuckDB database (damaged, truncated, or another kind of file)."""


def default_db_path() -> Path:
    """``$ANYIR_LEADERBOARD`` if set, else ``leaderboard/leaderboard.duckdb`` (relative to the cwd)."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DB)


def default_timeout_s() -> float:
    """``$ANYIR_LEADERBOARD_TIMEOUT`` seconds if set, else 120."""
    text = os.environ.get(TIMEOUT_ENV_VAR)
    try:
        return float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise LeaderboardError(f"{TIMEOUT_ENV_VAR}={text!r}: not a number of seconds") from None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _is_lock_error(exc: Exception) -> bool:
    """DuckDB's "Could not set lock on file ... Conflicting lock is held in ..." (not "block" in a damage report)."""
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text


def lock_holder(message: str) -> str:
    """Who holds the file, from DuckDB's lock error ("... held in /usr/bin/python3 (PID 123) ...")."""
    found = re.search(r"held in (.+?) \(PID (\d+)\)", message)
    if found:
        return f"pid {found.group(2)} ({Path(found.group(1)).name})"
    found = re.search(r"PID (\d+)", message)
    return f"pid {found.group(1)}" if found else "another process"


def is_corruption(exc: Exception) -> bool:
    """DuckDB's messages for a damaged file or one that is no DuckDB database at all."""
    text = str(exc)
    return "Corrupt database file" in text or "not a valid DuckDB database file" in text


def _unusable(db_path: Path, exc: Exception) -> LeaderboardError:
    """A one-line error for a file that cannot be opened for a reason other than a lock."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if is_corruption(exc):
        return LeaderboardCorruptError(f"leaderboard {db_path} is damaged or not a DuckDB file ({first}); {REBUILD_HINT}")
    return LeaderboardError(f"leaderboard {db_path} cannot be opened ({first}); check the path and its permissions, "
                            "or pass another --db / --leaderboard")


def filesystem_type(path: str | Path, mounts: str | None = None) -> str | None:
    """The file system type (``ext4``, ``nfs4``, ...) holding ``path``, from ``/proc/mounts``; None if unknown."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = os.path.realpath(Path(path).absolute())
    best, kind = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def on_network_filesystem(path: str | Path, mounts: str | None = None) -> str | None:
    """The network file system type holding ``path`` (``nfs4``, ``lustre``, ...), else None."""
    kind = filesystem_type(path, mounts)
    return kind if kind in NETWORK_FS else None


def connect(db_path: str | Path, read_only: bool = False, timeout_s: float | None = None,
            notify: Notify | None = _stderr) -> duckdb.DuckDBPyConnection:
    """Open the file, retrying (full-jitter exponential backoff) while another process holds its lock.

    While waiting it calls ``notify`` with a progress line (after 1 s, then every 10 s); after
    ``timeout_s`` (default :func:`default_timeout_s`) it raises :class:`LeaderboardBusyError` naming
    the holder. A damaged file raises :class:`LeaderboardCorruptError`.
    """
    db_path = Path(db_path)
    timeout_s = default_timeout_s() if timeout_s is None else timeout_s
    if read_only and not db_path.is_file():
        raise FileNotFoundError(f"leaderboard {db_path} does not exist; log a run first or pass --db FILE")
    if not read_only:
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unusable(db_path, exc) from None
    start, wait, next_note = time.monotonic(), _FIRST_WAIT_S, _FIRST_NOTE_S
    while True:
        try:
            return duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise _unusable(db_path, exc) from None
            holder, waited = lock_holder(str(exc)), time.monotonic() - start
            if notify is not None and waited >= next_note:
                notify(f"leaderboard {db_path} is locked by {holder}; waiting... ({waited:.0f} s of {timeout_s:.0f} s)")
                next_note = waited + _NOTE_EVERY_S
            if waited >= timeout_s:
                raise LeaderboardBusyError(
                    f"leaderboard {db_path} stayed locked by {holder} for {waited:.0f} s; wait for that process "
                    f"(a run, a notebook or an ingest using it) to finish or close it, then retry") from None
            wait = min(wait, max(timeout_s - waited, 0.001))  # never sleep past the deadline
            time.sleep(random.uniform(0, wait))  # full jitter: writers that collided spread out
            wait = min(wait * 2, _MAX_WAIT_S)


@contextmanager
def _damage_is_one_line(db_path: Path) -> Iterator[None]:
    """DuckDB finds some damage only when a block is read: say so in one line, not a traceback."""
    try:
        yield
    except duckdb.Error as exc:
        if is_corruption(exc):
            raise _unusable(db_path, exc) from None
        if isinstance(exc, duckdb.IOException):  # e.g. no space left while writing it
            first = str(exc).strip().splitlines()[0]
            raise LeaderboardError(f"leaderboard {db_path} could not be read or written ({first}); free space "
                                   "or check the disk, or pass another --db / --leaderboard") from None
        raise


@contextmanager
def transaction(db_path: str | Path, timeout_s: float | None = None,
                notify: Notify | None = _stderr) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection with the schema applied, inside one transaction; closed on exit."""
    db_path = Path(db_path)
    con = connect(db_path, timeout_s=timeout_s, notify=notify)
    try:
        with _damage_is_one_line(db_path):
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
    for key in ("balance", "config", "eval", "submission"):
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


def flag_incomplete(run: RunRecord, eval_info: dict) -> RunRecord:
    """An incomplete evaluation (logged only when explicitly allowed) says so in the run's notes."""
    if eval_info.get("complete", True):
        return run
    flag = "INCOMPLETE evaluation: " + "; ".join(eval_info.get("problems", [])[:3]
                                                 or ["fewer images than the manifest lists"])
    if flag in (run.notes or ""):
        return run
    return run.model_copy(update={"notes": "; ".join(filter(None, [run.notes, flag]))})


def log_run(db_path: str | Path | None, run: RunRecord, report: EvalReport, timeout_s: float | None = None,
            notify: Notify | None = _stderr) -> str:
    """Store a run and its evaluation; return the run id. Logging it again replaces its rows.

    ``db_path=None`` uses :func:`default_db_path`. Published reference rows are loaded on first use.
    """
    from anyir.leaderboard.published import sync_published

    db_path = Path(db_path) if db_path is not None else default_db_path()
    run_id = run.resolve_run_id(report.signature())
    info = evaluation_info(report)
    with transaction(db_path, timeout_s, notify) as con:
        sync_published(con)
        write_run(con, flag_incomplete(run, info), run_id, report.to_frame(), report.image_frame(), info)
    return run_id


def record_run(record: EvalRecord) -> RunRecord:
    """The run fields of a record folder, with its paths made current: a run folder synced from
    another machine is recorded where it is now."""
    run = RunRecord.model_validate({**record.run, "run_id": record.run_id})
    run_folder = record.path.parent.parent
    if record.path.parent.name == "results" and RunDir(run_folder).summary.is_file():
        folder = RunDir(run_folder)
        run = run.model_copy(update={"run_dir": str(folder.path.resolve()),
                                     "checkpoint": str(folder.weights.resolve()) if folder.weights.is_file()
                                     else run.checkpoint})
    return run


def write_record(con: duckdb.DuckDBPyConnection, record: EvalRecord) -> None:
    """Index one record folder inside the caller's transaction (replacing the run's rows)."""
    info = {**record.eval, "record": str(record.path.resolve()), "record_sha256": record.digest}
    write_run(con, flag_incomplete(record_run(record), info), record.run_id, record.results, record.images, info)


def indexed_digests(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """run id -> sha256 of the record.json each indexed local run was read from."""
    rows = con.execute("SELECT run_id, json_extract_string(eval, '$.record_sha256') FROM runs "
                       "WHERE origin = 'local'").fetchall()
    return {run_id: digest for run_id, digest in rows if digest}


def log_records(db_path: str | Path | None, records: list[EvalRecord], timeout_s: float | None = None,
                notify: Notify | None = _stderr) -> None:
    """Index record folders in one transaction (``anyir eval`` logging its own, or an ingest)."""
    from anyir.leaderboard.published import sync_published

    db_path = Path(db_path) if db_path is not None else default_db_path()
    with transaction(db_path, timeout_s, notify) as con:
        sync_published(con)
        for record in records:
            write_record(con, record)


@contextmanager
def reader(db_path: str | Path | None = None, timeout_s: float | None = None,
           notify: Notify | None = _stderr) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; creates the file (schema + published rows) first if needed."""
    from anyir.leaderboard.published import published_is_current, sync_published

    db_path = Path(db_path) if db_path is not None else default_db_path()
    with _damage_is_one_line(db_path):
        if not db_path.is_file() or not published_is_current(db_path, timeout_s):
            with transaction(db_path, timeout_s, notify) as con:
                sync_published(con)
        con = connect(db_path, read_only=True, timeout_s=timeout_s, notify=notify)
        try:
            yield con
        finally:
            con.close()
