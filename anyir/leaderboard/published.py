"""Published reference numbers: ``leaderboard/published.csv`` -> runs with origin 'published'.

The CSV is tracked and long (one value per line). It is loaded into a database on first use
and again whenever its content changes (its hash is kept in the ``meta`` table).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import duckdb
import pandas as pd

from anyir import resources
from anyir.leaderboard import schema
from anyir.leaderboard.records import RunRecord, stable_hash

PUBLISHED_CSV = resources.published_csv()  # leaderboard/published.csv (package data when installed from a wheel)
COLUMNS = ["setting", "method", "venue", "params", "task", "dataset", "metric", "value", "protocol",
           "citation", "verified"]
_META_KEY = "published_csv_sha256"
_RUN_LEVEL = ["venue", "params", "verified"]


def parse_params(text: str | None) -> int | None:
    """'36M' -> 36000000, '8.93M' -> 8930000, '-' or '' -> None."""
    if text is None or pd.isna(text) or str(text).strip() in ("", "-"):
        return None
    match = re.fullmatch(r"([\d.]+)\s*([KMG]?)", str(text).strip())
    if not match:
        raise ValueError(f"published.csv: params {text!r} is not like '36M' or '8.93M'")
    scale = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}[match.group(2)]
    return round(float(match.group(1)) * scale)


def load_published_csv(path: str | Path = PUBLISHED_CSV) -> pd.DataFrame:
    """Read and validate the CSV; errors name the file, the line and the problem."""
    frame = pd.read_csv(path, dtype={"venue": str, "params": str, "verified": str}, keep_default_na=False)
    if list(frame.columns) != COLUMNS:
        raise ValueError(f"{path}: columns must be {COLUMNS}, found {list(frame.columns)}")
    bad = frame[~frame["verified"].isin(["true", "false"])]
    if len(bad):
        raise ValueError(f"{path} line {bad.index[0] + 2}: verified must be 'true' or 'false'")
    frame["value"] = pd.to_numeric(frame["value"], errors="raise")
    dupes = frame.duplicated(["setting", "method", "citation", "task", "dataset", "metric"])
    if dupes.any():
        raise ValueError(f"{path} line {dupes.idxmax() + 2}: duplicate value for the same method and column")
    return frame


def published_run_id(setting: str, method: str, citation: str) -> str:
    """Readable and stable: ``pub:aio3:promptir:<hash of the citation>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")
    return f"pub:{setting}:{slug}:{stable_hash(citation)[:6]}"


def published_runs(frame: pd.DataFrame) -> list[tuple[RunRecord, pd.DataFrame]]:
    """One (record, results) pair per (setting, method, citation) group of the CSV."""
    runs = []
    for (setting, method, citation), group in frame.groupby(["setting", "method", "citation"], sort=False):
        first = group.iloc[0]
        if (group[_RUN_LEVEL].nunique() > 1).any():
            raise ValueError(f"published.csv: {method} ({setting}) has differing {_RUN_LEVEL} across lines")
        run_id = published_run_id(setting, method, citation)
        record = RunRecord(name=method, identity=run_id, run_id=run_id, origin="published",
                           citation=citation, setting=setting, venue=first["venue"] or None,
                           params=parse_params(first["params"]), verified=first["verified"] == "true",
                           variant=method)
        results = group[["task", "dataset", "metric", "value", "protocol"]].assign(n=None)
        runs.append((record, results))
    return runs


def csv_digest(path: str | Path = PUBLISHED_CSV) -> str:
    """sha256 of the CSV bytes plus the schema version: a change in either reloads the rows."""
    return hashlib.sha256(Path(path).read_bytes() + schema.SCHEMA_VERSION.encode()).hexdigest()


def sync_published(con: duckdb.DuckDBPyConnection, path: str | Path = PUBLISHED_CSV) -> int:
    """Inside a write transaction: (re)load the published rows if the CSV changed; return runs loaded."""
    from anyir.leaderboard.store import insert_frame, run_values

    digest = csv_digest(path)
    current = con.execute(schema.GET_META, [_META_KEY]).fetchone()
    if current and current[0] == digest:
        return 0
    for table in schema.RUN_TABLES:
        con.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM runs WHERE origin = 'published')")
    runs = published_runs(load_published_csv(path))
    rows = pd.DataFrame([run_values(record, record.run_id, None) for record, _ in runs], columns=schema.RUN_COLUMNS)
    insert_frame(con, "runs", rows, ", ".join(schema.RUN_COLUMNS))
    results = pd.concat([frame.assign(run_id=record.run_id) for record, frame in runs], ignore_index=True)
    insert_frame(con, "results", results, "run_id, task, dataset, metric, value, n, protocol")
    con.execute(schema.SET_META, [_META_KEY, digest])
    return len(runs)


def published_is_current(db_path: str | Path, timeout_s: float, path: str | Path = PUBLISHED_CSV) -> bool:
    """Whether the database already holds this CSV's rows (checked read-only)."""
    from anyir.leaderboard.store import connect

    con = connect(db_path, read_only=True, timeout_s=timeout_s)
    try:
        row = con.execute(schema.GET_META, [_META_KEY]).fetchone()
    except duckdb.CatalogException:  # a file created by something else, without our schema
        return False
    finally:
        con.close()
    return bool(row) and row[0] == csv_digest(path)
