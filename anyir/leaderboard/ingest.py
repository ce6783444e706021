"""``anyir leaderboard ingest``: build or update the DuckDB index from run folders.

Every evaluation writes its results into the folder it scored (:mod:`anyir.eval.record`); the
DuckDB file is an index over those folders. Ingesting is idempotent by run id: a record already
indexed from the same ``record.json`` (same sha256) is left alone, a rewritten one replaces its
rows, a new one is added. So the index can be rebuilt from scratch at any time, and run folders
synced from a cluster (where many nodes must not share one DuckDB file) are indexed on one machine.

Records are read before the file is opened for writing, so the write lock is held only for the
inserts of the records that changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from anyir.eval.record import EvalRecord, RecordError, find_eval_records, peek_record, read_eval_record
from anyir.leaderboard.store import Notify, _stderr, connect, default_db_path, indexed_digests, log_records


@dataclass
class IngestReport:
    """What an ingest did: run ids added and updated, how many were unchanged, records it could not read."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    incomplete: list[str] = field(default_factory=list)  # run ids indexed with the INCOMPLETE flag
    problems: list[str] = field(default_factory=list)  # one line per unreadable record folder

    @property
    def found(self) -> int:
        """Readable record folders seen."""
        return len(self.added) + len(self.updated) + self.unchanged


def _known(db_path: Path, timeout_s: float | None, notify: Notify | None) -> dict[str, str]:
    """Digests already indexed (read-only; an absent file indexes nothing yet)."""
    if not db_path.is_file():
        return {}
    import duckdb

    con = connect(db_path, read_only=True, timeout_s=timeout_s, notify=notify)
    try:
        return indexed_digests(con)
    except duckdb.CatalogException:  # a file without our schema yet
        return {}
    finally:
        con.close()


def ingest(paths: Iterable[str | Path], db_path: str | Path | None = None, timeout_s: float | None = None,
           notify: Notify | None = _stderr) -> IngestReport:
    """Index every record folder under ``paths`` into ``db_path`` (default: the default leaderboard)."""
    db_path = Path(db_path) if db_path is not None else default_db_path()
    folders = find_eval_records(paths)
    known = _known(db_path, timeout_s, notify)
    report, changed = IngestReport(), []
    for folder in folders:
        try:
            run_id, digest = peek_record(folder)
            if known.get(run_id) == digest:
                report.unchanged += 1
                continue
            record = read_eval_record(folder)
        except RecordError as err:
            report.problems.append(str(err))
            continue
        changed.append(record)
        (report.updated if record.run_id in known else report.added).append(record.run_id)
        if not record.complete:
            report.incomplete.append(record.run_id)
    _check_unique(changed)
    if changed or not db_path.is_file():
        log_records(db_path, changed, timeout_s, notify)
    return report


def _check_unique(records: list[EvalRecord]) -> None:
    """Two folders holding the same run id (a copied run folder) would overwrite each other's rows."""
    seen: dict[str, Path] = {}
    for record in records:
        if record.run_id in seen:
            raise RecordError(f"{record.path} and {seen[record.run_id]} hold the same run id {record.run_id} "
                              "(a copied run folder?); ingest one of them")
        seen[record.run_id] = record.path
